import Foundation
import Testing

@testable import Recording

/// A recording is read as hostile input (issue 21 item 6): one pass checks and indexes every line, and a
/// record is decoded when it is reached. What is read must be what the file says, line for line.
@Suite("Recording lines", .timeLimit(.minutes(10)))
struct RecordingLinesTests {
    static let recordings = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
        "../../protocols/recordings"
    ).standardized

    static var stored: [URL] {
        let walker = FileManager.default.enumerator(at: recordings, includingPropertiesForKeys: nil)
        return (walker?.allObjects as? [URL] ?? []).filter { $0.pathExtension == "jsonl" }.sorted { $0.path < $1.path }
    }

    /// Every stored recording: the indexed lines are the file's record lines, decoded the plain way.
    @Test func theIndexedLinesAreTheFilesRecords() throws {
        #expect(Self.stored.count > 40)
        for url in Self.stored {
            let recording = try Recording.load(path: url.path)
            let text = try String(contentsOf: url, encoding: .utf8)
            var expected: [Recording.Line] = []
            for (offset, row) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated().dropFirst()
            where !row.isEmpty {
                let record = try JSONDecoder().decode(Record.self, from: Data(row.utf8))
                if record.event != .result { expected.append(Recording.Line(number: offset + 1, record: record)) }
            }
            #expect(Array(recording.lines) == expected, "\(url.lastPathComponent)")
            for (position, line) in expected.enumerated() {
                #expect(recording.lines.event(at: position) == line.record.event)
                #expect(recording.lines.port(at: position) == line.record.port)
                #expect(recording.lines.number(at: position) == line.number)
            }
        }
    }

    static func header() throws -> String {
        let header = RecordingHeader(dfuhop: "test", command: ["list"], started: nil, clock: "virtual")
        return String(decoding: try JSONEncoder().encode(header), as: UTF8.self)
    }

    /// Blank lines and lines of any length keep their numbers; a line after the result is refused by number.
    @Test func lineNumbersSurviveBlankLines() throws {
        let close = "{\"event\":\"close\",\"port\":\"1-1\",\"handle\":1,\"t\":5}"
        let recording = try Recording(text: try Self.header() + "\n\n\n" + close + "\n\n" + close + "\n", path: "blank")
        #expect(recording.lines.map(\.number) == [4, 6])
        #expect(recording.lines.map(\.record.t) == [5, 5])
        let result = "{\"event\":\"result\",\"exitCode\":0,\"t\":9}"
        #expect(throws: RecordingError(file: "after", line: 4, "a line after the result line")) {
            _ = try Recording(text: try Self.header() + "\n" + result + "\n\n" + close + "\n", path: "after")
        }
    }

    /// A recording naming more ports than a session can is refused at the line that names one too many.
    @Test func tooManyPortsAreRefusedByLine() throws {
        var text = try Self.header() + "\n"
        for port in 0...Recording.maximumPorts { text += "{\"event\":\"close\",\"port\":\"p\(port)\",\"handle\":1,\"t\":0}\n" }
        #expect(throws: RecordingError.self) { _ = try Recording(text: text, path: "ports") }
        do { _ = try Recording(text: text, path: "ports") } catch {
            #expect(error.line == Recording.maximumPorts + 2, "\(error)")
        }
        let fewer = text.split(separator: "\n").dropLast().joined(separator: "\n") + "\n"
        #expect(try Recording(text: fewer, path: "ports").lines.count == Recording.maximumPorts)
    }

    /// A record line longer than any recorder writes is refused by number, before it is decoded.
    @Test func aVeryLongLineIsRefusedByNumber() throws {
        let long = "{\"event\":\"close\",\"t\":0" + String(repeating: " ", count: Recording.maximumLineLength) + "}"
        #expect(throws: RecordingError(file: "long", line: 3, "a line of \(long.utf8.count) bytes; a record is at most 1 MiB")) {
            _ = try Recording(text: try Self.header() + "\n{\"event\":\"close\",\"t\":0}\n" + long + "\n", path: "long")
        }
    }

    /// Lines a replay does not match (subscriptions) change nothing, however many: the replay state sees
    /// the same requests and the same bus.
    @Test func paddingDoesNotChangeTheReplayState() throws {
        let url = Self.recordings.appendingPathComponent("virtual/g474-upgrade.jsonl")
        let text = try String(contentsOf: url, encoding: .utf8)
        let headerEnd = try #require(text.firstIndex(of: "\n"))
        let padding = String(repeating: "{\"event\":\"subscribe\",\"subscription\":1,\"t\":0}\n", count: 10_000)
        let padded = try Recording(text: String(text[...headerEnd]) + padding + text[text.index(after: headerEnd)...], path: "padded")
        let plain = try Recording.load(path: url.path)
        var a = ReplayState(lines: plain.lines)
        var b = ReplayState(lines: padded.lines)
        #expect(a.snapshot.devices == b.snapshot.devices)
        for position in plain.lines.indices where ![.devices, .hotplug, .subscribe, .boot0Path].contains(plain.lines.event(at: position)) {
            let request = plain.lines[position].record
            guard case .success(let x) = a.take(request), case .success(let y) = b.take(request) else {
                Issue.record("line \(plain.lines[position].number) did not replay")
                return
            }
            #expect(x.record == y.record && y.number == x.number + 10_000)
            #expect(a.snapshot.devices == b.snapshot.devices)
            #expect(
                a.dueHotplug(subscriptions: .max).map { plain.lines[Int($0)].record }
                    == b.dueHotplug(subscriptions: .max).map { padded.lines[Int($0)].record })
        }
        #expect(a.finish() == nil && b.finish() == nil)
    }

    /// The recorded run opened its second events stream before the application arrived; the replayed run may
    /// open it only after the request that makes that arrival due. The arrival goes to the streams open then,
    /// and is kept, once, for the one the recorded run gave it to. (The whole path, through ReplayDiscovery,
    /// is the emulated-USB upgrade test's replay.)
    @Test func anArrivalRecordedForALaterSubscriptionIsKeptForIt() throws {
        let device =
            #"{"bcdDevice":"0x0100","interfaceNumber":0,"kind":"hid","manufacturer":"dfuhop","path":"/dev/hidraw1","port":"1-1","#
            + #""product":"demo","serial":"21003000114C4F5434373133","usage":"0x0001","usagePage":"0xFFDF","vidPid":"1209:0002"}"#
        let lines = [
            #"{"event":"subscribe","subscription":1,"t":0}"#,
            #"{"event":"close","port":"1-1","handle":1,"t":10}"#,
            #"{"event":"subscribe","subscription":2,"t":20}"#,
            #"{"devices":[],"event":"devices","t":30}"#,
            #"{"change":"arrived","device":"# + device + #","event":"hotplug","port":"1-1","subscription":2,"t":40}"#
        ]
        let recording = try Recording(text: try Self.header() + "\n" + lines.joined(separator: "\n") + "\n", path: "later")
        var state = ReplayState(lines: recording.lines)
        guard case .success = state.take(Record(.close, port: "1-1", handle: 1)) else {
            Issue.record("the close did not replay")
            return
        }
        #expect(state.dueHotplug(subscriptions: 1) == [4], "due once the close is replayed")
        #expect(state.held(for: 2) == [4], "kept for the second subscription, not open yet")
        #expect(state.held(for: 2).isEmpty, "and handed over once")
        guard case .arrived(.hid(let info))? = ReplayState.discoveryEvent(recording.lines[4].record) else {
            Issue.record("the kept line is not the arrival")
            return
        }
        #expect(info.usb.portPath == "1-1")
    }
}
