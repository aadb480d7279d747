import FirmwareImage
import Foundation
import TestSupport
import Testing

/// The device commands end to end, on virtual units kept in a state file across invocations, as a
/// technician's sequence of commands would act on one unit.
@Suite("CLI: device commands on a virtual unit", .timeLimit(.minutes(10)))
struct DeviceCommandTests {
    static let examples = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("protocols/examples")
    static func example(_ name: String) -> String { examples.appendingPathComponent(name).path }

    @Test func manualUpgradeFromV1ToV2OnOneUnit() async throws {
        let directory = try TemporaryDirectory()
        let state = directory.path("unit.json")
        let info = try await Dfuhop.run("info", "--simulate", "g474:programmed", "--simulate-state", state, "--json")
        #expect(info.status == 0, "\(info)")
        #expect(try info.result().unit?.version == "1.0.0")

        let enter = try await Dfuhop.run("enter-dfu", "--simulate-state", state)
        #expect(enter.status == 0, "\(enter)")
        #expect(enter.stdout.contains("is in DFU mode"))

        let flash = try await Dfuhop.run("flash", Self.example("demo-g474-v2.hex"), "--leave", "--simulate-state", state)
        #expect(flash.status == 0, "\(flash)")
        #expect(flash.stdout.contains("verified"))

        let after = try await Dfuhop.run("info", "--simulate-state", state, "--json")
        #expect(try after.result().unit?.version == "2.0.0")
    }

    @Test func dryRunPrintsThePlanVectorTableLastAndTouchesNothing() async throws {
        let directory = try TemporaryDirectory()
        let state = directory.path("unit.json")
        let plan = try await Dfuhop.run(
            "flash", Self.example("demo-f407-v2.hex"), "--dry-run", "--simulate", "f407:dfu", "--simulate-state", state)
        #expect(plan.status == 0, "\(plan)")
        #expect(plan.stdout.contains("holds the vector table: erased and written last"), "\(plan)")
        let read = try await Dfuhop.run(
            "read", "--address", "0x08000000", "--length", "64", "-o", directory.path("out.bin"), "--simulate-state", state)
        #expect(read.status == 0, "\(read)")
        #expect(try directory.read("out.bin") == [UInt8](repeating: 0xFF, count: 64), "a dry run must not write")
    }

    /// Issue 25: a read of the internal flash is widened to whole flash words of the unit's part, with the
    /// unit's own bytes, so the file can be written back by any client without writing a word twice.
    @Test func readOfTheFlashIsWidenedToWholeWords() async throws {
        let directory = try TemporaryDirectory()
        let state = directory.path("unit.json")
        let flash = try await Dfuhop.run("flash", Self.example("demo-g474-v2.hex"), "--simulate", "g474:dfu", "--simulate-state", state)
        #expect(flash.status == 0, "\(flash)")
        let read = try await Dfuhop.run(
            "read", "--address", "0x08000003", "--length", "6", "-o", directory.path("out.dfu"), "--simulate-state", state)
        #expect(read.status == 0, "\(read)")
        #expect(read.stdout.contains("widened to whole 8-byte flash words of STM32G473/474/483/484: 0x08000000-0x0800000F"))
        let image = try ImageReader.read(try directory.read("out.dfu"), file: "out.dfu")
        let expected = try ImageFile.read(path: Self.example("demo-g474-v2.hex")).normalized().flattened()
        #expect(image.segments == [Segment(address: 0x0800_0000, bytes: Array(expected[0..<16]))])
    }

    @Test func flashJsonEmitsEventsThenAResult() async throws {
        let result = try await Dfuhop.run("flash", Self.example("demo-f407-v1.hex"), "--json", "--simulate", "f407:dfu")
        #expect(result.status == 0, "\(result)")
        let lines = try result.lines() // every line is a JSON object with its type
        #expect(lines.first?.event == "phaseStarted")
        #expect(lines.last?.type == "result" && lines.last?.outcome == "flashed")
        #expect(lines.contains { $0.event == "sectorErased" })
    }

    @Test func anImageOutsideTheFlashIsRefusedWithExit80AndNothingWritten() async throws {
        // 1 KiB placed past the end of the G474's 512 KiB: the plan refuses it, naming address and layout.
        let directory = try TemporaryDirectory()
        let image = try directory.write("far.bin", [UInt8](repeating: 0x11, count: 1024))
        let result = try await Dfuhop.run("flash", image, "--address", "0x08080000", "--simulate", "g474:dfu")
        #expect(result.status == 80, "\(result)")
        #expect(result.stderr.contains("0x08080000"))
        #expect(result.stderr.contains("nothing was written"))
    }

    @Test func noUnitInDFUExits69WithAHint() async throws {
        let result = try await Dfuhop.run("flash", Self.example("demo-g474-v1.hex"), "--simulate", "g474:programmed")
        #expect(result.status == 69, "\(result)")
        #expect(result.stderr.contains("hint:"))
    }

    @Test func corruptedUnitShowsNothingAndInfoSaysSo() async throws {
        let list = try await Dfuhop.run("list", "--simulate", "g474:corrupted")
        #expect(list.status == 0)
        #expect(list.stdout.contains("no units found"))
        let info = try await Dfuhop.run("info", "--simulate", "g474:corrupted")
        #expect(info.status == 69, "\(info)")
    }

    @Test func h7LeaveJumpsToTheResetHandler() async throws {
        let directory = try TemporaryDirectory()
        let state = directory.path("unit.json")
        // Any valid F-series image would hang an H7 left to its vector base; dfuhop reads the reset handler.
        #expect(try await Dfuhop.run("info", "--simulate", "h753:programmed", "--simulate-state", state).status == 0)
        #expect(try await Dfuhop.run("enter-dfu", "--simulate-state", state).status == 0)
        let leave = try await Dfuhop.run("leave", "--simulate-state", state, "--json")
        #expect(leave.status == 0, "\(leave)")
        let target = try #require(try leave.result().jumpTo, "\(leave)")
        #expect(target != "0x08000000")
        #expect(try await Dfuhop.run("info", "--simulate-state", state).status == 0, "the application is running again")
    }

    @Test func eraseNeedsAnExplicitTargetAndMassEraseAFlag() async throws {
        let bare = try await Dfuhop.run("erase", "--simulate", "f407:dfu")
        #expect(bare.status == 64, "\(bare)")
        let sector = try await Dfuhop.run("erase", "--sector", "0x08004000", "--simulate", "f407:dfu")
        #expect(sector.status == 0, "\(sector)")
        let mass = try await Dfuhop.run("erase", "--mass-erase", "--simulate", "f407:dfu", "--json")
        #expect(mass.status == 0, "\(mass)")
    }

    @Test func badSimulationSpecsAndStateFilesGetFixedCodes() async throws {
        let directory = try TemporaryDirectory()
        #expect(try await Dfuhop.run("list", "--simulate", "f103").status == 64)
        let bad = try directory.write("bad.json", Array("{".utf8))
        let result = try await Dfuhop.run("list", "--simulate-state", bad)
        #expect(result.status == 78, "\(result)")
        #expect(result.stderr.contains(bad))
    }

    @Test func twoUnitsNeedAUnitFlag() async throws {
        // A single virtual unit never needs --unit; a wrong --unit names what is there instead.
        let result = try await Dfuhop.run("flash", Self.example("demo-f407-v1.hex"), "--simulate", "f407:dfu", "--unit", "9-9")
        #expect(result.status == 69, "\(result)")
        #expect(result.stderr.contains("1-1"))
    }
}
