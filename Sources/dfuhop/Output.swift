import Foundation

/// Everything the CLI writes goes through here: stdout for results, stderr for messages and progress.
enum Output {
    static let standardOutputIsTerminal = isatty(STDOUT_FILENO) == 1
    static let standardErrorIsTerminal = isatty(STDERR_FILENO) == 1

    /// Human-readable text: anything a device or a file put in it is escaped (`TerminalText`).
    static func print(_ text: String) {
        FileHandle.standardOutput.write(Data((TerminalText.display(text) + "\n").utf8))
    }

    static func message(_ text: String) {
        FileHandle.standardError.write(Data((TerminalText.display(text) + "\n").utf8))
    }

    /// One JSON value on one line of stdout (for `--json`).
    static func json(_ object: [String: Any]) {
        printJSON(jsonLine(object))
    }

    /// A line of JSON, exactly as encoded (its strings stay exact; JSON escapes C0 controls itself).
    static func printJSON(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }

    static func jsonLine(_ object: [String: Any]) -> String {
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]) else {
            return "{\"error\":\"unencodable output\"}"
        }
        return String(decoding: data, as: UTF8.self)
    }

    static func failure(_ failure: Failure, json: Bool) {
        if json {
            var object: [String: Any] = ["outcome": "failed", "exitCode": Int(failure.status.rawValue), "error": failure.message]
            if let hint = failure.hint { object["hint"] = hint }
            printJSON(jsonLine(object))
        }
        message("error: \(failure.message)")
        if let hint = failure.hint { message("hint: \(hint)") }
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

func hexAddress(_ value: UInt32) -> String {
    let digits = String(value, radix: 16, uppercase: true)
    return "0x" + String(repeating: "0", count: max(0, 8 - digits.count)) + digits
}
