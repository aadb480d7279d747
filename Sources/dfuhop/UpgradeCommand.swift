import ArgumentParser
import Foundation
import AppLink
import DeviceProfiles
import DfuSe
import FirmwareImage
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
        an interruption resumes knowingly; a lock there keeps two dfuhop processes off one unit.

        BOOT0 hooks run with `sh -c` and the environment DFUHOP_BOOT0=1 (hold BOOT0 through a reset, then \
        release it: the ROM starts) or DFUHOP_BOOT0=0 (reset with BOOT0 low: the application starts), \
        DFUHOP_ACTION (enter-rom, start-application), DFUHOP_PORT and DFUHOP_UID. A non-zero exit stops \
        the upgrade.

        Examples:
          dfuhop upgrade app-2.1.0.hex
          dfuhop upgrade app.dfu --dry-run
          dfuhop upgrade app.hex --unit 1-2.3 --json
          dfuhop upgrade app.hex --all                       # every connected unit at once
          dfuhop upgrade app.hex --boot0-command ./jig.sh    # blank units on a jig
          dfuhop upgrade protocols/examples/demo-g474-v2.hex --simulate g474:programmed
        """)

    @Argument(help: "The new firmware: .hex, .srec, .elf, .dfu or .bin with a stamped image descriptor.") var image: String
    @Flag(help: "Allow an older version than the unit runs (and rewriting the same version).") var allowDowngrade = false
    @Flag(help: "Print the plan and stop; nothing on the unit changes.") var dryRun = false
    @Flag(help: "Skip reading back what was written.") var noVerify = false
    @Flag(help: "Upgrade every unit found (programmed or in DFU), each with its own result.") var all = false
    @Option(help: ArgumentHelp("Shell command that drives BOOT0 and reset (see above).", valueName: "command")) var boot0Command: String?
    @Option(help: ArgumentHelp("Seconds to wait for the unit after a BOOT0 request (default: 15 for a hook, 120 for a prompt).",
                               valueName: "s")) var boot0Timeout: Double?
    @Flag(help: "Write option bytes where the product profile requires other values (the unit resets).") var writeOptionBytes = false
    @Option(help: ArgumentHelp("Product profile file or directory; repeatable (default: the installed profiles).", valueName: "path"))
    var profile: [String] = []
    @Option(help: ArgumentHelp("Journal and lock directory (default: $XDG_STATE_HOME/dfuhop or ~/.local/state/dfuhop).",
                               valueName: "dir")) var stateDir: String?
    @Option(help: ArgumentHelp("Seconds the unit may take to re-enumerate (default: the profile's, else 10).", valueName: "s"))
    var timeout: Double?
    @Flag(help: "Events as JSON lines, then a result object per unit.") var json = false
    @OptionGroup var device: DeviceOptions

    func validate() throws {
        if all, device.unit != nil { throw ValidationError("--all upgrades every unit; drop --unit") }
        if let timeout, !isWaitInSeconds(timeout) {
            throw ValidationError("--timeout must be a positive number of seconds, at most \(Int(maximumWaitSeconds))")
        }
        if let boot0Timeout, !isWaitInSeconds(boot0Timeout) {
            throw ValidationError("--boot0-timeout must be a positive number of seconds, at most \(Int(maximumWaitSeconds))")
        }
    }

    func run() async throws {
        try await runCommand(json: json) {
            let file = try ImageFile.read(path: image)
            let profiles = try Profiles.load(profile)
            let session = try DeviceSession.open(device)
            var options = UpgradeEngine.Options()
            options.unit = device.unit
            options.allowDowngrade = allowDowngrade
            options.verify = !noVerify
            options.dryRun = dryRun
            options.profiles = profiles
            options.writeOptionBytes = writeOptionBytes
            options.reenumerationTimeout = timeout.map { .milliseconds(Int($0 * 1000)) }
            if let name = device.family {
                guard let family = McuFamily.named(name) else {
                    throw Failure(.usage, "--family \(name) is not a known family (\(McuFamily.all.map(\.id).joined(separator: ", ")))")
                }
                options.family = family
            }
            options.boot0 = Boot0Hooks.path(command: boot0Command, profile: UpgradeEngine.profile(for: file, among: profiles),
                                            session: session, timeout: boot0Timeout.map { .milliseconds(Int($0 * 1000)) })
            options.journal = JournalStore(directory: stateDir.map { URL(fileURLWithPath: $0) } ?? JournalStore.defaultDirectory())

            if all {
                try await session.run { try await upgradeAll(file, session: session, options: options) }
                return
            }
            let bar = ProgressBar(enabled: !json && Output.standardErrorIsTerminal)
            let engine = UpgradeEngine(discovery: session.discovery, clock: session.clock) { event in
                Self.render(event, json: json, bar: bar, unit: nil)
            }
            let result = try await session.run { try await engine.upgrade(file, source: image, options: options) }
            bar.finish()
            Self.report(result, json: json)
        }
    }

    /// `--all`: every unit the survey finds, concurrently, each with its own engine, events and result.
    func upgradeAll(_ file: FirmwareImage, session: DeviceSession, options: UpgradeEngine.Options) async throws {
        let survey = UpgradeEngine(discovery: session.discovery, clock: session.clock)
        let units = try await survey.survey().filter { $0.portPath != nil && $0.classification != .absent }
        guard !units.isEmpty else {
            throw Failure(.noDevice, "no unit is connected", hint: "plug the units in (blank ones with BOOT0 held), then run this again")
        }
        if !json { Output.message("upgrading \(units.count) unit(s): \(units.compactMap(\.portPath).joined(separator: ", "))") }
        let results = await withTaskGroup(of: (String, Result<UpgradeResult, UpgradeError>).self) { group in
            for unit in units {
                let port = unit.portPath!
                var unitOptions = options
                unitOptions.unit = port
                let engine = UpgradeEngine(discovery: session.discovery, clock: session.clock) { event in
                    Self.render(event, json: json, bar: nil, unit: port)
                }
                group.addTask {
                    do throws(UpgradeError) {
                        return (port, .success(try await engine.upgrade(file, source: image, options: unitOptions)))
                    } catch {
                        return (port, .failure(error))
                    }
                }
            }
            var collected: [(String, Result<UpgradeResult, UpgradeError>)] = []
            for await result in group { collected.append(result) }
            return collected.sorted { $0.0 < $1.0 }
        }
        var firstFailure: Failure?
        for (port, result) in results {
            switch result {
            case .success(let outcome): Self.report(outcome, json: json, unit: port)
            case .failure(let error):
                let failure = Failure.from(error)
                firstFailure = firstFailure ?? failure
                if json {
                    Output.json(["unit": port, "outcome": "failed", "exitCode": Int(failure.status.rawValue), "error": failure.message,
                                 "hint": failure.hint ?? ""])
                } else {
                    Output.print("\(port): failed (exit \(failure.status.rawValue)): \(failure.message)")
                    if let hint = failure.hint { Output.print("\(port):   hint: \(hint)") }
                }
            }
        }
        if let firstFailure {
            if !json { Output.message("\(results.filter { if case .failure = $0.1 { true } else { false } }.count) of \(results.count) unit(s) failed") }
            throw ExitCode(firstFailure.status.rawValue)
        }
    }

    static func render(_ event: UpgradeEvent, json: Bool, bar: ProgressBar?, unit: String?) {
        if json {
            var object: [String: Any]
            switch event {
            case .phaseStarted(let phase): object = ["event": "phaseStarted", "phase": phase.rawValue]
            case .phaseFinished(let phase, let duration):
                object = ["event": "phaseFinished", "phase": phase.rawValue, "seconds": duration.seconds]
            case .found(let found): object = ["event": "found", "unit": describe(found)]
            case .resuming(let entry):
                object = ["event": "resuming", "step": entry.step.rawValue, "image": entry.image, "newVersion": entry.newVersion]
            case .planned(let plan, let skipped):
                object = ["event": "planned", "erase": plan.erasedSectors.count, "bytes": plan.bytesToWrite, "skippedSectors": skipped]
            case .boot0(let request, let path):
                object = ["event": "boot0", "action": request.action.rawValue, "path": path, "port": request.port ?? ""]
            case .classified(let classification): object = ["event": "classified", "classification": classification.rawValue]
            case .optionBytes(let found, let required, let written):
                object = ["event": "optionBytes", "found": found, "required": required, "written": written]
            case .flash(let flash): object = EventRenderer.object(flash)
            case .note(let text): object = ["event": "note", "text": text]
            }
            if let unit { object["unit"] = unit }
            Output.json(object)
            return
        }
        let prefix = unit.map { "\($0): " } ?? ""
        func say(_ text: String) {
            bar?.finish()
            Output.message(prefix + text)
        }
        switch event {
        case .phaseStarted(let phase) where phase != .flash:
            if let bar { bar.update(phase: phase.rawValue, done: 0, total: 1, unit: "step") } else if unit != nil { say(phase.rawValue) }
        case .found(let found) where found.classification == .absent:
            say("no unit shows on the bus\(found.portPath.map { " at \($0)" } ?? ""): it is blank, corrupted or unplugged")
        case .found(let found) where found.classification == .corrupted:
            say("the application at \(found.portPath ?? "?") does not answer: corrupted")
        case .found(let found):
            say("unit \(found.uid?.description ?? found.dfuSerial ?? "?")\(found.portPath.map { " at \($0)" } ?? ""): "
                + "\(found.classification.rawValue), \(found.familyID), \(found.version.map { "version \($0)" } ?? "version unknown")")
        case .resuming(let entry):
            say("an earlier upgrade of this unit to \(entry.image) (\(entry.newVersion)) stopped after step \"\(entry.step.rawValue)\" "
                + "on \(entry.updated.formatted(date: .abbreviated, time: .shortened)); finishing it")
        case .planned(let plan, let skipped):
            say("plan: erase \(plan.erasedSectors.count) sector(s), write \(ProgressBar.bytes(plan.bytesToWrite))"
                + (skipped > 0 ? ", \(skipped) unchanged sector(s) skipped" : ""))
        case .boot0(let request, let path):
            say("BOOT0 path (\(path)): \(request.action == .enterROM ? "starting the ROM bootloader" : "starting the application")")
        case .classified(let classification): say("in the ROM: the unit is \(classification.rawValue)")
        case .optionBytes(let found, let required, let written):
            say("option bytes: \(found.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: ", "))"
                + (written ? ", written to \(required.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: ", "))" : " (as required)"))
        case .flash(.sectorErased(_, let number, let total)): bar?.update(phase: "erase", done: number, total: total, unit: "sectors")
        case .flash(.bytesWritten(let done, let total, _)): bar?.update(phase: "write", done: done, total: total)
        case .flash(.bytesVerified(let done, let total)): bar?.update(phase: "verify", done: done, total: total)
        case .note(let text): say("note: \(text)")
        default: break
        }
    }

    static func describe(_ unit: UnitDescription) -> [String: Any] {
        var object: [String: Any] = ["classification": unit.classification.rawValue, "family": unit.familyID]
        if let port = unit.portPath { object["port"] = port }
        if let uid = unit.uid { object["uid"] = uid.description }
        if let serial = unit.dfuSerial { object["dfuSerial"] = serial }
        if let version = unit.version { object["version"] = version.description }
        return object
    }

    static func report(_ result: UpgradeResult, json: Bool, unit: String? = nil) {
        if json {
            var object: [String: Any] = [
                "outcome": result.outcome.rawValue, "unit": describe(result.before),
                "phases": result.phases.map { ["phase": $0.phase.rawValue, "seconds": $0.duration.seconds] },
                "skippedSectors": result.skippedSectors,
            ]
            if let version = result.before.version { object["oldVersion"] = version.description }
            if let version = result.newVersion { object["newVersion"] = version.description }
            if let entry = result.resumed { object["resumedFrom"] = entry.step.rawValue }
            if let plan = result.plan, let data = try? JSONEncoder().encode(plan), let value = try? JSONSerialization.jsonObject(with: data) {
                object["plan"] = value
            }
            Output.json(object)
            return
        }
        let prefix = unit.map { "\($0): " } ?? ""
        switch result.outcome {
        case .upToDate:
            Output.print(prefix + "the unit already runs version \(result.newVersion?.description ?? "?"); nothing was changed")
        case .planned:
            if let plan = result.plan { Output.print(prefix + plan.description) }
        case .upgraded:
            let total = result.phases.reduce(Duration.zero) { $0 + $1.duration }
            Output.print(prefix + "upgraded \(result.before.uid?.description ?? result.before.portPath ?? "the unit") "
                         + "(\(result.before.classification.rawValue)) from \(result.before.version?.description ?? (result.before.classification == .blank ? "no firmware" : "unknown firmware")) "
                         + "to \(result.newVersion?.description ?? "?") in \(String(format: "%.1f", total.seconds)) s; confirmed over HID")
        }
    }
}
