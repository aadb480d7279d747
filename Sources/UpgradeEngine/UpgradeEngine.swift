import AppLink
import Foundation
import DeviceProfiles
import DfuSe
import FirmwareImage
import USBTransport

/// One unit, in whatever state, to the new firmware, confirmed: find → plan → enter (ENTER_BOOTLOADER, or
/// the BOOT0 path) → the same unit's ROM, proven → option bytes if the product needs them → flash and
/// verify → leave → confirm over HID. It plans before it touches the unit, keeps a journal and a lock
/// per unit when given a `JournalStore`, knows only `DeviceDiscovery`, the transports and a clock, emits
/// typed events and never prints (architecture.md; field-safety.md).
public struct UpgradeEngine: Sendable {
    public struct Options: Sendable {
        /// Serial number or port path of the unit, when several are connected.
        public var unit: String?
        public var allowDowngrade = false
        public var verify = true
        /// Stop after the plan; nothing on the unit changes.
        public var dryRun = false
        /// How long a unit may take to re-enumerate; nil: the product profile's, else 10 s.
        public var reenumerationTimeout: Duration?
        /// Products dfuhop knows; the image's descriptor picks one (BOOT0 path, option bytes, flash mode).
        public var profiles: [ProductProfile] = []
        /// The MCU family of a unit that shows nothing and whose product has no profile.
        public var family: McuFamily?
        /// How to reach the ROM when the application cannot be asked; nil: no BOOT0 path here.
        public var boot0: Boot0Path?
        /// The operator allows option bytes to be written where the profile requires other values.
        public var writeOptionBytes = false
        /// Journal and per-unit locks; nil: neither (a library caller that serialises on its own).
        public var journal: JournalStore?

        public init() {}
    }

    public let discovery: any DeviceDiscovery
    public let clock: any DeviceClock
    public let onEvent: @Sendable (UpgradeEvent) -> Void

    public init(discovery: any DeviceDiscovery, clock: any DeviceClock, onEvent: @escaping @Sendable (UpgradeEvent) -> Void = { _ in }) {
        self.discovery = discovery
        self.clock = clock
        self.onEvent = onEvent
    }

    /// Phase timing and the per-run state the steps share.
    final class Run: @unchecked Sendable {
        var phases: [(phase: UpgradePhase, duration: Duration)] = []
        var locks: [UnitLock] = []
        var entry: JournalEntry?
        deinit { locks.forEach { $0.release() } }
    }

    /// A step inside a phase already announced: errors are wrapped with the phase, nothing is emitted.
    func within<T>(_ phase: UpgradePhase, _ body: () async throws -> T) async throws(UpgradeError) -> T {
        do { return try await body() } catch { throw UpgradeError.wrap(error, phase: phase) }
    }

    func phase<T>(_ phase: UpgradePhase, _ run: Run, _ body: () async throws -> T) async throws(UpgradeError) -> T {
        onEvent(.phaseStarted(phase))
        let start = clock.now()
        do {
            let value = try await body()
            let duration = clock.now() - start
            run.phases.append((phase, duration))
            onEvent(.phaseFinished(phase, duration))
            return value
        } catch { throw UpgradeError.wrap(error, phase: phase) }
    }

    /// Upgrades the unit to `file` (`source` names the file in messages).
    public func upgrade(_ file: FirmwareImage, source: String, options: Options = Options()) async throws(UpgradeError) -> UpgradeResult {
        let run = Run()
        defer { run.locks.forEach { $0.release() } }

        // 1. Find: the application that answers, a ROM in DFU, or nothing (the BOOT0 path).
        var found = try await phase(.find, run) { try await find(options) }
        onEvent(.found(found.description))
        let resumed = try await within(.find) { try journalEntry(for: found, options: options) }
        if let resumed {
            onEvent(.resuming(resumed))
            // A unit that shows nothing is known from its journal: family, ROM serial, port.
            if case .boot0(let port, nil) = found.reach, let family = McuFamily.named(resumed.family) {
                found.family = found.family ?? family
                found.description.familyID = family.id
                found.description.dfuSerial = resumed.dfuSerial
                found.description.portPath = port ?? resumed.portPath
                found.reach = .boot0(port: port ?? resumed.portPath, expectedSerial: resumed.dfuSerial)
            }
        }

        // 2. Plan, against what the unit runs and its flash.
        let prepared = try await phase(.plan, run) { try await plan(file, source: source, unit: found, options: options) }
        var before = found.description
        before.familyID = prepared.family.id
        if prepared.upToDate {
            // The unit runs the image: an interrupted upgrade to it did finish (confirmed by its application).
            if resumed != nil, let serial = before.dfuSerial { try await within(.plan) { try options.journal?.remove(serial) } }
            return UpgradeResult(outcome: .upToDate, before: before, newVersion: before.version, phases: run.phases,
                                 plan: prepared.plan, flashReport: nil, skippedSectors: 0, resumed: resumed)
        }
        onEvent(.planned(prepared.plan, skippedSectors: prepared.skipped))
        if options.dryRun {
            return UpgradeResult(outcome: .planned, before: before, newVersion: nil, phases: run.phases,
                                 plan: prepared.plan, flashReport: nil, skippedSectors: prepared.skipped, resumed: resumed)
        }
        let timeout = options.reenumerationTimeout ?? prepared.profile?.reenumerationTimeout ?? .seconds(10)
        try await within(.plan) {
            // One process per unit; a journal entry before anything changes (unwritable → nothing touched).
            if let serial = before.dfuSerial {
                try lock(serial, run, options)
                try record(.planned, run, options, unit: before, prepared: prepared, source: source)
            } else if let port = before.portPath {
                try lock("port-" + port, run, options)
            }
        }

        // 3–4. Enter the ROM and prove it is the same unit.
        var rom = try await phase(.enter, run) {
            try await enter(found, prepared: prepared, options: options, timeout: timeout)
        }
        if before.dfuSerial == nil {
            before.dfuSerial = rom.identity.serialNumber
            try await within(.enter) {
                if let serial = rom.identity.serialNumber { try lock(serial, run, options) }
            }
        }
        before.portPath = rom.identity.portPath
        if found.description.classification != .programmed {
            // What the flash holds tells blank from corrupted (or an interrupted upgrade).
            before.classification = try await within(.enter) { try await classifyInROM(rom, family: prepared.family, resumed: resumed) }
            onEvent(.classified(before.classification))
        }
        try await within(.enter) {
            if let uid = resumed?.uid, before.uid == nil { before.uid = UniqueID(hex: uid) }
            try record(.inROM, run, options, unit: before, prepared: prepared, source: source)
        }

        // 5. Option bytes the product needs (seed 003): the write resets the unit; reach its ROM again.
        if let profile = prepared.profile, !profile.requiredOptionBytes.isEmpty {
            rom = try await phase(.optionBytes, run) {
                try await ensureOptionBytes(rom, profile: profile, prepared: prepared, unit: found, options: options,
                                            timeout: timeout, record: { step in
                                                try record(step, run, options, unit: before, prepared: prepared, source: source)
                                            })
            }
        }

        // 6. Flash and verify (vector-table sector last: FlashPlan), then leave with the family's jump.
        let transport = try await within(.flash) { try await discovery.openDFU(rom.identity) }
        let flashed: (FlashReport, FlashPlan)
        do {
            flashed = try await phase(.flash, run) {
                let client = try DfuSeClient(transport: transport, clock: clock, quirks: prepared.family.quirks,
                                             onEvent: { onEvent(.flash($0)) })
                let layout = try await client.prepare(alternateSetting: 0)
                var plan = prepared.plan
                if layout != plan.layout {
                    onEvent(.note("the ROM shows the flash as \"\(layout.render())\", not as planned; planning again for it, without skipping sectors"))
                    plan = try FlashPlan(image: prepared.image, layout: layout, family: prepared.family, transferSize: plan.transferSize)
                }
                try record(.flashing, run, options, unit: before, prepared: prepared, source: source)
                let report: FlashReport
                do {
                    report = try await client.execute(plan, image: prepared.image, verify: options.verify)
                } catch let error as DfuSeError where Self.worthOneMoreTry(error) {
                    // The ROM is still there: run the whole plan once more (erase first, so no word is
                    // written twice); a second failure stands.
                    onEvent(.note("the ROM failed the flash (\(error)); running the plan once more from the start"))
                    report = try await client.execute(plan, image: prepared.image, verify: options.verify)
                }
                try record(.verified, run, options, unit: before, prepared: prepared, source: source)
                return (report, plan)
            }
            try await phase(.leave, run) {
                let client = try DfuSeClient(transport: transport, clock: clock, quirks: prepared.family.quirks,
                                             onEvent: { onEvent(.flash($0)) })
                do {
                    _ = try await client.leave(jumpTo: prepared.leaveAddress)
                } catch let error as DfuSeError where Self.worthOneMoreTry(error) {
                    // Refused before the jump (the set-address command): the ROM is still there.
                    onEvent(.note("the ROM did not take the leave request (\(error)); asking once more"))
                    _ = try await client.leave(jumpTo: prepared.leaveAddress)
                }
                try record(.left, run, options, unit: before, prepared: prepared, source: source)
            }
        } catch {
            await transport.close()
            throw error
        }
        await transport.close()

        // 7. Confirm: the same unit's application is back with the image's version.
        let confirmed = try await phase(.confirm, run) {
            try await confirm(rom: rom, expectedUID: before.uid, version: prepared.version, family: prepared.family,
                              prepared: prepared, options: options, timeout: timeout)
        }
        before.uid = before.uid ?? confirmed.uid
        try await within(.confirm) { try options.journal?.remove(rom.identity.serialNumber ?? "") }
        return UpgradeResult(outcome: .upgraded, before: before, newVersion: confirmed.version, phases: run.phases,
                             plan: flashed.1, flashReport: flashed.0, skippedSectors: prepared.skipped, resumed: resumed)
    }

    /// Sends the running application into its ROM bootloader and returns the unit as it was and the ROM
    /// it became, proven to be the same unit (`dfuhop enter-dfu`).
    public func enterDFU(options: Options = Options()) async throws(UpgradeError) -> (unit: UnitDescription, rom: USBDeviceIdentity) {
        let run = Run()
        let found = try await phase(.find, run) { try await find(options) }
        guard case .application(let hid, _) = found.reach, let family = found.family else {
            if case .rom(let rom) = found.reach {
                throw UpgradeError(.refused("the unit at \(rom.identity.portPath) is already in DFU mode"), phase: .find,
                                   hint: "nothing to do: it is ready for `dfuhop flash`")
            }
            throw UpgradeError(.needsBoot0("no application answers\(found.description.portPath.map { " at \($0)" } ?? "")"), phase: .find,
                               hint: "hold BOOT0 while plugging the unit in to reach its ROM")
        }
        let timeout = options.reenumerationTimeout ?? .seconds(10)
        let rom = try await phase(.enter, run) {
            try await enterBootloader(hid: hid, unit: found.description, family: family, timeout: timeout)
        }
        return (found.description, rom.identity)
    }

    // MARK: Journal and locks

    /// The journal entry of an interrupted upgrade of this unit: by its ROM serial, else by its port.
    func journalEntry(for found: Found, options: Options) throws -> JournalEntry? {
        guard let journal = options.journal else { return nil }
        if let serial = found.description.dfuSerial { return try journal.entry(for: serial) }
        // Nothing shows: the interrupted upgrade on its port, or the only one. The ROM that then appears is
        // still proven by the serial the entry names.
        return try journal.entry(forPort: found.description.portPath)
    }

    func lock(_ key: String, _ run: Run, _ options: Options) throws {
        guard let journal = options.journal else { return }
        guard let held = try journal.lock(key) else {
            throw UpgradeError(.busy("another dfuhop process is working on unit \(key)"), phase: .plan,
                               hint: "nothing was touched; wait for it to finish, then run again")
        }
        run.locks.append(held)
    }

    func record(_ step: JournalEntry.Step, _ run: Run, _ options: Options, unit: UnitDescription, prepared: Prepared,
                source: String) throws {
        guard let journal = options.journal, let serial = unit.dfuSerial else { return }
        let entry = JournalEntry(
            dfuSerial: serial, uid: unit.uid?.description, portPath: unit.portPath ?? "", family: prepared.family.id,
            classificationBefore: unit.classification.rawValue, oldVersion: unit.version?.description, image: source,
            imageDigest: prepared.digest, newVersion: prepared.version.description,
            sectors: prepared.plan.erasedSectors.map(\.start), step: step, updated: Date())
        try journal.write(entry)
        run.entry = entry
    }
}

extension UpgradeEngine {
    /// A flash (or leave) failure that a second try, in the same session, can get past: the device
    /// stalled or went quiet for a moment, or reported a programming error that a fresh erase clears.
    /// Protection, a wrong address or a vanished device are not retried.
    static func worthOneMoreTry(_ error: DfuSeError) -> Bool {
        switch error {
        case .transport(let transport, _): transport.kind == .stall || transport.kind == .timeout
        case .tooManyStalls, .malformedStatus, .blockLeftIncomplete: true
        case .deviceStatus(let status, _, _, _):
            [.errCheckErased, .errProg, .errVerify, .errNotDone, .errUnknown, .errStalledPkt].contains(status)
        default: false
        }
    }
}
