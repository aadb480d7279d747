import Foundation
import TestSupport
import Testing
import UpgradeEngine

/// `dfuhop upgrade` as a technician and a factory line use it, on simulated units.
@Suite("dfuhop upgrade", .timeLimit(.minutes(10)))
struct UpgradeCommandTests {
    static func example(_ name: String) -> String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../protocols/examples/\(name)").standardized
            .path
    }

    @Test func allUpgradesEveryUnitConcurrentlyWithAResultEach() async throws {
        let directory = try TemporaryDirectory()
        let result = try await Dfuhop.run(
            "upgrade", Self.example("demo-g474-v2.hex"), "--simulate", "g474:programmed", "--simulate-units", "3",
            "--all", "--json", "--state-dir", directory.path("state"))
        #expect(result.status == 0, "\(result)")
        let finals = try result.lines().filter { $0.type == "unit" }
        #expect(finals.count == 3)
        #expect(finals.allSatisfy { $0.outcome == "upgraded" && $0.newVersion == "2.0.0" })
    }

    @Test("--all with one unit failing: the others are upgraded, each has its line, the exit code is the failure's")
    func allWithOneUnitFailing() async throws {
        let directory = try TemporaryDirectory()
        let store = JournalStore(directory: URL(fileURLWithPath: directory.path("state")))
        // Unit 2 of the virtual bus (its UID as VirtualUnit.uid(index: 2) makes it) is held by "another process".
        let held = try #require(try store.lock("22003000124C4F5434373133"))
        defer { held.release() }
        let result = try await Dfuhop.run(
            "upgrade", Self.example("demo-g474-v2.hex"), "--simulate", "g474:programmed", "--simulate-units", "3",
            "--all", "--json", "--state-dir", directory.path("state"))
        #expect(result.status == 75, "\(result)")
        let units = try result.lines().filter { $0.type == "unit" }
        let outcomes = Dictionary(units.map { ($0.unit?.port ?? "?", $0.outcome ?? "?") }) { $1 }
        #expect(outcomes["1-1"] == "upgraded" && outcomes["1-3"] == "upgraded", "\(outcomes)")
        #expect(outcomes["1-2"] != "upgraded", "\(outcomes)")
        #expect(result.stderr.contains("2 upgraded, 1 failed: 1-2"), "\(result.stderr)")
        #expect(try result.result().exitCode == 75)
    }

    @Test func aBlankUnitIsReachedThroughTheBoot0PathAndClassified() async throws {
        let directory = try TemporaryDirectory()
        let result = try await Dfuhop.run(
            "upgrade", Self.example("demo-f407-v2.hex"), "--simulate", "f407:blank", "--state-dir", directory.path("state"))
        #expect(result.status == 0, "\(result)")
        #expect(result.stderr.contains("BOOT0 path"))
        #expect(result.stdout.contains("(blank) from no firmware to 2.0.0"))
    }

    @Test func aUnitAnotherProcessHoldsIsRefusedWithExit75() async throws {
        let directory = try TemporaryDirectory()
        let store = JournalStore(directory: URL(fileURLWithPath: directory.path("state")))
        // Units are locked by their 96-bit UID, as the dry run reports it.
        let list = try await Dfuhop.run(
            "upgrade", Self.example("demo-g474-v2.hex"), "--simulate", "g474:programmed", "--dry-run", "--json",
            "--state-dir", directory.path("state"))
        let uids = try list.lines().compactMap { $0.unit?.uid }
        let uid = try #require(uids.first)
        let lock = try store.lock(uid)
        let held = try #require(lock)
        defer { held.release() }
        let result = try await Dfuhop.run(
            "upgrade", Self.example("demo-g474-v2.hex"), "--simulate", "g474:programmed", "--state-dir", directory.path("state"))
        #expect(result.status == 75, "\(result)")
        #expect(result.stderr.contains("another dfuhop process"))
    }

    @Test func anUnwritableJournalStopsBeforeTheUnitIsTouched() async throws {
        let directory = try TemporaryDirectory()
        let blocker = directory.path("not-a-directory")
        try Data().write(to: URL(fileURLWithPath: blocker))
        let state = directory.path("unit.json")
        let result = try await Dfuhop.run(
            "upgrade", Self.example("demo-g474-v2.hex"), "--simulate", "g474:programmed", "--simulate-state", state,
            "--state-dir", blocker)
        #expect(result.status == 73, "\(result)")
        let info = try await Dfuhop.run("info", "--simulate-state", state, "--json")
        #expect(try info.result().unit?.version == "1.0.0")
    }
}
