import ArgumentParser
import Foundation
import StationHistory
import UpgradeEngine

/// `dfuhop history`: the upgrade attempts this station recorded, newest first.
struct HistoryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history",
        abstract: "List the upgrades this station recorded, newest first.",
        discussion: """
            Every upgrade attempt (not --dry-run), successful or not, is recorded in history.sqlite in \
            the state directory: time, unit, versions, image, station, operator, lot, sectors written \
            and skipped, verification, exit code (docs/json.md, "Upgrade history and factory reports").

            --since takes a date (2026-12-01, midnight UTC), a date and time (2026-12-01T08:00:00Z; UTC \
            when no zone is given), or an age: 30m, 12h, 7d.

            Examples:
              dfuhop history
              dfuhop history --unit 0029003a3532510c35383234
              dfuhop history --since 7d --csv > last-week.csv
            """)

    @Option(help: ArgumentHelp("Only this unit's attempts: its UID, in any case.", valueName: "uid")) var unit: String?
    @Option(help: ArgumentHelp("Only attempts that started at or after T (a date, a date and time, or 7d, 12h, 30m).", valueName: "T"))
    var since: String?
    @Flag(help: "One JSON object per record, then a result object.") var json = false
    @Flag(help: "CSV, as `upgrade --report FILE.csv` writes it.") var csv = false
    @Option(
        help: ArgumentHelp(
            "The state directory holding history.sqlite (default: $XDG_STATE_HOME/dfuhop or ~/.local/state/dfuhop).",
            valueName: "dir"), completion: .directory) var stateDir: String?

    func validate() throws {
        if json, csv { throw ValidationError("--json and --csv are two outputs; give one") }
        if let since, Self.date(since, now: Date()) == nil {
            throw ValidationError(
                "--since \(since): give a date (2026-12-01), a date and time (2026-12-01T08:00:00Z) or an age (7d, 12h, 30m)")
        }
    }

    func run() async throws {
        let store = HistoryStore(directory: stateDir.map { URL(fileURLWithPath: $0) } ?? JournalStore.defaultDirectory())
        let filter = HistoryFilter(uid: unit, since: since.flatMap { Self.date($0, now: Date()) })
        let (json, csv) = (json, csv)
        try await runCommand("history", json: json) {
            let records: [HistoryRecord]
            do throws(HistoryError) { records = try store.records(matching: filter) } catch { throw Failure.history(error) }
            if json {
                for record in records { Output.emit(HistoryLine(record: record)) }
            } else if csv {
                // Exact bytes into a file or a pipe; on a terminal each record's line escaped (`TerminalText`).
                let lines = [FactoryReport.csvHeader] + records.map(FactoryReport.csvLine)
                let shown = Output.standardOutputIsTerminal ? lines.map { TerminalText.escaped(String($0.dropLast(2))) + "\r\n" } : lines
                FileHandle.standardOutput.write(Data(shown.joined().utf8))
            } else if records.isEmpty {
                let filtered = filter.uid != nil || filter.since != nil
                Output.message(filtered ? "no upgrade in \(store.path) matches" : "no upgrade recorded in \(store.path)")
            } else {
                Output.print(lines: records.map(Self.text))
            }
            var result = ResultLine("listed")
            (result.file, result.records) = (store.path, records.count)
            return result
        }
    }

    /// One record for people: when, which unit, what happened, with what, where.
    static func text(_ record: HistoryRecord) -> String {
        var done = "\(record.outcome) (exit \(record.exitCode))"
        if let written = record.sectorsWritten {
            done += ", \(written) written, \(record.sectorsSkipped.map(String.init) ?? "?") unchanged"
        }
        if let verified = record.verified { done += verified ? ", verified" : ", not verified" }
        let versions = "\(record.oldVersion ?? "?") -> \(record.newVersion ?? "?")"
        let who = [record.station, record.operator, record.lot.map { "lot \($0)" }].compactMap { $0 }.joined(separator: ", ")
        let unit = record.uid ?? record.port.map { "port \($0)" } ?? "unknown unit"
        return "\(record.time)  \(unit)  \(record.family ?? "?")  \(versions)  \(done)  \(record.image)  [\(who)]"
            + (record.simulated == true ? "  (simulated)" : "") + (record.error.map { "  \($0)" } ?? "")
    }

    /// `--since`: an age (`7d`, `12h`, `30m`) before `now`, a date (midnight UTC), or an ISO 8601 date and
    /// time (UTC when it names no zone). Nil for anything else.
    static func date(_ text: String, now: Date) -> Date? {
        let units: [Character: Double] = ["d": 86_400, "h": 3_600, "m": 60]
        if let unit = text.last.flatMap({ units[$0] }), let count = Int(text.dropLast()), count >= 0, count <= 36_500 {
            return now.addingTimeInterval(-Double(count) * unit)
        }
        let utc = TimeZone(identifier: "UTC")!
        if text.count == 10 {
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = [.withFullDate]
            formatter.timeZone = utc
            return formatter.date(from: text)
        }
        let zoned = text.hasSuffix("Z") || text.dropFirst(19).contains { $0 == "+" || $0 == "-" } ? text : text + "Z"
        for options: ISO8601DateFormatter.Options in [[.withInternetDateTime, .withFractionalSeconds], [.withInternetDateTime]] {
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = options
            formatter.timeZone = utc
            if let date = formatter.date(from: zoned) { return date }
        }
        return nil
    }
}

/// One `"type":"history"` line of `dfuhop history --json`: a record's fields beside the type.
struct HistoryLine: Codable, Equatable, Sendable {
    var type = "history"
    var record: HistoryRecord

    init(record: HistoryRecord) { self.record = record }

    enum CodingKeys: String, CodingKey { case type }

    init(from decoder: any Decoder) throws {
        type = try decoder.container(keyedBy: CodingKeys.self).decode(String.self, forKey: .type)
        record = try HistoryRecord(from: decoder)
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(type, forKey: .type)
        try record.encode(to: encoder)
    }
}
