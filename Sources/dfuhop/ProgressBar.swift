import Foundation

/// A one-line progress bar on stderr, redrawn in place; only used when stderr is a terminal.
/// `dfuhop ... 2>log` or `--json` get no bar (JSON events or plain lines instead).
final class ProgressBar: @unchecked Sendable {
    private let lock = NSLock()
    private let width = 30
    private var phase = ""
    private var lastDraw = ContinuousClock.now - .seconds(1)
    private var drawn = false
    private let start = ContinuousClock.now
    private let enabled: Bool

    init(enabled: Bool = Output.standardErrorIsTerminal) {
        self.enabled = enabled
    }

    /// Draws `phase` at `done` of `total` units (bytes, sectors). Redraws at most 20 times a second.
    func update(phase: String, done: Int, total: Int, unit: String = "B", force: Bool = false) {
        guard enabled else { return }
        lock.withLock {
            let now = ContinuousClock.now
            let phaseChanged = phase != self.phase
            guard force || phaseChanged || done >= total || now - lastDraw >= .milliseconds(50) else { return }
            if phaseChanged, drawn { FileHandle.standardError.write(Data("\n".utf8)) }
            self.phase = phase
            lastDraw = now
            let fraction = total > 0 ? min(1, Double(done) / Double(total)) : 1
            let filled = Int(fraction * Double(width))
            let bar = String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
            let amount = unit == "B" ? "\(Self.bytes(done))/\(Self.bytes(total))" : "\(done)/\(total) \(unit)"
            let name = phase.padding(toLength: 10, withPad: " ", startingAt: 0)
            let line = "\r\(name) \(bar) \(String(format: "%3d", Int(fraction * 100)))%  \(amount)\u{1B}[K"
            FileHandle.standardError.write(Data(line.utf8))
            drawn = true
        }
    }

    /// Ends the bar's line so later messages start on their own line.
    func finish() {
        guard enabled else { return }
        lock.withLock {
            if drawn { FileHandle.standardError.write(Data("\n".utf8)) }
            drawn = false
            phase = ""
        }
    }

    static func bytes(_ count: Int) -> String {
        switch count {
        case ..<1024: "\(count) B"
        case ..<(1024 * 1024): String(format: "%.1f KiB", Double(count) / 1024)
        default: String(format: "%.2f MiB", Double(count) / 1_048_576)
        }
    }
}
