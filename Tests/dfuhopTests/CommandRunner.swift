import Foundation
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

        /// The `--json` result: the last line of stdout, one JSON object (docs/json.md).
        func json() throws -> [String: Any] {
            let last = stdout.split(separator: "\n").last.map(String.init) ?? ""
            let object = try JSONSerialization.jsonObject(with: Data(last.utf8))
            guard let dictionary = object as? [String: Any], dictionary["type"] as? String == "result" else {
                throw LocateError(message: "stdout does not end with a JSON result: \(stdout)")
            }
            return dictionary
        }

        /// A field of the result's `unit` (`info --json`, `upgrade --json`).
        func unitField(_ name: String) throws -> String? { (try json()["unit"] as? [String: Any])?[name] as? String }
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

    /// Runs dfuhop to its end. The wait happens on a Dispatch thread: a blocking wait on the cooperative
    /// pool (two threads on a two-core machine) would stall every other test running meanwhile.
    static func run(_ arguments: [String], environment: [String: String]? = nil, directory: URL? = nil) async throws -> Result {
        let executable = try executable()
        let result = try await offCooperativePool { () throws -> Result in try runBlocking(executable, arguments, environment, directory) }
            .get()
        if arguments.contains("--json") { try OutputSchema.check(result.stdout, of: arguments) }
        return result
    }

    private static func runBlocking(
        _ executable: URL, _ arguments: [String], _ environment: [String: String]?, _ directory: URL?
    ) throws -> Result {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        if let environment { process.environment = environment }
        if let directory { process.currentDirectoryURL = directory }
        // Files, not pipes: a chatty child can never block on a full pipe while we wait for it.
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("dfuhop-run-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let outURL = scratch.appendingPathComponent("stdout")
        let errURL = scratch.appendingPathComponent("stderr")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let out = try FileHandle(forWritingTo: outURL)
        let err = try FileHandle(forWritingTo: errURL)
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        try out.close()
        try err.close()
        return Result(
            status: process.terminationStatus,
            stdout: String(decoding: try Data(contentsOf: outURL), as: UTF8.self),
            stderr: String(decoding: try Data(contentsOf: errURL), as: UTF8.self))
    }
}

/// A scratch directory removed when the test ends.
final class TemporaryDirectory {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("dfuhop-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    func path(_ name: String) -> String { url.appendingPathComponent(name).path }

    func write(_ name: String, _ bytes: [UInt8]) throws -> String {
        let path = path(name)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    func read(_ name: String) throws -> [UInt8] { Array(try Data(contentsOf: url.appendingPathComponent(name))) }

    deinit { try? FileManager.default.removeItem(at: url) }
}
