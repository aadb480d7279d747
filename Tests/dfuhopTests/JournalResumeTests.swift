import Foundation
import TestSupport
import Testing

/// The journal at the command line: an interrupted upgrade leaves an entry keyed by the unit's UID; the
/// entry is finished by the same command, never handed to another unit on the same port, listed and
/// forgotten by `dfuhop journal`, and an unreadable entry names the way out — which works.
@Suite("Journal resume, at the command line", .timeLimit(.minutes(10)))
struct JournalResumeTests {
    static let unitA = "21003000114C4F5434373133"
    static let unitB = "21003000114C4F5434373199"

    struct Bench {
        let directory: TemporaryDirectory
        var journal: String { directory.path("journal") }

        init() throws { directory = try TemporaryDirectory() }

        /// A simulated unit in a state file, with another UID if given, and faults armed for the next command.
        func unit(_ name: String, _ spec: String, uid: String? = nil, faults: [String: Any]? = nil) async throws -> String {
            let state = directory.path(name)
            _ = try await Dfuhop.run("info", "--simulate", spec, "--simulate-state", state)
            var object = try #require(
                try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: state))) as? [String: Any])
            if let uid { object["uid"] = uid }
            if let faults { object["faults"] = ["stallCount": 1, "neverReturnAfterReset": false].merging(faults) { $1 } }
            try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: state))
            return state
        }

        func upgrade(_ state: String, _ image: String = "demo-g474-v2.hex") async throws -> Dfuhop.Result {
            try await Dfuhop.run(
                "upgrade", ExitCodeTests.example(image), "--simulate-state", state, "--state-dir", journal, "--json", "--timeout", "2")
        }

        func entries() async throws -> [String] {
            let listed = try await Dfuhop.run("journal", "--state-dir", journal, "--json")
            #expect(listed.status == 0, "\(listed)")
            return try #require(try listed.result().entries).map(\.unit)
        }

        /// Unit A (the G474 demo UID) on port 1-1, its upgrade stopped by a pulled cable mid-flash.
        func interruptedUnitA() async throws -> String {
            let state = try await unit("a.json", "g474:programmed", faults: ["disconnectAtTransfer": 20])
            let failed = try await upgrade(state)
            #expect(![0, 80].contains(failed.status), "the pulled cable must fail the run: \(failed)")
            #expect(try await entries() == [JournalResumeTests.unitA])
            return state
        }
    }

    @Test("another unit on the journal's port is a new unit: the entry is kept, named, and finishes its own unit later")
    func anotherUnitOnTheSamePort() async throws {
        let bench = try Bench()
        let stateA = try await bench.interruptedUnitA()
        // A blank unit B, showing nothing, on the same port: only its ROM can say who it is.
        let stateB = try await bench.unit("b.json", "g474:blank", uid: Self.unitB)
        let upgradedB = try await bench.upgrade(stateB, "demo-g474-v1.hex")
        #expect(upgradedB.status == 0, "\(upgradedB)")
        #expect(try upgradedB.result().newVersion == "1.0.0", "B gets the image asked for, not the entry's")
        #expect(upgradedB.stdout.contains(Self.unitA) || upgradedB.stderr.contains(Self.unitA), "the kept entry is named")
        #expect(try await bench.entries() == [Self.unitA])
        let finishedA = try await bench.upgrade(stateA)
        #expect(finishedA.status == 0, "\(finishedA)")
        #expect(try await bench.entries().isEmpty)
    }

    @Test("several entries are listed; forgetting one leaves the other, and the forgotten unit is upgraded afresh")
    func severalEntries() async throws {
        let bench = try Bench()
        let stateA = try await bench.interruptedUnitA()
        let stateB = try await bench.unit("b.json", "g474:programmed", uid: Self.unitB, faults: ["disconnectAtTransfer": 20])
        _ = try await bench.upgrade(stateB)
        #expect(try await bench.entries().sorted() == [Self.unitA, Self.unitB])
        let forgot = try await Dfuhop.run("journal", "forget", Self.unitB, "--state-dir", bench.journal)
        #expect(forgot.status == 0, "\(forgot)")
        #expect(try await bench.entries() == [Self.unitA])
        for state in [stateA, stateB] {
            let finished = try await bench.upgrade(state)
            #expect(finished.status == 0, "\(finished)")
        }
        #expect(try await bench.entries().isEmpty)
        let again = try await Dfuhop.run("journal", "forget", Self.unitB, "--state-dir", bench.journal)
        #expect(again.status == 69, "forgetting what is not there says so: \(again)")
    }

    @Test("an unreadable entry stops its unit's upgrade with a hint; following the hint, the upgrade finishes")
    func unreadableEntryHintLeadsToSuccess() async throws {
        let bench = try Bench()
        let state = try await bench.interruptedUnitA()
        let entry = bench.journal + "/unit-\(Self.unitA).json"
        try Data("{ not json".utf8).write(to: URL(fileURLWithPath: entry))

        let refused = try await bench.upgrade(state)
        #expect(refused.status == 78, "\(refused)")
        #expect(refused.stderr.contains(entry), "the error names the file: \(refused.stderr)")
        let forget = "dfuhop journal forget \(Self.unitA)"
        #expect(refused.stderr.contains(forget), "the hint names the way out: \(refused.stderr)")
        let listed = try await Dfuhop.run("journal", "--state-dir", bench.journal)
        #expect(listed.status == 78 && listed.stderr.contains(forget), "\(listed)")

        let forgot = try await Dfuhop.run("journal", "forget", Self.unitA, "--state-dir", bench.journal)
        #expect(forgot.status == 0, "\(forgot)")
        let finished = try await bench.upgrade(state)
        #expect(finished.status == 0, "\(finished)")
    }
}
