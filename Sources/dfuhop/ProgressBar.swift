import Foundation

/// Progress on stderr for people: one bar per data phase (erase, write, verify, read) with the amount,
/// the rate and the time left, redrawn in place; step phases (enter, leave ...) as plain lines that end
/// with "done". Only on a terminal that can redraw: `2>log`, `TERM=dumb` and `--json` get none of it.
/// `NO_COLOR` (no-color.org) turns the only colour, a green "done", off.
final class ProgressBar: @unchecked Sendable {
    // Guarded by `lock`: events arrive from the engine's task.
    private let lock = NSLock()
    private let width = 24
    private var phase = ""
    private var phaseStart = ContinuousClock.now
    private var lastDraw = ContinuousClock.now - .seconds(1)
    /// A bar or a step line is on screen without its newline.
    private var lineOpen = false
    private var openStep: String?
    private var eraseNote = ""
    private var eraseState: (done: Int, total: Int)?
    private var writeState: (done: Int, total: Int)?
    private let enabled: Bool
    private let colour: Bool

    init(enabled: Bool = ProgressBar.terminalCanRedraw) {
        self.enabled = enabled
        colour = enabled && ProcessInfo.processInfo.environment["NO_COLOR"].map(\.isEmpty) ?? true
    }

    /// stderr is a terminal that understands `\r` and erase-to-end-of-line.
    static var terminalCanRedraw: Bool {
        Output.standardErrorIsTerminal && ProcessInfo.processInfo.environment["TERM"] != "dumb" && !Output.quiet
            && !Verbosity.isVerbose
    }

    /// Draws `phase` at `done` of `total` (bytes, or `unit`s). Redraws at most 20 times a second.
    func update(phase: String, done: Int, total: Int, unit: String = "B") {
        guard enabled else { return }
        lock.withLock {
            let now = ContinuousClock.now
            // The DfuSe client erases each sector just before writing it: one write bar, the erase count beside it.
            if phase == "erase", self.phase == "write", let current = writeState {
                eraseNote = "  (\(done)/\(total) sectors erased)"
                draw(phase: "write", done: current.done, total: current.total, unit: "B", now: now)
                return
            }
            if phase == "write", self.phase == "erase" {
                eraseNote = "  (\(eraseState.map { "\($0.done)/\($0.total)" } ?? "?") sectors erased)"
                self.phase = phase
                phaseStart = now
            } else if phase != self.phase {
                endLine()
                eraseNote = ""
                self.phase = phase
                phaseStart = now
            } else if done < total, now - lastDraw < .milliseconds(50) {
                return
            }
            if phase == "erase" { eraseState = (done, total) }
            if phase == "write" { writeState = (done, total) }
            draw(phase: phase, done: done, total: total, unit: unit, now: now)
        }
    }

    private func draw(phase: String, done: Int, total: Int, unit: String, now: ContinuousClock.Instant) {
        lastDraw = now
        let line = Self.line(phase: phase, done: done, total: total, unit: unit, elapsed: now - phaseStart, width: width)
        write("\r" + line + (phase == "write" ? eraseNote : "") + "\u{1B}[K")
        lineOpen = true
    }

    /// A step phase begins: its name on a line that `finishStep` completes.
    func startStep(_ name: String) {
        guard enabled else { return }
        lock.withLock {
            endLine()
            write(name + " …")
            lineOpen = true
            openStep = name
        }
    }

    /// A phase ended after `seconds`: completes its step line, or prints one if other output came between.
    func finishStep(_ name: String, seconds: Double) {
        guard enabled else { return }
        lock.withLock {
            let done = colour ? "\u{1B}[32mdone\u{1B}[0m" : "done"
            let text = "\(done) (\(String(format: "%.2f", seconds)) s)"
            if openStep == name, lineOpen {
                write(" " + text + "\n")
            } else {
                endLine()
                write("\(name) \(text)\n")
            }
            lineOpen = false
            openStep = nil
            phase = ""
        }
    }

    /// Ends the current line so later messages start on their own line.
    func finish() {
        guard enabled else { return }
        lock.withLock {
            endLine()
            phase = ""
        }
    }

    private func endLine() {
        if lineOpen { write("\n") }
        (eraseState, writeState) = (nil, nil)
        lineOpen = false
        openStep = nil
    }

    private func write(_ text: String) { FileHandle.standardError.write(Data(text.utf8)) }

    /// `write    ████████░░░░  50%  12.0 KiB/24.0 KiB  8.0 KiB/s  2 s left`: the name is never cut.
    static func line(phase: String, done: Int, total: Int, unit: String, elapsed: Duration, width: Int) -> String {
        let fraction = total > 0 ? min(1, Double(done) / Double(total)) : 1
        let filled = Int(fraction * Double(width))
        let bar = String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
        let name = phase.count >= 8 ? phase : phase + String(repeating: " ", count: 8 - phase.count)
        var text = "\(name) \(bar) \(String(format: "%3d", Int(fraction * 100)))%  "
        text += unit == "B" ? "\(bytes(done))/\(bytes(total))" : "\(done)/\(total) \(unit)"
        let seconds = elapsed.seconds
        guard seconds > 0.2, done > 0 else { return text }
        let rate = Double(done) / seconds
        text += unit == "B" ? "  \(bytes(Int(rate)))/s" : "  " + String(format: "%.1f", rate) + " \(unit)/s"
        if done < total { text += "  \(Int((Double(total - done) / rate).rounded(.up))) s left" }
        return text
    }

    static func bytes(_ count: Int) -> String {
        switch count {
        case ..<1024: "\(count) B"
        case ..<(1024 * 1024): String(format: "%.1f KiB", Double(count) / 1024)
        default: String(format: "%.2f MiB", Double(count) / 1_048_576)
        }
    }
}
