import Foundation

/// Everything the CLI writes goes through here: stdout for results, stderr for messages and progress.
enum Output {
    static let standardOutputIsTerminal = isatty(STDOUT_FILENO) == 1
    static let standardErrorIsTerminal = isatty(STDERR_FILENO) == 1

    /// `dfuhop replay --json`: the replayed command's output is not shown (its result is in the replay's).
    @TaskLocal static var muted = false

    /// One line of human-readable text: anything a device or a file put in it is escaped, line breaks
    /// included (`TerminalText`), so it stays one line.
    static func print(_ text: String) {
        guard !muted else { return }
        FileHandle.standardOutput.write(Data((TerminalText.escaped(text) + "\n").utf8))
    }

    /// Several lines dfuhop composed (a plan, a listing), each printed as `print` prints one.
    static func print(lines: some Sequence<some StringProtocol>) {
        guard !muted else { return }
        let text = lines.map { TerminalText.escaped(String($0)) + "\n" }.joined()
        FileHandle.standardOutput.write(Data(text.utf8))
    }

    /// `-q`: set once at the start of a command, before any task runs.
    nonisolated(unsafe) static var quiet = false

    /// A note, warning or progress line for people on stderr; `-q` drops it.
    static func message(_ text: String) {
        guard !quiet, !muted else { return }
        FileHandle.standardError.write(Data((TerminalText.escaped(text) + "\n").utf8))
    }

    /// Several lines of a message dfuhop composed, each as `message` writes one.
    static func message(lines: [String]) {
        for line in lines { message(line) }
    }

    /// An error: on stderr whatever `-q` says.
    static func error(_ text: String) {
        guard !muted else { return }
        FileHandle.standardError.write(Data((TerminalText.escaped(text) + "\n").utf8))
    }

    /// A line of JSON, exactly as encoded (its strings stay exact; JSON escapes C0 controls itself).
    static func printJSON(_ line: String) {
        guard !muted else { return }
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }

    /// One line of the `--json` contract (docs/json.md) on stdout.
    static func emit(_ line: some Encodable) {
        printJSON(jsonLine(line))
    }

    /// A line whose array under `key` is too long to encode at once (an image of 100,000 segments):
    /// `line` holds that array empty, and `elements` (each one encoded JSON value) are written in its place
    /// in chunks, so the output never exists whole in memory. A JSON string cannot hold `"key":[]` with bare
    /// quotes, so the first such text in the encoded line is the key itself.
    static func emit(_ line: some Encodable, streaming elements: some Sequence<String>, into key: String) {
        guard !muted else { return }
        let encoded = jsonLine(line)
        guard let slot = encoded.range(of: "\"\(key)\":[]") else { preconditionFailure("the line has no empty \(key) array") }
        let output = FileHandle.standardOutput
        output.write(Data(encoded[..<slot.upperBound].dropLast().utf8))
        var chunk = ""
        for (index, element) in elements.enumerated() {
            if index > 0 { chunk += "," }
            chunk += element
            if chunk.utf8.count >= 1 << 16 {
                output.write(Data(chunk.utf8))
                chunk.removeAll(keepingCapacity: true)
            }
        }
        output.write(Data((chunk + "]" + encoded[slot.upperBound...] + "\n").utf8))
    }

    static func jsonLine(_ line: some Encodable) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(line) else { return "{\"type\":\"error\",\"error\":\"unencodable output\"}" }
        return String(decoding: data, as: UTF8.self)
    }

    /// A failed command: its result line with `--json`, and always the message and hint on stderr.
    static func failure(_ failure: Failure, command: String, json: Bool) {
        if json { emit(failure.result(command: command)) }
        error("error: \(failure.message)")
        if let hint = failure.hint { error("hint: \(hint)") }
    }
}

/// The longest wait an option may ask for: a day. Seconds become milliseconds in an Int, so NaN, infinity
/// and huge values must be refused before they are converted (Int(Double.infinity) traps).
let maximumWaitSeconds = 86_400.0

func isWaitInSeconds(_ value: Double) -> Bool { value > 0 && value <= maximumWaitSeconds }

/// `0x0800_0000`-style numbers on the command line: hex with 0x, or decimal; `_` allowed.
func parseNumber(_ text: String) -> UInt64? {
    let cleaned = text.replacingOccurrences(of: "_", with: "").lowercased()
    if cleaned.hasPrefix("0x") { return UInt64(cleaned.dropFirst(2), radix: 16) }
    return UInt64(cleaned)
}
