import Foundation
import TestSupport
import Testing

/// TestSupport's JSONLines, which every CLI test reads `--json` output through: a line that does not
/// decode fails with its number, its text and where in it the decoding stopped.
@Suite("TestSupport: JSON lines")
struct JSONLinesTests {
    static let output = """
        {"type":"event","event":"phaseStarted","phase":"find"}

        {"type":"result","schema":2,"command":"families","exitCode":0,"outcome":"listed",\
        "families":[{"id":"f407","usbDFU":true},{"id":"f103","usbDFU":"no"}]}
        """

    @Test func everyLineAndTheLastDecodeByName() throws {
        let lines = try JSONLines.each(Dfuhop.Line.self, in: Self.output)
        #expect(lines.map(\.type) == ["event", "result"])
        #expect(lines.first?.phase == "find" && lines.last?.outcome == "listed")
        #expect(try JSONLines.last(Dfuhop.Line.self, in: Self.output + "\n").exitCode == 0)
    }

    @Test func aFieldOfTheWrongTypeNamesTheLineAndThePath() throws {
        let error = try #require(throws: JSONLineError.self) { try JSONLines.last(Dfuhop.ResultLine.self, in: Self.output) }
        #expect(error.number == 3 && error.line.hasPrefix(#"{"type":"result""#))
        #expect(error.reason.hasPrefix("families[1].usbDFU is not Bool"), "\(error)")
        #expect(error.description.hasPrefix("line 3 does not decode as ResultLine: "), "\(error)")
    }

    @Test func aMissingFieldAndAnEmptyOutputAreErrorsToo() throws {
        let missing = try #require(throws: JSONLineError.self) { try JSONLines.each(Dfuhop.Line.self, in: #"{"event":"found"}"#) }
        #expect(missing.number == 1 && missing.reason == "no field type", "\(missing)")
        #expect(throws: JSONLineError.self) { try JSONLines.last(Dfuhop.Line.self, in: "\n") }
        #expect(throws: JSONLineError.self) { try JSONLines.each(Dfuhop.Line.self, in: " \n") }
    }
}
