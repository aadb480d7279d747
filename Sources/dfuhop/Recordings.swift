import Crypto
import Foundation
import Recording
import UpgradeEngine

/// The command running in this task, as `--record` and `dfuhop replay` need it: its recorder, closed with
/// the command's result line, and the replay waiting for that result.
final class CommandCapture: @unchecked Sendable {
    @TaskLocal static var current: CommandCapture?

    // Guarded by `lock`: set once from the command's task, read when it ends.
    private let lock = NSLock()
    private var recorder: RecordingDiscovery?

    func attach(_ recorder: RecordingDiscovery) { lock.withLock { self.recorder = recorder } }

    /// Runs `body` as the command's body: its recorder attaches here. In a replay the replay's own signal
    /// handling stays in charge.
    func run(_ body: sending @escaping () async throws -> ResultLine) async throws -> ResultLine {
        if ReplayRun.current != nil { return try await Self.$current.withValue(self) { try await body() } }
        return try await SignalStop.run { [self] in try await Self.$current.withValue(self) { try await body() } }
    }

    /// The command ended with `result`: the recording gets its last line, a replay the result.
    func close(_ result: ResultLine) {
        ReplayRun.current?.note(result)
        guard let recorder = lock.withLock({ recorder }) else { return }
        if let failure = recorder.finish(exitCode: result.exitCode, result: result) {
            Output.error("warning: the recording is incomplete: \(failure)")
        }
    }
}

extension DeviceSession {
    /// `--record FILE`: puts a recorder between the engine and the bus, and writes the header.
    mutating func startRecording(_ path: String, inputs: [RecordedInput]) throws {
        let simulated = options.simulate ?? options.simulateState.map { _ in "--simulate-state" }
        let header = RecordingHeader(
            dfuhop: Version.text.split(separator: "\n").first.map(String.init) ?? "dfuhop",
            command: Array(CommandLine.arguments.dropFirst()), started: JSONContract.time(),
            clock: virtualBus == nil ? "system" : "virtual", simulated: virtualBus == nil ? nil : simulated,
            family: virtualBus?.units.first?.family.id, inputs: inputs)
        do {
            let recorder = try RecordingDiscovery(base: discovery, clock: clock, path: path, header: header)
            CommandCapture.current?.attach(recorder)
            self.recorder = recorder
            discovery = recorder
        } catch {
            throw Failure(.cannotWrite, error.description, hint: "name a new file for --record; nothing was sent to the unit")
        }
    }

    /// The BOOT0 path as the command set it up, recorded (`--record`) or answered from the recording (a replay).
    func recorded(_ path: Boot0Path?) -> Boot0Path? {
        if let replay { return replay.boot0Path() }
        guard let recorder, let path else { return path }
        recorder.recordBoot0Path(description: path.description, arrivalTimeout: path.arrivalTimeout)
        return Boot0Path(description: path.description, arrivalTimeout: path.arrivalTimeout) { request in
            do {
                try await path.perform(request)
                recorder.recordBoot0(action: request.action.rawValue, port: request.port, uid: request.uid)
            } catch {
                let failure = Failure.from(error)
                recorder.recordBoot0(
                    action: request.action.rawValue, port: request.port, uid: request.uid, failure: failure.message,
                    exitCode: failure.status.rawValue)
                throw error
            }
        }
    }
}

/// The files a command's content depends on, for the recording's header.
enum RecordedInputs {
    static func file(_ path: String, role: String, given: String? = nil) throws -> RecordedInput {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw Failure(.noInput, "\(path) cannot be read for the recording: \(error.localizedDescription)")
        }
        return RecordedInput(
            role: role, path: given ?? path, name: URL(fileURLWithPath: path).lastPathComponent,
            sha256: SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined(), base64: data.base64EncodedString())
    }

    /// The product profiles `upgrade` loads (`Profiles.load`): each file of each path, or of the default
    /// directory it falls back to.
    static func profiles(_ paths: [String]) throws -> [RecordedInput] {
        let defaults = Profiles.defaultDirectories().filter { FileManager.default.fileExists(atPath: $0) }.prefix(1)
        let given = paths.isEmpty ? Array(defaults) : paths
        return try given.flatMap { path in
            try jsonFiles(at: path).map { try file($0, role: "profile", given: path) }
        }
    }

    /// The journal's entries (`--state-dir`), so that a replay resumes as the recorded run did.
    static func journal(_ directory: URL) throws -> [RecordedInput] {
        try jsonFiles(at: directory.path).filter { URL(fileURLWithPath: $0).lastPathComponent.hasPrefix("unit-") }
            .map { try file($0, role: "journal", given: directory.path) }
    }

    static func jsonFiles(at path: String) -> [String] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { return [] }
        guard isDirectory.boolValue else { return [path] }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        return names.filter { $0.hasSuffix(".json") }.sorted().map { URL(fileURLWithPath: path).appendingPathComponent($0).path }
    }
}
