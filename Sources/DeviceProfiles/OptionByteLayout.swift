import HexFormat
import StrictJSON

/// What a part line's option bytes mean, field by field, as read from its ROM's option-byte alternate
/// (protocols/option-bytes/*.json, embedded by scripts/gen-option-bytes). Each field names its source; a
/// field whose placement no public source confirms is `unverified`. Read-only: nothing here writes.
public struct OptionByteLayout: Sendable, Hashable {
    /// One option: `width` bits from `bit` of the little-endian 32-bit word at byte `offset` of the area.
    public struct Field: Sendable, Hashable {
        public var name: String
        public var offset: Int
        public var bit: Int
        public var width: Int
        public var description: String
        /// The meaning of each listed value; `otherwise` for the rest (nil: the value is the meaning).
        public var values: [UInt32: String]
        public var otherwise: String?
        public var source: String
        public var unverified: Bool
        /// The family ids the field exists on; nil: every family of the layout.
        public var families: [String]?

        /// Bytes of the area the field needs.
        var bytesNeeded: Int { offset + (bit + width + 7) / 8 }
    }

    public var file: String
    public var line: String
    public var families: [String]
    public var area: String
    public var fields: [Field]

    /// Every layout the binary carries.
    public static let all: [OptionByteLayout] = EmbeddedOptionByteFiles.files.map { file in
        // The files are checked by the DeviceProfiles tests; a broken one is a build defect, not input.
        do { return try OptionByteLayout(file: file.name, json: file.json) } catch { preconditionFailure("\(error)") }
    }

    /// The layout that decodes `family`'s option bytes, if dfuhop has one.
    public static func layout(forFamily family: String) -> OptionByteLayout? {
        all.first { $0.families.contains(family) }
    }

    /// The fields of `family` decoded from `bytes` (the area from its start). Fields past the bytes read are left out.
    public func decode(_ bytes: [UInt8], family: String) -> [DecodedOption] {
        fields.filter { $0.families?.contains(family) ?? true }.filter { $0.bytesNeeded <= bytes.count }.map { field in
            var word: UInt64 = 0
            for index in (field.offset..<field.bytesNeeded).reversed() { word = word << 8 | UInt64(bytes[index]) }
            let value = UInt32(truncatingIfNeeded: word >> UInt64(field.bit) & ((1 << UInt64(field.width)) - 1))
            let meaning = field.values[value] ?? field.otherwise
            return DecodedOption(field: field, value: value, meaning: meaning)
        }
    }
}

/// One field's value as read, with what it means.
public struct DecodedOption: Sendable, Hashable {
    public var field: OptionByteLayout.Field
    public var value: UInt32
    /// The listed meaning of this value; nil when the value is itself the meaning (a page number, a mask).
    public var meaning: String?

    /// `0xAA` for 8 bits and wider, `1` for one bit, decimal otherwise.
    public var valueText: String {
        switch field.width {
        case 1...7: String(value)
        default: "0x" + Hex.digits(value, width: (field.width + 3) / 4)
        }
    }
}

/// A layout file that does not say what a layout must.
public struct OptionByteLayoutError: Error, Sendable, Hashable, CustomStringConvertible {
    public var file: String
    public var problem: String
    public var description: String { "protocols/option-bytes/\(file): \(problem)" }
}

extension OptionByteLayout {
    /// Reads one layout file (format 1); every field must name its source.
    public init(file: String, json: String) throws(OptionByteLayoutError) {
        func fail(_ problem: String) -> OptionByteLayoutError { OptionByteLayoutError(file: file, problem: problem) }
        let root: [String: JSONValue]
        do {
            guard case .object(let object) = try JSONValue.parse(Array(json.utf8)) else { throw fail("is not a JSON object") }
            root = object
        } catch let error as JSONValue.SyntaxError { throw fail(error.description) } catch { throw fail("\(error)") }
        guard case .integer(1)? = root["format"] else { throw fail("format must be 1") }
        guard case .string(let line)? = root["line"], case .string(let area)? = root["area"],
            let families = Self.strings(root["families"]), case .array(let items)? = root["fields"]
        else { throw fail("needs line, area, families and fields") }
        var fields: [Field] = []
        for (index, item) in items.enumerated() {
            guard case .object(let object) = item else { throw fail("fields[\(index)] is not an object") }
            fields.append(try Self.field(object, where: "fields[\(index)]", fail: fail))
        }
        self.init(file: file, line: line, families: families, area: area, fields: fields)
    }

    private static func field(
        _ object: [String: JSONValue], where place: String, fail: (String) -> OptionByteLayoutError
    ) throws(OptionByteLayoutError) -> Field {
        guard case .string(let name)? = object["name"], case .integer(let offset)? = object["offset"],
            case .integer(let bit)? = object["bit"], case .integer(let width)? = object["width"],
            case .string(let description)? = object["description"]
        else { throw fail("\(place) needs name, offset, bit, width and description") }
        guard case .string(let source)? = object["source"], !source.isEmpty else {
            throw fail("\(place) (\(name)) names no source")
        }
        guard (0...4096).contains(offset), (0..<32).contains(bit), (1...32).contains(width), bit + width <= 32 else {
            throw fail("\(place) (\(name)) lies outside a 32-bit word")
        }
        var values: [UInt32: String] = [:]
        if case .object(let listed)? = object["values"] {
            for (key, meaning) in listed {
                guard let value = Self.number(key), case .string(let text) = meaning else {
                    throw fail("\(place) (\(name)) has a value \"\(key)\" that is not a number with a meaning")
                }
                values[value] = text
            }
        }
        var otherwise: String?
        if case .string(let text)? = object["otherwise"] { otherwise = text }
        var unverified = false
        if case .bool(let flag)? = object["unverified"] { unverified = flag }
        return Field(
            name: name, offset: Int(offset), bit: Int(bit), width: Int(width), description: description, values: values,
            otherwise: otherwise, source: source, unverified: unverified, families: object["families"].flatMap(Self.strings))
    }

    private static func strings(_ value: JSONValue?) -> [String]? {
        guard case .array(let items)? = value else { return nil }
        let strings = items.compactMap { item -> String? in if case .string(let text) = item { text } else { nil } }
        return strings.count == items.count ? strings : nil
    }

    /// "0xAA" or "3".
    private static func number(_ text: String) -> UInt32? {
        text.hasPrefix("0x") ? UInt32(text.dropFirst(2), radix: 16) : UInt32(text)
    }
}
