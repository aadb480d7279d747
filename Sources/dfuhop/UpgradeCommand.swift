import ArgumentParser
import Foundation
import AppLink
import DfuSe
import FirmwareImage
import UpgradeEngine

/// `dfuhop upgrade IMAGE`: the product's one command.
struct UpgradeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "upgrade",
        abstract: "Upgrade a unit to IMAGE: ask its application, jump to the ROM, flash, verify, leave, confirm.",
        discussion: """
        Finds the unit (its application over HID, or a ROM left in DFU mode by an interrupted upgrade), \
        checks the image against it (family, flash range, product id, version: no downgrade without \
        --allow-downgrade), plans the flash (only sectors whose content changes, vector table last), \
        sends ENTER_BOOTLOADER naming the unit's unique ID, waits for the ROM with the serial that ID \
        predicts on the same port, flashes and verifies, leaves DFU with the jump the family's ROM \
        needs, and only reports success once the application is back with the image's version.

        Not built yet (issue 6): the BOOT0 path for blank or corrupted units (use `dfuhop flash` on a \
        unit held in DFU mode), option-byte changes, the resume journal, per-unit locks and --all.

        Examples:
          dfuhop upgrade app-2.1.0.hex
          dfuhop upgrade app.dfu --dry-run
          dfuhop upgrade app.hex --unit 1-2.3 --json
          dfuhop upgrade protocols/examples/demo-g474-v2.hex --simulate g474:programmed
        """)

    @Argument(help: "The new firmware: .hex, .srec, .elf, .dfu or .bin with a stamped image descriptor.") var image: String
    @Flag(help: "Allow an older version than the unit runs.") var allowDowngrade = false
    @Flag(help: "Print the plan and stop; nothing on the unit changes.") var dryRun = false
    @Flag(help: "Skip reading back what was written.") var noVerify = false
    @Option(help: ArgumentHelp("Seconds the unit may take to re-enumerate.", valueName: "s")) var timeout: Double = 10
    @Flag(help: "Events as JSON lines, then a result object.") var json = false
    @OptionGroup var device: DeviceOptions

    func run() async throws {
        try await runCommand(json: json) {
            let file = try ImageFile.read(path: image)
            let session = try DeviceSession.open(device)
            let bar = ProgressBar(enabled: !json && Output.standardErrorIsTerminal)
            let engine = UpgradeEngine(discovery: session.discovery, clock: session.clock) { event in
                Self.render(event, json: json, bar: bar)
            }
            var options = UpgradeEngine.Options()
            options.unit = device.unit
            options.allowDowngrade = allowDowngrade
            options.verify = !noVerify
            options.dryRun = dryRun
            options.reenumerationTimeout = .milliseconds(Int(timeout * 1000))
            let result = try await session.run { try await engine.upgrade(file, source: image, options: options) }
            bar.finish()
            Self.report(result, json: json)
        }
    }

    static func render(_ event: UpgradeEvent, json: Bool, bar: ProgressBar) {
        if json {
            switch event {
            case .phaseStarted(let phase): Output.json(["event": "phaseStarted", "phase": phase.rawValue])
            case .phaseFinished(let phase, let duration):
                Output.json(["event": "phaseFinished", "phase": phase.rawValue, "seconds": duration.seconds])
            case .found(let unit): Output.json(["event": "found", "unit": describe(unit)])
            case .planned(let plan, let skipped):
                Output.json(["event": "planned", "erase": plan.erasedSectors.count, "bytes": plan.bytesToWrite, "skippedSectors": skipped])
            case .flash(let flash): Output.json(EventRenderer.object(flash))
            case .note(let text): Output.json(["event": "note", "text": text])
            }
            return
        }
        switch event {
        case .phaseStarted(let phase) where phase != .flash:
            bar.update(phase: phase.rawValue, done: 0, total: 1, unit: "step")
        case .found(let unit):
            bar.finish()
            Output.message("unit \(unit.uid?.description ?? unit.dfuSerial ?? "?") at \(unit.portPath): \(unit.classification.rawValue), "
                           + "\(unit.familyID), \(unit.version.map { "version \($0)" } ?? "version unknown")")
        case .planned(let plan, let skipped):
            bar.finish()
            Output.message("plan: erase \(plan.erasedSectors.count) sector(s), write \(ProgressBar.bytes(plan.bytesToWrite))"
                           + (skipped > 0 ? ", \(skipped) unchanged sector(s) skipped" : ""))
        case .flash(.sectorErased(_, let number, let total)): bar.update(phase: "erase", done: number, total: total, unit: "sectors")
        case .flash(.bytesWritten(let done, let total, _)): bar.update(phase: "write", done: done, total: total)
        case .flash(.bytesVerified(let done, let total)): bar.update(phase: "verify", done: done, total: total)
        case .note(let text):
            bar.finish()
            Output.message("note: \(text)")
        default: break
        }
    }

    static func describe(_ unit: UnitDescription) -> [String: Any] {
        var object: [String: Any] = ["classification": unit.classification.rawValue, "family": unit.familyID, "port": unit.portPath]
        if let uid = unit.uid { object["uid"] = uid.description }
        if let serial = unit.dfuSerial { object["dfuSerial"] = serial }
        if let version = unit.version { object["version"] = version.description }
        return object
    }

    static func report(_ result: UpgradeResult, json: Bool) {
        if json {
            var object: [String: Any] = [
                "outcome": result.outcome.rawValue, "unit": describe(result.before),
                "phases": result.phases.map { ["phase": $0.phase.rawValue, "seconds": $0.duration.seconds] },
                "skippedSectors": result.skippedSectors,
            ]
            if let version = result.before.version { object["oldVersion"] = version.description }
            if let version = result.newVersion { object["newVersion"] = version.description }
            if let plan = result.plan, let data = try? JSONEncoder().encode(plan), let value = try? JSONSerialization.jsonObject(with: data) {
                object["plan"] = value
            }
            Output.json(object)
            return
        }
        switch result.outcome {
        case .upToDate:
            Output.print("the unit already runs version \(result.newVersion?.description ?? "?"); nothing was changed")
        case .planned:
            if let plan = result.plan { Output.print(plan.description) }
        case .upgraded:
            let total = result.phases.reduce(Duration.zero) { $0 + $1.duration }
            Output.print("upgraded \(result.before.uid?.description ?? result.before.portPath) from "
                         + "\(result.before.version?.description ?? "unknown") to \(result.newVersion?.description ?? "?") "
                         + "in \(String(format: "%.1f", total.seconds)) s; confirmed over HID")
        }
    }
}
