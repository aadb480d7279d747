import Foundation
import Testing
import USBTransport
import VirtualDevice

@testable import Recording

/// The recording file: how it is created, and what a reader accepts.
@Suite("Recording files")
struct RecordingFileTests {
    static let header = RecordingHeader(dfuhop: "test", command: ["list"], started: nil, clock: "virtual")

    static func recorder(at path: String) throws -> RecordingDiscovery {
        try RecordingDiscovery(base: VirtualBus(units: []), clock: VirtualClock(), path: path, header: header)
    }

    @Test func aRecordingIsANewFileOfMode0600AndNeverOverwritesOrFollowsALink() throws {
        let directory = try Scratch()
        let path = directory.path("new.jsonl")
        _ = try Self.recorder(at: path)
        let mode = try #require(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
        #expect(mode & 0o777 == 0o600)
        #expect(throws: RecordingError.self) { _ = try Self.recorder(at: path) }
        let target = directory.path("target")
        try FileManager.default.createSymbolicLink(atPath: directory.path("link.jsonl"), withDestinationPath: target)
        #expect(throws: RecordingError.self) { _ = try Self.recorder(at: directory.path("link.jsonl")) }
        #expect(!FileManager.default.fileExists(atPath: target), "nothing was written through the link")
    }

    @Test func everyLineIsWrittenAsTheCallReturnsSoACrashKeepsThem() async throws {
        let directory = try Scratch()
        let path = directory.path("r.jsonl")
        let recorder = try Self.recorder(at: path)
        _ = try await recorder.devices()
        recorder.recordInput(name: "nonce", port: "1-1", value: 7)
        // No finish(): as if the process died here.
        let recording = try Recording.load(path: path)
        #expect(recording.lines.map(\.record.event) == [.devices, .input])
        #expect(recording.lines.map(\.number) == [2, 3])
        #expect(recording.resultLine == nil)
    }

    @Test func aCutOffLastLineIsLeftOutAndAnyOtherBadLineIsRefusedWithItsNumber() throws {
        let header = RecordingLog.line(Self.header)
        let record = RecordingLog.line(Record(.devices))
        let cut = try Recording(text: "\(header)\n\(record)\n{\"event\":\"dev", path: "cut")
        #expect(cut.truncated)
        #expect(cut.lines.count == 1)
        #expect(throws: RecordingError(file: "bad", line: 2, "not a record of format version 1")) {
            _ = try Recording(text: "\(header)\n{\"event\":\"dev\n\(record)\n", path: "bad")
        }
        let newer = header.replacingOccurrences(of: "\"version\":1", with: "\"version\":2")
        #expect(throws: RecordingError(file: "v2", line: 1, "format version 2; this dfuhop reads version 1")) {
            _ = try Recording(text: newer + "\n", path: "v2")
        }
        #expect(throws: RecordingError.self) { _ = try Recording(text: "{\"type\":\"result\"}\n", path: "other") }
    }

    @Test func aDfuUtilListingBecomesADiscoveryOnlyRecording() async throws {
        let capture = """
            # origin: a test
            Found DFU: [0483:df11] ver=2200, devnum=5, cfg=1, intf=0, alt=1, name="@Option Bytes  /0x1FFFC000/01*016 e", serial="339D36483335"
            Found DFU: [0483:df11] ver=2200, devnum=5, cfg=1, intf=0, alt=0, name="@Internal Flash  /0x08000000/04*016Kg", serial="339D36483335"
            """
        let recording = try Recording(text: DfuUtilListing.recording(from: capture, origin: "a test"), path: "listing")
        #expect(recording.header.coverage == .discovery)
        #expect(recording.header.command == ["list", "--json"])
        let replay = ReplayDiscovery(recording: recording)
        let devices = try await replay.devices()
        guard case .dfu(let identity, let alternates)? = devices.first, devices.count == 1 else {
            Issue.record("one DFU device expected: \(devices)")
            return
        }
        #expect(identity.vidPid == "0483:df11" && identity.bcdDevice == 0x2200 && identity.serialNumber == "339D36483335")
        #expect(identity.portPath == "devnum-5", "no path= in the capture: the device number stands in")
        #expect(alternates.map(\.number) == [0, 1])
        #expect(alternates.first?.name == "@Internal Flash  /0x08000000/04*016Kg")
        await #expect(throws: TransportError.self) { _ = try await replay.openDFU(identity) }
        #expect(replay.requestsBeyondCoverage == 1)
        #expect(replay.finish() == nil)
    }
}
