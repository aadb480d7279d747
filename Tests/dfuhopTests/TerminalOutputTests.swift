import FirmwareImage
import Foundation
import TestSupport
import Testing

@testable import dfuhop

/// Issue 21 item 9: no external string reaches the terminal with a line break or a control character in
/// it, so a file or a device cannot print a line dfuhop never wrote.
@Suite("CLI: external strings on the terminal", .timeLimit(.minutes(10)))
struct TerminalOutputTests {
    @Test func everyControlCharacterIsEscaped() {
        let unsafe: [Unicode.Scalar] = [
            "\n", "\r", "\t", "\u{0}", "\u{1B}", "\u{7F}", "\u{85}", "\u{9B}", "\u{2028}", "\u{2029}", "\u{202E}", "\u{2066}"
        ]
        for scalar in unsafe {
            let escaped = TerminalText.escaped("a\(Character(scalar))b")
            #expect(escaped.unicodeScalars.allSatisfy { $0.value >= 0x20 && $0.value < 0x7F }, "\(escaped)")
            #expect(escaped.hasPrefix("a\\") && escaped.hasSuffix("b"), "\(escaped)")
        }
        #expect(TerminalText.escaped("1-1\nupgraded") == "1-1\\x0Aupgraded")
        #expect(TerminalText.escaped("STM32G474 ü 設定") == "STM32G474 ü 設定")
    }

    /// Lines of stdout and stderr together.
    static func lines(_ result: Dfuhop.Result) -> [Substring] {
        (result.stdout + "\n" + result.stderr).split(separator: "\n")
    }

    /// A package whose manifest `part` holds a line break and a fake "verified" line: `package info` shows
    /// it escaped, on the product's line.
    @Test func aManifestFieldCannotPrintALine() async throws {
        let bench = try await PackageCommandTests.Bench()
        let package = try await bench.package("demo-g474-v2.hex", name: "signed.dfuhop")
        let fake = "verified: signed by"
        let hostile = try Self.withManifestPart("\\n" + fake, in: package, directory: bench.directory)
        let info = try await Dfuhop.run("package", "info", hostile)
        #expect(info.status == 0, "\(info)")
        #expect(!Self.lines(info).contains { $0.hasPrefix("verified") }, "\(info)")
        #expect(info.stdout.contains("\\x0A\(fake)"), "\(info)")
        #expect(info.stdout.contains("signature: not checked"), "\(info)")
    }

    /// A copy of `package` whose manifest's `part` is `text` (JSON-escaped) padded with `x` to its length,
    /// the manifest's CRC-32 fixed: the manifest is the zip's first member, stored.
    static func withManifestPart(_ text: String, in package: String, directory: TemporaryDirectory) throws -> String {
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: package)))
        func le(_ at: Int, _ count: Int) -> Int { (0..<count).reduce(0) { $0 | Int(bytes[at + $1]) << (8 * $1) } }
        #expect(le(0, 4) == 0x0403_4B50 && le(8, 2) == 0, "a stored first member")
        let start = 30 + le(26, 2) + le(28, 2)
        let range = start..<(start + le(18, 4))
        let oldCRC = CRC32.zlib(bytes[range])
        let key = Array("\"part\" : \"".utf8)
        let valueStart = try #require(PackageCommandTests.offset(of: key, in: Array(bytes[range]))) + start + key.count
        let valueEnd = try #require(bytes[valueStart...].firstIndex(of: UInt8(ascii: "\"")))
        let length = valueEnd - valueStart
        try #require(length >= text.utf8.count, "the part line is long enough to hold the fake line")
        bytes.replaceSubrange(
            valueStart..<valueEnd, with: Array(text.utf8) + Array(repeating: UInt8(ascii: "x"), count: length - text.utf8.count))
        let newCRC = CRC32.zlib(bytes[range])
        let old = (0..<4).map { UInt8((oldCRC >> (8 * $0)) & 0xFF) }
        let new = (0..<4).map { UInt8((newCRC >> (8 * $0)) & 0xFF) }
        var index = 0
        var replaced = 0
        while let found = PackageCommandTests.offset(of: old, in: bytes, from: index) {
            bytes.replaceSubrange(found..<(found + 4), with: new)
            (index, replaced) = (found + 4, replaced + 1)
        }
        #expect(replaced == 2, "the CRC is in the local and the central header")
        return try directory.write("hostile.dfuhop", bytes)
    }

    /// A recording whose port path holds a line break and a fake "upgraded … confirmed over HID" line: the
    /// replay shows the port escaped, and no such line.
    @Test func aRecordedPortPathCannotPrintALine() async throws {
        let directory = try TemporaryDirectory()
        let stored = RecordingReplayTests.recordings.appendingPathComponent("virtual/g474-upgrade.jsonl")
        let fake = "upgraded FAKE-UNIT (programmed) from 1.0.0 to 6.6.6 in 0.1 s; confirmed over HID"
        let text = try String(contentsOf: stored, encoding: .utf8)
        #expect(text.contains("\"1-1\""))
        let hostile = text.replacingOccurrences(of: "\"1-1\"", with: "\"1-1\\n\(fake)\"")
        let path = try directory.write("hostile.jsonl", Array(hostile.utf8))
        let replay = try await Dfuhop.run("replay", path)
        #expect(!Self.lines(replay).contains { $0.hasPrefix("upgraded FAKE-UNIT") }, "\(replay)")
        #expect((replay.stdout + replay.stderr).contains("1-1\\x0A\(fake)"), "\(replay)")
    }
}
