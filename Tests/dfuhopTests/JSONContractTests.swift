import Foundation
import TestSupport
import Testing

@testable import dfuhop

/// The `--json` contract of docs/json.md: the documented examples are the types, and every command keeps it.
@Suite("CLI: the JSON contract", .timeLimit(.minutes(10)))
struct JSONContractTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static func example(_ name: String) -> String { repository.appendingPathComponent("protocols/examples/\(name)").path }

    /// Every line of every ```json block in docs/json.md.
    static func documentedLines() throws -> [String] {
        let text = try String(contentsOf: repository.appendingPathComponent("docs/json.md"), encoding: .utf8)
        var lines: [String] = []
        var inBlock = false
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("```") {
                inBlock = !inBlock && line.hasPrefix("```json")
                continue
            }
            if inBlock, !line.trimmingCharacters(in: .whitespaces).isEmpty { lines.append(String(line)) }
        }
        return lines
    }

    static func object(_ line: String) throws -> NSDictionary {
        try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? NSDictionary, "not a JSON object: \(line)")
    }

    /// Decodes `line` as `T` and encodes it again: the same object back means no key is unknown or misspelled.
    static func roundTrip<T: Codable>(_ line: String, as type: T.Type) throws {
        let decoded = try JSONDecoder().decode(T.self, from: Data(line.utf8))
        let again = try object(Output.jsonLine(decoded))
        #expect(again == (try object(line)), "\(T.self) does not carry every field of the documented example:\n\(line)\n\(again)")
    }

    @Test func everyDocumentedExampleDecodesIntoTheContractTypes() throws {
        let lines = try Self.documentedLines()
        #expect(lines.count > 20, "docs/json.md has its examples in ```json blocks")
        var kinds: Set<String> = []
        var types: Set<String> = []
        for line in lines {
            let object = try Self.object(line)
            let type = object["type"] as? String
            switch type {
            case "event":
                try Self.roundTrip(line, as: EventLine.self)
                kinds.insert(object["event"] as? String ?? "")
            case "result", "unit": try Self.roundTrip(line, as: ResultLine.self)
            case "history": try Self.roundTrip(line, as: HistoryLine.self)
            case nil: try Self.roundTrip(line, as: FactoryReport.Record.self)
            default: Issue.record("unknown type \(type ?? ""): \(line)")
            }
            types.insert(type ?? "record")
        }
        #expect(
            Set(EventKind.allCases.map(\.rawValue)).subtracting(kinds).isEmpty,
            "docs/json.md shows no example of \(Set(EventKind.allCases.map(\.rawValue)).subtracting(kinds).sorted())")
        #expect(types == ["event", "unit", "result", "history", "record"])
    }

    /// Checks one run against the contract: objects with a type; events, then units, then one result, last,
    /// whose exitCode is the process's status.
    static func check(_ arguments: [String], expect status: Int32? = nil) async throws {
        let run = try await Dfuhop.run(arguments)
        let lines = run.stdout.split(separator: "\n").map(String.init)
        let context = "dfuhop \(arguments.joined(separator: " "))\n\(run)"
        if let status { #expect(run.status == status, "\(context)") }
        let types = try run.lines().map(\.type)
        #expect(types.last == "result", "the last line is the result: \(context)")
        #expect(types.filter { $0 == "result" }.count == 1, "exactly one result: \(context)")
        #expect(types.allSatisfy { ["event", "unit", "result"].contains($0) }, "\(context)")
        #expect(types.drop { $0 == "event" }.drop { $0 == "unit" }.count == 1, "events, then units, then the result: \(context)")
        let result = try run.result()
        #expect(result.exitCode == Int(run.status), "exitCode is the exit status: \(context)")
        #expect(result.schema == JSONContract.schema)
        for (line, type) in zip(lines, types) {
            if type == "event" { _ = try JSONDecoder().decode(EventLine.self, from: Data(line.utf8)) }
            if type == "result" || type == "unit" { _ = try JSONDecoder().decode(ResultLine.self, from: Data(line.utf8)) }
        }
    }

    @Test func everyCommandKeepsTheContract() async throws {
        let directory = try TemporaryDirectory()
        let state = directory.path("unit.json")
        let stateDir = directory.path("state")
        let v1 = Self.example("demo-g474-v1.hex")
        let v2 = Self.example("demo-g474-v2.hex")
        let unit = ["--simulate-state", state]
        let two = ["--all", "--simulate", "g474:programmed", "--simulate-units", "2"]
        try await Self.check(["info", "--json", "--simulate", "g474:programmed"] + unit, expect: 0)
        try await Self.check(["list", "--json"] + unit, expect: 0)
        try await Self.check(["list", "--json", "--simulate", "f407:blank"], expect: 0) // nothing on the bus
        try await Self.check(["upgrade", v2, "--json", "--dry-run", "--state-dir", stateDir] + unit, expect: 0)
        try await Self.check(["upgrade", v2, "--json", "--state-dir", stateDir] + unit, expect: 0)
        try await Self.check(["upgrade", v2, "--json", "--state-dir", stateDir] + unit, expect: 0) // up to date
        try await Self.check(
            ["upgrade", v2, "--json", "--state-dir", stateDir] + two,
            expect: 0)
        // Another build of the version the units run: each unit refused, the run exits with the first failure's status.
        try await Self.check(
            ["upgrade", v1, "--json", "--state-dir", stateDir] + two,
            expect: 80)
        try await Self.check(["upgrade", v1, "--json", "--state-dir", stateDir, "--allow-downgrade"] + unit, expect: 0)
        try await Self.check(["enter-dfu", "--json"] + unit, expect: 0)
        try await Self.check(["flash", v2, "--json", "--dry-run"] + unit, expect: 0)
        try await Self.check(["flash", v2, "--json", "--record", directory.path("flash.jsonl")] + unit, expect: 0)
        try await Self.check(["replay", "--json", directory.path("flash.jsonl")], expect: 0)
        try await Self.check(["replay", "--json", directory.path("missing.jsonl")], expect: 66)
        try await Self.check(
            ["read", "--json", "--address", "0x08000000", "--length", "256", "-o", directory.path("out.bin")] + unit, expect: 0)
        try await Self.check(
            ["read", "--json", "--address", "0x0A000000", "--length", "256", "-o", directory.path("out.bin")] + unit, expect: 64)
        try await Self.check(["erase", "--json", "--sector", "0x08070000"] + unit, expect: 0)
        try await Self.check(["leave", "--json"] + unit, expect: 0)
        try await Self.check(["leave", "--json"] + unit, expect: 69) // the unit runs its application now: no DFU unit
        // A G474 image for an F407: the wrong family.
        try await Self.check(["upgrade", v2, "--json", "--state-dir", stateDir, "--simulate", "f407:programmed"], expect: 80)
        try await Self.check(["image", "info", "--json", v2], expect: 0)
        try await Self.check(["image", "info", "--json", directory.path("missing.hex")], expect: 66)
        try await Self.check(["image", "convert", "--json", v2, directory.path("v2.bin")], expect: 0)
        try await Self.check(
            [
                "image", "stamp", "--json", Self.example("demo-g474-v2.unstamped.hex"), directory.path("stamped.hex"),
                "--product-id", "0x1234", "--version", "1.2.3", "--name", "demo"
            ], expect: 0)
        try await Self.check(["journal", "list", "--json", "--state-dir", stateDir], expect: 0)
        try await Self.check(["exit-codes", "--json"], expect: 0)
        try await Self.check(["families", "--json"], expect: 0)
        try await Self.check(["key", "generate", "--json", "--out", directory.path("release.key")], expect: 0)
        try await Self.check(["package", "info", "--json", directory.path("missing.dfuhop")], expect: 66)
    }

    /// `--report`: one record per unit, appended, in the format the name asks for; `--all` sums up on stderr.
    @Test func reportAppendsOneRecordPerUnit() async throws {
        let directory = try TemporaryDirectory()
        let csv = directory.path("line-3.csv")
        let jsonl = directory.path("line-3.jsonl")
        let v2 = Self.example("demo-g474-v2.hex")
        let all = ["--all", "--simulate", "g474:programmed", "--simulate-units", "2", "--state-dir", directory.path("state")]
        let first = try await Dfuhop.run(["upgrade", v2, "--report", csv] + all)
        #expect(first.status == 0, "\(first)")
        #expect(first.stderr.contains("2 upgraded, 0 failed"), "\(first)")
        let refused = try await Dfuhop.run(["upgrade", Self.example("demo-f407-v2.hex"), "--report", csv] + all)
        #expect(refused.status == 80, "\(refused)")
        #expect(refused.stderr.contains("0 upgraded, 2 failed: 1-1, 1-2"), "\(refused)")
        let rows = try String(contentsOfFile: csv, encoding: .utf8).split(separator: "\r\n")
            .map { $0.split(separator: ",", omittingEmptySubsequences: false) }
        #expect(rows.count == 5, "a header and four records: \(rows)")
        #expect(rows.first?.map(String.init) == FactoryReport.Record.fields)
        let outcome = FactoryReport.Record.fields.firstIndex(of: "outcome")!
        let digest = FactoryReport.Record.fields.firstIndex(of: "imageSHA256")!
        #expect(rows.dropFirst().map { String($0[outcome]) } == ["upgraded", "upgraded", "failed", "failed"])
        #expect(rows.dropFirst().allSatisfy { $0[digest].count == 64 })

        let single = try await Dfuhop.run([
            "upgrade", v2, "--report", jsonl, "--simulate", "g474:programmed", "--state-dir", directory.path("s2")
        ]
        )
        #expect(single.status == 0, "\(single)")
        let lines = try String(contentsOfFile: jsonl, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 1)
        let record = try JSONDecoder().decode(FactoryReport.Record.self, from: Data(lines[0].utf8))
        #expect(record.outcome == "upgraded" && record.oldVersion == "1.0.0" && record.newVersion == "2.0.0" && record.exitCode == 0)
        #expect(record.uid != nil && record.romSerial != nil && record.family == "g474" && record.port == "1-1")
        #expect(try await Dfuhop.run(["upgrade", v2, "--report", directory.path("r.txt"), "--simulate", "g474:programmed"]).status == 64)
    }
}
