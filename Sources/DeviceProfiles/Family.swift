/// An STM32 family as dfuhop needs to know it: the ROM bootloader's DFU identity and layout,
/// the flash geometry and timings, RAM, and the ROM quirks. Facts: shared/design/dfuse-facts.md,
/// AN2606 (system memory boot), AN3156 (DfuSe), and each part's datasheet and reference manual.
/// Families are data: adding one is adding a value to `McuFamily.all`.
public struct McuFamily: Sendable, Hashable, Identifiable {
    /// Short id used on the command line: "f407", "l476", "g474", "h753".
    public var id: String
    public var name: String
    /// DBGMCU_IDCODE DEV_ID, as the ROM and AN2606 report it.
    public var deviceID: UInt16
    public var core: Core

    public var flashBase: UInt32
    /// The flash organisations the part can have (G4: dual bank with DBANK=1, single bank with DBANK=0).
    /// The first one is the factory default.
    public var flashModes: [FlashMode]
    /// Smallest programmable unit; a flash word protected by ECC must be written exactly once
    /// (8 bytes on L4/G4, 32 on H7 — seed 004).
    public var writeGranularity: Int
    /// Whether programming an already-programmed flash word corrupts its ECC (reads then fault).
    public var eccFlash: Bool
    /// The other DfuSe alternate settings of the ROM (option bytes, OTP, device feature), in order after flash.
    public var otherMemories: [String]
    public var ramRegions: [AddressRange]

    /// Where the ROM lives (the application jumps here: word 0 = SP, word 1 = reset handler).
    public var systemMemoryBase: UInt32
    /// Address of the 96-bit unique device ID.
    public var uidAddress: UInt32
    /// The backup register the application writes the enter-bootloader magic to (seed 000).
    public var backupRegister: UInt32
    public var romSerial: RomSerialFormula
    public var rom: RomIdentity
    /// Empty-check parts boot the ROM while the first flash word is erased and keep doing so after
    /// the first programming until a power-on reset.
    public var emptyCheck: Bool
    /// What the ROM does with the address of a DfuSe leave (seed 001).
    public var leaveJump: LeaveJump
    public var timings: FlashTimings
    public var quirks: [RomQuirk]
    /// Where the option bytes sit and which of their bits matter to dfuhop.
    public var optionBytes: OptionByteMap

    public enum Core: String, Sendable, Hashable, Codable {
        case cortexM4 = "Cortex-M4"
        case cortexM7 = "Cortex-M7"
    }

    public enum LeaveJump: String, Sendable, Hashable, Codable {
        /// Treats the address as a vector table: loads SP from word 0 and jumps to word 1 (F4, L4, G4).
        case vectorTable = "vector-table"
        /// Jumps to the address itself, so it must be the reset handler (H7, seed 001).
        case directJump = "direct-jump"
    }

    public init(id: String, name: String, deviceID: UInt16, core: Core, flashBase: UInt32, flashModes: [FlashMode],
                writeGranularity: Int, eccFlash: Bool, otherMemories: [String], ramRegions: [AddressRange],
                systemMemoryBase: UInt32, uidAddress: UInt32, backupRegister: UInt32, romSerial: RomSerialFormula,
                rom: RomIdentity, emptyCheck: Bool, leaveJump: LeaveJump, timings: FlashTimings, quirks: [RomQuirk],
                optionBytes: OptionByteMap) {
        self.id = id
        self.name = name
        self.deviceID = deviceID
        self.core = core
        self.flashBase = flashBase
        self.flashModes = flashModes
        self.writeGranularity = writeGranularity
        self.eccFlash = eccFlash
        self.otherMemories = otherMemories
        self.ramRegions = ramRegions
        self.systemMemoryBase = systemMemoryBase
        self.uidAddress = uidAddress
        self.backupRegister = backupRegister
        self.romSerial = romSerial
        self.rom = rom
        self.emptyCheck = emptyCheck
        self.leaveJump = leaveJump
        self.timings = timings
        self.quirks = quirks
        self.optionBytes = optionBytes
    }

    public var defaultFlashMode: FlashMode { flashModes[0] }

    /// The family with this id (case-insensitive), or nil.
    public static func named(_ id: String) -> McuFamily? {
        all.first { $0.id == id.lowercased() }
    }

    /// The family whose ROM reports this DEV_ID.
    public static func withDeviceID(_ deviceID: UInt16) -> McuFamily? {
        all.first { $0.deviceID == deviceID }
    }

    /// Whether `address` lies in one of the family's RAM regions; `inclusiveEnd` accepts the address
    /// one past the end (an initial stack pointer points there).
    public func isInRAM(_ address: UInt32, inclusiveEnd: Bool = false) -> Bool {
        ramRegions.contains { $0.contains(address) || (inclusiveEnd && UInt64(address) == $0.end) }
    }

    /// The address a DfuSe leave must name for the ROM to start the application whose vector table is at
    /// `vectorTable` (seed 001): the table itself where the ROM loads SP and PC from it, the reset handler
    /// (a Thumb address, bit 0 set) where it jumps straight to the address. Nil if that handler is missing.
    /// The one place this rule lives: the upgrade, `leave` and `flash --leave` all ask here.
    public func leaveAddress(vectorTable: UInt32, resetHandler: UInt32?) -> UInt32? {
        switch leaveJump {
        case .vectorTable: return vectorTable
        case .directJump:
            guard let resetHandler, resetHandler & 1 == 1, resetHandler != 0xFFFF_FFFF else { return nil }
            return resetHandler
        }
    }

    public func quirk<T>(_ extract: (RomQuirk) -> T?) -> T? {
        quirks.lazy.compactMap(extract).first
    }
}

/// One flash organisation: a name and the ROM's layout string for the internal flash.
public struct FlashMode: Sendable, Hashable {
    public var name: String
    public var layoutString: String
    /// The option a host must set to select it, if any (e.g. "DBANK=0").
    public var selectedBy: String?

    public init(name: String, layoutString: String, selectedBy: String? = nil) {
        self.name = name
        self.layoutString = layoutString
        self.selectedBy = selectedBy
    }

    /// The parsed layout. Family data is checked by tests, so a failure here is a bug in the table.
    public var layout: FlashLayout {
        do { return try FlashLayout(parsing: layoutString) } catch {
            preconditionFailure("built-in layout string does not parse: \(error)")
        }
    }
}

/// The option bytes as the ROM exposes them on their alternate setting (RM0090 §3.6, RM0351 §3.4.1,
/// RM0440 §3.4.1, RM0433 §4.4): the first word's factory value, where the read-protection byte is
/// (0xAA = level 0, 0xCC = level 2, anything else level 1) and the DBANK bit, if the part has one.
public struct OptionByteMap: Sendable, Hashable {
    public var address: UInt32
    /// Factory value of the first bytes; the rest of the area reads 0xFF.
    public var factoryBytes: [UInt8]
    public var readProtectionByteOffset: Int
    /// Bit index (little-endian, from the area's start) of DBANK: 1 selects `flashModes[0]`, 0 `flashModes[1]`.
    public var dualBankBit: Int?

    public init(address: UInt32, factoryBytes: [UInt8], readProtectionByteOffset: Int, dualBankBit: Int? = nil) {
        self.address = address
        self.factoryBytes = factoryBytes
        self.readProtectionByteOffset = readProtectionByteOffset
        self.dualBankBit = dualBankBit
    }

    /// The bit a reference-manual option name stands for, where dfuhop has the data (DBANK).
    public func bit(named name: String) -> Int? {
        switch name {
        case "DBANK": dualBankBit
        default: nil
        }
    }
}

/// A half-open address range [start, start + size).
public struct AddressRange: Sendable, Hashable, CustomStringConvertible {
    public var start: UInt32
    public var size: UInt32

    public init(start: UInt32, size: UInt32) {
        self.start = start
        self.size = size
    }

    public var end: UInt64 { UInt64(start) + UInt64(size) }
    public func contains(_ address: UInt32) -> Bool { address >= start && UInt64(address) < end }
    public var description: String { "[0x\(hex32(start)), 0x\(hex32(UInt32(truncatingIfNeeded: end))))" }
}

/// How the ROM bootloader shows itself on USB (AN2606: VID 0x0483, PID 0xDF11).
public struct RomIdentity: Sendable, Hashable {
    public var vendorID: UInt16
    public var productID: UInt16
    public var bcdDevice: UInt16
    public var manufacturer: String
    public var product: String
    /// wTransferSize of the DFU functional descriptor.
    public var transferSize: UInt16

    public init(vendorID: UInt16 = 0x0483, productID: UInt16 = 0xDF11, bcdDevice: UInt16, manufacturer: String = "STMicroelectronics",
                product: String, transferSize: UInt16) {
        self.vendorID = vendorID
        self.productID = productID
        self.bcdDevice = bcdDevice
        self.manufacturer = manufacturer
        self.product = product
        self.transferSize = transferSize
    }
}

/// How a ROM turns the 96-bit unique ID into its 12-hex-digit iSerial (dfuse-facts.md).
/// With h0..h5 the little-endian 16-bit halves of UID bytes 0..11: "%04X%04X%04X" of
/// (h1 + h5), (h0 + h4 + offset), h3 — commaai/panda's form. Unconfirmed on silicon for L4/G4.
public struct RomSerialFormula: Sendable, Hashable {
    /// Added to the second half-word: 0x000A on F2/F4, 0 elsewhere.
    public var secondWordOffset: UInt16

    public init(secondWordOffset: UInt16) { self.secondWordOffset = secondWordOffset }

    public func serial(uid: [UInt8]) -> String {
        precondition(uid.count == 12, "a unique ID is 96 bits")
        func half(_ i: Int) -> UInt16 { UInt16(uid[2 * i]) | UInt16(uid[2 * i + 1]) << 8 }
        let words = [half(1) &+ half(5), half(0) &+ half(4) &+ secondWordOffset, half(3)]
        return words.map { hex16($0) }.joined()
    }
}

/// Typical flash and USB timings the virtual device uses and the benchmarks compare against.
public struct FlashTimings: Sendable, Hashable {
    /// Erase time per sector size in bytes; sizes not listed use `defaultSectorErase`.
    public var sectorErase: [UInt32: Duration]
    public var defaultSectorErase: Duration
    public var massErase: Duration
    /// Time to program one `writeGranularity` unit.
    public var programUnit: Duration
    /// Fixed cost of one control transfer (setup, status, host scheduling).
    public var controlTransferOverhead: Duration
    /// Data-stage time per byte on a full-speed control pipe.
    public var usbPerByte: Duration

    public init(sectorErase: [UInt32: Duration], defaultSectorErase: Duration, massErase: Duration,
                programUnit: Duration, controlTransferOverhead: Duration, usbPerByte: Duration) {
        self.sectorErase = sectorErase
        self.defaultSectorErase = defaultSectorErase
        self.massErase = massErase
        self.programUnit = programUnit
        self.controlTransferOverhead = controlTransferOverhead
        self.usbPerByte = usbPerByte
    }

    public func eraseTime(sectorSize: UInt32) -> Duration { sectorErase[sectorSize] ?? defaultSectorErase }

    public func programTime(bytes: Int, granularity: Int) -> Duration {
        programUnit * ((bytes + granularity - 1) / granularity)
    }

    public func transferTime(bytes: Int) -> Duration { controlTransferOverhead + usbPerByte * bytes }
}

/// ROM bootloader misbehaviour the DfuSe client must tolerate (dfuse-facts.md, "Known ROM quirks").
public enum RomQuirk: Sendable, Hashable {
    /// F405/F407: the poll timeout reported during mass erase is far too short; the erase takes
    /// up to `actual`.
    case massErasePollTimeoutUnderstated(actual: Duration)
    /// L4: GETSTATUS may stall during an erase, up to `maxStalls` times in a row.
    case getStatusStallsDuringErase(maxStalls: Int)
    /// H7 rev V: may hang in dfuDNBUSY; `clearStatusCount` CLRSTATUS requests recover it.
    case stuckInDownloadBusy(clearStatusCount: Int)
}

func hex16(_ value: UInt16) -> String {
    let digits = String(value, radix: 16, uppercase: true)
    return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
}

extension McuFamily {
    /// Every family dfuhop knows.
    public static let all: [McuFamily] = [.f407, .l476, .g474, .h753]

    /// Full-speed USB as seen from a Linux host: ~0.25 ms of setup/status per control transfer,
    /// ~1 µs per data byte (64-byte packets, about 1 MB/s).
    static let fullSpeedOverhead = Duration.microseconds(250)
    static let fullSpeedPerByte = Duration.nanoseconds(1000)

    /// STM32F405/407: RM0090, DS8626 (flash timings at x32 parallelism), AN2606 §"STM32F40xxx/41xxx".
    public static let f407 = McuFamily(
        id: "f407", name: "STM32F405/407", deviceID: 0x413, core: .cortexM4,
        flashBase: 0x0800_0000,
        flashModes: [FlashMode(name: "single bank", layoutString: "@Internal Flash  /0x08000000/04*016Kg,01*064Kg,07*128Kg")],
        writeGranularity: 4, eccFlash: false,
        otherMemories: ["@Option Bytes  /0x1FFFC000/01*016 g", "@OTP Memory /0x1FFF7800/01*512 g,01*016 g",
                        "@Device Feature/0xFFFF0000/01*004 g"],
        ramRegions: [AddressRange(start: 0x2000_0000, size: 128 * 1024), AddressRange(start: 0x1000_0000, size: 64 * 1024)],
        systemMemoryBase: 0x1FFF_0000, uidAddress: 0x1FFF_7A10, backupRegister: 0x4000_2850,  // RTC_BKP0R
        romSerial: RomSerialFormula(secondWordOffset: 0x000A),
        rom: RomIdentity(bcdDevice: 0x2200, product: "STM32  BOOTLOADER", transferSize: 2048),
        emptyCheck: false, leaveJump: .vectorTable,
        timings: FlashTimings(
            sectorErase: [16 * 1024: .milliseconds(250), 64 * 1024: .milliseconds(550), 128 * 1024: .milliseconds(1000)],
            defaultSectorErase: .milliseconds(1000), massErase: .seconds(8),
            programUnit: .microseconds(16), controlTransferOverhead: fullSpeedOverhead, usbPerByte: fullSpeedPerByte),
        quirks: [.massErasePollTimeoutUnderstated(actual: .seconds(35))],
        optionBytes: OptionByteMap(address: 0x1FFF_C000, factoryBytes: [0xEC, 0xAA, 0xFF, 0x0F], readProtectionByteOffset: 1))

    /// STM32L476: RM0351, DS10198 (page erase 22.02 ms, double-word program 81.69 µs typ.), AN2606.
    public static let l476 = McuFamily(
        id: "l476", name: "STM32L476", deviceID: 0x415, core: .cortexM4,
        flashBase: 0x0800_0000,
        flashModes: [FlashMode(name: "dual bank", layoutString: "@Internal Flash  /0x08000000/0512*0002Kg")],
        writeGranularity: 8, eccFlash: true,
        otherMemories: ["@Option Bytes  /0x1FFF7800/01*040 e", "@OTP Memory /0x1FFF7000/01*0001Ke"],
        ramRegions: [AddressRange(start: 0x2000_0000, size: 96 * 1024), AddressRange(start: 0x1000_0000, size: 32 * 1024)],
        systemMemoryBase: 0x1FFF_0000, uidAddress: 0x1FFF_7590, backupRegister: 0x4000_2850,  // RTC_BKP0R
        romSerial: RomSerialFormula(secondWordOffset: 0),
        rom: RomIdentity(bcdDevice: 0x2200, product: "STM32  BOOTLOADER", transferSize: 2048),
        emptyCheck: true, leaveJump: .vectorTable,
        timings: FlashTimings(
            sectorErase: [2048: .microseconds(22_020)], defaultSectorErase: .microseconds(22_020),
            massErase: .microseconds(22_100), programUnit: .microseconds(82),
            controlTransferOverhead: fullSpeedOverhead, usbPerByte: fullSpeedPerByte),
        quirks: [.getStatusStallsDuringErase(maxStalls: 3)],
        optionBytes: OptionByteMap(address: 0x1FFF_7800, factoryBytes: [0xAA, 0xF8, 0xFF, 0xFF], readProtectionByteOffset: 0))

    /// STM32G474: RM0440, DS12288; DBANK=1 (factory) gives two banks of 2 KiB pages,
    /// DBANK=0 one bank of 4 KiB pages (seed 003).
    public static let g474 = McuFamily(
        id: "g474", name: "STM32G474", deviceID: 0x469, core: .cortexM4,
        flashBase: 0x0800_0000,
        flashModes: [
            FlashMode(name: "dual bank", layoutString: "@Internal Flash   /0x08000000/256*02Kg", selectedBy: "DBANK=1"),
            FlashMode(name: "single bank", layoutString: "@Internal Flash   /0x08000000/128*04Kg", selectedBy: "DBANK=0"),
        ],
        writeGranularity: 8, eccFlash: true,
        otherMemories: ["@Option Bytes   /0x1FFF7800/01*048 e/0x1FFFF800/01*048 e", "@OTP Memory   /0x1FFF7000/01*0001Ke"],
        ramRegions: [AddressRange(start: 0x2000_0000, size: 128 * 1024), AddressRange(start: 0x1000_0000, size: 32 * 1024)],
        systemMemoryBase: 0x1FFF_0000, uidAddress: 0x1FFF_7590, backupRegister: 0x4000_2500,  // TAMP_BKP0R
        romSerial: RomSerialFormula(secondWordOffset: 0),
        rom: RomIdentity(bcdDevice: 0x2200, product: "STM32  BOOTLOADER", transferSize: 2048),
        emptyCheck: false, leaveJump: .vectorTable,
        timings: FlashTimings(
            sectorErase: [2048: .microseconds(22_020), 4096: .microseconds(22_020)],
            defaultSectorErase: .microseconds(22_020), massErase: .microseconds(22_100),
            programUnit: .microseconds(82), controlTransferOverhead: fullSpeedOverhead, usbPerByte: fullSpeedPerByte),
        quirks: [],
        // FLASH_OPTR factory value 0xFFEFF8AA: RDP level 0, DBANK (bit 22) set.
        optionBytes: OptionByteMap(address: 0x1FFF_7800, factoryBytes: [0xAA, 0xF8, 0xEF, 0xFF], readProtectionByteOffset: 0,
                                   dualBankBit: 22))

    /// STM32H753: RM0433, DS12117 (128 KiB sector erase ~2 s at x64, 256-bit flash word);
    /// the ROM jumps straight to the leave address (seed 001). Layout string unverified on silicon.
    public static let h753 = McuFamily(
        id: "h753", name: "STM32H743/753", deviceID: 0x450, core: .cortexM7,
        flashBase: 0x0800_0000,
        flashModes: [FlashMode(name: "dual bank", layoutString: "@Internal Flash   /0x08000000/16*128Kg")],
        writeGranularity: 32, eccFlash: true,
        otherMemories: ["@Option Bytes   /0x5200201C/01*128 e"],  // unverified on silicon
        ramRegions: [
            AddressRange(start: 0x2000_0000, size: 128 * 1024),  // DTCM
            AddressRange(start: 0x2400_0000, size: 512 * 1024),  // AXI SRAM
            AddressRange(start: 0x3000_0000, size: 288 * 1024),  // SRAM1-3
            AddressRange(start: 0x3800_0000, size: 64 * 1024),  // SRAM4
        ],
        systemMemoryBase: 0x1FF0_9800, uidAddress: 0x1FF1_E800, backupRegister: 0x5800_4050,  // RTC_BKP0R
        romSerial: RomSerialFormula(secondWordOffset: 0),
        rom: RomIdentity(bcdDevice: 0x0200, product: "DFU in FS Mode", transferSize: 1024),
        emptyCheck: false, leaveJump: .directJump,
        timings: FlashTimings(
            sectorErase: [128 * 1024: .milliseconds(2000)], defaultSectorErase: .milliseconds(2000),
            massErase: .seconds(16), programUnit: .microseconds(16),
            controlTransferOverhead: fullSpeedOverhead, usbPerByte: fullSpeedPerByte),
        quirks: [.stuckInDownloadBusy(clearStatusCount: 2)],
        optionBytes: OptionByteMap(address: 0x5200_201C, factoryBytes: [0x1C, 0xAA, 0xC6, 0x03], readProtectionByteOffset: 1))
}
