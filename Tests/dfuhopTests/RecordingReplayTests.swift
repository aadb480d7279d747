import DeviceProfiles
import FirmwareImage
import Foundation
import Recording
import TestSupport
import Testing
import VirtualDevice

/// `--record` and `dfuhop replay` end to end (docs/recordings.md): every stored recording replays with no
/// divergence and its recorded result; a changed byte is reported at its line.
@Suite("CLI: recordings replay", .timeLimit(.minutes(10)))
struct RecordingReplayTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let recordings = repository.appendingPathComponent("protocols/recordings")
    static let captures = repository.appendingPathComponent("protocols/families/fixtures")

    /// Every `*.jsonl` under protocols/recordings, relative to it.
    static var stored: [String] {
        let walker = FileManager.default.enumerator(atPath: recordings.path)
        return (walker?.allObjects as? [String] ?? []).filter { $0.hasSuffix(".jsonl") }.sorted()
    }

    /// The stored recordings but the listings made from captures, which their own test replays.
    static var storedRuns: [String] { stored.filter { !$0.hasPrefix("rom-listings/") } }

    static func replay(_ path: String) async throws -> (run: Dfuhop.Result, replay: Dfuhop.Replay) {
        let run = try await Dfuhop.run("replay", path, "--json")
        let replay = try #require(try run.result().replay, "\(run)")
        return (run, replay)
    }

    @Test("every stored recording replays with no divergence and its recorded result", arguments: storedRuns)
    func storedRecordingReplays(name: String) async throws {
        let (run, replay) = try await Self.replay(Self.recordings.appendingPathComponent(name).path)
        #expect(run.status == 0, "\(name): \(run)")
        #expect(replay.divergence == nil && replay.resultDiffers == nil, "\(name): \(run.stdout)")
        if name.hasPrefix("virtual/") {
            #expect(replay.transfers >= 10, "\(name) replays its transfers")
            #expect(replay.recordedExitCode == 0)
        }
    }

    @Test func everyPartLineHasAnUpgradeAndAFlashRecording() throws {
        let present = Set(Self.stored)
        for family in McuFamily.all {
            for kind in ["upgrade", "flash"] {
                #expect(present.contains("virtual/\(family.id)-\(kind).jsonl"), "scripts/record-fixtures records \(family.id)")
            }
        }
    }

    @Test("a real ROM's dfu-util listing replays as dfuhop list, with its alternate settings", arguments: RecordingFixtures.captureIDs)
    func listingFromACaptureShowsWhatTheROMShowed(id: String) async throws {
        let capture = try String(contentsOf: Self.captures.appendingPathComponent("\(id).txt"), encoding: .utf8)
        let stored = Self.recordings.appendingPathComponent("rom-listings/\(id).jsonl")
        #expect(
            try String(contentsOf: stored, encoding: .utf8) == RecordingFixtures.listing(capture),
            "rom-listings/\(id).jsonl is what scripts/record-fixtures makes of the capture")
        let (run, replay) = try await Self.replay(stored.path)
        #expect(run.status == 0, "\(run)")
        let devices = try #require(replay.replayed?.devices)
        let shown = DfuUtilListing.devices(in: capture)
        #expect(devices.count == shown.count)
        for (device, found) in zip(devices, shown) {
            guard case .dfu(let identity, let alternates) = found else { continue }
            #expect(device.alternateSettings == alternates.map(\.name))
            #expect(device.serial == identity.serialNumber && device.port == identity.portPath)
            let names = alternates.map(\.name)
            let candidates = McuFamily.candidates(alternates: names, bcdDevice: identity.bcdDevice, serial: identity.serialNumber)
            #expect(candidates.contains { $0.id == id }, "\(id)'s own ROM listing is recognised as \(id)")
            #expect(device.family == (candidates.count == 1 ? id : nil), "\(device)")
        }
    }

    @Test func aRecordingOfAFreshUpgradeReplaysAndRefusesToBeOverwritten() async throws {
        let directory = try TemporaryDirectory()
        let image = try RecordingFixtures.image(family: .f407, in: directory.url)
        let arguments = [
            "upgrade", image, "--simulate", "f407:programmed", "--state-dir", directory.path("journal"), "--json", "--record",
            directory.path("u.jsonl")
        ]
        let recorded = try await Dfuhop.run(arguments)
        #expect(recorded.status == 0, "\(recorded)")
        let mode = try FileManager.default.attributesOfItem(atPath: directory.path("u.jsonl"))[.posixPermissions] as? Int
        #expect(mode.map { $0 & 0o777 } == 0o600)
        let again = try await Dfuhop.run(arguments)
        #expect(again.status == 73, "an existing recording is never overwritten: \(again)")
        let (run, replay) = try await Self.replay(directory.path("u.jsonl"))
        #expect(run.status == 0, "\(run)")
        let replayed = try #require(replay.replayed)
        #expect(replayed.outcome == "upgraded" && replayed.newVersion == "2.0.0")
        let text = try await Dfuhop.run("replay", directory.path("u.jsonl"))
        #expect(text.stdout.contains("no divergence, and the result is the recorded one (upgraded, exit 0)"), "\(text)")
    }

    @Test func aFailedRunReplaysWithItsFailure() async throws {
        let directory = try TemporaryDirectory()
        let image = try RecordingFixtures.image(family: .f407, in: directory.url)
        let flash = try await Dfuhop.run("flash", image, "--simulate", "f407:programmed", "--record", directory.path("f.jsonl"))
        #expect(flash.status == 69, "no unit in DFU mode: \(flash)")
        let (run, replay) = try await Self.replay(directory.path("f.jsonl"))
        #expect(run.status == 0, "\(run)")
        #expect(replay.recordedExitCode == 69 && replay.replayedExitCode == 69)
    }

    /// A copy of a stored recording with the first record `change` accepts changed; its path and line number.
    static func mutatedCopy(of name: String, in directory: TemporaryDirectory, change: (inout [String: Any]) -> Bool) throws -> (
        String, Int
    ) {
        let text = try String(contentsOf: recordings.appendingPathComponent(name), encoding: .utf8)
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        for index in lines.indices.dropFirst() where !lines[index].isEmpty {
            var object = try #require(try JSONSerialization.jsonObject(with: Data(lines[index].utf8)) as? [String: Any])
            guard change(&object) else { continue }
            lines[index] = String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
            let path = directory.path("mutated.jsonl")
            try lines.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
            return (path, index + 1)
        }
        throw Dfuhop.LocateError(message: "\(name) has no record to change")
    }

    static func flipFirstByte(_ hex: String) -> String {
        let first = UInt8(hex.prefix(2), radix: 16) ?? 0
        return String(format: "%02X", first ^ 0xFF) + hex.dropFirst(2)
    }

    @Test func aChangedImageByteIsReportedAtTheLineOfTheBlockThatCarriesIt() async throws {
        let directory = try TemporaryDirectory()
        let (path, line) = try Self.mutatedCopy(of: "virtual/g474-flash.jsonl", in: directory) { object in
            guard object["event"] as? String == "controlOut", let setup = object["setup"] as? [String: Any],
                (setup["wValue"] as? Int ?? 0) >= 2, let data = object["data"] as? String, !data.isEmpty
            else { return false }
            object["data"] = Self.flipFirstByte(data)
            return true
        }
        let (run, replay) = try await Self.replay(path)
        #expect(run.status == 88, "\(run)")
        let divergence = try #require(replay.divergence, "\(run.stdout)")
        #expect(divergence.line == line)
        #expect(divergence.detail?.hasPrefix("the data differs from byte 0") == true, "\(divergence)")
        let text = try await Dfuhop.run("replay", path)
        #expect(text.status == 88 && text.stdout.contains("diverged at line \(line) of"), "\(text)")
    }

    @Test func aChangedReplyChangesTheRunAndTheReplaySaysSo() async throws {
        let directory = try TemporaryDirectory()
        // The first UPLOAD answer with data (the ROM inspection's, or the verification's): the engine now reads
        // something else than the recorded run did, and acts on it.
        var uploads = 0
        let (path, _) = try Self.mutatedCopy(of: "virtual/g474-flash.jsonl", in: directory) { object in
            guard object["event"] as? String == "controlIn", let setup = object["setup"] as? [String: Any],
                setup["bRequest"] as? Int == 2, (setup["wValue"] as? Int ?? 0) >= 2, let reply = object["reply"] as? String,
                !reply.isEmpty
            else { return false }
            uploads += 1
            object["reply"] = Self.flipFirstByte(reply)
            return true
        }
        #expect(uploads == 1)
        let (run, replay) = try await Self.replay(path)
        #expect(run.status == 88, "\(run)")
        #expect(replay.divergence != nil || replay.resultDiffers != nil, "\(run.stdout)")
    }
}
