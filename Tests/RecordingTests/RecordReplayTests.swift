import Foundation
import HexFormat
import Testing
import USBTransport
import VirtualDevice

@testable import Recording

/// Recording on a virtual unit and replaying the recording, through the library alone.
@Suite("Recording and replay")
struct RecordReplayTests {
    /// DfuSe's Set Address Pointer (AN3156 §6.1): DNLOAD block 0 with 0x21 and the address.
    static func setAddress(_ address: UInt32) -> [UInt8] {
        [0x21] + (0..<4).map { UInt8(truncatingIfNeeded: address >> (8 * $0)) }
    }

    /// A few DFU requests any ROM answers, one that it stalls, and what came back: the same calls must get
    /// the same answers from the recording.
    static func exercise(_ discovery: any DeviceDiscovery, address: UInt32 = 0x0800_4000) async throws -> [String] {
        var seen: [String] = []
        guard case .dfu(let identity, _)? = try await discovery.devices().first else { throw TestFailure("no ROM on the bus") }
        let dfu = try await discovery.openDFU(identity)
        seen.append("\(dfu.functionalDescriptor) \(dfu.alternateSettings.map(\.name))")
        try await dfu.selectAlternateSetting(0)
        seen.append(Hex.string(try await dfu.controlIn(.classIn(3, value: 0, interface: 0), length: 6, timeout: .seconds(1))))
        try await dfu.controlOut(.classOut(1, value: 0, interface: 0), data: setAddress(address), timeout: .seconds(1))
        for _ in 0..<2 {
            seen.append(Hex.string(try await dfu.controlIn(.classIn(3, value: 0, interface: 0), length: 6, timeout: .seconds(1))))
        }
        do {
            _ = try await dfu.controlIn(.classIn(0x77, value: 0, interface: 0), length: 1, timeout: .seconds(1))
            seen.append("request 0x77 answered")
        } catch {
            seen.append("\(error)")
        }
        await dfu.close()
        return seen
    }

    static func record(_ spec: String, in directory: Scratch, _ body: (RecordingDiscovery, VirtualUnit) async throws -> Void)
        async throws -> Recording
    {
        let clock = VirtualClock()
        let unit = try SimulationSpec(parsing: spec).makeUnit(clock: clock)
        let path = directory.path("recording.jsonl")
        let header = RecordingHeader(dfuhop: "test", command: ["test"], started: nil, clock: "virtual", simulated: spec)
        let recorder = try RecordingDiscovery(base: VirtualBus(units: [unit]), clock: clock, path: path, header: header)
        try await body(recorder, unit)
        #expect(recorder.finish(exitCode: 0, result: ["outcome": "done"]) == nil)
        return try Recording.load(path: path)
    }

    @Test func aRecordedSessionReplaysWithTheSameAnswersAndErrors() async throws {
        let directory = try Scratch()
        var recorded: [String] = []
        let recording = try await Self.record("f407:dfu", in: directory) { recorder, _ in recorded = try await Self.exercise(recorder) }
        #expect(recorded.last?.contains("stall") == true, "the ROM stalls an unknown request: \(recorded)")
        let replay = ReplayDiscovery(recording: recording)
        #expect(try await Self.exercise(replay) == recorded)
        #expect(replay.finish() == nil)
        #expect(replay.transfers == 5)
        #expect(replay.clock.now() > .zero, "the replay's clock follows the recorded times")
        #expect(recording.resultLine?.contains("\"outcome\":\"done\"") == true)
    }

    @Test func aRequestThatDiffersIsReportedAtItsLineAndLaterRequestsFail() async throws {
        let directory = try Scratch()
        let recording = try await Self.record("f407:dfu", in: directory) { recorder, _ in _ = try await Self.exercise(recorder) }
        let lines = try String(contentsOfFile: recording.path, encoding: .utf8).split(separator: "\n")
        let expectedLine = try #require(lines.firstIndex { $0.contains("\"event\":\"controlOut\"") }) + 1
        let replay = ReplayDiscovery(recording: recording)
        await #expect(throws: TransportError.self) { _ = try await Self.exercise(replay, address: 0x0800_8000) }
        let divergence = try #require(replay.finish())
        #expect(divergence.line == expectedLine)
        #expect(divergence.stream == "1-1")
        #expect(divergence.detail == "the data differs from byte 2: recorded 0x40, sent 0x80", "\(divergence)")
        #expect(divergence.expected.contains("DNLOAD") && divergence.got.contains("DNLOAD"))
        let identity = try #require(recording.lines.first?.record.devices?.first?.identity)
        await #expect(throws: TransportError.self, "after a divergence every request fails") { _ = try await replay.openDFU(identity) }
    }

    @Test func aRecordedRequestTheRunNeverMakesIsADivergence() async throws {
        let directory = try Scratch()
        let recording = try await Self.record("f407:dfu", in: directory) { recorder, _ in _ = try await Self.exercise(recorder) }
        let replay = ReplayDiscovery(recording: recording)
        guard case .dfu(let identity, _)? = try await replay.devices().first else { throw TestFailure("no ROM in the recording") }
        _ = try await replay.openDFU(identity)
        let divergence = try #require(replay.finish())
        #expect(divergence.index == nil)
        #expect(divergence.expected.hasPrefix("selectAlternate"))
        #expect(divergence.got == "nothing: the run ended before it")
    }

    @Test func reEnumerationIsReplayedAsTheBusChangedBetweenRequests() async throws {
        let directory = try Scratch()
        var heard: [DiscoveryEvent] = []
        let recording = try await Self.record("f407:programmed", in: directory) { recorder, unit in
            let before = try await recorder.devices()
            guard case .hid(let info)? = before.first else { throw TestFailure("the application is not on the bus: \(before)") }
            await (try await recorder.openHID(info)).close()
            let events = recorder.events()
            unit.setBoot0(true)
            unit.powerCycle()
            for await event in events {
                heard.append(event)
                if heard.count == 2 { break }
            }
            guard case .dfu(let identity, _)? = try await recorder.devices().first else { throw TestFailure("no ROM after reset") }
            await (try await recorder.openDFU(identity)).close()
        }
        #expect(heard.count == 2)
        let replay = ReplayDiscovery(recording: recording)
        guard case .hid(let info)? = try await replay.devices().first else { throw TestFailure("the replay starts with no application") }
        let events = replay.events()
        await (try await replay.openHID(info)).close()
        var replayed: [DiscoveryEvent] = []
        for await event in events {
            replayed.append(event)
            if replayed.count == 2 { break }
        }
        #expect(replayed == heard)
        guard case .dfu(let identity, _)? = try await replay.devices().first else { throw TestFailure("the replay shows no ROM") }
        await (try await replay.openDFU(identity)).close()
        #expect(replay.finish() == nil)
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A scratch directory removed when the test ends.
final class Scratch {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("dfuhop-recording-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    func path(_ name: String) -> String { url.appendingPathComponent(name).path }

    deinit { try? FileManager.default.removeItem(at: url) }
}
