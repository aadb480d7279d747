import ArgumentParser
import Foundation
import Recording
import StrictJSON

/// `dfuhop replay FILE`: the recorded command again, against the recording instead of USB.
struct ReplayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Run a recorded command again against its recording, and report where the run diverges.",
        discussion: """
            Every device command takes --record FILE. `dfuhop replay FILE` parses the command line the recording \
            holds, points it at the recording's own copies of its inputs (image, product profiles, journal \
            entries) and at scratch outputs, and runs it with the recording as the bus: each USB request must be \
            the next one recorded on its port, and gets the recorded answer. Time is virtual; BOOT0 requests \
            are matched, never carried out; nothing on this machine is written.

            Exit status 0 when every request matched and the command's result is the recorded one (durations \
            aside); 88 with the line, the recorded request and the one sent when it diverged, or with the \
            fields that differ. docs/recordings.md describes the format and how a recording becomes a test.

            Examples:
              dfuhop flash app.hex --record flash.jsonl
              dfuhop replay flash.jsonl
              dfuhop replay protocols/recordings/virtual/g474-upgrade.jsonl --json
            """)

    @Argument(help: "A recording made with --record.", completion: .file(extensions: ["jsonl"])) var recording: String
    @Flag(help: "A result object as JSON (the replayed command's own output is not shown).") var json = false

    func run() async throws {
        try await runCommand("replay", json: json) {
            let loaded: Recording
            do { loaded = try Recording.load(path: recording) } catch {
                throw Failure(FileManager.default.fileExists(atPath: recording) ? .badInput : .noInput, "\(error)")
            }
            let files = try ReplayFiles(loaded.header)
            defer { files.remove() }
            let command = try Self.command(loaded.header.command, files: files)
            let run = ReplayRun(recording: loaded)
            let status = await run.execute(command, muted: json)
            return try Self.verdict(run, status: status, files: files, json: json)
        }
    }

    /// The recorded command line, parsed, cleared of `--record` and the simulation, its files redirected.
    static func command(_ arguments: [String], files: ReplayFiles) throws -> any ReplayableCommand {
        let parsed: ParsableCommand
        do { parsed = try DfuHop.parseAsRoot(arguments) } catch {
            throw Failure(.badInput, "the recorded command line `\(arguments.joined(separator: " "))` cannot be run: \(error)")
        }
        guard var command = parsed as? any ReplayableCommand else {
            throw Failure(.badInput, "the recording holds `dfuhop \(arguments.joined(separator: " "))`, which is not a device command")
        }
        command.device.record = nil
        command.device.simulation = SimulationOptions()
        try command.redirect(to: files)
        return command
    }

    /// Compares the run with the recording: the first divergence, else the result (durations and the
    /// replay's own paths aside).
    static func verdict(_ run: ReplayRun, status: Int32, files: ReplayFiles, json: Bool) throws -> ResultLine {
        let recording = run.recording
        let recorded: ResultRecord<ResultLine>?
        do { recorded = try recording.result(as: ResultLine.self) } catch { throw Failure(.badInput, error.description) }
        var replay = ReplayJSON(
            recording: recording.path, command: recording.header.command, coverage: recording.header.coverage.rawValue,
            transfers: run.discovery.transfers, recordedExitCode: recorded?.exitCode, replayedExitCode: status)
        replay.replayed = run.replayedResult.map(ReplayedResult.init)
        replay.truncated = recording.truncated ? true : nil
        let outside = run.discovery.requestsBeyondCoverage
        replay.outsideRecording = outside > 0 ? outside : nil
        let problem: String?
        if let divergence = run.discovery.finish() {
            replay.divergence = DivergenceJSON(divergence)
            problem = "the replay diverged from the recording at " + divergence.description
        } else if let recorded {
            let differing = try differences(recorded.result, run.replayedResult, files: files, recording: recording)
            replay.resultDiffers = differing.isEmpty ? nil : differing
            problem = differing.isEmpty ? nil : "the result differs from the recorded one in: \(differing.joined(separator: ", "))"
        } else {
            problem = recording.header.coverage == .discovery ? nil : "the recording has no result line: the recorded run did not finish"
        }
        if !json { render(replay, problem: problem, recorded: recorded?.result, run: run) }
        var result = ResultLine(command: "replay", outcome: problem == nil ? "replayed" : "diverged")
        result.replay = replay
        if let problem {
            (result.exitCode, result.error) = (ExitStatus.replayDiverged.rawValue, problem)
            result.hint = "dfuhop now does something else than the recorded run did; if that is intended, record again (docs/recordings.md)"
        }
        return result
    }

    /// The fields of the two results that differ, durations aside, with the replay's paths read as recorded.
    /// A result that cannot be read back as a JSON object is an error naming the recording's result line and
    /// why: two results that cannot be read never compare equal.
    static func differences(
        _ recorded: ResultLine, _ replayed: ResultLine?, files: ReplayFiles, recording: Recording
    ) throws -> [String] {
        guard let replayed else { return ["the replayed command gave no result"] }
        let resultLine = "line \(recording.resultLineNumber.map(String.init) ?? "?") of \(recording.path)"
        let a: [String: JSONValue]
        let b: [String: JSONValue]
        do { a = try comparable(recorded, mapping: []) } catch {
            throw Failure(.replayDiverged, "the recorded result on \(resultLine) cannot be compared: read back as JSON, \(error)")
        }
        do { b = try comparable(replayed, mapping: files.mapping) } catch {
            throw Failure(
                .replayDiverged, "the replayed result cannot be compared with the one on \(resultLine): read back as JSON, \(error)")
        }
        return Set(a.keys).union(b.keys).filter { a[$0] != b[$0] }.sorted()
    }

    /// A result as a JSON object with durations zeroed and each replay path replaced by the recorded one
    /// (both as they appear inside a JSON string), read back by the strict reader.
    static func comparable(
        _ line: ResultLine, mapping: [(replayed: String, recorded: String)]
    ) throws(JSONValue.SyntaxError) -> [String: JSONValue] {
        var line = line
        line.schema = 0 // a recording made before a schema change still describes the same behaviour
        line.phases = line.phases?.map { PhaseJSON(phase: $0.phase, seconds: 0) }
        line.flash?.deviceSeconds = 0
        var text = Output.jsonLine(line)
        for (replayPath, recordedPath) in mapping {
            text = text.replacingOccurrences(of: jsonStringContent(replayPath), with: jsonStringContent(recordedPath))
        }
        guard case .object(let members) = try JSONValue.parse(Array(text.utf8)) else {
            throw JSONValue.SyntaxError(offset: 0, problem: "is not a JSON object")
        }
        return members
    }

    /// `text` escaped as inside a JSON string, without the quotes.
    static func jsonStringContent(_ text: String) -> String { String(Output.jsonLine(text).dropFirst().dropLast()) }

    static func render(_ replay: ReplayJSON, problem: String?, recorded: ResultLine?, run: ReplayRun) {
        let command = "`dfuhop \(replay.command.joined(separator: " "))`"
        if let divergence = replay.divergence {
            Output.print("the replay of \(command) diverged at line \(divergence.line) of \(replay.recording) (on \(divergence.stream)):")
            Output.print("  expected: \(divergence.expected)")
            Output.print("  got:      \(divergence.got)")
            if let detail = divergence.detail { Output.print("  \(detail)") }
            return
        }
        if let problem {
            Output.print("replayed \(replay.transfers) transfers of \(command) with no divergence, but \(problem)")
            if let recorded { Output.print("  recorded: \(Output.jsonLine(recorded))") }
            if let replayed = replay.replayed?.line { Output.print("  replayed: \(Output.jsonLine(replayed))") }
            return
        }
        if replay.coverage == RecordingHeader.Coverage.discovery.rawValue {
            Output.print(
                "replayed the device discovery of \(command) with no divergence (the recording covers discovery only; "
                    + "\(replay.outsideRecording ?? 0) open(s) fell outside it)")
            return
        }
        Output.print(
            "replayed \(replay.transfers) transfers of \(command): no divergence, and the result is the recorded one "
                + "(\(recorded?.outcome ?? "?"), exit \(recorded?.exitCode ?? 0))")
    }
}

/// `dfuhop replay`'s part of its result line (docs/json.md).
struct ReplayJSON: Codable, Equatable, Sendable {
    var recording: String
    var command: [String]
    /// `full` or `discovery`.
    var coverage: String
    /// Control transfers and HID reports replayed as recorded.
    var transfers: Int
    var recordedExitCode: Int32?
    var replayedExitCode: Int32
    var divergence: DivergenceJSON?
    /// The result's fields that differ from the recorded result.
    var resultDiffers: [String]?
    /// Opens refused because the recording covers discovery only.
    var outsideRecording: Int?
    /// The recording's last line was cut off.
    var truncated: Bool?
    var replayed: ReplayedResult?
}

struct DivergenceJSON: Codable, Equatable, Sendable {
    var line: Int
    var index: Int?
    var stream: String
    var expected: String
    var got: String
    var detail: String?

    init(_ divergence: Divergence) {
        (line, index, stream) = (divergence.line, divergence.index, divergence.stream)
        (expected, got, detail) = (divergence.expected, divergence.got, divergence.detail)
    }
}

/// The replayed command's own result line, held by reference: a result line cannot hold one directly.
final class ReplayedResult: Codable, Equatable, Sendable {
    let line: ResultLine

    init(_ line: ResultLine) { self.line = line }

    init(from decoder: any Decoder) throws { line = try decoder.singleValueContainer().decode(ResultLine.self) }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(line)
    }

    static func == (a: ReplayedResult, b: ReplayedResult) -> Bool { a.line == b.line }
}
