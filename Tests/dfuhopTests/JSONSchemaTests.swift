import Foundation
import TestSupport
import Testing

@testable import dfuhop

/// docs/dfuhop-output.schema.json against docs/json.md, against the CLI (every `--json` line any test prints
/// goes through `OutputSchema.check`), and against a reference implementation of JSON Schema.
@Suite("CLI: the published JSON Schema", .timeLimit(.minutes(10)))
struct JSONSchemaTests {
    static func validator() throws -> JSONSchemaValidator { try OutputSchema.validator.get() }

    /// A documented line's verdict: `--json` lines against the root, `--report` records against their definition.
    static func errors(_ line: String) throws -> [String] {
        let value = try JSONValue.parse(line)
        guard case .object(let members) = value else { return ["not an object"] }
        return members["type"] == nil ? try validator().errors(value, definition: "reportRecord") : try validator().errors(value)
    }

    @Test func theSchemaIsDraft2020And12() throws {
        let root = try Self.validator().root
        #expect(root["$schema"] == JSONValue.string("https://json-schema.org/draft/2020-12/schema"))
        #expect(root["$id"] == JSONValue.string("urn:dfuhop:output:\(JSONContract.schema)"))
    }

    /// The properties the variants of `#/$defs/name` allow, and the `const` values their `field` takes.
    static func variants(_ name: String, field: String) throws -> (properties: Set<String>, values: Set<String>) {
        guard case .object(let definitions)? = try validator().root["$defs"], case .object(let definition)? = definitions[name],
            case .array(let branches)? = definition["anyOf"]
        else { throw OutputSchema.LoadError(description: "no anyOf in #/$defs/\(name)") }
        var properties: Set<String> = []
        var values: Set<String> = []
        for case .object(let branch) in branches {
            guard case .object(let members)? = branch["properties"] else { continue }
            properties.formUnion(members.keys)
            guard case .object(let rule)? = members[field] else { continue }
            if case .string(let value)? = rule["const"] { values.insert(value) }
            if case .array(let allowed)? = rule["enum"] { for case .string(let value) in allowed { values.insert(value) } }
        }
        return (properties, values)
    }

    /// A field or kind added to the Swift types of the contract, and not to the schema, fails here first.
    @Test func theSchemaCoversEveryFieldAndKindOfTheContractTypes() throws {
        let events = try Self.variants("event", field: "event")
        #expect(events.values == Set(EventKind.allCases.map(\.rawValue)))
        let eventFields = Set(Mirror(reflecting: EventLine(.note, text: "")).children.compactMap(\.label))
        #expect(eventFields.subtracting(events.properties).isEmpty, "\(eventFields.subtracting(events.properties).sorted())")
        let results = try Self.variants("result", field: "command")
        let resultFields = Set(Mirror(reflecting: ResultLine("x")).children.compactMap(\.label))
        #expect(resultFields.subtracting(results.properties).isEmpty, "\(resultFields.subtracting(results.properties).sorted())")
        let commands = Set(StationOutputTests.commandPaths.map { $0.joined(separator: " ") }).subtracting(["journal"])
            .union(["journal list", "journal forget", "exit-codes", "package info"])
        #expect(commands.subtracting(results.values).isEmpty, "\(commands.subtracting(results.values).sorted())")
    }

    @Test func everyDocumentedExampleValidates() throws {
        let lines = try JSONContractTests.documentedLines()
        #expect(lines.count > 20)
        for line in lines {
            let problems = try Self.errors(line)
            #expect(problems.isEmpty, "docs/json.md: \(line)\n\(problems.joined(separator: "\n"))")
        }
    }

    /// Every documented `--json` line, spoiled in a way the contract forbids: the validator refuses each.
    static func spoiled() throws -> [String] {
        var spoiled: [String] = []
        for line in try JSONContractTests.documentedLines() where line.contains("\"type\":") {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            var unknown = object
            unknown["someNewField"] = 1 // the schema lists every field: an undocumented one is drift
            var untyped = object
            untyped["type"] = nil
            var nulled = object
            nulled[object.keys.sorted().first { $0 != "type" }!] = NSNull() // never null: absent
            // A history line without its type is a `--report` record, by design (docs/json.md).
            for bad in object["type"] as? String == "history" ? [unknown, nulled] : [unknown, untyped, nulled] {
                spoiled.append(String(decoding: try JSONSerialization.data(withJSONObject: bad, options: .sortedKeys), as: UTF8.self))
            }
        }
        // Schema 1's drifts (issue 24), each refused now.
        spoiled += [
            #"{"command":"erase","erased":"1 sector(s)","exitCode":0,"outcome":"erased","schema":2,"type":"result"}"#,
            #"{"done":256,"event":"bytesRead","time":"2026-12-01T15:04:06.600Z","total":256,"type":"event","unit":"1-1"}"#,
            #"{"command":"image stamp","exitCode":0,"outcome":"stamped","schema":2,"stamped":{"crc32":"0x1C291CA3","imageSize":20480,"name":"demo","output":"app.hex","outputFormat":"hex","productID":"0x00001234","version":"1.2.3.0"},"type":"result"}"#,
            #"{"command":"info","exitCode":0,"outcome":"identified","schema":2,"type":"result","unit":{"imageCheck":"ok","port":"1-1"}}"#,
            #"{"command":"doctor","exitCode":77,"findings":[],"outcome":"ok","schema":2,"type":"result"}"#,
            #"{"command":"list","devices":[],"exitCode":0,"outcome":"listed","schema":1,"type":"result"}"#,
            #"{"event":"phaseFinished","phase":"flash","time":"2026-12-01T15:04:05.013Z","type":"event"}"#,
            #"{"command":"upgrade","exitCode":0,"outcome":"planned","phases":[],"schema":2,"type":"result","unit":{"productID":"0xDF00474"}}"#
        ]
        return spoiled
    }

    @Test func linesThatBreakTheContractAreRefused() throws {
        for line in try Self.spoiled() { #expect(!(try Self.errors(line)).isEmpty, "validates, but breaks the contract: \(line)") }
    }

    /// The hook in `Dfuhop.run` records an issue for a line that does not validate.
    @Test func aRunThatPrintsAnInvalidLineFailsItsTest() throws {
        withKnownIssue {
            try OutputSchema.check(
                #"{"command":"list","exitCode":0,"outcome":"listed","schema":2,"type":"result"}"#, of: ["list", "--json"])
        }
        withKnownIssue { try OutputSchema.check("not json", of: ["list", "--json"]) }
    }

    /// The test's validator and the reference one (`check-jsonschema`, from PyPI; .ci/run installs it) agree
    /// on every documented line, every spoiled one, and the lines real runs print. Without the tool the test
    /// is skipped, except in CI, where it fails.
    @Test func theValidatorAgreesWithCheckJSONSchema() async throws {
        guard let tool = Self.findTool("check-jsonschema") else {
            if ProcessInfo.processInfo.environment["CI"] != nil { Issue.record("check-jsonschema is not installed") }
            return
        }
        let directory = try TemporaryDirectory()
        let state = ["--simulate-state", directory.path("unit.json"), "--state-dir", directory.path("state")]
        let v2 = JSONContractTests.example("demo-g474-v2.hex")
        var printed: [String] = []
        for arguments in [
            ["upgrade", v2, "--json"] + state, ["upgrade", v2, "--json", "--all", "--simulate", "g474:programmed", "--simulate-units", "2"],
            ["erase", "--json", "--sector", "0x08070000"] + state, ["info", "--json"] + state
        ] {
            printed += try await Dfuhop.run(arguments).stdout.split(separator: "\n").map(String.init)
        }
        let lines = try JSONContractTests.documentedLines().filter { $0.contains("\"type\":") } + Self.spoiled() + printed
        var files: [String] = []
        for (index, line) in lines.enumerated() { files.append(try directory.write("line\(index).json", Array(line.utf8))) }
        let rejected = try await Self.rejectedByTool(tool, files: files)
        for (index, line) in lines.enumerated() {
            let ours = try Self.validator().errors(try JSONValue.parse(line)).isEmpty
            #expect(ours != rejected.contains(files[index]), "check-jsonschema \(ours ? "refuses" : "accepts") it: \(line)")
        }
    }

    static func findTool(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// The instance files check-jsonschema reports errors for (`--output-format json`).
    static func rejectedByTool(_ tool: String, files: [String]) async throws -> Set<String> {
        let result = try await ProcessRunner.run(
            URL(fileURLWithPath: tool), ["--output-format", "json", "--schemafile", OutputSchema.file.path] + files)
        let report = try JSONLines.decode(CheckReport.self, line: result.standardOutput, number: 1)
        return Set((report.errors ?? []).compactMap(\.filename))
    }

    /// check-jsonschema's `--output-format json` report: a status, and an error per refused instance.
    struct CheckReport: Decodable {
        var status: String
        var errors: [Refusal]?

        struct Refusal: Decodable { var filename: String? }
    }
}
