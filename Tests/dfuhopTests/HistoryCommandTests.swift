import Foundation
import TestSupport
import Testing

@testable import StationHistory
@testable import dfuhop

/// Issue 24 item 7: every upgrade attempt recorded in the station's history, `dfuhop history` listing and
/// filtering it, `--station`/`--operator`/`--lot` in the records, and cells spreadsheets keep as text.
@Suite("CLI: upgrade history", .timeLimit(.minutes(10)))
struct HistoryCommandTests {
    static let v2 = UpgradeCommandTests.example("demo-g474-v2.hex")

    /// The `"type":"history"` lines of a `history --json` run, decoded.
    static func records(_ state: String, _ options: [String] = []) async throws -> [HistoryRecord] {
        let run = try await Dfuhop.run(["history", "--json", "--state-dir", state] + options)
        #expect(run.status == 0, "\(run)")
        let lines = run.stdout.split(separator: "\n").dropLast()
        let records = try lines.map { try JSONDecoder().decode(HistoryLine.self, from: Data($0.utf8)) }
        #expect(records.allSatisfy { $0.type == "history" })
        #expect(try run.result().records == records.count)
        return records.map(\.record)
    }

    /// Eight dfuhop processes started at once, each upgrading its own virtual unit, one state directory:
    /// eight records, none lost.
    @Test func eightConcurrentProcessesLoseNoRecord() async throws {
        let directory = try TemporaryDirectory()
        let state = directory.path("state")
        let runs = try await withThrowingTaskGroup(of: Dfuhop.Result.self) { group in
            for index in 1...8 {
                group.addTask {
                    try await Dfuhop.run([
                        "upgrade", Self.v2, "--simulate", "g474:programmed", "--simulate-units", "8", "--unit", "1-\(index)",
                        "--state-dir", state, "--lot", "L-\(index)", "--station", "line-3", "--json"
                    ])
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(runs.allSatisfy { $0.status == 0 }, "\(runs.filter { $0.status != 0 })")
        #expect(runs.allSatisfy { !$0.stdout.contains("historyError") }, "\(runs)")
        let records = try await Self.records(state)
        #expect(records.count == 8)
        #expect(Set(records.compactMap(\.lot)) == Set((1...8).map { "L-\($0)" }))
        #expect(Set(records.compactMap(\.uid)).count == 8, "each process upgraded its own unit")
        #expect(zip(records, records.dropFirst()).allSatisfy { $0.time >= $1.time }, "newest first")
        for record in records {
            #expect(record.outcome == "upgraded" && record.exitCode == 0 && record.station == "line-3" && record.simulated == true)
            #expect(record.oldVersion == "1.0.0" && record.newVersion == "2.0.0" && record.family == "g474")
            #expect(record.verified == true && (record.sectorsWritten ?? 0) > 0 && record.sectorsSkipped != nil)
            #expect(record.dfuhopVersion == Version.release && record.productID != nil)
        }
    }

    /// The record's image digest is the content's, as `image info` prints it, and the file's is kept apart.
    @Test func theImageDigestIsTheContentsAsImageInfoPrintsIt() async throws {
        let directory = try TemporaryDirectory()
        let state = directory.path("state")
        let run = try await Dfuhop.run(["upgrade", Self.v2, "--simulate", "g474:programmed", "--state-dir", state])
        #expect(run.status == 0, "\(run)")
        let info = try await Dfuhop.run(["image", "info", Self.v2, "--json"])
        let image = try #require(try info.result().image)
        let record = try #require(try await Self.records(state).first)
        #expect(record.imageSHA256 == image.sha256 && record.imageCRC32 == image.crc32)
        #expect(record.fileSHA256.count == 64 && record.fileSHA256 != record.imageSHA256)
    }

    @Test func aFailedUpgradeIsRecordedWithItsExitCodeAndADryRunIsNot() async throws {
        let directory = try TemporaryDirectory()
        let state = directory.path("state")
        let dry = try await Dfuhop.run(["upgrade", Self.v2, "--simulate", "g474:programmed", "--state-dir", state, "--dry-run"])
        #expect(dry.status == 0, "\(dry)")
        let refused = try await Dfuhop.run([
            "upgrade", UpgradeCommandTests.example("demo-f407-v2.hex"), "--simulate", "g474:programmed", "--state-dir", state
        ])
        #expect(refused.status == 80, "\(refused)")
        let records = try await Self.records(state)
        #expect(records.count == 1, "the dry run is not an attempt: \(records)")
        let record = try #require(records.first)
        #expect(record.outcome == "failed" && record.exitCode == 80 && record.error?.isEmpty == false)
        #expect(record.newVersion == nil && record.imageSHA256?.count == 64 && record.image.hasSuffix("demo-f407-v2.hex"))
        let text = try await Dfuhop.run(["history", "--state-dir", state])
        #expect(text.status == 0 && text.stdout.contains("failed (exit 80)"), "\(text)")
        // Power lost mid-flash: a unit that was touched, and failed with a USB error.
        let lost = try await Dfuhop.run([
            "upgrade", Self.v2, "--simulate", "g474:programmed", "--simulate-fault", "power-loss@flash-op:2", "--state-dir", state
        ])
        #expect(lost.status == 74, "\(lost)")
        let both = try await Self.records(state)
        #expect(both.map(\.exitCode) == [74, 80] && both.allSatisfy { $0.outcome == "failed" }, "newest first: \(both)")
        #expect(both[0].error?.contains("left the bus") == true && both[0].newVersion == nil && both[0].oldVersion == "1.0.0")
        #expect(both[0].sectorsWritten == 1 && both[0].sectorsSkipped != nil, "one sector erased before the power went")
        #expect(both[1].sectorsWritten == nil, "refused before its plan: \(both[1])")
    }

    @Test func sinceAndUnitFilter() async throws {
        let directory = try TemporaryDirectory()
        let state = directory.path("state")
        #expect(try await Self.records(state).isEmpty, "no database yet: no records")
        let empty = try await Dfuhop.run(["history", "--state-dir", state])
        #expect(empty.status == 0 && empty.stdout.isEmpty && empty.stderr.contains("no upgrade recorded"), "\(empty)")
        #expect(!FileManager.default.fileExists(atPath: state), "listing creates nothing")
        let all = try await Dfuhop.run([
            "upgrade", Self.v2, "--simulate", "g474:programmed", "--simulate-units", "2", "--all", "--state-dir", state
        ])
        #expect(all.status == 0, "\(all)")
        let records = try await Self.records(state)
        #expect(records.count == 2)
        let uid = try #require(records.first { $0.port == "1-2" }?.uid)
        let mine = try await Self.records(state, ["--unit", uid.lowercased()])
        #expect(mine.count == 1 && mine.first?.uid == uid)
        #expect(try await Self.records(state, ["--unit", "0123456789ABCDEF01234567"]).isEmpty)
        #expect(try await Self.records(state, ["--since", "2000-01-01"]).count == 2)
        #expect(try await Self.records(state, ["--since", "7d"]).count == 2)
        #expect(try await Self.records(state, ["--since", "2999-01-01T00:00:00Z"]).isEmpty)
        #expect(try await Self.records(state, ["--since", "2999-01-01T00:00:00", "--unit", uid]).isEmpty)
        for bad in ["yesterday", "7y", "2026-13-01", ""] {
            let refused = try await Dfuhop.run(["history", "--state-dir", state, "--since", bad])
            #expect(refused.status == 64, "--since \(bad): \(refused)")
        }
    }

    @Test func sinceForms() throws {
        let now = try #require(ISO8601DateFormatter().date(from: "2026-12-06T12:00:00Z"))
        let iso = ISO8601DateFormatter()
        #expect(HistoryCommand.date("7d", now: now) == iso.date(from: "2026-11-29T12:00:00Z"))
        #expect(HistoryCommand.date("12h", now: now) == iso.date(from: "2026-12-06T00:00:00Z"))
        #expect(HistoryCommand.date("30m", now: now) == iso.date(from: "2026-12-06T11:30:00Z"))
        #expect(HistoryCommand.date("2026-12-01", now: now) == iso.date(from: "2026-12-01T00:00:00Z"))
        #expect(HistoryCommand.date("2026-12-01T08:00:00", now: now) == iso.date(from: "2026-12-01T08:00:00Z"))
        #expect(HistoryCommand.date("2026-12-01T08:00:00+02:00", now: now) == iso.date(from: "2026-12-01T06:00:00Z"))
        #expect(
            HistoryCommand.date("2026-12-01T08:00:00.250Z", now: now)?.timeIntervalSince(iso.date(from: "2026-12-01T08:00:00Z")!) == 0.25)
        for bad in ["", "d", "-1d", "7 d", "2026-12", "12/01/2026", "now"] { #expect(HistoryCommand.date(bad, now: now) == nil, "\(bad)") }
    }

    /// The flags win over the environment; the host name only when neither names a station. The same
    /// values reach `--report`, whose records are the history's.
    @Test func stationOperatorAndLotFromFlagsOrEnvironment() async throws {
        let directory = try TemporaryDirectory()
        let state = directory.path("state")
        let report = directory.path("report.jsonl")
        var environment = ProcessInfo.processInfo.environment
        (environment["DFUHOP_STATION"], environment["DFUHOP_OPERATOR"], environment["DFUHOP_LOT"]) = ("env-station", "env-op", "env-lot")
        let upgrade = ["upgrade", Self.v2, "--simulate", "g474:programmed", "--state-dir", state, "--report", report]
        let fromEnvironment = try await Dfuhop.run(upgrade, environment: environment)
        #expect(fromEnvironment.status == 0, "\(fromEnvironment)")
        let fromFlags = try await Dfuhop.run(upgrade + ["--station", "flag-station", "--lot", "flag-lot"], environment: environment)
        #expect(fromFlags.status == 0, "\(fromFlags)")
        for name in ["DFUHOP_STATION", "DFUHOP_OPERATOR", "DFUHOP_LOT"] { environment[name] = nil }
        let neither = try await Dfuhop.run(upgrade, environment: environment)
        #expect(neither.status == 0, "\(neither)")
        let records = try await Self.records(state).reversed().map { $0 }
        #expect(records.map(\.station) == ["env-station", "flag-station", ProcessInfo.processInfo.hostName])
        #expect(records.map(\.operator) == ["env-op", "env-op", nil])
        #expect(records.map(\.lot) == ["env-lot", "flag-lot", nil])
        let reported = try String(contentsOfFile: report, encoding: .utf8).split(separator: "\n")
            .map { try JSONDecoder().decode(HistoryRecord.self, from: Data($0.utf8)) }
        #expect(reported == records, "--report exports the same records")
        #expect(try await Dfuhop.run(upgrade + ["--station", " "]).status == 64)
    }

    /// `history --csv` (as `--report FILE.csv`): a port, an all-digit lot, a version and a formula stay text.
    @Test func csvCellsStayText() async throws {
        let directory = try TemporaryDirectory()
        let state = directory.path("state")
        let run = try await Dfuhop.run([
            "upgrade", Self.v2, "--simulate", "g474:programmed", "--state-dir", state, "--lot", "0042", "--operator", "=1+2"
        ])
        #expect(run.status == 0, "\(run)")
        let csv = try await Dfuhop.run(["history", "--csv", "--state-dir", state])
        #expect(csv.status == 0, "\(csv)")
        let lines = csv.stdout.components(separatedBy: "\r\n")
        #expect(lines.count == 3 && lines[2].isEmpty, "a header, a record, the final line break: \(lines)")
        #expect(lines[0] == HistoryRecord.fields.joined(separator: ","))
        let cells = lines[1].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        #expect(cells.count == HistoryRecord.fields.count, "\(cells)")
        func cell(_ name: String) -> String { cells[HistoryRecord.fields.firstIndex(of: name)!] }
        #expect(cell("port") == "\"'1-1\"" && cell("lot") == "\"'0042\"" && cell("operator") == "\"'=1+2\"")
        #expect(cell("oldVersion") == "\"'1.0.0\"" && cell("newVersion") == "\"'2.0.0\"")
        #expect(cell("exitCode") == "0" && cell("verified") == "true" && cell("outcome") == "upgraded")
    }

    /// A CSV report another dfuhop started, with other columns, is refused before any unit is touched.
    @Test func aReportWithOtherColumnsIsRefused() async throws {
        let directory = try TemporaryDirectory()
        let csv = try directory.write("old.csv", Array("time,station,uid,port\r\n".utf8))
        let run = try await Dfuhop.run([
            "upgrade", Self.v2, "--simulate", "g474:programmed", "--state-dir", directory.path("state"), "--report", csv, "--json"
        ])
        #expect(run.status == 73 && run.stderr.contains("header"), "\(run)")
        #expect(!run.stdout.contains("\"phaseStarted\""), "no unit was touched: \(run)")
        #expect(try directory.read("old.csv") == Array("time,station,uid,port\r\n".utf8))
    }

    /// A history this dfuhop does not know (a newer schema) stops an upgrade before the unit is touched,
    /// and `history` too, naming the file.
    @Test func aNewerHistoryIsRefusedNamingTheFile() async throws {
        let directory = try TemporaryDirectory()
        let state = directory.path("state")
        let store = HistoryStore(directory: URL(fileURLWithPath: state))
        try store.prepare()
        let connection = try SQLiteConnection(path: store.path, create: false, busyTimeout: .seconds(5))
        try connection.execute("PRAGMA user_version = 99")
        connection.close()
        let unit = directory.path("unit.json")
        let upgrade = try await Dfuhop.run([
            "upgrade", Self.v2, "--simulate", "g474:programmed", "--simulate-state", unit, "--state-dir", state, "--json"
        ])
        #expect(upgrade.status == 78, "\(upgrade)")
        #expect(upgrade.stderr.contains(store.path) && upgrade.stderr.contains("schema version 99"), "\(upgrade)")
        #expect(!upgrade.stdout.contains("\"phaseStarted\""), "no unit was touched: \(upgrade)")
        let history = try await Dfuhop.run(["history", "--state-dir", state])
        #expect(history.status == 78 && history.stderr.contains(store.path), "\(history)")
    }

    /// The history locked by another process beyond the timeout when the record is written: the upgrade
    /// still succeeds (the unit is upgraded), and says so on stderr, in a warning event and in the result.
    @Test func aRecordThatCannotBeWrittenIsNotSilentAndTheUpgradeStands() async throws {
        let directory = try TemporaryDirectory()
        let state = directory.path("state")
        let store = HistoryStore(directory: URL(fileURLWithPath: state))
        try store.prepare()
        let holder = try SQLiteConnection(path: store.path, create: false, busyTimeout: .seconds(5))
        try holder.execute("BEGIN IMMEDIATE")
        let run = try await Dfuhop.run(["upgrade", Self.v2, "--simulate", "g474:programmed", "--state-dir", state, "--json"])
        try holder.execute("ROLLBACK")
        holder.close()
        #expect(run.status == 0, "\(run)")
        let result = try run.result()
        #expect(result.outcome == "upgraded")
        #expect(result.historyError?.contains(store.path) == true, "\(run)")
        #expect(run.stdout.contains("\"event\":\"warning\""), "\(run)")
        #expect(run.stderr.contains("warning: the upgrade history did not record this run"), "\(run)")
        #expect(try await Self.records(state).isEmpty)
    }
}
