import Foundation
import Recording
import TestSupport
import Testing

@testable import dfuhop

/// `dfuhop replay` with recordings as users attach them to bug reports (issue 21 item 6, issue 23 item 6).
@Suite("CLI: replaying hostile recordings", .timeLimit(.minutes(10)))
struct ReplayHostileTests {
    static func recording(result: String) throws -> Recording {
        let header = RecordingHeader(dfuhop: "test", command: ["read"], started: nil, clock: "virtual")
        let text = String(decoding: try JSONEncoder().encode(header), as: UTF8.self) + "\n" + result + "\n"
        return try Recording(text: text, path: "r.jsonl")
    }

    /// A recorded path holding quotes and a backslash is compared as the path it is: the results are equal,
    /// and one differing field is named (before, both sides became unreadable text and compared as `[:]`).
    @Test func resultsWithQuotedPathsCompareByField() throws {
        let files = try ReplayFiles(RecordingHeader(dfuhop: "test", command: ["read"], started: nil, clock: "virtual"))
        defer { files.remove() }
        let recordedPath = "/data/\"line 3\"\\out.bin"
        let copy = files.output(recordedPath)
        var recorded = ResultLine(command: "read", outcome: "read")
        recorded.file = recordedPath
        var replayed = recorded
        replayed.file = copy
        let recording = try Self.recording(result: Output.jsonLine(ResultRecord(t: 0, exitCode: 0, result: recorded)))
        #expect(try ReplayCommand.differences(recorded, replayed, files: files, recording: recording).isEmpty)
        replayed.exitCode = 74
        #expect(try ReplayCommand.differences(recorded, replayed, files: files, recording: recording) == ["exitCode"])
        replayed.exitCode = 0
        replayed.file = copy + "x"
        #expect(try ReplayCommand.differences(recorded, replayed, files: files, recording: recording) == ["file"])
    }

    /// A stored recording padded with 20,000 lines a replay reads and does not match still replays with no
    /// divergence and its recorded result.
    @Test func aPaddedRecordingStillReplays() async throws {
        let directory = try TemporaryDirectory()
        let stored = RecordingReplayTests.recordings.appendingPathComponent("virtual/g474-upgrade.jsonl")
        let text = try String(contentsOf: stored, encoding: .utf8)
        let headerEnd = try #require(text.firstIndex(of: "\n"))
        let padding = String(repeating: "{\"event\":\"subscribe\",\"subscription\":1,\"t\":0}\n", count: 20_000)
        let path = try directory.write(
            "padded.jsonl", Array((String(text[...headerEnd]) + padding + text[text.index(after: headerEnd)...]).utf8))
        let (run, replay) = try await RecordingReplayTests.replay(path)
        #expect(run.status == 0, "\(run)")
        #expect(replay.divergence == nil, "\(replay)")
    }
}
