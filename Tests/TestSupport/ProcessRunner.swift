import Foundation

/// What a finished child process left: its exit status (or the signal that ended it) and what it printed.
public struct ProcessOutput: Sendable, CustomStringConvertible {
    /// The exit status, or the number of the signal that ended the process (`signalled` then).
    public var status: Int32
    public var signalled: Bool
    public var stdout: Data
    public var stderr: Data

    public var standardOutput: String { String(decoding: stdout, as: UTF8.self) }
    public var standardError: String { String(decoding: stderr, as: UTF8.self) }

    public var description: String {
        "\(signalled ? "killed by signal" : "exit") \(status)\nstdout:\n\(standardOutput)\nstderr:\n\(standardError)"
    }
}

/// Runs child processes for tests without blocking the cooperative pool: the spawn and the wait happen on a
/// Dispatch thread, because the pool has one thread per core (two on a CI machine), and a test blocked in
/// `waitUntilExit` there stalls every other test meanwhile (a test waiting 20 ms between polls was once not
/// run for 30 s). Output goes to files, so a chatty child never blocks on a full pipe.
public enum ProcessRunner {
    public static func run(
        _ executable: URL, _ arguments: [String], environment: [String: String]? = nil, directory: URL? = nil,
        input: Data? = nil
    ) async throws -> ProcessOutput {
        try await offCooperativePool { () throws -> ProcessOutput in
            try runBlocking(executable, arguments, environment: environment, directory: directory, input: input)
        }.get()
    }

    /// A program looked up in PATH, as a shell would.
    public static func run(_ name: String, _ arguments: [String], directory: URL? = nil) async throws -> ProcessOutput {
        guard let path = which(name) else { throw ProcessRunnerError(description: "\(name) is not in PATH") }
        return try await run(URL(fileURLWithPath: path), arguments, directory: directory)
    }

    /// The first executable `name` in PATH.
    public static func which(_ name: String) -> String? {
        let directories = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
        return directories.map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    private static func runBlocking(
        _ executable: URL, _ arguments: [String], environment: [String: String]?, directory: URL?, input: Data?
    ) throws -> ProcessOutput {
        let scratch = try TemporaryDirectory(prefix: "dfuhop-run")
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        if let environment { process.environment = environment }
        if let directory { process.currentDirectoryURL = directory }
        let out = try scratch.handleForWriting("stdout")
        let err = try scratch.handleForWriting("stderr")
        process.standardOutput = out
        process.standardError = err
        if let input {
            process.standardInput = try FileHandle(forReadingFrom: URL(fileURLWithPath: try scratch.write("stdin", Array(input))))
        } else {
            process.standardInput = FileHandle.nullDevice
        }
        try process.run()
        process.waitUntilExit()
        try out.close()
        try err.close()
        return ProcessOutput(
            status: process.terminationStatus, signalled: process.terminationReason == .uncaughtSignal,
            stdout: try Data(contentsOf: scratch.url.appendingPathComponent("stdout")),
            stderr: try Data(contentsOf: scratch.url.appendingPathComponent("stderr")))
    }
}

public struct ProcessRunnerError: Error, CustomStringConvertible {
    public var description: String
}

/// Blocking work (a child's wait, a blocking read) on a Dispatch thread, never on the cooperative pool.
public func offCooperativePool<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        DispatchQueue.global().async { continuation.resume(returning: work()) }
    }
}

/// The same for blocking work that throws: its outcome comes back as a `Result`.
public func offCooperativePool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async -> Result<T, any Error> {
    await offCooperativePool { () -> Result<T, any Error> in Result { try work() } }
}
