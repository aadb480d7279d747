import DeviceProfiles
import Foundation
import SeededRandom
import StrictJSON
import Testing

private let demoProfile = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("protocols/devices/dfuhop-demo-g474.json")

/// The shared strict JSON reader (issue 21): a key twice in one object is refused however it is spelled,
/// so no two tools can read two different documents from one file; the rest is RFC 8259.
@Suite(.timeLimit(.minutes(10))) struct JSONValueTests {
    func refusal(_ text: String) throws -> JSONValue.SyntaxError {
        try #require(throws: JSONValue.SyntaxError.self) { _ = try JSONValue.parse(Array(text.utf8)) }
    }

    @Test("a key twice in one object is refused, at any depth and however it is spelled")
    func duplicateKeys() throws {
        let cases = [
            #"{"a": 1, "a": 2}"#, #"{"a": 1, "a": 1}"#, #"{"x": {"b": true, "b": false}}"#, #"[{"c": 1, "d": 2, "c": 3}]"#,
            #"{"a": 1, "\u0061": 2}"#, "{\"\u{E9}\": 1, \"e\u{301}\": 2}"
        ]
        for text in cases {
            let error = try refusal(text)
            #expect(error.problem.contains("appears twice"), "\(text): \(error)")
        }
        #expect(try refusal(#"{"a": 1, "a": 2}"#).offset == 9)
        #expect(try refusal(#"{"x": [0, {"b": 1, "b": 2}]}"#).path.description == "$.x[1].b")
    }

    @Test("a profile with a key given twice is refused, naming the file")
    func duplicateKeyInAProfile() throws {
        var text = try String(contentsOf: demoProfile, encoding: .utf8)
        text = text.replacingOccurrences(
            of: "\"reenumerationTimeoutMs\": 10000,", with: "\"reenumerationTimeoutMs\": 10000, \"reenumerationTimeoutMs\": 1,")
        let error = try #require(throws: ProductProfileError.self) { _ = try ProductProfile.decode(Data(text.utf8), file: "p.json") }
        #expect(error.file == "p.json" && error.problem.contains("\"reenumerationTimeoutMs\" appears twice"), "\(error)")
        #expect(error.field == "reenumerationTimeoutMs")
    }

    @Test("RFC 8259's grammar: what it refuses is refused")
    func malformed() throws {
        for text in [
            "", "01", "1.", ".5", "-", "1e", "+1", "\"\\x\"", "[1,]", "{\"a\":1,}", "\"\u{01}\"", "tru", "nul", "[", "1 2",
            "{\"a\" 1}", "{1: 2}", "\"\\ud800\"", "\"\\udc00x\"", "\"\\u12\"", "\"\\u+123\"", "NaN", "1e999", "'a'", "[1 2]"
        ] {
            #expect(throws: JSONValue.SyntaxError.self, "\(text)") { _ = try JSONValue.parse(Array(text.utf8)) }
        }
        #expect(throws: JSONValue.SyntaxError.self) { _ = try JSONValue.parse([0x22, 0xFF, 0x22]) } // not UTF-8
        let bom = try #require(throws: JSONValue.SyntaxError.self) { _ = try JSONValue.parse([0xEF, 0xBB, 0xBF] + Array("{}".utf8)) }
        #expect(bom.problem.contains("byte-order mark"))
    }

    @Test("values are read exactly: integers apart from fractions, escapes decoded")
    func values() throws {
        let value = try JSONValue.parse(
            Array(
                #" {"i": -9223372036854775808, "f": 1.5e3, "z": -0, "s": "a\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00", "n": null, "b": [true, false], "big": 18446744073709551616} "#
                    .utf8))
        let expected: JSONValue = .object([
            "i": .integer(Int64.min), "f": .number(1500), "z": .integer(0), "s": .string("a\"\\/\u{8}\u{C}\n\r\t\u{E9}\u{1F600}"),
            "n": .null, "b": .array([.bool(true), .bool(false)]), "big": .number(18_446_744_073_709_551_616)
        ])
        #expect(value == expected)
    }

    @Test("nesting past the limit is refused, not a stack overflow")
    func deepNesting() throws {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(try refusal(deep).problem.contains("deeper"))
        let fine = String(repeating: "[", count: JSONValue.maximumDepth) + String(repeating: "]", count: JSONValue.maximumDepth)
        _ = try JSONValue.parse(Array(fine.utf8))
    }

    /// Random documents written by Foundation read back as the same values (a property over seeded trees).
    @Test("what Foundation writes, the strict reader reads the same")
    func foundationRoundTrip() throws {
        let seed = ProcessInfo.processInfo.environment["DFUHOP_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 0...UInt64.max)
        var generator = SplitMix64(seed: seed)
        for _ in 0..<300 {
            let (object, expected) = Self.randomValue(depth: 0, using: &generator)
            let data = try JSONSerialization.data(withJSONObject: ["v": object], options: [.fragmentsAllowed])
            #expect(try JSONValue.parse(data) == .object(["v": expected]), "seed \(seed): \(String(decoding: data, as: UTF8.self))")
        }
    }

    static func randomValue(depth: Int, using generator: inout SplitMix64) -> (Any, JSONValue) {
        switch Int.random(in: 0..<(depth > 3 ? 4 : 6), using: &generator) {
        case 0: return (NSNull(), .null)
        case 1:
            let value = Bool.random(using: &generator)
            return (value, .bool(value))
        case 2:
            let value = Int64.random(in: Int64.min...Int64.max, using: &generator)
            return (NSNumber(value: value), .integer(value))
        case 3:
            let scalars = (0..<Int.random(in: 0...8, using: &generator)).map { _ in
                Unicode.Scalar(UInt32.random(in: 1...0xD7FF, using: &generator)) ?? "x"
            }
            let text = String(String.UnicodeScalarView(scalars))
            return (text, .string(text))
        case 4:
            let items = (0..<Int.random(in: 0...4, using: &generator)).map { _ in randomValue(depth: depth + 1, using: &generator) }
            return (items.map(\.0), .array(items.map(\.1)))
        default:
            var object: [String: Any] = [:]
            var expected: [String: JSONValue] = [:]
            for index in 0..<Int.random(in: 0...4, using: &generator) {
                let (value, parsed) = randomValue(depth: depth + 1, using: &generator)
                object["k\(index)"] = value
                expected["k\(index)"] = parsed
            }
            return (object, .object(expected))
        }
    }
}
