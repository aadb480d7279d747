import Foundation
import TestSupport
import Testing

/// `dfuhop option-bytes` on virtual units: decoded text and JSON, raw bytes where no layout exists, and no
/// request that writes (judged from the command's own --record file and the unit's saved state).
@Suite("CLI: option-bytes", .timeLimit(.minutes(10)))
struct OptionBytesCommandTests {
    @Test func decodesAG474InItsROM() async throws {
        let result = try await Dfuhop.run("option-bytes", "--simulate", "g474:dfu")
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains("option bytes of STM32G473/474/483/484 at 1-1: 48 bytes from 0x1FFF7800 (alternate 1)"), "\(result)")
        #expect(result.stdout.contains("  0x1FFF7800  AA F8 EF FF"), "\(result)")
        let rdp = try #require(result.stdout.split(separator: "\n").first { $0.hasPrefix("RDP ") })
        #expect(rdp.contains("0xAA") && rdp.contains("level 0: no read protection"), "\(rdp)")
        let dbank = try #require(result.stdout.split(separator: "\n").first { $0.hasPrefix("DBANK ") })
        #expect(dbank.contains("dual bank"), "\(dbank)")
        #expect(result.stdout.contains("(unverified)"), "the WRP words' placement is unverified: \(result)")
        #expect(result.stdout.contains("protocols/option-bytes/g4.json"))
    }

    @Test func jsonNamesEveryFieldWithItsSource() async throws {
        let result = try await Dfuhop.run("option-bytes", "--simulate", "f407:dfu", "--json")
        #expect(result.status == 0, "\(result)")
        let json = try result.result()
        #expect(json.command == "option-bytes" && json.outcome == "read")
        let options = try #require(json.optionBytes)
        #expect(options.family == "f407" && options.address == "0x1FFFC000")
        #expect(options.length == 16 && options.bytes.hasPrefix("ECAAFF0F"))
        let fields = options.fields
        let rdp = try #require(fields.first { $0.name == "RDP" })
        #expect(rdp.value == 0xAA && rdp.unverified == false)
        #expect(rdp.source.contains("FLASH_OPTCR_RDP_Pos 8"))
        #expect(fields.allSatisfy { !$0.source.isEmpty })
        #expect(fields.contains { $0.name == "BOR_LEV" && $0.meaning == "BOR off" })
    }

    @Test func aPartLineWithoutALayoutShowsRawBytes() async throws {
        let text = try await Dfuhop.run("option-bytes", "--simulate", "c071:dfu")
        #expect(text.status == 0, "\(text)")
        #expect(text.stdout.contains("not decoded: raw bytes shown"), "\(text)")
        let json = try await Dfuhop.run("option-bytes", "--simulate", "c071:dfu", "--json")
        let options = try #require(try json.result().optionBytes)
        #expect(options.note == "not decoded: raw bytes shown" && options.fields.isEmpty)
        #expect(options.length == 128)
    }

    @Test func aRunningApplicationIsNotInDFU() async throws {
        let result = try await Dfuhop.run("option-bytes", "--simulate", "g474:programmed", "--json")
        #expect(result.status == 69, "\(result)")
    }

    /// The recording shows every request sent: the only DNLOADs are DfuSe "set address pointer" commands
    /// (0x21), never data (wValue >= 2), erase (0x41), read unprotect (0x92) or a leave.
    @Test func nothingIsWritten() async throws {
        let directory = try TemporaryDirectory()
        let state = directory.path("unit.json")
        #expect(
            try await Dfuhop.run(
                "flash", DeviceCommandTests.example("demo-g474-v2.hex"), "--simulate", "g474:dfu", "--simulate-state", state
            ).status == 0)
        let before = try directory.read("unit.json")
        let result = try await Dfuhop.run("option-bytes", "--simulate-state", state, "--record", directory.path("ob.jsonl"))
        #expect(result.status == 0, "\(result)")
        #expect(try directory.read("unit.json") == before, "the unit's saved state changed")
        let text = try String(contentsOfFile: directory.path("ob.jsonl"), encoding: .utf8)
        let lines = text.split(separator: "\n")
        var downloads = 0
        var uploads = 0
        for (line, event) in zip(lines, try JSONLines.each(Dfuhop.RecordingLine.self, in: text)) {
            guard let setup = event.setup else { continue }
            if setup.bRequest == 2 { uploads += 1 }
            guard setup.bRequest == 1 else { continue }
            downloads += 1
            #expect(setup.wValue == 0, "a data download: \(line)")
            #expect(
                event.data?.hasPrefix("21") == true && event.data?.count == 10,
                "not a set-address command: \(line)")
        }
        #expect(downloads >= 1 && uploads >= 1, "the recording holds no read: \(lines.count) lines")
    }
}
