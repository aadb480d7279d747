import DfuSe
import Foundation
import HexFormat
import UpgradeEngine

/// The engine's and the DfuSe client's values as lines of the `--json` contract (docs/json.md).
extension EventLine {
    init(_ event: DfuSeEvent, unit: String? = nil) {
        switch event {
        case .phaseStarted(let phase):
            self.init(EventKind.phaseStarted, unit: unit)
            self.phase = phase.rawValue
        case .phaseFinished(let phase):
            self.init(EventKind.phaseFinished, unit: unit)
            self.phase = phase.rawValue
        case .returnedToIdle(let state):
            self.init(EventKind.returnedToIdle, unit: unit)
            from = state.description
        case .sectorErased(let sector, let number, let total):
            self.init(EventKind.sectorErased, unit: unit)
            (address, size, self.number, self.total) = (Hex.word(sector.start), Int(sector.size), number, total)
        case .bytesWritten(let done, let total, let address):
            self.init(EventKind.bytesWritten, unit: unit)
            (self.done, self.total, self.address) = (done, total, Hex.word(address))
        case .bytesVerified(let done, let total):
            self.init(EventKind.bytesVerified, unit: unit)
            (self.done, self.total) = (done, total)
        case .bytesRead(let done, let total):
            self.init(EventKind.bytesRead, unit: unit)
            (self.done, self.total) = (done, total)
        case .quirk(let quirk):
            self.init(EventKind.quirk, unit: unit)
            text = quirk.description
        case .massErased:
            self.init(EventKind.massErased, unit: unit)
        case .readUnprotected(let reset):
            self.init(EventKind.readUnprotected, unit: unit)
            deviceReset = reset
        case .left(let address, let outcome):
            self.init(EventKind.left, unit: unit)
            (jumpTo, leave) = (Hex.word(address), outcome.rawValue)
        }
    }

    init(_ event: UpgradeEvent, unit: String? = nil) {
        switch event {
        case .phaseStarted(let phase):
            self.init(EventKind.phaseStarted, unit: unit)
            self.phase = phase.rawValue
        case .phaseFinished(let phase, let duration):
            self.init(EventKind.phaseFinished, unit: unit)
            (self.phase, seconds) = (phase.rawValue, duration.seconds)
        case .found(let description):
            self.init(EventKind.found, unit: unit)
            found = UnitJSON(description)
        case .resuming(let entry):
            self.init(EventKind.resuming, unit: unit)
            (step, image, newVersion) = (entry.step.rawValue, entry.image, entry.newVersion)
        case .planned(let plan, let skipped):
            self.init(EventKind.planned, unit: unit)
            (erasedSectors, bytesToWrite, skippedSectors) = (plan.erasedSectors.count, plan.bytesToWrite, skipped)
        case .boot0(let request, let path):
            self.init(EventKind.boot0, unit: unit)
            (action, self.path, port) = (request.action.rawValue, path, request.port)
        case .classified(let classification):
            self.init(EventKind.classified, unit: unit)
            self.classification = classification.rawValue
        case .warning(let text):
            self.init(EventKind.warning, unit: unit)
            self.text = text
        case .optionBytes(let found, let required, let written):
            self.init(EventKind.optionBytes, unit: unit)
            (optionBytesFound, optionBytesRequired, self.written) = (found, required, written)
        case .flash(let flash):
            self.init(flash, unit: unit)
        case .note(let text):
            self.init(EventKind.note, unit: unit)
            self.text = text
        }
    }
}

/// Writes an upgrade's events as lines, nesting the DfuSe client's phases in the upgrade phase that runs them.
final class UpgradeEventLines: @unchecked Sendable {
    // Guarded by `lock`: engines call their event handlers from their own tasks (several with `--all`).
    private let lock = NSLock()
    private var current: [String: String] = [:]

    /// A DfuSe phase belongs to the upgrade phase last started, even once it has finished: the reads that
    /// check the unit's flash after `enter` ends are the engine's `within(.enter)` steps (docs/json.md).
    func line(_ event: UpgradeEvent, unit: String?) -> EventLine {
        let key = unit ?? ""
        return lock.withLock {
            var line = EventLine(event, unit: unit)
            switch event {
            case .phaseStarted(let phase): current[key] = phase.rawValue
            case .flash(.phaseStarted), .flash(.phaseFinished): line.within = current[key]
            default: break
            }
            return line
        }
    }
}

extension UnitJSON {
    init(_ unit: UnitDescription) {
        classification = unit.classification.rawValue
        family = unit.familyID
        port = unit.portPath
        uid = unit.uid?.description
        romSerial = unit.dfuSerial
        version = unit.version?.description
        productID = unit.productID.map(Hex.word)
    }
}

extension ResultLine {
    /// An upgrade's result: `type` "result", or "unit" for one unit of `--all`.
    init(_ result: UpgradeResult, port: String? = nil) {
        self.init(command: "upgrade", outcome: result.outcome.rawValue)
        if port != nil { type = "unit" }
        unit = UnitJSON(result.before)
        if unit?.port == nil { unit?.port = port }
        oldVersion = result.before.version?.description
        newVersion = result.newVersion?.description
        resumedFrom = result.resumed?.step.rawValue
        phases = result.phases.map { PhaseJSON(phase: $0.phase.rawValue, seconds: $0.duration.seconds) }
        plan = result.plan.map(PlanJSON.init)
        flash = result.flashReport.map(FlashJSON.init)
    }
}
