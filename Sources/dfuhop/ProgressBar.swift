import Foundation

/// Progress on stderr for people. On a terminal that can redraw: one bar per data phase (erase, write,
/// verify, read) with the amount, the rate and the time left, redrawn in place and fitted to the terminal's
/// width (fields dropped first, then the bar shortened: a line never wraps); step phases (enter, leave ...)
/// as plain lines that end with "done". Elsewhere (`2>log`, `TERM=dumb`, `-v`): plain lines, one per phase
/// and one per 10 % of a data phase. `--json` and `-q` get none of it. `NO_COLOR` (no-color.org) turns the
/// only colour, a green "done", off.
final class ProgressBar: @unchecked Sendable {
    enum Mode: Equatable {
        case off
        /// Redrawn in place with `\r` on a terminal.
        case redraw
        /// Appended lines: a log file, a pipe, a terminal that cannot redraw.
        case lines
    }

    // Guarded by `lock`: events arrive from the engine's task.
    private let lock = NSLock()
    private var phase = ""
    private var phaseStart = ContinuousClock.now
    private var lastDraw = ContinuousClock.now - .seconds(1)
    /// A bar or a step line is on screen without its newline.
    private var lineOpen = false
    private var openStep: String?
    private var eraseNote = ""
    private var eraseState: (done: Int, total: Int)?
    private var writeState: (done: Int, total: Int)?
    /// `.lines`: the last tenth printed for each data phase.
    private var tenthsShown: [String: Int] = [:]
    let mode: Mode
    private let colour: Bool
    /// `-v` logs every phase's start and end itself: the step lines would say it twice.
    private let stepLines = !Verbosity.isVerbose

    init(mode: Mode) {
        self.mode = Output.muted ? .off : mode
        colour = self.mode == .redraw && ProcessInfo.processInfo.environment["NO_COLOR"].map(\.isEmpty) ?? true
    }

    /// The mode for a command's output: none with `--json` or `-q`, a bar on a terminal that can redraw, lines elsewhere.
    static func mode(json: Bool) -> Mode {
        if json || Output.quiet { return .off }
        return terminalCanRedraw ? .redraw : .lines
    }

    /// stderr is a terminal that understands `\r` and erase-to-end-of-line, and no log lines go between redraws.
    static var terminalCanRedraw: Bool {
        Output.standardErrorIsTerminal && ProcessInfo.processInfo.environment["TERM"] != "dumb" && !Output.quiet
            && !Verbosity.isVerbose
    }

    /// The terminal's width in columns: stderr's window size (TIOCGWINSZ), else $COLUMNS, else 80.
    static func terminalColumns() -> Int {
        var size = winsize()
        if withUnsafeMutablePointer(to: &size, { ioctl(STDERR_FILENO, UInt(TIOCGWINSZ), $0) }) == 0, size.ws_col > 0 {
            return Int(size.ws_col)
        }
        if let columns = ProcessInfo.processInfo.environment["COLUMNS"].flatMap(Int.init), columns > 0 { return columns }
        return 80
    }

    /// Draws `phase` at `done` of `total` (bytes, or `unit`s). Redraws at most 20 times a second.
    func update(phase: String, done: Int, total: Int, unit: String = "B") {
        guard mode != .off else { return }
        lock.withLock {
            let now = ContinuousClock.now
            if mode == .lines { return appendLine(phase: phase, done: done, total: total, unit: unit, now: now) }
            // The DfuSe client erases each sector just before writing it: one write bar, the erase count beside it.
            if phase == "erase", self.phase == "write", let current = writeState {
                eraseNote = "(\(done)/\(total) sectors erased)"
                draw(phase: "write", done: current.done, total: current.total, unit: "B", now: now)
                return
            }
            if phase == "write", self.phase == "erase" {
                eraseNote = "(\(eraseState.map { "\($0.done)/\($0.total)" } ?? "?") sectors erased)"
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
        var fields = Self.fields(phase: phase, done: done, total: total, unit: unit, elapsed: now - phaseStart)
        if phase == "write", !eraseNote.isEmpty { fields.erased = eraseNote }
        write("\r" + fields.fitted(columns: Self.terminalColumns()) + "\u{1B}[K")
        lineOpen = true
    }

    /// `.lines`: a line when a data phase reaches another tenth (0 %, 10 % ... 100 %).
    private func appendLine(phase: String, done: Int, total: Int, unit: String, now: ContinuousClock.Instant) {
        if tenthsShown[phase] == nil { phaseStart = now }
        let tenth = total > 0 ? min(10, done * 10 / total) : 10
        guard tenth > tenthsShown[phase] ?? -1 else { return }
        tenthsShown[phase] = tenth
        var fields = Self.fields(phase: phase, done: done, total: total, unit: unit, elapsed: now - phaseStart)
        fields.bar = ""
        write(fields.fitted(columns: 1000) + "\n")
    }

    /// A step phase begins: its name on a line that `finishStep` completes.
    func startStep(_ name: String) {
        guard mode == .redraw else { return }
        lock.withLock {
            endLine()
            write(name + " …")
            lineOpen = true
            openStep = name
        }
    }

    /// A phase ended after `seconds`: completes its step line, or prints one if other output came between.
    func finishStep(_ name: String, seconds: Double) {
        guard mode != .off else { return }
        lock.withLock {
            tenthsShown = [:]
            guard stepLines else { return }
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
        guard mode != .off else { return }
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

    /// The parts of a progress line, in the order shown; `fitted` drops the least useful first.
    struct Fields: Equatable {
        var name: String
        var bar: String
        var percent: String
        var amount: String
        var rate = ""
        var left = ""
        var erased = ""

        /// The line in at most `columns - 1` columns (the last column left free, so no terminal wraps it):
        /// the erase count, the rate, the time left and the amount go first, then the bar shortens to
        /// 8 cells, then it goes; the name and the percentage stay, cut only on a terminal narrower than them.
        func fitted(columns: Int) -> String {
            let room = max(1, columns - 1)
            var fields = self
            for drop in [\Fields.erased, \.rate, \.left, \.amount] where fields.text.count > room {
                fields[keyPath: drop] = ""
            }
            let barCells = fields.bar.count
            if fields.text.count > room, barCells > 0 {
                let shorter = max(8, barCells - (fields.text.count - room))
                fields.bar = Self.shortened(fields.bar, to: shorter)
                if fields.text.count > room { fields.bar = "" }
            }
            return String(fields.text.prefix(room))
        }

        var text: String {
            [name, bar, percent, amount, rate, left, erased].filter { !$0.isEmpty }.joined(separator: " ")
        }

        /// The bar redrawn in `cells` cells with the same fraction filled.
        static func shortened(_ bar: String, to cells: Int) -> String {
            let filled = bar.filter { $0 == "█" }.count
            let now = bar.count > 0 ? filled * cells / bar.count : 0
            return String(repeating: "█", count: now) + String(repeating: "░", count: cells - now)
        }
    }

    /// `write    ████████░░░░  50% 12.0 KiB/24.0 KiB 8.0 KiB/s 2 s left`: the name is never cut.
    static func fields(phase: String, done: Int, total: Int, unit: String, elapsed: Duration, barCells: Int = 24) -> Fields {
        let fraction = total > 0 ? min(1, Double(done) / Double(total)) : 1
        let filled = Int(fraction * Double(barCells))
        let name = phase.count >= 8 ? phase : phase + String(repeating: " ", count: 8 - phase.count)
        var fields = Fields(
            name: name, bar: String(repeating: "█", count: filled) + String(repeating: "░", count: barCells - filled),
            percent: String(format: "%3d%%", Int(fraction * 100)),
            amount: unit == "B" ? "\(bytes(done))/\(bytes(total))" : "\(done)/\(total) \(unit)")
        let seconds = elapsed.seconds
        guard seconds > 0.2, done > 0 else { return fields }
        let rate = Double(done) / seconds
        fields.rate = unit == "B" ? "\(bytes(Int(rate)))/s" : String(format: "%.1f", rate) + " \(unit)/s"
        if done < total { fields.left = "\(Int((Double(total - done) / rate).rounded(.up))) s left" }
        return fields
    }

    static func bytes(_ count: Int) -> String {
        switch count {
        case ..<1024: "\(count) B"
        case ..<(1024 * 1024): String(format: "%.1f KiB", Double(count) / 1024)
        default: String(format: "%.2f MiB", Double(count) / 1_048_576)
        }
    }
}
