import Foundation
import TestSupport

/// Runs a command with its stderr on a pseudo-terminal of a given width, through util-linux `script`
/// (stdout goes to /dev/null): what a technician's terminal would show of dfuhop's progress.
enum PseudoTerminal {
    struct Output {
        var status: Int32
        /// Everything written to the terminal, escape sequences and carriage returns included.
        var text: String
    }

    /// util-linux `script`, on every Debian (bsdutils is essential); the BSD one on macOS takes other options.
    static let available: Bool = {
        #if os(Linux)
            true
        #else
            false
        #endif
    }()

    static func run(_ command: [String], columns: Int) async throws -> Output {
        try await offCooperativePool { () throws -> Output in try runBlocking(command, columns: columns) }.get()
    }

    private static func runBlocking(_ command: [String], columns: Int) throws -> Output {
        let quoted = command.map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/script")
        // -e: script exits with the command's status; the width is set on the terminal before dfuhop starts.
        process.arguments = ["-q", "-e", "-c", "stty cols \(columns) rows 40; exec \(quoted) >/dev/null", "/dev/null"]
        var environment = ProcessInfo.processInfo.environment
        environment["TERM"] = "xterm"
        environment["COLUMNS"] = nil
        environment["NO_COLOR"] = "1"
        process.environment = environment
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("dfuhop-pty-\(UUID().uuidString)")
        _ = FileManager.default.createFile(atPath: scratch.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let out = try FileHandle(forWritingTo: scratch)
        process.standardOutput = out
        process.standardError = out
        process.standardInput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        try out.close()
        return Output(status: process.terminationStatus, text: String(decoding: try Data(contentsOf: scratch), as: UTF8.self))
    }

    /// What each redraw or line puts on the screen from its first column: the text split at `\r` and `\n`,
    /// CSI escape sequences (`ESC [ ... letter`) removed.
    static func drawnLines(_ text: String) -> [String] {
        let plain = text.replacingOccurrences(of: "\u{1B}\\[[0-9;?]*[A-Za-z]", with: "", options: .regularExpression)
        return plain.split(whereSeparator: { $0 == "\r" || $0 == "\n" || $0 == "\r\n" }).map(String.init).filter { !$0.isEmpty }
    }
}
