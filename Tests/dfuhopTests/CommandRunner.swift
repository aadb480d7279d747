import Foundation
import TestSupport
import Testing

/// Runs the built `dfuhop` executable and captures what it prints: the helper every CLI test uses.
///
///     let result = try await Dfuhop.run("image", "info", path)
///     #expect(result.status == 0)
///     #expect(result.stdout.contains("Intel HEX"))
enum Dfuhop {
    struct Result: CustomStringConvertible {
        var status: Int32
        var stdout: String
        var stderr: String

        var description: String { "exit \(status)\nstdout:\n\(stdout)\nstderr:\n\(stderr)" }

        /// The `--json` result: the last line of stdout, a `"type":"result"` line (docs/json.md).
        func result() throws -> ResultLine {
            let line = try JSONLines.last(ResultLine.self, in: stdout)
            guard line.type == "result" else {
                throw LocateError(message: "stdout does not end with a JSON result: \(stdout)")
            }
            return line
        }

        /// Every line of a `--json` run, events included.
        func lines() throws -> [Line] { try JSONLines.each(Line.self, in: stdout) }
    }

    struct LocateError: Error, CustomStringConvertible {
        var message: String
        var description: String { message }
    }

    /// The executable: $DFUHOP_EXECUTABLE, else `dfuhop` beside the test bundle (SwiftPM puts both in
    /// .build/<configuration>), else in the usual build directories under the working directory.
    static func executable() throws -> URL {
        let environment = ProcessInfo.processInfo.environment
        if let explicit = environment["DFUHOP_EXECUTABLE"] { return URL(fileURLWithPath: explicit) }
        var candidates: [URL] = []
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<4 { // The bundle may be a directory (…/dfuhopPackageTests.xctest/Contents/MacOS on macOS).
            candidates.append(directory.appendingPathComponent("dfuhop"))
            directory.deleteLastPathComponent()
        }
        let workingDirectory = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
        for configuration in ["debug", "release"] {
            candidates.append(workingDirectory.appendingPathComponent(".build/\(configuration)/dfuhop"))
        }
        var isDirectory: ObjCBool = false
        if let found = candidates.first(where: {
            FileManager.default.fileExists(atPath: $0.path, isDirectory: &isDirectory) && !isDirectory.boolValue
                && FileManager.default.isExecutableFile(atPath: $0.path)
        }) {
            return found
        }
        throw LocateError(
            message: "cannot find the dfuhop executable (looked in \(candidates.map(\.path))); build it or set DFUHOP_EXECUTABLE")
    }

    static func run(_ arguments: String...) async throws -> Result { try await run(arguments) }

    /// Runs dfuhop to its end, off the cooperative pool (TestSupport's ProcessRunner).
    static func run(_ arguments: [String], environment: [String: String]? = nil, directory: URL? = nil) async throws -> Result {
        let output = try await ProcessRunner.run(try executable(), arguments, environment: environment, directory: directory)
        let result = Result(status: output.status, stdout: output.standardOutput, stderr: output.standardError)
        if arguments.contains("--json") { try OutputSchema.check(result.stdout, of: arguments) }
        return result
    }
}
