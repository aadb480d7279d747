import Foundation
import StrictJSON
import Testing

/// The Codable side of the strict reader: what JSONDecoder lets through is refused here, naming the path.
struct StrictJSONDecoderTests {
    struct Inner: Decodable, Equatable {
        var size: UInt16
        var note: String?
    }

    struct Outer: Decodable, Equatable {
        var name: String
        var items: [Inner]
        var flags: [String: Bool]?
        var ratio: Double?
    }

    /// Decodes `text`, or returns the refusal's path and problem.
    func refusal<T: Decodable>(_: T.Type, _ text: String, integers: IntegerSpelling = .number) throws -> StrictJSONError {
        try #require(throws: StrictJSONError.self) { _ = try StrictJSONDecoder(integers: integers).decode(T.self, from: Array(text.utf8)) }
    }

    func refusal(_ text: String) throws -> StrictJSONError { try refusal(Outer.self, text) }

    @Test("a document the types describe decodes, a map takes any key, a number may have a fraction")
    func decodes() throws {
        let text = #"{"name": "a", "items": [{"size": 65535}, {"size": 0, "note": "n"}], "flags": {"x y": true}, "ratio": 0.5}"#
        let value = try StrictJSONDecoder().decode(Outer.self, from: Array(text.utf8))
        #expect(value == Outer(name: "a", items: [.init(size: 65535), .init(size: 0, note: "n")], flags: ["x y": true], ratio: 0.5))
    }

    @Test("an unknown key, a missing one, null and a wrong type are refused at their path")
    func refusals() throws {
        let unknown = try refusal(#"{"name": "a", "items": [{"size": 1, "colour": 2}]}"#)
        #expect(unknown.path.description == "$.items[0].colour" && unknown.problem.contains("not a field"), "\(unknown)")
        let missing = try refusal(#"{"items": []}"#)
        #expect(missing.path.description == "$.name" && missing.problem == "is missing", "\(missing)")
        let null = try refusal(#"{"name": "a", "items": [], "ratio": null}"#)
        #expect(null.path.description == "$.ratio" && null.problem.contains("null"), "\(null)")
        let type = try refusal(#"{"name": 1, "items": []}"#)
        #expect(type.path.description == "$.name" && type.problem == "must be a string", "\(type)")
        let array = try refusal(#"{"name": "a", "items": {}}"#)
        #expect(array.path.description == "$.items" && array.problem == "must be an array", "\(array)")
    }

    @Test("a key given twice is refused before decoding, at its path")
    func duplicates() throws {
        let nested = try refusal(#"{"name": "a", "items": [{"size": 1, "size": 2}]}"#)
        #expect(nested.path.description == "$.items[0].size" && nested.problem.contains("appears twice"), "\(nested)")
        let top = try refusal(#"{"name": "a", "name": "b", "items": []}"#)
        #expect(top.path.description == "$.name" && top.problem.contains("appears twice"), "\(top)")
    }

    @Test("integers: what JSONDecoder reads as one (1.0, 1e2) is refused; strings only where the format says")
    func integers() throws {
        for text in ["1.0", "1e2", "true", "\"1\"", "\"0x1\"", "-1", "65536", "18446744073709551616"] {
            let error = try refusal(Inner.self, #"{"size": \#(text)}"#)
            #expect(error.path.description == "$.size", "\(text): \(error)")
        }
        // Foundation's decoder takes the first two: the reason this reader does not stand on it.
        #expect(try JSONDecoder().decode(Inner.self, from: Data(#"{"size": 1e2}"#.utf8)).size == 100)
        let hex = try StrictJSONDecoder(integers: .profile).decode(Inner.self, from: Array(#"{"size": "0xFFFF"}"#.utf8))
        #expect(hex.size == 0xFFFF)
        #expect(try refusal(Inner.self, #"{"size": "0x10000"}"#, integers: .profile).problem.contains("outside 0...65535"))
    }

    struct Checked: Decodable {
        var even: Int
        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            even = try container.decode(Int.self, forKey: .even)
            guard even % 2 == 0 else {
                throw DecodingError.dataCorruptedError(forKey: .even, in: container, debugDescription: "must be even")
            }
        }
        enum CodingKeys: String, CodingKey { case even }
    }

    @Test("a type's own refusal keeps its path")
    func ownRefusal() throws {
        let error = try refusal([Checked].self, #"[{"even": 2}, {"even": 3}]"#)
        #expect(error.description == "$[1].even: must be even")
    }

    @Test("paths print as JSONPath, and dotted as the file errors have always named fields")
    func paths() {
        let path = JSONPath([.key("images"), .index(0), .key("size")])
        #expect(path.description == "$.images[0].size" && path.dotted == "images.0.size")
        #expect(JSONPath([.key("sector size")]).description == #"$["sector size"]"#)
        #expect(JSONPath.root.description == "$" && JSONPath.root.dotted == "")
    }
}
