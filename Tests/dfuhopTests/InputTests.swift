import Foundation
import TestSupport
import Testing

@testable import dfuhop

/// Inputs as people write them: sizes with suffixes, addresses only in hex, mistyped commands named.
@Suite("CLI: inputs and readable output", .timeLimit(.minutes(10)))
struct InputTests {
    @Test func sizesTakeKAndMSuffixes() {
        #expect(ByteCount(argument: "4K")?.value == 4096)
        #expect(ByteCount(argument: "4k")?.value == 4096)
        #expect(ByteCount(argument: "1M")?.value == 1_048_576)
        #expect(ByteCount(argument: "64KiB")?.value == 65536)
        #expect(ByteCount(argument: "0x1000")?.value == 4096)
        #expect(ByteCount(argument: "4_096")?.value == 4096)
        for bad in ["0", "-1", "4G", "K", "", "5000M", "0x"] { #expect(ByteCount(argument: bad) == nil, "\(bad)") }
    }

    @Test func addressesWithout0xAreRefusedNotReadAsDecimal() async {
        #expect(Address(argument: "0x08004000")?.value == 0x0800_4000)
        #expect(Address(argument: "0x0800_4000")?.value == 0x0800_4000)
        for bad in ["08004000", "134234112", "0x1_0000_0000", "0xZZ", ""] { #expect(Address(argument: bad) == nil, "\(bad)") }
        let run = try? await Dfuhop.run("read", "--address", "08000000", "--length", "4K", "-o", "/dev/null", "--simulate", "g474:dfu")
        #expect(run?.status == 64)
    }

    @Test func aMistypedCommandGetsADidYouMean() async throws {
        #expect(DfuHop.suggestion(for: "upgrad")?.contains("'upgrade'") == true)
        #expect(DfuHop.suggestion(for: "fash")?.contains("'flash'") == true)
        #expect(DfuHop.suggestion(for: "upgrade") == nil)
        #expect(DfuHop.suggestion(for: "--json") == nil)
        let run = try await Dfuhop.run("lsit")
        #expect(run.status == 64 && run.stderr.contains("did you mean 'list'"), "\(run)")
    }

    @Test("an option given twice is refused (64) before anything is looked at, except the repeatable ones")
    func anOptionGivenTwiceIsRefused() async throws {
        #expect(DfuHop.repeatedOption(in: ["upgrade", "a.hex", "--unit", "1-1", "--unit=1-2"]) == "--unit")
        #expect(DfuHop.repeatedOption(in: ["flash", "--family", "f407", "--json", "--family", "g474"]) == "--family")
        #expect(DfuHop.repeatedOption(in: ["erase", "--sector", "0x08000000", "--sector", "0x08004000", "-v", "-v"]) == nil)
        #expect(
            DfuHop.repeatedOption(in: ["list", "--simulate-fault", "stall@1", "--simulate-fault", "stall@2", "--verbose", "--verbose"])
                == nil)
        #expect(DfuHop.repeatedOption(in: ["image", "info", "--", "--unit", "--unit"]) == nil)
        let state = try TemporaryDirectory()
        let file = state.path("unit.json")
        _ = try await Dfuhop.run("info", "--simulate", "g474:programmed", "--simulate-state", file)
        let before = try Data(contentsOf: URL(fileURLWithPath: file))
        let image = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
            "../../protocols/examples/demo-g474-v2.hex"
        )
        .standardized.path
        let run = try await Dfuhop.run(
            "upgrade", image, "--simulate-state", file, "--unit", "1-1", "--unit", "1-2", "--state-dir", state.path("s"))
        #expect(run.status == 64 && run.stderr.contains("--unit is given more than once"), "\(run)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: file)) == before, "the unit was touched")
    }

    @Test func simulationOptionsAreGroupedApartInHelp() async throws {
        let help = try await Dfuhop.run("flash", "--help").stdout
        let group = try #require(help.range(of: "SIMULATION (NO HARDWARE):"), Comment(rawValue: help))
        #expect(help[group.upperBound...].contains("--simulate-state"))
        let options = try #require(help.range(of: "\nOPTIONS:"))
        #expect(!help[options.upperBound...].contains("--simulate"), "production options stand apart")
    }

    @Test func theBarNamesThePhaseWholeWithRateAndTimeLeft() {
        let line = ProgressBar.fields(phase: "option-bytes", done: 1024, total: 4096, unit: "B", elapsed: .seconds(1), barCells: 10).text
        #expect(line.hasPrefix("option-bytes "))
        #expect(line.contains("1.0 KiB/4.0 KiB") && line.contains("1.0 KiB/s") && line.contains("3 s left"), "\(line)")
    }

    @Test func doubleVerboseShowsTheWireAndQuietShowsNothing() async throws {
        let directory = try TemporaryDirectory()
        let image = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
            "../../protocols/examples/demo-g474-v2.hex"
        )
        .standardized.path
        let traced = try await Dfuhop.run("upgrade", image, "--simulate", "g474:programmed", "--state-dir", directory.path("a"), "-vv")
        #expect(traced.status == 0, "\(traced)")
        for wire in ["DNLOAD wValue=", "GETSTATUS wValue=0 wLength=6", "dfuIDLE", "HID out report 64 byte(s)", "phase flash finished"] {
            #expect(traced.stderr.contains(wire), "\(wire)")
        }
        let verbose = try await Dfuhop.run("upgrade", image, "--simulate", "g474:programmed", "--state-dir", directory.path("b"), "-v")
        #expect(verbose.stderr.contains("phase plan finished") && !verbose.stderr.contains("DNLOAD"), "\(verbose)")
        let quiet = try await Dfuhop.run("upgrade", image, "--simulate", "g474:programmed", "--state-dir", directory.path("c"), "-q")
        #expect(quiet.status == 0 && quiet.stderr.isEmpty && quiet.stdout.contains("upgraded"), "\(quiet)")
    }
}
