/// Any JSON value, integers kept exact and apart from booleans and fractions: what the strict readers of
/// product profiles, family files and update-package manifests walk (directly or through
/// `StrictJSONDecoder`), so an unknown key or a wrong type is named.
///
/// `parse` is the strict way in: an RFC 8259 reader that refuses what general-purpose readers resolve
/// silently, above all a key given twice in one object (Foundation keeps one, Python's `json` the other:
/// two tools must never read two different manifests from one signed file).
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case integer(Int64)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    /// Deeper than any profile or manifest nests; bounds the reader's recursion on hostile input.
    public static let maximumDepth = 32

    /// Why a text is not accepted: the byte offset where reading stopped, and the value being read there
    /// (for a key given twice, the key's own path).
    public struct SyntaxError: Error, Sendable, Hashable, CustomStringConvertible {
        public var offset: Int
        public var path: JSONPath
        public var problem: String
        public var description: String { "\(problem) at byte \(offset)" + (path.components.isEmpty ? "" : " (\(path))") }

        public init(offset: Int, path: JSONPath = .root, problem: String) {
            self.offset = offset
            self.path = path
            self.problem = problem
        }
    }

    /// Parses one JSON document (UTF-8, optional surrounding whitespace, nothing after it).
    public static func parse(_ bytes: some Collection<UInt8>) throws(SyntaxError) -> JSONValue {
        var parser = JSONParser(bytes: Array(bytes))
        guard String(validating: parser.bytes, as: UTF8.self) != nil else {
            throw SyntaxError(offset: 0, problem: "is not UTF-8 text")
        }
        // RFC 8259 §8.1 lets a reader ignore a byte-order mark; readers differ (Python's refuses), so it is
        // refused here with a reason an editor's user can act on.
        guard !parser.bytes.starts(with: [0xEF, 0xBB, 0xBF]) else {
            throw SyntaxError(offset: 0, problem: "starts with a byte-order mark (U+FEFF): save the file as UTF-8 without one")
        }
        let value = try parser.value(depth: 0)
        parser.skipSpace()
        guard parser.position == parser.bytes.count else { throw parser.error("unexpected text after the JSON value") }
        return value
    }
}

/// Recursive descent over RFC 8259's grammar; every error names the byte offset.
private struct JSONParser {
    let bytes: [UInt8]
    var position = 0
    /// The keys and indices down to the value being read (at most `maximumDepth` deep).
    var path: [JSONPath.Component] = []

    init(bytes: [UInt8]) { self.bytes = bytes }

    func error(_ problem: String) -> JSONValue.SyntaxError {
        JSONValue.SyntaxError(offset: position, path: JSONPath(path), problem: problem)
    }

    var current: UInt8? { position < bytes.count ? bytes[position] : nil }

    mutating func skipSpace() {
        while let byte = current, byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D { position += 1 }
    }

    mutating func value(depth: Int) throws(JSONValue.SyntaxError) -> JSONValue {
        skipSpace()
        guard let byte = current else { throw error("unexpected end of the text") }
        switch byte {
        case UInt8(ascii: "{"): return try object(depth: depth + 1)
        case UInt8(ascii: "["): return try array(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): return try literal("true", .bool(true))
        case UInt8(ascii: "f"): return try literal("false", .bool(false))
        case UInt8(ascii: "n"): return try literal("null", .null)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
        default: throw error("unexpected character")
        }
    }

    mutating func literal(_ word: String, _ value: JSONValue) throws(JSONValue.SyntaxError) -> JSONValue {
        let expected = Array(word.utf8)
        guard bytes.count - position >= expected.count, bytes[position..<(position + expected.count)].elementsEqual(expected) else {
            throw error("unexpected word")
        }
        position += expected.count
        return value
    }

    mutating func object(depth: Int) throws(JSONValue.SyntaxError) -> JSONValue {
        guard depth <= JSONValue.maximumDepth else { throw error("nests deeper than \(JSONValue.maximumDepth) levels") }
        position += 1
        var members: [String: JSONValue] = [:]
        skipSpace()
        if current == UInt8(ascii: "}") {
            position += 1
            return .object(members)
        }
        while true {
            skipSpace()
            let keyOffset = position
            guard current == UInt8(ascii: "\"") else { throw error("expected a key (a string)") }
            let key = try string()
            skipSpace()
            guard current == UInt8(ascii: ":") else { throw error("expected \":\" after a key") }
            position += 1
            path.append(.key(key))
            let value = try value(depth: depth)
            // Swift compares strings by canonical equivalence: keys that differ only in Unicode
            // normalisation count as the same key too.
            guard members.updateValue(value, forKey: key) == nil else {
                throw JSONValue.SyntaxError(
                    offset: keyOffset, path: JSONPath(path), problem: "key \"\(key.prefix(40))\" appears twice in one object")
            }
            path.removeLast()
            skipSpace()
            guard let separator = current else { throw error("unexpected end of the text in an object") }
            position += 1
            if separator == UInt8(ascii: "}") { return .object(members) }
            guard separator == UInt8(ascii: ",") else {
                position -= 1
                throw error("expected \",\" or \"}\" in an object")
            }
        }
    }

    mutating func array(depth: Int) throws(JSONValue.SyntaxError) -> JSONValue {
        guard depth <= JSONValue.maximumDepth else { throw error("nests deeper than \(JSONValue.maximumDepth) levels") }
        position += 1
        var items: [JSONValue] = []
        skipSpace()
        if current == UInt8(ascii: "]") {
            position += 1
            return .array(items)
        }
        while true {
            path.append(.index(items.count))
            items.append(try value(depth: depth))
            path.removeLast()
            skipSpace()
            guard let separator = current else { throw error("unexpected end of the text in an array") }
            position += 1
            if separator == UInt8(ascii: "]") { return .array(items) }
            guard separator == UInt8(ascii: ",") else {
                position -= 1
                throw error("expected \",\" or \"]\" in an array")
            }
        }
    }
}

extension JSONParser {
    /// A string after its opening quote; escapes decoded, unpaired surrogates and raw control characters refused.
    mutating func string() throws(JSONValue.SyntaxError) -> String {
        position += 1
        var text: [UInt8] = []
        while true {
            guard let byte = current else { throw error("unterminated string") }
            position += 1
            switch byte {
            case UInt8(ascii: "\""): return String(decoding: text, as: UTF8.self)
            case UInt8(ascii: "\\"): text += try escape()
            case 0..<0x20:
                position -= 1
                throw error("a control character inside a string must be escaped")
            default: text.append(byte)
            }
        }
    }

    /// One escape after its backslash, as UTF-8.
    mutating func escape() throws(JSONValue.SyntaxError) -> [UInt8] {
        guard let byte = current else { throw error("unterminated escape") }
        position += 1
        let simple: [UInt8: UInt8] = [
            UInt8(ascii: "\""): 0x22, UInt8(ascii: "\\"): 0x5C, UInt8(ascii: "/"): 0x2F, UInt8(ascii: "b"): 0x08,
            UInt8(ascii: "f"): 0x0C, UInt8(ascii: "n"): 0x0A, UInt8(ascii: "r"): 0x0D, UInt8(ascii: "t"): 0x09
        ]
        if let value = simple[byte] { return [value] }
        guard byte == UInt8(ascii: "u") else { throw error("unknown escape \"\\\(Unicode.Scalar(byte))\"") }
        var code = UInt32(try hex4())
        if (0xD800...0xDBFF).contains(code) {
            guard current == UInt8(ascii: "\\"), position + 1 < bytes.count, bytes[position + 1] == UInt8(ascii: "u") else {
                throw error("an unpaired UTF-16 surrogate")
            }
            position += 2
            let low = UInt32(try hex4())
            guard (0xDC00...0xDFFF).contains(low) else { throw error("an unpaired UTF-16 surrogate") }
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
        }
        guard let scalar = Unicode.Scalar(code) else { throw error("an unpaired UTF-16 surrogate") }
        return Array(String(Character(scalar)).utf8)
    }

    mutating func hex4() throws(JSONValue.SyntaxError) -> UInt16 {
        guard bytes.count - position >= 4, let value = UInt16(String(decoding: bytes[position..<(position + 4)], as: UTF8.self), radix: 16),
            bytes[position..<(position + 4)].allSatisfy({ $0 != UInt8(ascii: "+") && $0 != UInt8(ascii: "-") })
        else { throw error("\\u must be followed by four hex digits") }
        position += 4
        return value
    }

    /// RFC 8259 §6: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`. Integers that fit stay exact.
    mutating func number() throws(JSONValue.SyntaxError) -> JSONValue {
        let start = position
        if current == UInt8(ascii: "-") { position += 1 }
        if current == UInt8(ascii: "0") {
            position += 1
        } else {
            guard try digits() > 0 else { throw error("a number needs digits") }
        }
        var isInteger = true
        if current == UInt8(ascii: ".") {
            position += 1
            isInteger = false
            guard try digits() > 0 else { throw error("a fraction needs digits") }
        }
        if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            position += 1
            isInteger = false
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { position += 1 }
            guard try digits() > 0 else { throw error("an exponent needs digits") }
        }
        let text = String(decoding: bytes[start..<position], as: UTF8.self)
        if isInteger, let integer = Int64(text) { return .integer(integer) }
        guard let number = Double(text), number.isFinite else {
            position = start
            throw error("number \(text.prefix(40)) is out of range")
        }
        return .number(number)
    }

    mutating func digits() throws(JSONValue.SyntaxError) -> Int {
        let start = position
        while let byte = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) { position += 1 }
        return position - start
    }
}
