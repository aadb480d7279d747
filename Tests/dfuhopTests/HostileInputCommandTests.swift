import FirmwareImage
import Foundation
import TestSupport
import Testing

/// The CLI end of issue 12: outside strings reach a terminal escaped (JSON stays exact), output files are
/// never written through a planted symlink, and a file spanning 4 GiB is described without touching the gap.
@Suite("dfuhop: hostile input", .timeLimit(.minutes(10)))
struct HostileInputCommandTests {
    /// ESC [2J (clear screen), a C1 CSI, a bell and a right-to-left override, in a .dfu target name.
    static let hostileName = "evil\u{1B}[2J\u{9B}31m\u{07}\u{202E}gnp.exe"

    func hostileDfu(_ directory: TemporaryDirectory) throws -> String {
        let image = FirmwareImage(
            format: .dfuse,
            targets: [
                ImageTarget(alternateSetting: 0, name: Self.hostileName, segments: [Segment(address: 0x0800_0000, bytes: [1, 2, 3, 4])])
            ])
        return try directory.write("hostile.dfu", try ImageWriter.bytes(image, as: .dfuse))
    }

    @Test func targetNamesReachTheTerminalEscaped() async throws {
        let directory = try TemporaryDirectory()
        let result = try await Dfuhop.run("image", "info", try hostileDfu(directory))
        #expect(result.status == 0, "\(result)")
        #expect(!result.stdout.unicodeScalars.contains { $0 == "\u{1B}" || $0 == "\u{9B}" || $0 == "\u{07}" || $0 == "\u{202E}" })
        #expect(result.stdout.contains(#"'evil\x1B[2J\x9B31m\x07\u{202E}gnp.exe'"#), "\(result)")
    }

    @Test func jsonCarriesTheExactName() async throws {
        let directory = try TemporaryDirectory()
        let json = try #require(try await Dfuhop.run("image", "info", try hostileDfu(directory), "--json").result().image)
        #expect(json.targets.first?.name == Self.hostileName)
    }

    @Test func aPlantedPartialSymlinkStopsTheWriteAndSparesItsTarget() async throws {
        let directory = try TemporaryDirectory()
        let input = try directory.write("in.bin", [1, 2, 3, 4])
        let victim = try directory.write("victim", Array("keep me".utf8))
        let output = directory.path("out.hex")
        try FileManager.default.createSymbolicLink(atPath: output + ".dfuhop-partial", withDestinationPath: victim)
        let result = try await Dfuhop.run("image", "convert", input, output)
        #expect(result.status == 73, "\(result)")
        #expect(result.stderr.contains("dfuhop-partial"))
        #expect(try directory.read("victim") == Array("keep me".utf8))
    }

    @Test func aFourGiBSpanIsDescribedWithoutHashingTheGap() async throws {
        let directory = try TemporaryDirectory()
        let text = ":020000040000FA\n:0100000011EE\n:02000004FFFFFC\n:01FFFF0022DF\n:00000001FF\n"
        let path = try directory.write("span.hex", Array(text.utf8))
        let json = try #require(try await Dfuhop.run("image", "info", path, "--json").result().image)
        #expect(json.span == 0x1_0000_0000)
        #expect(json.sha256 == nil, "not computed, so absent")
        var crc = CRC32()
        crc.update([0x11])
        crc.update(repeating: 0xFF, count: 0xFFFF_FFFE)
        crc.update([0x22])
        #expect(json.crc32 == "0x" + String(format: "%08X", crc.zlibValue))
        let text2 = try await Dfuhop.run("image", "info", path)
        #expect(text2.stdout.contains("sha256:        not computed"), "\(text2)")
    }
}

@Suite("dfuhop: option values", .timeLimit(.minutes(10)))
struct OptionValueTests {
    @Test(arguments: ["inf", "nan", "1e300", "-1", "0"])
    func waitsOutsideTheirRangeAreUsageErrors(value: String) async throws {
        let enter = try await Dfuhop.run("enter-dfu", "--timeout", value, "--simulate", "g474:programmed")
        #expect(enter.status == 64, "\(enter)")
        let upgrade = try await Dfuhop.run(
            "upgrade", "protocols/examples/demo-g474-v2.hex", "--timeout", value, "--simulate", "g474:programmed")
        #expect(upgrade.status == 64, "\(upgrade)")
    }

    @Test func aReadLengthThatWouldOverflowIsAUsageError() async throws {
        let result = try await Dfuhop.run(
            "read", "--address", "0xFFFFFFFF", "--length", "0xFFFFFFFFFFFFFFFF", "-o", "/dev/null",
            "--simulate", "g474")
        #expect(result.status == 64, "\(result)")
        #expect(result.stderr.contains("--length"))
    }
}
