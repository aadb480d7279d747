import AppLink
import ArgumentParser
import Crypto
import DeviceProfiles
import DfuSe
import FirmwareImage
import Foundation
import Recording
import StationHistory
import UpdatePackage
import UpgradeEngine

/// `dfuhop upgrade IMAGE`: the product's one command.
struct UpgradeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "upgrade",
        abstract: "Upgrade a unit, in any state, to IMAGE: and confirm it runs.",
        discussion: """
            Finds the unit and classifies it: programmed (its application answers over HID), in DFU, \
            corrupted (an application that does not answer) or absent (nothing shows). Checks the image \
            against it (family, flash range, product id, version: no downgrade without --allow-downgrade) and \
            plans the flash (only sectors whose content changes, vector table last). Nothing is touched \
            before the plan stands; --dry-run stops there.

            Then it reaches the unit's ROM bootloader: ENTER_BOOTLOADER naming the unit's unique ID, waiting \
            for the ROM with the serial that ID predicts on the same port; or, for blank and corrupted units, \
            the BOOT0 path: --boot0-command, else the product profile's hook, else a prompt on the terminal. \
            A blank unit is told from a corrupted one by its erased vector table. Option bytes the product \
            profile requires (e.g. DBANK) are checked, and written only with --write-option-bytes; the write \
            resets the unit, which is reached again. It flashes and verifies, leaves DFU with the jump the \
            family's ROM needs, and reports success only once the application is back with the image's \
            version (if it does not start, the BOOT0 path resets it with BOOT0 low).

            A journal in --state-dir records each unit's identity, plan and last step, so a second run after \
            an interruption resumes knowingly; a lock there keeps two dfuhop processes off one unit. Every \
            attempt but a dry run is recorded in the upgrade history there (`dfuhop history`).

            BOOT0 hooks run with `sh -c` and the environment DFUHOP_BOOT0=1 (hold BOOT0 through a reset, then \
            release it: the ROM starts) or DFUHOP_BOOT0=0 (reset with BOOT0 low: the application starts), \
            DFUHOP_ACTION (enter-rom, start-application), DFUHOP_PORT and DFUHOP_UID. A non-zero exit stops \
            the upgrade.

            Examples:
              dfuhop upgrade app-2.1.0.hex
              dfuhop upgrade app.dfu --dry-run
              dfuhop upgrade app.hex --unit 1-2.3 --json
              dfuhop upgrade app.hex --all                     # every unit at once
              dfuhop upgrade app.hex --boot0-command ./jig.sh  # blank units on a jig
              dfuhop upgrade protocols/examples/demo-g474-v2.hex --simulate g474:programmed
            """)

    @Argument(
        help: "The new firmware: a signed .dfuhop package, or .hex, .srec, .elf, .dfu or .bin with a stamped image descriptor.",
        completion: .file())
    var image: String
    @Flag(help: "Allow an older version than the unit runs (and rewriting the same version).") var allowDowngrade = false
    @Flag(help: "Print the plan and stop; nothing on the unit changes.") var dryRun = false
    @Flag(help: "Skip reading back what was written.") var noVerify = false
    @Flag(help: "Rewrite every sector of the image, whatever the unit's application reports (never 'up to date').")
    var forceFull = false
    @Flag(help: "Upgrade every unit found (programmed or in DFU), each with its own result.") var all = false
    @Option(help: ArgumentHelp("Shell command that drives BOOT0 and reset (see above).", valueName: "command"), completion: .file())
    var boot0Command: String?
    @Option(
        help: ArgumentHelp(
            "Seconds to wait for a BOOT0 hook and then for the unit (default: 15 for a hook, 120 for a prompt).",
            valueName: "s")) var boot0Timeout: Seconds?
    @Flag(help: "Write option bytes where the product profile requires other values (the unit resets).") var writeOptionBytes = false
    @Option(
        help: ArgumentHelp(
            "The product the unit is (0x hex), for a unit that cannot tell it: no answer and no readable descriptor. "
                + "Its flash is then not read.", valueName: "id")) var assumeProduct: Address?
    @Option(
        help: ArgumentHelp("Product profile file or directory; repeatable (default: the installed profiles).", valueName: "path"),
        completion: .file())
    var profile: [String] = []
    @Option(
        help: ArgumentHelp(
            "Journal, lock and history directory (default: $XDG_STATE_HOME/dfuhop or ~/.local/state/dfuhop).",
            valueName: "dir"), completion: .directory) var stateDir: String?
    @Option(help: ArgumentHelp("Seconds the unit may take to re-enumerate (default: the profile's, else 10).", valueName: "s"))
    var timeout: Seconds?
    @Flag(help: "Events as JSON lines, then a result object per unit.") var json = false
    @Option(
        help: ArgumentHelp(
            "Append one record per unit to FILE: CSV for .csv, JSON lines for .jsonl (docs/json.md).",
            valueName: "file"), completion: .file(extensions: ["csv", "jsonl"])) var report: String?
    @OptionGroup(title: "Records (the history and --report)") var station: StationOptions
    @OptionGroup var device: DeviceOptions

    func validate() throws {
        if all, device.unit != nil { throw ValidationError("--all upgrades every unit; drop --unit") }
    }

    func run() async throws {
        try await runCommand("upgrade", json: json) {
            let profiles = try Profiles.load(profile)
            // A bare image or a signed package, once the product's signing policy allows it (docs/packages.md).
            let input = try UpgradeInput.load(path: image, profiles: profiles)
            for note in input.notes { json ? Output.emit(EventLine(.note, text: note)) : Output.message("note: \(note)") }
            let session = try DeviceSession.open(device) { try recordedInputs() }
            let options = try engineOptions(input: input, profiles: profiles, session: session)
            let factoryReport = try report.map { try FactoryReport(path: $0) }
            // A replay's unit is no hardware either (DeviceSession.replay).
            let simulated = session.virtualBus != nil || session.replay != nil
            let records = RecordContext(input: input, identity: station.identity(), simulated: simulated)
            // Every attempt is recorded (a dry run is none); an unusable history stops here, nothing touched.
            let history: HistoryRecorder?
            do { history = dryRun ? nil : try HistoryRecorder(directory: journalDirectory, context: records) } catch {
                try? session.finish() // a virtual unit is saved as it is, untouched
                throw error
            }
            if all {
                let runs = try await session.run {
                    try await upgradeAll(input.image, source: input.source, session: session, options: options)
                }
                let entries = runs.map { records.record($0, tally: Self.flashTally.counts(unit: $0.port)) }
                var result = Self.summary(runs)
                result.historyError = try keep(entries, history: history, report: factoryReport)
                if let summary = result.summary { Output.message(Self.summaryText(summary)) }
                return result
            }
            let run = await upgradeOne(input, session: session, options: options)
            let entry = records.record(run, tally: Self.flashTally.counts(unit: nil))
            let historyError = try keep([entry], history: history, report: factoryReport)
            let result = try run.result.get()
            if !json { Self.report(run, json: false, prefixed: false) }
            var line = ResultLine(result)
            line.historyError = historyError
            return line
        }
    }

    /// The upgrade of the one unit `--unit` names (or the only one), its progress on a bar.
    private func upgradeOne(_ input: UpgradeInput, session: DeviceSession, options: UpgradeEngine.Options) async -> UnitRun {
        let bar = ProgressBar(mode: ProgressBar.mode(json: json))
        let json = json
        let render: @Sendable (UpgradeEvent) -> Void = { Self.render($0, json: json, bar: bar, unit: nil) }
        let run = await Self.run(port: device.unit, survey: nil, render: render) { onEvent in
            let engine = UpgradeEngine(discovery: session.discovery, clock: session.clock, onEvent: onEvent)
            return try await session.run { try await engine.upgrade(input.image, source: input.source, options: options) }
        }
        bar.finish()
        return run
    }

    /// Keeps the runs' records in the history and in `--report`. The history's error does not fail the
    /// command: it is returned for the result line's `historyError`.
    private func keep(_ entries: [HistoryRecord], history: HistoryRecorder?, report: FactoryReport?) throws -> String? {
        let historyError = history?.record(entries, json: json)
        try report?.append(entries)
        return historyError
    }

    /// The engine's options from the command line, the profiles and the input.
    func engineOptions(input: UpgradeInput, profiles: [ProductProfile], session: DeviceSession) throws -> UpgradeEngine.Options {
        var options = UpgradeEngine.Options()
        options.unit = device.unit
        options.allowDowngrade = allowDowngrade
        options.verify = !noVerify
        options.dryRun = dryRun
        options.profiles = profiles
        options.writeOptionBytes = writeOptionBytes
        options.reenumerationTimeout = timeout?.duration
        options.forceFull = forceFull
        options.inputDigest = input.digest
        options.minimumRunningVersion = input.manifest?.minimumVersion
        options.assumedProduct = assumeProduct?.value
        options.signing = SigningPolicy(
            signedProduct: input.signedBy == nil ? nil : input.manifest?.productID,
            stationRequiresSignature: try StationPolicy.requiresSignature(stateDirectory: journalDirectory))
        options.family = try device.mcuFamily()
        options.boot0 = session.recorded(
            Boot0Hooks.path(
                command: boot0Command, profile: UpgradeEngine.profile(for: input.image, among: profiles),
                session: session, timeout: boot0Timeout?.duration))
        options.journal = JournalStore(directory: journalDirectory)
        options.nonceHook = session.nonceHook
        return options
    }

    var journalDirectory: URL { stateDir.map { URL(fileURLWithPath: $0) } ?? JournalStore.defaultDirectory() }

    /// What `--record` embeds: the image or package, the product profiles, and the journal's entries.
    func recordedInputs() throws -> [RecordedInput] {
        try [RecordedInputs.file(image, role: "image")] + RecordedInputs.profiles(profile) + RecordedInputs.journal(journalDirectory)
    }

    static let eventLines = UpgradeEventLines()
    static let flashTally = FlashTally()

    static func render(_ event: UpgradeEvent, json: Bool, bar: ProgressBar?, unit: String?) {
        flashTally.note(event, unit: unit)
        if json {
            Output.emit(eventLines.line(event, unit: unit))
            return
        }
        let prefix = unit.map { "\($0): " } ?? ""
        logDecision(event, prefix: prefix)
        func say(_ text: String) {
            bar?.finish()
            Output.message(prefix + text)
        }
        switch event {
        case .phaseStarted(let phase) where phase != .flash:
            if let bar { bar.startStep(phase.rawValue) } else if unit != nil { say(phase.rawValue) }
        case .phaseFinished(let phase, let duration):
            bar?.finishStep(phase.rawValue, seconds: duration.seconds)
        case .found(let found) where found.classification == .absent:
            say("no unit shows on the bus\(found.portPath.map { " at \($0)" } ?? ""): it is blank, corrupted or unplugged")
        case .found(let found) where found.classification == .corrupted:
            say("the application at \(found.portPath ?? "?") does not answer: corrupted")
        case .found(let found):
            say(
                "unit \(found.uid?.description ?? found.dfuSerial ?? "?")\(found.portPath.map { " at \($0)" } ?? ""): "
                    + "\(found.classification.rawValue), \(found.familyID), \(found.version.map { "version \($0)" } ?? "version unknown")")
        case .resuming(let entry):
            say(
                "an earlier upgrade of this unit to \(entry.image) (\(entry.newVersion)) stopped after step \"\(entry.step.rawValue)\" "
                    + "on \(entry.updated.formatted(date: .abbreviated, time: .shortened)); finishing it")
        case .planned(let plan, let skipped):
            say(
                "plan: erase and write \(PlanText.count(plan.erasedSectors.count, "sector")) "
                    + "(\(ProgressBar.bytes(plan.bytesToWrite))), \(skipped) unchanged")
        case .boot0(let request, let path):
            say("BOOT0 path (\(path)): \(request.action == .enterROM ? "starting the ROM bootloader" : "starting the application")")
        case .classified(let classification): say("in the ROM: the unit is \(classification.rawValue)")
        case .optionBytes(let found, let required, let written):
            say(
                "option bytes: \(found.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: ", "))"
                    + (written
                        ? ", written to \(required.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: ", "))" : " (as required)"))
        case .flash(.sectorErased(_, let number, let total)): bar?.update(phase: "erase", done: number, total: total, unit: "sectors")
        case .flash(.bytesWritten(let done, let total, _)): bar?.update(phase: "write", done: done, total: total)
        case .flash(.bytesVerified(let done, let total)): bar?.update(phase: "verify", done: done, total: total)
        case .note(let text): say("note: \(text)")
        case .warning(let text): say("warning: \(text)")
        default: break
        }
    }

    /// One unit's result for people (stdout), or its `"type":"unit"` line with `--all --json`.
    static func report(_ run: UnitRun, json: Bool, prefixed: Bool = true) {
        if json {
            Output.emit(run.unitLine)
            return
        }
        let prefix = prefixed ? run.port.map { "\($0): " } ?? "" : ""
        let result: UpgradeResult
        switch run.result {
        case .success(let done): result = done
        case .failure(let failure):
            Output.print(prefix + "failed (exit \(failure.status.rawValue)): \(failure.message)")
            if let hint = failure.hint { Output.print(prefix + "  hint: \(hint)") }
            return
        }
        switch result.outcome {
        case .upToDate:
            Output.print(prefix + "the unit already runs version \(result.newVersion?.description ?? "?"); nothing was changed")
        case .planned:
            if let plan = result.plan {
                var lines = PlanText.lines(plan)
                lines[0] = prefix + lines[0]
                Output.print(lines: lines)
            }
        case .upgraded:
            let total = result.phases.reduce(Duration.zero) { $0 + $1.duration }
            Output.print(
                prefix + "upgraded \(result.before.uid?.description ?? result.before.portPath ?? "the unit") "
                    + "(\(result.before.classification.rawValue)) from \(result.before.version?.description ?? (result.before.classification == .blank ? "no firmware" : "unknown firmware")) "
                    + "to \(result.newVersion?.description ?? "?") in \(String(format: "%.1f", total.seconds)) s; confirmed over HID")
            if let done = doneText(result) { Output.print(prefix + "  " + done) }
        }
    }

    /// What the flash run did: "3 sectors written, 199 unchanged, span verified (400.0 KiB read back)".
    static func doneText(_ result: UpgradeResult) -> String? {
        guard let report = result.flashReport else { return nil }
        let unchanged = result.plan?.skippedSectors.count ?? result.skippedSectors
        // The span is what the image's descriptor claims; without one, verification reads the writes only.
        let what = result.plan?.span == nil ? "writes" : "span"
        let verified =
            report.bytesVerified > 0
            ? "\(what) verified (\(ProgressBar.bytes(report.bytesVerified)) read back)" : "not verified (--no-verify)"
        return "\(PlanText.count(report.erasedSectors, "sector")) written (\(ProgressBar.bytes(report.bytesWritten))), "
            + "\(unchanged) unchanged, \(verified)"
    }

    /// `-v`: the phases and what was decided in them, through swift-log.
    static func logDecision(_ event: UpgradeEvent, prefix: String) {
        let logger = Verbosity.logger
        switch event {
        case .phaseStarted(let phase): logger.info("\(prefix)phase \(phase.rawValue) started")
        case .phaseFinished(let phase, let duration):
            logger.info("\(prefix)phase \(phase.rawValue) finished in \(String(format: "%.3f", duration.seconds)) s")
        case .planned(let plan, _):
            for line in PlanText.lines(plan) { logger.info("\(prefix)\(line)") }
        case .flash(.quirk(let quirk)): logger.info("\(prefix)quirk: \(quirk)")
        case .flash(.returnedToIdle(let state)): logger.info("\(prefix)the ROM was in \(state); brought back to dfuIDLE")
        case .flash(let flash): logger.debug("\(prefix)\(PlanText.event(flash))")
        default: break
        }
    }
}
