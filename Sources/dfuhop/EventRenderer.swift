import DeviceProfiles
import DfuSe
import Foundation
import UpgradeEngine

/// Renders the DfuSe client's events: progress on stderr (a bar on a terminal, lines elsewhere), one JSON
/// object per line with `--json` (the final summary is printed by the command).
final class EventRenderer: @unchecked Sendable {
    let json: Bool
    let bar: ProgressBar

    init(json: Bool) {
        self.json = json
        bar = ProgressBar(mode: ProgressBar.mode(json: json))
    }

    func render(_ event: DfuSeEvent) {
        if json {
            Output.emit(EventLine(event))
            return
        }
        switch event {
        case .sectorErased(_, let number, let total):
            bar.update(phase: "erase", done: number, total: total, unit: "sectors")
        case .bytesWritten(let done, let total, _):
            bar.update(phase: "write", done: done, total: total)
        case .bytesVerified(let done, let total):
            bar.update(phase: "verify", done: done, total: total)
        case .bytesRead(let done, let total):
            bar.update(phase: "read", done: done, total: total)
        case .quirk(let quirk):
            bar.finish()
            Output.message("note: \(quirk)")
        default:
            break
        }
    }

    /// The engine's events for the single-operation commands: the DfuSe client's progress, warnings and notes.
    func render(_ event: UpgradeEvent) {
        switch event {
        case .flash(let flash): render(flash)
        case .warning(let text), .note(let text):
            if json {
                Output.emit(EventLine(event))
            } else {
                bar.finish()
                Output.message("\(event.isWarning ? "warning" : "note"): \(text)")
            }
        default: if json { Output.emit(EventLine(event)) }
        }
    }

    func finish() { bar.finish() }
}

extension Duration {
    var seconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) / 1e18
    }
}

extension UpgradeEvent {
    var isWarning: Bool { if case .warning = self { true } else { false } }
}
