import Foundation
import TestSupport
import Testing

@testable import dfuhop

/// Issue 24's output for people and stations: what an upgrade decided and did, progress in logs, the small
/// refusals, and the exit codes' one table.
@Suite("CLI: output for people and stations", .timeLimit(.minutes(10)))
struct StationOutputTests {
    static let v2 = JSONContractTests.example("demo-g474-v2.hex")
    static let repository = JSONContractTests.repository

    @Test func aBareDfuhopPrintsItsHelpAndExits64() async throws {
        let run = try await Dfuhop.run([])
        #expect(run.status == 64, "\(run)")
        #expect(run.stderr.contains("USAGE: dfuhop") && run.stdout.isEmpty, "\(run)")
    }

    @Test func simulationOptionsWithoutASimulationAreRefused() async throws {
        for arguments in [["list", "--simulate-units", "2"], ["list", "--simulate-speed", "2"], ["info", "--simulate-units", "1"]] {
            let run = try await Dfuhop.run(arguments)
            #expect(run.status == 64 && run.stderr.contains("needs --simulate"), "\(arguments): \(run)")
        }
    }

    @Test func sizesTakeKAndKBAndKiBAlike() {
        for (text, value) in [("4K", 4096), ("4KB", 4096), ("4KiB", 4096), ("4kb", 4096), ("1MB", 1 << 20), ("0x10KB", 16 << 10)] {
            #expect(ByteCount(argument: text)?.value == UInt64(value), "\(text)")
        }
        #expect(ByteCount(argument: "4KBB") == nil && ByteCount(argument: "KB") == nil)
    }

    @Test func readWithoutALengthReadsTheWholeAlternate() async throws {
        let directory = try TemporaryDirectory()
        let state = ["--simulate-state", directory.path("unit.json"), "--simulate", "g474:dfu"]
        let run = try await Dfuhop.run(["read", "-o", directory.path("all.bin"), "--json"] + state)
        #expect(run.status == 0, "\(run)")
        let json = try run.result()
        #expect(json.address == "0x08000000" && json.length == 512 * 1024, "\(run)")
        #expect(try directory.read("all.bin").count == 512 * 1024)
        let tail = try await Dfuhop.run([
            "read", "--address", "0x0807F000", "-o", directory.path("tail.bin"), "--simulate-state", directory.path("unit.json")
        ])
        #expect(tail.status == 0, "\(tail)")
        #expect(try directory.read("tail.bin").count == 4096)
    }

    /// A first upgrade writes every sector of the image; the same image again on a unit running another
    /// build of it skips the sectors that did not change: both say so in ranges.
    @Test func aDryRunPrintsRangesNotOneLinePerSector() async throws {
        let directory = try TemporaryDirectory()
        let state = ["--simulate-state", directory.path("unit.json"), "--simulate", "g474:programmed"]
        let run = try await Dfuhop.run(["upgrade", Self.v2, "--dry-run", "--state-dir", directory.path("s")] + state)
        #expect(run.status == 0, "\(run)")
        let lines = run.stdout.split(separator: "\n")
        #expect(lines.first?.hasPrefix("plan for @Internal Flash") == true, "\(run)")
        #expect(lines.count < 12, "a few ranges, not a line per sector: \(run)")
        #expect(lines.contains { $0.contains("erase") && $0.contains("[0x08") }, "\(run)")
        #expect(lines.contains { $0.hasPrefix("  verify [0x08000000, ") }, "\(run)")
    }

    @Test func anUpgradeSaysWhatItDecidedAndWhatItDid() async throws {
        let directory = try TemporaryDirectory()
        let state = ["--simulate-state", directory.path("unit.json"), "--simulate", "g474:programmed", "--state-dir", directory.path("s")]
        let run = try await Dfuhop.run(["upgrade", Self.v2, "-v"] + state)
        #expect(run.status == 0, "\(run)")
        #expect(run.stderr.contains("plan for @Internal Flash"), "-v shows the plan: \(run)")
        #expect(run.stderr.contains("  erase  sector"), "\(run)")
        #expect(run.stdout.contains("sectors written (") && run.stdout.contains("unchanged, span verified ("), "\(run)")
        // Back to v1 with a full rewrite forced, then v2 again: the second upgrade reports its skipped sectors.
        let kept = ["--simulate-state", directory.path("unit.json"), "--state-dir", directory.path("s")]
        let again = try await Dfuhop.run(["upgrade", JSONContractTests.example("demo-g474-v1.hex"), "--allow-downgrade", "-q"] + kept)
        #expect(again.status == 0, "\(again)")
        let skipping = try await Dfuhop.run(["upgrade", Self.v2, "-vv"] + kept)
        #expect(skipping.status == 0, "\(skipping)")
        #expect(skipping.stderr.contains("set address pointer to 0x08"), "-vv: requests in hex: \(skipping)")
        #expect(skipping.stderr.contains("= write block 2 [0x08"), "\(skipping)")
        #expect(!skipping.stderr.contains("134217728") && !skipping.stderr.contains("jumpTo:"), "no decimal addresses, no enum dumps")
    }

    /// Without a terminal: a line per phase and one per tenth of each data phase, never a redraw.
    @Test func progressWithoutATerminalIsOneLinePerPhaseAndTenth() async throws {
        let directory = try TemporaryDirectory()
        let run = try await Dfuhop.run([
            "upgrade", Self.v2, "--simulate", "g474:programmed", "--state-dir", directory.path("s")
        ])
        #expect(run.status == 0, "\(run)")
        #expect(!run.stderr.contains("\r"), "\(run)")
        let lines = run.stderr.split(separator: "\n").map(String.init)
        for phase in ["write", "verify"] {
            let shown = lines.filter { $0.hasPrefix(phase + " ") && $0.contains("%") }
            #expect((1...11).contains(shown.count), "\(phase): \(shown)")
            #expect(shown.last?.contains("100%") == true, "\(phase): \(shown)")
        }
        for phase in ["find", "plan", "enter", "flash", "leave", "confirm"] {
            #expect(lines.filter { $0.hasPrefix("\(phase) done (") }.count == 1, "\(phase): \(run)")
        }
    }

    @Test(.enabled(if: PseudoTerminal.available), arguments: [60, 80, 200])
    func progressFitsTheTerminal(columns: Int) async throws {
        let directory = try TemporaryDirectory()
        let output = try await PseudoTerminal.run(
            [
                try Dfuhop.executable().path, "upgrade", Self.v2, "--simulate", "g474:programmed", "--simulate-speed", "20",
                "--state-dir", directory.path("s")
            ],
            columns: columns)
        #expect(output.status == 0, "\(output.text)")
        // Progress only: bars (a percentage) and step lines ("enter … done (0.02 s)"); messages may wrap like any text.
        let drawn = PseudoTerminal.drawnLines(output.text).filter { $0.contains("%") || $0.contains(" done (") }
        #expect(drawn.contains { $0.hasPrefix("write ") && $0.contains("%") }, "a write bar was drawn: \(output.text)")
        let tooWide = drawn.filter { $0.count >= columns }
        #expect(tooWide.isEmpty, "\(columns) columns: \(tooWide)")
    }

    @Test func fittedLinesNeverExceedTheirWidth() {
        let fields = ProgressBar.fields(phase: "write", done: 102_400, total: 409_600, unit: "B", elapsed: .seconds(1))
        var full = fields
        full.erased = "(195/200 sectors erased)"
        for columns in 2...220 {
            let line = full.fitted(columns: columns)
            #expect(line.count <= columns - 1 || columns == 1, "\(columns): \(line)")
            if columns >= 40 { #expect(line.hasPrefix("write ") && line.contains("25%"), "\(columns): \(line)") }
        }
        #expect(full.fitted(columns: 200) == full.text, "wide enough: nothing dropped")
        // Fields go before the bar shortens: at 60 columns the full bar stays, the rate and erase count do not.
        let sixty = full.fitted(columns: 60)
        #expect(sixty.contains(fields.bar) && !sixty.contains("sectors erased"), "\(sixty)")
    }

    @Test func doctorsVerdictMatchesItsExitStatus() async throws {
        let text = try await Dfuhop.run(["doctor"])
        #expect([0, 74, 77].contains(text.status), "\(text)")
        #expect(text.stdout.contains("No problems found.") == (text.status == 0), "\(text)")
        let json = try await Dfuhop.run(["doctor", "--json"])
        #expect(try json.result().outcome == (json.status == 0 ? "ok" : "problems"), "\(json)")
    }

    /// `dfuhop exit-codes`, the README's table and docs/guarantees.md list the same codes, with the same meanings in the README.
    @Test func oneExitCodeTable() async throws {
        let run = try await Dfuhop.run(["exit-codes"])
        let printed = run.stdout.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        #expect(printed == ExitStatus.allCases.map { "\($0.rawValue)  \($0.meaning)" })
        let readme = try String(contentsOf: Self.repository.appendingPathComponent("README.md"), encoding: .utf8)
        let section = try #require(readme.components(separatedBy: "## Exit codes").dropFirst().first)
        let rows = section.split(separator: "\n").filter { $0.hasPrefix("| ") && $0.first(where: \.isNumber) != nil }.map(String.init)
        let expected = ExitStatus.allCases.map { "| \($0.rawValue) | \($0.meaning) |" }
        #expect(Array(rows.prefix(expected.count)) == expected, "README's exit-code table")
        let guarantees = try String(contentsOf: Self.repository.appendingPathComponent("docs/guarantees.md"), encoding: .utf8)
        let promised = try #require(guarantees.components(separatedBy: "## What each exit code promises").dropFirst().first)
        var codes: Set<Int32> = []
        for row in promised.split(separator: "\n") where row.hasPrefix("| ") {
            let cell = row.split(separator: "|").first.map(String.init) ?? ""
            for part in cell.split(separator: ",") { if let code = Int32(part.trimmingCharacters(in: .whitespaces)) { codes.insert(code) } }
        }
        #expect(codes == Set(ExitStatus.allCases.map(\.rawValue)), "docs/guarantees.md promises for codes \(codes.sorted())")
    }

    /// `erase` counts: a number of sectors, or the whole flash; never a sentence (schema 2).
    @Test func eraseCountsSectorsAsNumbers() async throws {
        let sectors = try await Dfuhop.run(["erase", "--json", "--sector", "0x08070000", "--sector", "0x08070800", "--simulate", "g474:dfu"]
        )
        #expect(try sectors.result().erasedSectors == 2, "\(sectors)")
        let whole = try await Dfuhop.run(["erase", "--json", "--mass-erase", "--simulate", "g474:dfu"])
        #expect(try whole.result().massErased == true, "\(whole)")
        #expect(try whole.result().erasedSectors == nil, "\(whole)")
    }

    /// Product ids print one way, 8 hex digits, in text as in JSON; versions as three numbers unless the build is set.
    @Test func productIdsAndVersionsPrintOneWay() async throws {
        let directory = try TemporaryDirectory()
        let stamped = directory.path("stamped.hex")
        let stamp = try await Dfuhop.run([
            "image", "stamp", JSONContractTests.example("demo-g474-v2.unstamped.hex"), stamped, "--product-id", "0xDF00474",
            "--version", "1.2.3", "--name", "demo"
        ])
        #expect(stamp.status == 0 && stamp.stdout.contains("product 0x0DF00474, version 1.2.3,"), "\(stamp)")
        let info = try await Dfuhop.run(["image", "info", stamped])
        #expect(info.stdout.contains("product id:  0x0DF00474 (233833588)") && info.stdout.contains("version:     1.2.3\n"), "\(info)")
        let json = try await Dfuhop.run(["image", "info", stamped, "--json"])
        let descriptor = try #require(try json.result().image?.descriptor)
        #expect(descriptor.productID == "0x0DF00474" && descriptor.version == "1.2.3", "\(json)")
    }

    @Test func journalForgetTakesJSON() async throws {
        let directory = try TemporaryDirectory()
        let run = try await Dfuhop.run(["journal", "forget", "--json", "--state-dir", directory.path("s"), "0029003A3532510C35383234"])
        #expect(run.status == 69, "\(run)")
        #expect(try run.result().command == "journal forget", "\(run)")
    }

    /// Every example in every command's help fits in 80 columns as one line: none is wrapped mid-command.
    @Test func helpExamplesAreNotWrapped() async throws {
        var environment = ProcessInfo.processInfo.environment
        environment["COLUMNS"] = "80"
        for path in Self.commandPaths {
            let run = try await Dfuhop.run(path + ["--help"], environment: environment)
            let lines = run.stdout.split(separator: "\n", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            let examples = lines.drop { $0 != "Examples:" }.dropFirst().prefix { !$0.isEmpty }
            for example in examples {
                #expect(example.hasPrefix("dfuhop "), "dfuhop \(path.joined(separator: " ")) --help: a wrapped example: \(example)")
            }
        }
    }

    static let commandPaths: [[String]] = [
        ["upgrade"], ["list"], ["info"], ["enter-dfu"], ["flash"], ["read"], ["leave"], ["erase"], ["image", "info"], ["image", "convert"],
        ["image", "stamp"], ["journal"], ["history"], ["doctor"], ["package", "create"], ["package", "verify"], ["key", "generate"],
        ["families"],
        ["replay"]
    ]
}
