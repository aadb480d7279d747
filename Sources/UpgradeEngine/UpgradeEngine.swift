import AppLink
import DeviceProfiles
import DfuSe
import FirmwareImage
import Foundation
import USBTransport

/// One unit, in whatever state, to the new firmware, confirmed. The phases, one file each:
/// `Find.swift` → `Plan.swift` → `Enter.swift` (ENTER_BOOTLOADER or the BOOT0 path, then the ROM proven
/// and inspected by `InROM.swift`) → `OptionBytes.swift` → `Flash.swift` → `Leave.swift` → `Confirm.swift`.
/// It plans before it touches the unit, applies the same rules on every path (`Rules.swift`), keeps a
/// journal and a lock per unit (`JournalSteps.swift`), knows only `DeviceDiscovery`, the transports and
/// a clock, emits typed events and never prints (docs/architecture.md, docs/guarantees.md).
public struct UpgradeEngine: Sendable {
    public struct Options: Sendable {
        /// Unique ID, serial number or port path of the unit, when several are connected.
        public var unit: String?
        public var allowDowngrade = false
        public var verify = true
        /// Stop after the plan; nothing on the unit changes.
        public var dryRun = false
        /// Rewrite every sector of the image's span, whatever the application reports, and never call the
        /// unit up to date.
        public var forceFull = false
        /// How long a unit may take to re-enumerate; nil: the product profile's, else 10 s.
        public var reenumerationTimeout: Duration?
        /// Products dfuhop knows; the image's descriptor picks one (BOOT0 path, option bytes, flash mode).
        public var profiles: [ProductProfile] = []
        /// The MCU family of a unit that shows nothing and whose product has no profile.
        public var family: McuFamily?
        /// The operator's statement of the product a unit is, for a unit that cannot tell it (no answer, no
        /// readable descriptor): it replaces reading the flash, and is refused where anything contradicts it.
        public var assumedProduct: UInt32?
        /// How to reach the ROM when the application cannot be asked; nil: no BOOT0 path here.
        public var boot0: Boot0Path?
        /// The operator allows option bytes to be written where the profile requires other values.
        public var writeOptionBytes = false
        /// Journal and per-unit locks; nil: neither (a library caller that serialises on its own).
        public var journal: JournalStore?
        /// SHA-256 (hex) of the exact file the operator gave (an image or a package): the journal records
        /// it, and a resume continues only with the same file.
        public var inputDigest: String?
        /// Who vouches for the image, and what the station requires: checked on the reading that is flashed.
        public var signing = SigningPolicy()
        /// The oldest version the image may be installed over (a package manifest's `minimumVersion`).
        public var minimumRunningVersion: FirmwareVersion?
        /// Sees each ENTER_BOOTLOADER nonce (taken from the clock, so no two requests share one) before it is
        /// sent, with the port, and returns the one to send: a recording notes it, a replay sends the
        /// recorded one again. nil: the clock's, as it is.
        public var nonceHook: (@Sendable (_ port: String, _ nonce: UInt32) throws -> UInt32)?

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

    /// The per-run state the phases share. Used by one task only (the `upgrade` call that made it, whose
    /// phases run one after another), so it is not Sendable and needs no lock.
    final class Run {
        let options: Options
        let source: String
        var phases: [(phase: UpgradePhase, duration: Duration)] = []
        var locks: [UnitLock] = []
        var lockedKeys: Set<String> = []
        /// The unit as it was before this run touched it, completed as the phases learn more.
        var before: UnitDescription
        /// The journal entry of an earlier, interrupted upgrade of this unit, once the unit is proven.
        var resumed: JournalEntry?
        /// An entry found by port for a unit that showed nothing: proven (or not) once its ROM answers.
        var candidateEntry: JournalEntry?
        /// The journal was asked for the unit's UID before this run wrote an entry of its own: an entry found
        /// under that UID later is this run's, not an earlier one's.
        var journalAskedByUID = false
        /// Erasing has begun: from here on the unit holds a mix until verified, and stays in its ROM.
        var flashStarted = false

        init(options: Options, source: String, before: UnitDescription) {
            self.options = options
            self.source = source
            self.before = before
        }

        func releaseLocks() {
            for lock in locks { lock.release() }
            locks = []
            lockedKeys = []
        }

        deinit { releaseLocks() }
    }

    /// A step inside a phase already announced: errors are wrapped with the phase, nothing is emitted.
    func within<T>(_ phase: UpgradePhase, _ body: () async throws -> T) async throws(UpgradeError) -> T {
        do { return try await body() } catch { throw UpgradeError.wrap(error, phase: phase) }
    }

    func phase<T>(_ phase: UpgradePhase, _ run: Run, _ body: () async throws -> T) async throws(UpgradeError) -> T {
        if Task.isCancelled { throw UpgradeError.wrap(CancellationError(), phase: phase) }
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
        let run = Run(options: options, source: source, before: .unknown)
        defer { run.releaseLocks() }
        let found = try await phase(.find, run) { try await find(options) }
        run.before = found.description
        onEvent(.found(found.description))
        try await within(.find) { try adoptJournal(for: found, run) }

        var target = try await phase(.plan, run) { try await plan(file, unit: found, run: run) }
        // Up to date by the application's word: done. A unit in its ROM is left and confirmed below.
        if (target.upToDate && found.hadApplicationAnswer) || options.dryRun { return try await finishEarly(target, run) }
        if !target.upToDate { onEvent(.planned(target.plan, skippedSectors: target.plan.skippedSectors.count)) }
        try await within(.plan) { try await claim(target, run) }

        var rom = try await phase(.enter, run) { try await enter(found, target: target, run: run) }
        try await undoingEntry(found, rom, target, run) { () async throws(UpgradeError) in
            target = try await within(.enter) { try await checkInROM(rom, found: found, target: target, run: run) }
            if target.needsOptionBytes {
                rom = try await phase(.optionBytes, run) { try await ensureOptionBytes(rom, found: found, target: target, run: run) }
            }
        }
        // The ROM read the image itself already in flash (an interrupted run that got past verify): no
        // write, only leave and confirm.
        let flashed = target.upToDate ? nil : try await phase(.flash, run) { try await flash(rom, target: target, run: run) }
        try await phase(.leave, run) { try await leave(rom, target: target, run: run) }
        let confirmed = try await phase(.confirm, run) { try await confirm(rom: rom, target: target, run: run) }
        run.before.uid = run.before.uid ?? confirmed.uid
        try await within(.confirm) { try forget(run) }
        return UpgradeResult(
            outcome: flashed == nil ? .upToDate : .upgraded, before: run.before, newVersion: confirmed.version,
            phases: run.phases, plan: flashed?.plan ?? target.plan, flashReport: flashed?.report,
            skippedSectors: flashed?.plan.skippedSectors.count ?? 0, resumed: run.resumed)
    }

    /// Up to date (as the application reports it) or a dry run: nothing was touched.
    func finishEarly(_ target: Target, _ run: Run) async throws(UpgradeError) -> UpgradeResult {
        if target.upToDate, run.resumed != nil { try await within(.plan) { try forget(run) } }
        if target.upToDate {
            return UpgradeResult(
                outcome: .upToDate, before: run.before, newVersion: target.version, phases: run.phases,
                plan: target.plan, flashReport: nil, skippedSectors: 0, resumed: run.resumed)
        }
        onEvent(.planned(target.plan, skippedSectors: target.plan.skippedSectors.count))
        return UpgradeResult(
            outcome: .planned, before: run.before, newVersion: nil, phases: run.phases, plan: target.plan,
            flashReport: nil, skippedSectors: target.plan.skippedSectors.count, resumed: run.resumed)
    }

    /// Runs the steps between entering the ROM and the first erase; if one fails (a refusal, an unwritable
    /// journal, a cancellation), a unit that had a working application is sent back to it before the error
    /// is thrown, and the hint says so.
    func undoingEntry(
        _ found: Found, _ rom: ROM, _ target: Target, _ run: Run,
        _ body: () async throws(UpgradeError) -> Void
    ) async throws(UpgradeError) {
        do { try await body() } catch {
            guard !run.flashStarted, found.hadApplication || run.before.classification == .programmed else { throw error }
            var error = error
            // A failure to return the unit, or to forget the entry, is reported beside the error that matters:
            // the unit then counts as not returned, and a kept entry is finished or refused by the next run.
            let returned: Bool
            do { returned = try await returnToApplication(rom, family: target.family) } catch let failure {
                onEvent(.warning("the unit could not be returned to its application: \(failure)"))
                returned = false
            }
            guard returned else { throw error }
            error.hint = "the unit was returned to its application, unchanged; " + error.hint
            error.unitReturned = true
            if run.resumed == nil {
                do { try forget(run) } catch let failure { onEvent(.warning("the journal entry of this run stays: \(failure)")) }
            }
            throw error
        }
    }

    /// Sends the running application into its ROM bootloader and returns the unit as it was and the ROM
    /// it became, proven to be the same unit (`dfuhop enter-dfu`).
    public func enterDFU(options: Options = Options()) async throws(UpgradeError) -> (unit: UnitDescription, rom: USBDeviceIdentity) {
        let run = Run(options: options, source: "", before: .unknown)
        let found = try await phase(.find, run) { try await find(options) }
        guard case .application(let hid, _) = found.reach, let family = found.family else {
            if case .rom(let rom) = found.reach {
                let reason = Refusal.alreadyInROM(port: rom.identity.portPath)
                throw UpgradeError(.refused(reason), phase: .find, hint: reason.hint)
            }
            throw UpgradeError(
                .needsBoot0(.noApplication(port: found.description.portPath, pathSetUp: true)),
                phase: .find, hint: "hold BOOT0 while plugging the unit in to reach its ROM")
        }
        let timeout = options.reenumerationTimeout ?? .seconds(10)
        let rom = try await phase(.enter, run) {
            try await enterBootloader(hid: hid, unit: found.description, family: family, timeout: timeout, nonceHook: options.nonceHook)
        }
        return (found.description, rom.identity)
    }
}

extension UnitDescription {
    static let unknown = UnitDescription(
        classification: .absent, uid: nil, familyID: "?", portPath: nil, dfuSerial: nil,
        version: nil, productID: nil)
}
