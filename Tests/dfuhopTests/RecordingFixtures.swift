import DeviceProfiles
import FirmwareImage
import Foundation
import Recording
import TestSupport
import Testing
import VirtualDevice

/// How protocols/recordings is made (`scripts/record-fixtures`, which sets DFUHOP_RECORD_FIXTURES=1): an
/// upgrade and a flash recorded on a virtual unit of every part line, and the device listing of every
/// real ROM capture. Skipped otherwise; `RecordingReplayTests` replays what is stored.
@Suite(
    "Recording fixtures, made again", .serialized, .timeLimit(.minutes(10)),
    .enabled(if: ProcessInfo.processInfo.environment["DFUHOP_RECORD_FIXTURES"] == "1"))
struct RecordingFixtures {
    static let recordings = RecordingReplayTests.recordings

    /// The part lines with a `dfu-util -l` capture.
    static var captureIDs: [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: RecordingReplayTests.captures.path)) ?? []
        return names.filter { $0.hasSuffix(".txt") }.map { String($0.dropLast(4)) }.sorted()
    }

    /// The discovery-only recording a capture becomes.
    static func listing(_ capture: String) -> String {
        DfuUtilListing.recording(from: capture, origin: DfuUtilListing.origin(of: capture) ?? "unknown")
    }

    /// A 1 KiB stamped demo image, version 2.0.0, of `family`'s demo product, as `demo-<id>-v2.hex` in
    /// `directory`: small, so that each recording stays small, and newer than what `:programmed` runs.
    static func image(family: McuFamily, in directory: URL) throws -> String {
        let image = try DemoImage.make(family: family, version: FirmwareVersion(major: 2, minor: 0, patch: 0), size: 1024)
        let path = directory.appendingPathComponent("demo-\(family.id)-v2.hex").path
        try ImageFile.write(FirmwareImage(format: .intelHex, segments: image.segments), to: path, as: .intelHex)
        return path
    }

    /// Runs `dfuhop` with `arguments` and `--record NAME` in a scratch directory holding the family's
    /// 1 KiB image and a copy of protocols/devices (by relative paths, so no path of this machine is
    /// recorded), and stores the recording as protocols/recordings/virtual/NAME.
    static func record(_ name: String, family: McuFamily, _ arguments: (_ image: String) -> [String]) async throws {
        let directory = try TemporaryDirectory()
        let image = URL(fileURLWithPath: try Self.image(family: family, in: directory.url)).lastPathComponent
        try FileManager.default.copyItem(
            at: RecordingReplayTests.repository.appendingPathComponent("protocols/devices"),
            to: directory.url.appendingPathComponent("profiles"))
        let run = try await Dfuhop.run(arguments(image) + ["--record", name], directory: directory.url)
        #expect(run.status == 0, "\(name): \(run)")
        let output = Self.recordings.appendingPathComponent("virtual")
        try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
        let stored = output.appendingPathComponent(name)
        try? FileManager.default.removeItem(at: stored)
        try FileManager.default.copyItem(at: directory.url.appendingPathComponent(name), to: stored)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: stored.path)
    }

    static let upgrade = ["--state-dir", "journal", "--profile", "profiles"]

    @Test func recordAnUpgradeAndAFlashOnEveryPartLine() async throws {
        for family in McuFamily.all {
            try await Self.record("\(family.id)-upgrade.jsonl", family: family) {
                ["upgrade", $0, "--simulate", "\(family.id):programmed"] + Self.upgrade
            }
            try await Self.record("\(family.id)-flash.jsonl", family: family) { ["flash", $0, "--simulate", "\(family.id):dfu"] }
        }
    }

    /// The paths with re-enumerations a replay must order right: an option-byte write that resets the unit
    /// (seed 003), two units at once, and a blank unit reached through the (virtual) BOOT0 jig.
    @Test func recordTheReEnumerationScenarios() async throws {
        try await Self.record("g474-single-option-bytes.jsonl", family: .g474) {
            ["upgrade", $0, "--simulate", "g474-single:programmed", "--write-option-bytes"] + Self.upgrade
        }
        try await Self.record("g474-all-two-units.jsonl", family: .g474) {
            ["upgrade", $0, "--all", "--simulate", "g474:programmed", "--simulate-units", "2"] + Self.upgrade
        }
        try await Self.record("f407-blank-boot0.jsonl", family: .f407) {
            ["upgrade", $0, "--simulate", "f407:blank", "--unit", "1-1"] + Self.upgrade
        }
    }

    @Test func makeTheListingsOfTheRealROMCaptures() throws {
        let output = Self.recordings.appendingPathComponent("rom-listings")
        try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
        for id in Self.captureIDs {
            let capture = try String(contentsOf: RecordingReplayTests.captures.appendingPathComponent("\(id).txt"), encoding: .utf8)
            try Self.listing(capture).write(to: output.appendingPathComponent("\(id).jsonl"), atomically: true, encoding: .utf8)
        }
    }
}
