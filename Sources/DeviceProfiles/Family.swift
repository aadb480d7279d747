import HexFormat

/// An STM32 part line as dfuhop needs to know it: the ROM bootloader's DFU identity and layout strings,
/// the flash geometry and timings, RAM, option bytes, boot activation and the ROM quirks.
/// Families are data: one file per part line in protocols/families/, every value with its source
/// (protocols/families/README.md), embedded into the binary by scripts/gen-families and parsed here.
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
    /// The other DfuSe alternate settings of the modelled ROM version (`romVersions[0]`), in order after flash.
    public var otherMemories: [String]
    public var ramRegions: [AddressRange]

    /// Where the ROM lives (the application jumps here: word 0 = SP, word 1 = reset handler).
    public var systemMemoryBase: UInt32
    /// Address of the 96-bit unique device ID.
    public var uidAddress: UInt32
    /// The backup register the application writes the enter-bootloader magic to (seed 000).
    public var backupRegister: UInt32
    public var romSerial: RomSerialFormula
    /// The modelled ROM version's USB identity (`romVersions[0]`).
    public var rom: RomIdentity
    /// Empty-check parts boot the ROM while the first flash word is erased and keep doing so after
    /// the first programming until a power-on reset or an option-byte load (unless the ROM clears the flag).
    public var emptyCheck: Bool
    /// Empty-check parts whose bootloader clears the empty-check flag when it starts (AN2606, G0B1/G0C1 V9.2):
    /// a reset after the ROM ran boots the flash, and hangs if it is empty, until a power-on reset.
    public var emptyCheckClearedAtStartup = false
    /// Whether the application can start the ROM by jumping to it. AN2606: not on F04x/F070x6 and L0, where such
    /// a jump goes back to user flash; there only BOOT0 (or nBOOT0) or the empty check reach the ROM.
    public var applicationCanJumpToROM = true
    /// How the running application hands the unit to its ROM (`applicationEntry`, the device kit's entry method).
    public var applicationEntry = ApplicationEntry.backupRegisterJump
    /// Data blocks the ROM cannot take as sent (AN2606 known limitations, capture reports).
    public var writeLimits = RomWriteLimits()
    /// What the ROM does with the address of a DfuSe leave (seed 001).
    public var leaveJump: LeaveJump
    public var timings: FlashTimings
    public var quirks: [RomQuirk]
    /// Where the option bytes sit and which of their bits matter to dfuhop.
    public var optionBytes: OptionByteMap

    /// Every ROM version the sources show, the modelled one first: bcdDevice, product string and alternate settings.
    public var romVersions: [RomVersion]
    /// How the BOOT0 pin (or the option bits that replace it) reaches the ROM (AN2606 activation patterns).
    public var boot0: Boot0Activation
    /// The poll timeouts the ROM reports for DfuSe commands, where real logs show them (nil: the operation's time).
    public var reportedPollTimeouts: ReportedPollTimeouts
    /// Where each value comes from, by field name ("deviceID", "romVersions[1]", "timings", ...).
    public var sources: [String: ValueSource]

    public enum Core: String, Sendable, Hashable, Codable {
        case cortexM0 = "Cortex-M0"
        case cortexM0Plus = "Cortex-M0+"
        case cortexM3 = "Cortex-M3"
        case cortexM4 = "Cortex-M4"
        case cortexM7 = "Cortex-M7"
        case cortexM33 = "Cortex-M33"
    }

    public enum LeaveJump: String, Sendable, Hashable, Codable {
        /// Treats the address as a vector table: loads SP from word 0 and jumps to word 1 (F4, L4, G4).
        case vectorTable = "vector-table"
        /// Jumps to the address itself, so it must be the reset handler (H7, seed 001).
        case directJump = "direct-jump"
    }

    public init(
        id: String, name: String, deviceID: UInt16, core: Core, flashBase: UInt32, flashModes: [FlashMode],
        writeGranularity: Int, eccFlash: Bool, otherMemories: [String], ramRegions: [AddressRange],
        systemMemoryBase: UInt32, uidAddress: UInt32, backupRegister: UInt32, romSerial: RomSerialFormula,
        rom: RomIdentity, emptyCheck: Bool, leaveJump: LeaveJump, timings: FlashTimings, quirks: [RomQuirk],
        optionBytes: OptionByteMap, romVersions: [RomVersion]? = nil, boot0: Boot0Activation = Boot0Activation(),
        reportedPollTimeouts: ReportedPollTimeouts = ReportedPollTimeouts(), sources: [String: ValueSource] = [:]
    ) {
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
        self.romVersions = romVersions ?? [RomVersion(bcdDevice: rom.bcdDevice, product: rom.product, otherMemories: otherMemories)]
        self.boot0 = boot0
        self.reportedPollTimeouts = reportedPollTimeouts
        self.sources = sources
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

    /// F4: how long a mass erase may really take, its reported poll timeout being far too short; nil: as reported.
    public var massEraseAllowance: Duration? { quirks.massEraseAllowance }
    /// L4: how many GETSTATUS in a row may stall during an erase; nil: a stall is an error.
    public var eraseStallAllowance: Int? { quirks.eraseStallAllowance }
    /// H7 rev V: how many CLRSTATUS bring back a ROM hung in dfuDNBUSY; nil: it does not hang.
    public var stuckBusyClearCount: Int? { quirks.stuckBusyClearCount }
    /// H5: the ROM's leave does not start the application.
    public var leaveLocksUp: Bool { quirks.leaveLocksUp }

    /// Whether the BOOT0 pin reaches the ROM with the factory option bytes (false on G0: nBOOT_SEL = 1 ignores
    /// the pin, so a programmed G0 has no BOOT0 path until its option bytes are changed).
    public var factoryBoot0PinReachesROM: Bool {
        var bytes = [UInt8](repeating: 0xFF, count: optionBytes.size)
        for (index, byte) in optionBytes.factoryBytes.enumerated() where index < bytes.count { bytes[index] = byte }
        return boot0.pinReachesROM(optionBytes: bytes)
    }

    /// The values no public source confirms yet, by field name, with what is known about them.
    public var unverified: [(field: String, note: String)] {
        sources.filter(\.value.unverified).sorted { $0.key < $1.key }.map { ($0.key, $0.value.text) }
    }
}

/// Where a family value comes from: a document and section, a public log, or a repository file.
public struct ValueSource: Sendable, Hashable {
    public var text: String
    /// No public source confirms the value (it is a reasoned guess or carried over).
    public var unverified: Bool

    public init(_ text: String, unverified: Bool = false) {
        self.text = text
        self.unverified = unverified
    }
}

/// One ROM version as it enumerates: bcdDevice, product string, and the alternate settings after the flash.
public struct RomVersion: Sendable, Hashable {
    public var bcdDevice: UInt16
    public var product: String
    public var otherMemories: [String]

    public init(bcdDevice: UInt16, product: String, otherMemories: [String]) {
        self.bcdDevice = bcdDevice
        self.product = product
        self.otherMemories = otherMemories
    }
}

/// How the ROM is reached at reset (AN2606 "Bootloader activation" patterns). On parts with option bits that
/// replace the BOOT0 pin, `pinIgnoredBit` (bit index from the option-byte area's start) ignores the pin when it
/// equals `pinIgnoredWhenSet`, and `nBoot0Bit` then decides (0 = boot the ROM).
public struct Boot0Activation: Sendable, Hashable {
    /// The AN2606 pattern(s), as the note names them ("pattern 2").
    public var pattern: String
    public var pinIgnoredBit: Int?
    public var pinIgnoredWhenSet: Bool
    public var nBoot0Bit: Int?

    public init(pattern: String = "", pinIgnoredBit: Int? = nil, pinIgnoredWhenSet: Bool = false, nBoot0Bit: Int? = nil) {
        self.pattern = pattern
        self.pinIgnoredBit = pinIgnoredBit
        self.pinIgnoredWhenSet = pinIgnoredWhenSet
        self.nBoot0Bit = nBoot0Bit
    }

    /// Whether these option bytes let the BOOT0 pin decide.
    public func pinReachesROM(optionBytes: [UInt8]) -> Bool {
        guard let bit = pinIgnoredBit, bit / 8 < optionBytes.count else { return true }
        return optionBit(optionBytes, bit) != pinIgnoredWhenSet
    }

    /// Whether the option bits alone select the ROM (the pin ignored and nBOOT0 = 0).
    public func optionBitsSelectROM(optionBytes: [UInt8]) -> Bool {
        guard !pinReachesROM(optionBytes: optionBytes), let bit = nBoot0Bit, bit / 8 < optionBytes.count else { return false }
        return !optionBit(optionBytes, bit)
    }
}

func optionBit(_ bytes: [UInt8], _ bit: Int) -> Bool { bytes[bit / 8] & (1 << UInt8(bit % 8)) != 0 }

/// Poll timeouts a ROM reports for its DfuSe commands in real `dfu-util -v` logs; nil where no log shows one.
public struct ReportedPollTimeouts: Sendable, Hashable {
    public var setAddress: Duration?
    public var erase: Duration?
    public var massErase: Duration?

    public init(setAddress: Duration? = nil, erase: Duration? = nil, massErase: Duration? = nil) {
        self.setAddress = setAddress
        self.erase = erase
        self.massErase = massErase
    }
}

/// A part line dfuhop refuses, and why (no USB DFU in its ROM).
public struct UnsupportedPartLine: Sendable, Hashable {
    public var id: String
    public var name: String
    public var reason: String
    public var source: ValueSource
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

/// The option bytes as the ROM exposes them on their alternate setting: the area's factory value, where the
/// read-protection byte is and how its levels are encoded (0xAA level 0, 0xCC level 2 on most parts; F1 0xA5),
/// and the DBANK bit, if the part has one.
public struct OptionByteMap: Sendable, Hashable {
    public var address: UInt32
    /// Factory value of the first bytes; the rest of the area reads 0xFF.
    public var factoryBytes: [UInt8]
    public var readProtectionByteOffset: Int
    /// Bit index (little-endian, from the area's start) of DBANK: 1 selects `flashModes[0]`, 0 `flashModes[1]`.
    public var dualBankBit: Int?
    /// The RDP byte's value for level 0 (no protection); every value but these two is level 1.
    public var level0Value: UInt8
    /// The RDP byte's value for level 2 (ROM and debug disabled for good), if the part has that level.
    public var level2Value: UInt8?
    /// Size of the area the ROM exposes (its alternate setting), when the ROM has no option-byte alternate.
    public var size: Int

    public init(
        address: UInt32, factoryBytes: [UInt8], readProtectionByteOffset: Int, dualBankBit: Int? = nil,
        level0Value: UInt8 = 0xAA, level2Value: UInt8? = 0xCC, size: Int? = nil
    ) {
        self.address = address
        self.factoryBytes = factoryBytes
        self.readProtectionByteOffset = readProtectionByteOffset
        self.dualBankBit = dualBankBit
        self.level0Value = level0Value
        self.level2Value = level2Value
        self.size = size ?? max(16, factoryBytes.count)
    }

    /// The read-protection level these option bytes select: 0, 1 or 2.
    public func readProtectionLevel(_ bytes: [UInt8]) -> Int {
        guard readProtectionByteOffset < bytes.count else { return 1 }
        return readProtectionLevel(bytes[readProtectionByteOffset])
    }

    /// The read-protection level one RDP byte value selects: 0, 1 or 2.
    public func readProtectionLevel(_ value: UInt8) -> Int {
        if value == level0Value { return 0 }
        return value == level2Value ? 2 : 1
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
    public var description: String { "[0x\(Hex.digits(start, width: 8)), 0x\(Hex.digits(UInt32(truncatingIfNeeded: end), width: 8)))" }
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

    public init(
        vendorID: UInt16 = 0x0483, productID: UInt16 = 0xDF11, bcdDevice: UInt16, manufacturer: String = "STMicroelectronics",
        product: String, transferSize: UInt16
    ) {
        self.vendorID = vendorID
        self.productID = productID
        self.bcdDevice = bcdDevice
        self.manufacturer = manufacturer
        self.product = product
        self.transferSize = transferSize
    }
}

/// How a ROM makes its iSerial string. Most ROMs derive it from the 96-bit unique ID (UID0..UID2 the
/// little-endian words at the UID address): "%08X%04X" of (UID0 + UID2 + offset) and the upper half of UID1
/// (UID2 on F3) — libopencm3 issue 760 (ROM disassembly), the ST community F3 post (docs/silicon-sources.md). Some ROMs report a constant (H743 "200364500000", F446 "STM32FxSTM32") or a value
/// that changes every power cycle (one L496 report): then the serial does not identify the unit.
public struct RomSerialFormula: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable, Codable {
        case uidSum = "uid-sum"
        case constant
        case unstable
    }

    public var kind: Kind
    /// Added to UID0 + UID2 (F7: 0x0A; panda applies it on F2/F413).
    public var secondWordOffset: UInt16
    /// Which UID word's upper half ends the serial: 1 on most parts, 2 on F3.
    public var lastWord: Int
    /// The string a constant-serial ROM reports (the one the virtual ROM shows).
    public var constant: String?
    /// Other constants real ROMs of the line were seen to report (per silicon revision or batch).
    public var alsoSeen: [String] = []

    public init(secondWordOffset: UInt16) {
        self.init(kind: .uidSum, secondWordOffset: secondWordOffset)
    }

    public init(kind: Kind, secondWordOffset: UInt16 = 0, lastWord: Int = 1, constant: String? = nil) {
        self.kind = kind
        self.secondWordOffset = secondWordOffset
        self.lastWord = lastWord
        self.constant = constant
    }

    /// The serial the ROM derives from this UID; nil when the ROM's serial does not come from the UID.
    public func serial(uid: [UInt8]) -> String? {
        precondition(uid.count == 12, "a unique ID is 96 bits")
        guard kind == .uidSum else { return nil }
        func word(_ i: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(uid[4 * i + $1]) << (8 * $1) } }
        let sum = word(0) &+ word(2) &+ UInt32(secondWordOffset)
        return Hex.digits(UInt16(sum >> 16), width: 4) + Hex.digits(UInt16(truncatingIfNeeded: sum), width: 4)
            + Hex.digits(UInt16(word(lastWord) >> 16), width: 4)
    }

    /// What a ROM of this kind reports whatever its UID (constant serials), or nil.
    public var fixedSerial: String? { kind == .constant ? constant : nil }

    /// Every constant a ROM of this kind is known to report; empty when the serial is not constant.
    public var fixedSerials: [String] { kind == .constant ? (constant.map { [$0] } ?? []) + alsoSeen : [] }
}

/// Data blocks a ROM mishandles: larger than `maxBytes` it stalls; larger than `alignedAbove` and not a multiple
/// of `alignment` it programs wrong data (AN2606 Table 165, L43x/L44x: over 256 bytes, multiples of 8 only).
public struct RomWriteLimits: Sendable, Hashable {
    public var maxBytes: Int?
    public var alignedAbove: Int?
    public var alignment: Int

    public init(maxBytes: Int? = nil, alignedAbove: Int? = nil, alignment: Int = 1) {
        self.maxBytes = maxBytes
        self.alignedAbove = alignedAbove
        self.alignment = max(1, alignment)
    }

    /// Whether the ROM stalls a data block of `length` bytes.
    public func stalls(_ length: Int) -> Bool { maxBytes.map { length > $0 } ?? false }

    /// How many bytes of a `length`-byte block the ROM programs right: all, or none past the last whole
    /// `alignment` unit where the block is larger than `alignedAbove` and not a multiple of it.
    public func programmedCorrectly(_ length: Int) -> Int {
        guard let above = alignedAbove, length > above, length % alignment != 0 else { return length }
        return length / alignment * alignment
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

    public init(
        sectorErase: [UInt32: Duration], defaultSectorErase: Duration, massErase: Duration,
        programUnit: Duration, controlTransferOverhead: Duration, usbPerByte: Duration
    ) {
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

/// ROM bootloader misbehaviour the DfuSe client must tolerate and the virtual ROM reproduces (each family
/// file names its source).
public enum RomQuirk: Sendable, Hashable {
    /// F405/F407: the poll timeout reported during mass erase is far too short; the erase takes
    /// up to `actual`.
    case massErasePollTimeoutUnderstated(actual: Duration)
    /// L4: GETSTATUS may stall during an erase, up to `maxStalls` times in a row.
    case getStatusStallsDuringErase(maxStalls: Int)
    /// H7 rev V: may hang in dfuDNBUSY (on erase); `clearStatusCount` CLRSTATUS requests recover it, the first
    /// one leaving (errUNKNOWN, dfuERROR).
    case stuckInDownloadBusy(clearStatusCount: Int)
    /// The ROM's leave does not start the application (H5: the core locks up); a reset with BOOT0 low does.
    case leaveLocksUp
}

/// A ROM's quirks by name: the one place their cases are matched (`McuFamily` and the DfuSe client ask here).
extension Array where Element == RomQuirk {
    public var massEraseAllowance: Duration? {
        lazy.compactMap { if case .massErasePollTimeoutUnderstated(let actual) = $0 { actual } else { nil } }.first
    }

    public var eraseStallAllowance: Int? {
        lazy.compactMap { if case .getStatusStallsDuringErase(let maxStalls) = $0 { maxStalls } else { nil } }.first
    }

    public var stuckBusyClearCount: Int? {
        lazy.compactMap { if case .stuckInDownloadBusy(let count) = $0 { count } else { nil } }.first
    }

    public var leaveLocksUp: Bool { contains(.leaveLocksUp) }
}

/// How the application starts its ROM on ENTER_BOOTLOADER: what the device kit does
/// (protocols/reference-firmware/src/boot_entry.c) and the virtual unit plays.
public enum ApplicationEntry: String, Sendable, Hashable, Codable {
    /// The magic into backup register 0, a system reset, and the start-up code jumps to the ROM (seed 000).
    case backupRegisterJump = "backup-register-jump"
    /// The application erases its first flash page and reloads the option bytes, which resets the part; the empty
    /// check then starts the ROM (F04x/F070x6, where a jump goes back to user flash: AN2606). The running image is
    /// gone before the upgrade begins: a unit that loses power then stays in its ROM until a run completes it.
    case eraseFirstPage = "erase-first-page"
    /// The application sets the empty-check flag (FLASH_ACR.PROGEMPTY) and resets: the ROM starts and nothing is
    /// erased (C071, which has no backup register; ST's HAL_FLASHEx_ForceFlashEmpty).
    case forceEmptyFlag = "force-empty-flag"
    /// No software entry (L0: no jump, no empty check); only BOOT0 reaches the ROM.
    case none
}
