import DeviceProfiles
import DfuSeWire
import FirmwareImage
import Foundation
import HexFormat
import USBTransport

/// What a virtual unit is doing.
public enum UnitMode: String, Sendable, Hashable, Codable {
    /// Unpowered or unplugged: nothing on the bus.
    case off
    /// The ROM bootloader runs and shows a DfuSe interface.
    case rom
    /// The application runs (whether it answers over HID is up to the application model).
    case application
    /// The core faulted (erased or corrupt vector table, bad jump): nothing on the bus until a reset.
    case hung
}

/// An STM32 in memory: flash with ECC words and timings, option bytes, backup registers, a 96-bit UID,
/// the BOOT0 pin, the boot decision, and the ROM's DfuSe state machine (VirtualROM.swift).
/// Driven only by the `DeviceClock` it is given. Thread-safe: every entry point takes the lock.
public final class VirtualUnit: @unchecked Sendable {
    /// The value the application writes to the backup register to ask its early start-up code to jump
    /// into the ROM (protocols/hid-app-protocol.md; seed 000 uses the same idea).
    public static let bootloaderMagic: UInt32 = 0xB007_104D

    public let family: McuFamily
    public let uid: [UInt8]
    /// The USB port the unit is plugged into; it changes only when the unit is replugged elsewhere
    /// (`FaultPlan.returnPort`). Its own lock, because presence (taken under `lock`) reads it.
    public var portPath: String { portLock.withLock { port } }
    private let portLock = NSLock()
    private var port: String
    public let clock: any DeviceClock
    /// A firmware-side DfuSe (seed 002) describes the flash with its own layout string, typically marking
    /// its own sectors read-only ('a'); nil for the ST ROM.
    public let firmwareLayout: String?
    /// How the application shows itself on USB when it runs.
    public let application: ApplicationIdentity

    let lock = NSLock()
    // Flash and its ECC state, one flag per write unit (`family.writeGranularity` bytes).
    var flash: [UInt8]
    var wordWritten: [Bool]
    var wordCorrupted: Set<Int>
    var optionBytes: [UInt8]
    var backupRegisters: [UInt32]
    var boot0: Bool
    var mode: UnitMode
    /// Empty-check parts: the decision latched at the last power-on or option-byte load.
    var emptyCheckLatchedROM: Bool
    var enumeration = 0
    /// Power-on resets so far (a ROM with an unstable serial changes it with each).
    var powerOnCount = 0
    var faults: FaultPlan
    var transferCount = 0
    var flashOperationCount = 0
    var stallsLeft = 0
    var log: [LoggedRequest] = []
    var rom = ROMState()
    /// Each alternate setting's layout string parsed once (a layout is read on every write and erase).
    var parsedLayouts: [String: FlashLayout?] = [:]
    /// `saveEveryChange(to:)`: where each change is saved (UnitSnapshot.swift).
    var persistence: Persistence?
    var presenceObserver: (@Sendable (DiscoveredDevice?, DiscoveredDevice?) -> Void)?
    /// What the bus was last told this unit presents.
    var announced: DiscoveredDevice?
    var announcedEnumeration = 0

    public init(
        family: McuFamily, uid: [UInt8], portPath: String, clock: any DeviceClock, flashModeIndex: Int = 0,
        faults: FaultPlan = .none, firmwareLayout: String? = nil, application: ApplicationIdentity? = nil
    ) {
        precondition(uid.count == 12, "a unique ID is 96 bits")
        precondition(family.flashModes.indices.contains(flashModeIndex), "no such flash mode")
        self.family = family
        self.uid = uid
        self.port = portPath
        self.clock = clock
        self.firmwareLayout = firmwareLayout
        self.application = application ?? .demo(for: family)
        let size = Int(family.defaultFlashMode.layout.zones.reduce(0) { $0 + $1.size })
        flash = [UInt8](repeating: 0xFF, count: size)
        wordWritten = [Bool](repeating: false, count: size / family.writeGranularity)
        wordCorrupted = []
        optionBytes = Self.factoryOptionBytes(family)
        backupRegisters = [UInt32](repeating: 0, count: 32)
        boot0 = false
        mode = .off
        emptyCheckLatchedROM = false
        self.faults = faults
        if let bit = family.optionBytes.dualBankBit { setBit(&optionBytes, bit, flashModeIndex == 0) }
    }

    /// A deterministic, realistic UID for unit number `index` (wafer X/Y small, lot number ASCII).
    public static func uid(index: Int) -> [UInt8] {
        let x = UInt8(truncatingIfNeeded: 0x20 + index % 64)
        let y = UInt8(truncatingIfNeeded: 0x30 + index / 64 % 64)
        let wafer = UInt8(truncatingIfNeeded: 0x10 + index % 7)
        return [x, 0x00, y, 0x00, wafer] + Array("LOT4713".utf8)
    }

    /// How much system memory the model maps at `family.systemMemoryBase` (the ROM's code; reads return zeros).
    static let systemMemorySize: UInt32 = 0x7000

    static func factoryOptionBytes(_ family: McuFamily) -> [UInt8] {
        let size =
            family.otherMemories.compactMap { try? FlashLayout(parsing: $0) }
            .first { $0.zones.first?.start == family.optionBytes.address }
            .map { Int($0.zones[0].size) } ?? family.optionBytes.size
        var bytes = [UInt8](repeating: 0xFF, count: size)
        for (index, byte) in family.optionBytes.factoryBytes.enumerated() where index < size { bytes[index] = byte }
        return bytes
    }

    // MARK: Observing

    public var currentMode: UnitMode { lock.withLock { mode } }
    public var isBoot0High: Bool { lock.withLock { boot0 } }
    public var requestLog: [LoggedRequest] { lock.withLock { log } }
    public var controlTransfers: Int { lock.withLock { transferCount } }
    public var flashOperations: Int { lock.withLock { flashOperationCount } }
    public var currentEnumeration: Int { lock.withLock { enumeration } }
    /// The iSerial the ROM reports: derived from the UID, the family's constant, or (a ROM whose serial changes
    /// every power cycle) a value of the UID and the power-on count.
    public var romSerial: String { lock.withLock { romSerialLocked } }

    var romSerialLocked: String {
        switch family.romSerial.kind {
        case .uidSum: family.romSerial.serial(uid: uid) ?? ""
        case .constant: family.romSerial.constant ?? ""
        case .unstable: String(Hex.string(uid.map { $0 &+ UInt8(truncatingIfNeeded: powerOnCount &* 37) }).prefix(12)).uppercased()
        }
    }

    /// The flash mode the DBANK option bit selects (the first one on parts without it).
    public var flashMode: FlashMode { lock.withLock { flashModeLocked } }

    var flashModeLocked: FlashMode {
        guard let bit = family.optionBytes.dualBankBit, family.flashModes.count > 1 else { return family.defaultFlashMode }
        return getBit(optionBytes, bit) ? family.flashModes[0] : family.flashModes[1]
    }

    /// RDP level from the option bytes: 0xAA level 0, 0xCC level 2, anything else level 1.
    public var readProtectionLevel: Int { lock.withLock { readProtectionLocked } }

    var readProtectionLocked: Int {
        family.optionBytes.readProtectionLevel(optionBytes)
    }

    /// A copy of the flash, as a debugger would read it (ECC-corrupted words read as they are stored).
    public func flashContents() -> FlatMemory { lock.withLock { FlatMemory(base: family.flashBase, bytes: flash) } }

    /// Flash write units whose ECC is broken (written twice, or torn).
    public var corruptedWords: [UInt32] {
        lock.withLock { wordCorrupted.sorted().map { family.flashBase + UInt32($0 * family.writeGranularity) } }
    }

    public func backupRegister(_ index: Int) -> UInt32 { lock.withLock { backupRegisters[index] } }

    /// What the device presents on the bus now, if anything.
    public var presence: DiscoveredDevice? { lock.withLock { presenceLocked } }

    var presenceLocked: DiscoveredDevice? {
        switch mode {
        case .rom: .dfu(dfuIdentityLocked, alternateSettings: alternateSettingsLocked)
        case .application: .hid(hidInfo)
        case .off, .hung: nil
        }
    }

    public var dfuIdentity: USBDeviceIdentity { lock.withLock { dfuIdentityLocked } }

    var dfuIdentityLocked: USBDeviceIdentity {
        USBDeviceIdentity(
            vendorID: family.rom.vendorID, productID: family.rom.productID, bcdDevice: family.rom.bcdDevice,
            serialNumber: romSerialLocked, manufacturer: family.rom.manufacturer, product: family.rom.product,
            portPath: portPath)
    }

    /// The name of alternate setting `number`, without building the whole list (every write reads it).
    func alternateNameLocked(_ number: Int) -> String? {
        if number == 0 { return firmwareLayout ?? flashModeLocked.layoutString }
        guard firmwareLayout == nil, family.otherMemories.indices.contains(number - 1) else { return nil }
        return family.otherMemories[number - 1]
    }

    var alternateSettingsLocked: [DFUAlternateSetting] {
        let count = firmwareLayout == nil ? 1 + family.otherMemories.count : 1
        return (0..<count).compactMap { number in alternateNameLocked(number).map { DFUAlternateSetting(number: UInt8(number), name: $0) } }
    }

    // MARK: Test and hardware-hook controls

    public func setFaults(_ plan: FaultPlan) { lock.withLock { faults = plan } }

    public func resetCounters() {
        lock.withLock {
            transferCount = 0
            flashOperationCount = 0
            log.removeAll()
        }
    }

    /// The BOOT0 pin (a jumper, button or relay on the product).
    public func setBoot0(_ high: Bool) {
        lock.withLock {
            boot0 = high
            changedLocked()
        }
    }

    /// Power off and on again: a power-on reset.
    public func powerCycle() { reset(.powerOn) }

    /// Cable out: the unit loses power (USB-powered product).
    public func unplug() { changeMode(to: .off) }

    /// Cable in: power-on reset.
    public func plug() { reset(.powerOn) }

    /// Writes flash directly, as a debug probe would (test set-up; honours ECC like a real write).
    public func programDirectly(_ bytes: [UInt8], at address: UInt32) {
        lock.withLock { _ = programLocked(bytes, at: address, tornAt: nil) }
    }

    /// Erases the whole flash, as a debug probe would.
    public func eraseDirectly() {
        lock.withLock {
            flash.withUnsafeMutableBufferPointer { $0.update(repeating: 0xFF) }
            wordWritten = [Bool](repeating: false, count: wordWritten.count)
            wordCorrupted = []
        }
    }

    /// The application's ENTER_BOOTLOADER, by the line's entry method (`McuFamily.applicationEntry`, as the device
    /// kit's boot_entry.c does it).
    public func applicationRequestsBootloader() {
        switch family.applicationEntry {
        case .backupRegisterJump: applicationJumpsToROM()
        case .eraseFirstPage:
            // F04x: the first page erased, then FLASH_CR.OBL_LAUNCH: an option-byte load evaluates the empty check.
            lock.withLock { eraseLocked(offset: 0, count: firstPageSizeLocked, torn: false) }
            reset(.optionByteLoad)
        case .forceEmptyFlag:
            // C071: FLASH_ACR.PROGEMPTY set, then a system reset, which keeps the flag (HAL_FLASHEx_ForceFlashEmpty).
            lock.withLock { emptyCheckLatchedROM = true }
            reset(.system)
        case .none:
            return // the kit's dfh_enter_bootloader returns "not possible on this line": the application runs on
        }
    }

    /// The seed-000 entry: magic into the backup register, then a system reset; the application's early start-up
    /// sees the magic, clears it and jumps to the ROM (where AN2606 allows the jump: see `bootDecisionLocked`).
    public func applicationJumpsToROM() {
        lock.withLock { backupRegisters[0] = Self.bootloaderMagic }
        reset(.system)
    }

    /// The size of the flash page or sector holding the vector table (the first of the current layout).
    var firstPageSizeLocked: Int {
        min(flash.count, Int(flashModeLocked.layout.zones.first?.groups.first?.sectorSize ?? 0))
    }

    // MARK: Boot

    enum ResetKind { case powerOn, system, optionByteLoad }

    /// A reset of the given kind, then the boot decision (AN2606 "Bootloader activation").
    func reset(_ kind: ResetKind) {
        restart {
            // A USB-powered product has VBAT tied to VDD: a power-on reset clears the backup domain.
            if kind == .powerOn {
                backupRegisters = [UInt32](repeating: 0, count: backupRegisters.count)
                powerOnCount += 1
            }
            if family.emptyCheck, kind != .system { emptyCheckLatchedROM = flashWordErased(at: 0) }
            return bootDecisionLocked()
        }
    }

    /// The core starts anew (reset or jump): a new enumeration, a fresh ROM state, and the mode `decide`
    /// picks under the lock — or nothing on the bus when the never-return fault is set.
    private func restart(_ decide: () -> UnitMode) {
        let late = lock.withLock { () -> (delay: Duration, port: String?, mode: UnitMode, enumeration: Int)? in
            enumeration += 1
            rom = ROMState()
            defer { changedLocked() }
            guard !faults.neverReturnAfterReset else {
                mode = .off
                return nil
            }
            let decided = decide()
            guard faults.returnDelay != nil || faults.returnPort != nil else {
                mode = decided
                return nil
            }
            // Off the bus for now; back later, or elsewhere (the faults apply to this restart only).
            defer {
                faults.returnDelay = nil
                faults.returnPort = nil
            }
            mode = .off
            return (faults.returnDelay ?? .zero, faults.returnPort, decided, enumeration)
        }
        publishPresence()
        guard let late else { return }
        let arrive: @Sendable () -> Void = { [self] in
            let current = lock.withLock { enumeration == late.enumeration && mode == .off }
            guard current else { return } // reset or unplugged meanwhile
            if let port = late.port { portLock.withLock { self.port = port } }
            lock.withLock {
                mode = late.mode
                changedLocked()
            }
            publishPresence()
        }
        if let virtual = clock as? VirtualClock {
            virtual.schedule(after: late.delay, arrive)
        } else {
            Task { [clock] in
                try? await clock.sleep(for: late.delay)
                arrive()
            }
        }
    }

    func bootDecisionLocked() -> UnitMode {
        // RDP level 2 disables the ROM for good: neither BOOT0 nor an empty check reaches it (AN2606, RM option bytes).
        let romReachable = readProtectionLocked < 2
        if romReachable, boot0SelectsROMLocked { return romStartsLocked() }
        if romReachable, family.emptyCheck, emptyCheckLatchedROM { return romStartsLocked() }
        guard applicationVectorsValidLocked() else { return .hung }
        // The application's early start-up (reference firmware, seed 000). On F04x/F070x6 and L0 the jump
        // goes back to user flash (AN2606), so the application simply starts again.
        if backupRegisters[0] == Self.bootloaderMagic {
            backupRegisters[0] = 0
            if family.applicationCanJumpToROM { return romStartsLocked() }
        }
        if case .refuses = applicationStartLocked() { return .hung }
        return .application
    }

    /// The ROM starts. A bootloader that clears the empty-check flag at startup (AN2606, G0B1/G0C1 V9.2) does it
    /// now, so the next reset boots the flash whatever it holds.
    func romStartsLocked() -> UnitMode {
        if family.emptyCheckClearedAtStartup { emptyCheckLatchedROM = false }
        return .rom
    }

    /// The BOOT0 level the core samples: the pin, unless option bits replace it (G0 nBOOT_SEL, G4/L4/U5 nSWBOOT0),
    /// then nBOOT0 = 0 selects the ROM (`McuFamily.boot0`, AN2606 activation patterns).
    var boot0SelectsROMLocked: Bool {
        family.boot0.pinReachesROM(optionBytes: optionBytes) ? boot0 : family.boot0.optionBitsSelectROM(optionBytes: optionBytes)
    }

    /// Initial SP inside RAM and a Thumb reset handler inside flash, neither word ECC-corrupted.
    func applicationVectorsValidLocked() -> Bool {
        guard !wordCorruptedLocked(offset: 0, count: 8),
            let sp = wordLocked(offset: 0), let pc = wordLocked(offset: 4)
        else { return false }
        return family.isInRAM(sp, inclusiveEnd: true) && pc & 1 == 1 && isInFlash(pc & ~1)
    }

    /// The ROM's jump when leaving DFU (`McuFamily.leaveJump`, seed 001). No reset: registers are kept.
    func jump(to address: UInt32) {
        restart {
            // Outside flash and RAM (OTP, option bytes, a hole) the core faults and resets: the boot decision runs
            // again, so the ROM may come back (AN3156 leave; an audit of public ROM logs). The system memory restarts the ROM.
            if address & ~1 >= family.systemMemoryBase, address & ~1 < family.systemMemoryBase &+ Self.systemMemorySize {
                return romStartsLocked()
            }
            if !isInFlash(address & ~1), !family.isInRAM(address & ~1) { return bootDecisionLocked() }
            guard jumpOutcomeLocked(address) else { return .hung }
            if case .refuses = applicationStartLocked() { return .hung }
            return .application
        }
    }

    func jumpOutcomeLocked(_ address: UInt32) -> Bool {
        // H5: the ROM's leave locks the core up whatever the address (chcbaram/stm32h563-core docs); a reset recovers.
        if enactedQuirksLocked.leaveLocksUp { return false }
        switch family.leaveJump {
        case .vectorTable:
            // Loads SP and PC from the table at `address`.
            guard isInFlash(address), let offset = flashOffset(address), !wordCorruptedLocked(offset: offset, count: 8),
                let sp = wordLocked(offset: offset), let pc = wordLocked(offset: offset + 4)
            else { return false }
            return family.isInRAM(sp, inclusiveEnd: true) && pc & 1 == 1 && isInFlash(pc & ~1)
        case .directJump:
            // Executes at `address`: only the reset handler (Thumb bit set) starts the application.
            guard address & 1 == 1, applicationVectorsValidLocked(), let pc = wordLocked(offset: 4) else { return false }
            return address == pc
        }
    }

    func changeMode(to newMode: UnitMode) {
        lock.withLock {
            if mode != newMode { enumeration += 1 }
            mode = newMode
            rom = ROMState()
            changedLocked()
        }
        publishPresence()
    }

    /// Tells the bus when what the unit presents has changed (arrival, departure, re-enumeration).
    func publishPresence() {
        let change = lock.withLock {
            () -> (DiscoveredDevice?, DiscoveredDevice?, (@Sendable (DiscoveredDevice?, DiscoveredDevice?) -> Void)?)? in
            let now = presenceLocked
            // Same presence but a new enumeration is a re-plug: the bus sees it leave and arrive.
            guard now != announced || (now != nil && enumeration != announcedEnumeration) else { return nil }
            defer {
                announced = now
                announcedEnumeration = enumeration
            }
            return (announced, now, presenceObserver)
        }
        if let (old, new, observer) = change { observer?(old, new) }
    }

    // MARK: Flash model

    func isInFlash(_ address: UInt32) -> Bool {
        address >= family.flashBase && UInt64(address) < UInt64(family.flashBase) + UInt64(flash.count)
    }

    func flashOffset(_ address: UInt32) -> Int? { isInFlash(address) ? Int(address - family.flashBase) : nil }

    func wordLocked(offset: Int) -> UInt32? {
        guard offset >= 0, offset + 4 <= flash.count else { return nil }
        return UInt32(flash[offset]) | UInt32(flash[offset + 1]) << 8 | UInt32(flash[offset + 2]) << 16 | UInt32(flash[offset + 3]) << 24
    }

    func flashWordErased(at offset: Int) -> Bool { wordLocked(offset: offset) == 0xFFFF_FFFF }

    func wordCorruptedLocked(offset: Int, count: Int) -> Bool {
        guard !wordCorrupted.isEmpty, count > 0 else { return false }
        let g = family.writeGranularity
        return (offset / g...(offset + count - 1) / g).contains { wordCorrupted.contains($0) }
    }

    /// Erases [offset, offset + count) (whole write units), or only its first half when torn.
    func eraseLocked(offset: Int, count: Int, torn: Bool) {
        let length = torn ? count / 2 : count
        flash.withUnsafeMutableBufferPointer { $0[offset..<offset + length].update(repeating: 0xFF) }
        let g = family.writeGranularity
        for word in offset / g..<(offset + length) / g {
            wordWritten[word] = false
            wordCorrupted.remove(word)
        }
        applyStuckBitLocked()
        changedLocked()
    }

    /// `FaultPlan.stuckBitAt`: the worn cell reads 0 in bit 0 after any erase or write.
    func applyStuckBitLocked() {
        guard let address = faults.stuckBitAt, let offset = flashOffset(address) else { return }
        flash[offset] &= 0xFE
    }

    /// Programs bytes like NOR flash: bits only go 1 → 0. On ECC parts a write unit may be programmed
    /// once after erase; a second write corrupts it (seed 004). A partial unit is written with 0xFF fill.
    /// `tornAt` stops after that many bytes and corrupts the unit being written. Returns false if any
    /// unit was already written (the ROM does not notice; the damage shows on read or boot).
    @discardableResult
    func programLocked(_ bytes: [UInt8], at address: UInt32, tornAt: Int?) -> Bool {
        guard let start = flashOffset(address), start + bytes.count <= flash.count else { return false }
        let g = family.writeGranularity
        let written = tornAt.map { min($0, bytes.count) } ?? bytes.count
        var clean = true
        if written > 0 {
            for word in start / g...(start + written - 1) / g {
                if wordWritten[word] {
                    clean = false
                    if family.eccFlash { wordCorrupted.insert(word) }
                }
                wordWritten[word] = true
            }
        }
        flash.withUnsafeMutableBufferPointer { flash in
            bytes.withUnsafeBufferPointer { data in
                for index in 0..<written { flash[start + index] &= data[index] }
            }
        }
        if let tornAt, tornAt < bytes.count, family.eccFlash { wordCorrupted.insert((start + tornAt) / g) }
        changedLocked()
        return clean
    }
}

func getBit(_ bytes: [UInt8], _ bit: Int) -> Bool { bytes[bit / 8] & (1 << UInt8(bit % 8)) != 0 }

func setBit(_ bytes: inout [UInt8], _ bit: Int, _ value: Bool) {
    if value { bytes[bit / 8] |= 1 << UInt8(bit % 8) } else { bytes[bit / 8] &= ~(1 << UInt8(bit % 8)) }
}
