import ArgumentParser
import Crypto
import DeviceProfiles
import Foundation
import Recording
import UpgradeEngine

/// A device command `dfuhop replay` can run again: its device options are cleared of `--record` and the
/// simulation, and its files are pointed at the replay's copies of the recorded inputs and at scratch
/// outputs, so a replay reads and writes nothing of the machine's (nor runs a hook).
protocol ReplayableCommand: AsyncParsableCommand {
    var device: DeviceOptions { get set }
    mutating func redirect(to files: ReplayFiles) throws
}

extension ReplayableCommand {
    mutating func redirect(to files: ReplayFiles) throws {}
}

extension ListCommand: ReplayableCommand {}
extension InfoCommand: ReplayableCommand {}
extension EnterDFUCommand: ReplayableCommand {}
extension LeaveCommand: ReplayableCommand {}
extension EraseCommand: ReplayableCommand {}

extension FlashCommand: ReplayableCommand {
    mutating func redirect(to files: ReplayFiles) throws { image = try files.input(role: "image", path: image) }
}

extension ReadCommand: ReplayableCommand {
    mutating func redirect(to files: ReplayFiles) throws { output = files.output(output) }
}

extension UpgradeCommand: ReplayableCommand {
    mutating func redirect(to files: ReplayFiles) throws {
        image = try files.input(role: "image", path: image)
        profile = [files.profiles.path]
        stateDir = files.state.path
        report = report.map(files.output)
    }
}

/// The files of a replay, in a scratch directory removed afterwards: the recording's inputs, each checked
/// against its SHA-256, and room for what the command writes.
final class ReplayFiles {
    let directory: URL
    let inputs: [RecordedInput]
    /// A replay path and the recorded path it stands for, to compare results.
    private(set) var mapping: [(replayed: String, recorded: String)] = []
    private var extracted: [Int: String] = [:]

    var profiles: URL { directory.appendingPathComponent("profiles") }
    var state: URL { directory.appendingPathComponent("state") }

    init(_ header: RecordingHeader) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("dfuhop-replay-\(UUID().uuidString)")
        inputs = header.inputs
        do {
            for sub in [directory, profiles, state] {
                try FileManager.default.createDirectory(at: sub, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            }
        } catch { throw Failure(.cannotWrite, "cannot make a scratch directory for the replay: \(error.localizedDescription)") }
        for (index, input) in inputs.enumerated() { try extract(input, index: index) }
    }

    private func extract(_ input: RecordedInput, index: Int) throws {
        guard let data = Data(base64Encoded: input.base64),
            SHA256.hash(data: data).map({ String(format: "%02x", $0) }).joined() == input.sha256
        else { throw Failure(.badInput, "the recording's copy of \(input.path) (\(input.name)) does not match its SHA-256") }
        // A name from a recording is only ever a file name inside the scratch directory.
        let name = input.name.replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "\0", with: "_")
        let safe = name.isEmpty || name.hasPrefix(".") ? "_" + name : name
        let folder: URL
        switch input.role {
        case "profile": folder = profiles
        case "journal": folder = state
        default: folder = directory.appendingPathComponent("input-\(index)")
        }
        let url = folder.appendingPathComponent(safe)
        do {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            try data.write(to: url, options: .withoutOverwriting)
        } catch { throw Failure(.cannotWrite, "cannot write the replay's copy of \(input.name): \(error.localizedDescription)") }
        extracted[index] = url.path
        if input.role == "image" { mapping.append((url.path, input.path)) }
    }

    /// The replay's copy of the input the recorded command line named `path`.
    func input(role: String, path: String) throws -> String {
        guard let index = inputs.firstIndex(where: { $0.role == role && $0.path == path }), let copy = extracted[index] else {
            throw Failure(
                .badInput, "the recording holds no copy of the \(role) \(path)", hint: "record the command again with this dfuhop")
        }
        return copy
    }

    /// Where the replay writes what the recorded command wrote to `path`.
    func output(_ path: String) -> String {
        let copy = directory.appendingPathComponent("output-\(mapping.count)-" + URL(fileURLWithPath: path).lastPathComponent).path
        mapping.append((copy, path))
        return copy
    }

    func remove() { try? FileManager.default.removeItem(at: directory) }
}

/// A replay in progress: `DeviceSession.open` serves the bus from it, the BOOT0 path comes from it, and the
/// replayed command's result lands here.
final class ReplayRun: @unchecked Sendable {
    @TaskLocal static var current: ReplayRun?

    let recording: Recording
    let discovery: ReplayDiscovery
    /// The part line the recorded (simulated) unit reported, so the replay knows it as the run did.
    let simulatedFamily: McuFamily?
    // Guarded by `lock`: written once by the replayed command's task.
    private let lock = NSLock()
    private var result: ResultLine?

    init(recording: Recording) {
        self.recording = recording
        discovery = ReplayDiscovery(recording: recording)
        simulatedFamily = recording.header.family.flatMap(McuFamily.named)
    }

    var replayedResult: ResultLine? { lock.withLock { result } }
    func note(_ line: ResultLine) { lock.withLock { result = line } }

    func session(_ options: DeviceOptions) -> DeviceSession {
        DeviceSession(
            discovery: discovery, clock: discovery.clock, options: options, virtualUnit: nil, virtualBus: nil, recorder: nil,
            replay: self)
    }

    /// The recorded BOOT0 path: each request must be the recorded one, and ends as it ended.
    func boot0Path() -> Boot0Path? {
        guard let recorded = discovery.boot0Path else { return nil }
        let discovery = self.discovery
        return Boot0Path(description: recorded.description, arrivalTimeout: recorded.arrivalTimeout) { request in
            let outcome = try discovery.boot0(action: request.action.rawValue, port: request.port, uid: request.uid)
            guard let failure = outcome.failure else { return }
            let status = outcome.exitCode.flatMap(ExitStatus.init(rawValue:)) ?? .notConfirmed
            if status == .cancelled { throw CancellationError() }
            throw Failure(status, failure)
        }
    }

    /// Runs the recorded command with this replay in charge; its exit status. `muted`: its stdout is not shown.
    func execute(_ command: any ReplayableCommand, muted: Bool) async -> Int32 {
        var command = command
        do {
            try await Self.$current.withValue(self) {
                try await Output.$muted.withValue(muted) { try await command.run() }
            }
            return 0
        } catch let exit as ExitCode {
            return exit.rawValue
        } catch is ValidationError {
            return ExitStatus.usage.rawValue
        } catch {
            return Failure.from(error).status.rawValue
        }
    }
}
