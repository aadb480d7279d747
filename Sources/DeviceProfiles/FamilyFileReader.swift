import StrictJSON

/// Reads one family file (protocols/families/README.md): every value sits in a group that carries its
/// `source` (a string or a list of strings) and, when no public source confirms it, `"unverified": true`.
/// A value with no source at its own level or above is an error, so nothing unsourced gets in.
struct FamilyFileReader {
    static let formatVersion = 1
    let name: String
    /// The file's values, typed (`FamilyBuilder` turns them into a `McuFamily`).
    let file: FamilyFile
    private(set) var sources: [String: ValueSource] = [:]

    /// Read by the strict reader (`JSONValue.parse`): a key given twice is refused with its path, as in
    /// profiles and package manifests; then decoded into `FamilyFile` by the strict decoder (the integer
    /// rule: JSON integers, and `"0x0800_0000"` where the format writes hex). `null` stands for a value left
    /// out and keys beside the format's are passed over, as family files have always been read.
    init(name: String, text: String) throws(FamilyDataError) {
        self.name = name
        let parsed: JSONValue
        do { parsed = try JSONValue.parse(Array(text.utf8)) } catch {
            throw FamilyDataError(
                file: name, field: error.path.components.isEmpty ? "(file)" : error.path.dotted,
                problem: "not JSON: \(error.problem) at byte \(error.offset)")
        }
        guard case .object(let root) = parsed else { throw FamilyDataError(file: name, field: "(file)", problem: "not an object") }
        guard root["format"] == .integer(Int64(Self.formatVersion)) else {
            throw FamilyDataError(file: name, field: "format", problem: "must be \(Self.formatVersion)")
        }
        let decoder = StrictJSONDecoder(integers: .number, nullIsAbsent: true, ignoresUnknownKeys: true)
        do { file = try decoder.decode(FamilyFile.self, from: parsed.withSourcedValuesUnwrapped) } catch {
            throw FamilyDataError(file: name, field: error.path.dotted, problem: error.problem)
        }
        for (key, value) in root where !["format", "id", "name"].contains(key) {
            try collectSources(value, path: key, sourced: false)
        }
    }

    // MARK: Sources

    private mutating func collectSources(_ value: JSONValue, path: String, sourced: Bool) throws(FamilyDataError) {
        var covered = sourced
        switch value {
        case .object(let object):
            if let source = object["source"] {
                guard let text = Self.sourceText(source), !text.isEmpty else { throw fail(path, "source must be a non-empty string") }
                let unverified: Bool
                switch object["unverified"] {
                case nil: unverified = false
                case .bool(let flag)?: unverified = flag
                default: throw fail(path + ".unverified", "expected true or false")
                }
                sources[path] = ValueSource(text, unverified: unverified)
                covered = true
            }
            for (key, member) in object where key != "source" && key != "unverified" {
                try collectSources(member, path: path + "." + key, sourced: covered)
            }
        case .array(let array):
            for (index, member) in array.enumerated() { try collectSources(member, path: "\(path)[\(index)]", sourced: covered) }
        default:
            if !covered { throw fail(path, "has no source (give \"source\", and \"unverified\": true when no public source confirms it)") }
        }
    }

    private static func sourceText(_ value: JSONValue) -> String? {
        if case .string(let text) = value { return text }
        guard case .array(let items) = value else { return nil }
        var lines: [String] = []
        for item in items {
            guard case .string(let line) = item else { return nil }
            lines.append(line)
        }
        return lines.joined(separator: " ")
    }

    func fail(_ field: String, _ problem: String) -> FamilyDataError { FamilyDataError(file: name, field: field, problem: problem) }
}
