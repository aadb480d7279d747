import StrictJSON

/// Reads one family file (protocols/families/README.md): every value sits in a group that carries its
/// `source` (a string or a list of strings) and, when no public source confirms it, `"unverified": true`.
/// A value with no source at its own level or above is an error, so nothing unsourced gets in.
struct FamilyFileReader {
    static let formatVersion = 1
    let name: String
    let root: [String: JSONValue]
    private(set) var sources: [String: ValueSource] = [:]

    /// Read by the strict reader (`JSONValue.parse`): a key given twice is refused with its path, as in
    /// profiles and package manifests.
    init(name: String, text: String) throws(FamilyDataError) {
        self.name = name
        let parsed: JSONValue
        do { parsed = try JSONValue.parse(Array(text.utf8)) } catch {
            throw FamilyDataError(
                file: name, field: error.path.components.isEmpty ? "(file)" : error.path.dotted,
                problem: "not JSON: \(error.problem) at byte \(error.offset)")
        }
        guard case .object(let root) = parsed else { throw FamilyDataError(file: name, field: "(file)", problem: "not an object") }
        self.root = root
        guard root["format"] == .integer(Int64(Self.formatVersion)) else {
            throw FamilyDataError(file: name, field: "format", problem: "must be \(Self.formatVersion)")
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

    // MARK: Typed access (a `{"value": ...}` group stands for its value)

    func raw(_ path: String) -> JSONValue? {
        var current: JSONValue? = .object(root)
        for key in path.split(separator: ".") {
            if case .array(let array)? = current, let index = Int(key) {
                current = array.indices.contains(index) ? array[index] : nil
                continue
            }
            guard case .object(let object)? = current else { return nil }
            current = object[String(key)]
            if case .object(let wrapped)? = current, let inner = wrapped["value"], wrapped["source"] != nil { current = inner }
        }
        return current == .null ? nil : current
    }

    func string(_ path: String) throws(FamilyDataError) -> String {
        guard case .string(let value)? = raw(path) else { throw fail(path, "expected a string") }
        return value
    }

    func optionalString(_ path: String) throws(FamilyDataError) -> String? {
        raw(path) == nil ? nil : try string(path)
    }

    /// A JSON integer (the integer rule: no fraction, no exponent, no boolean) within `T`'s range.
    func int<T: FixedWidthInteger>(_ path: String, as _: T.Type = Int.self) throws(FamilyDataError) -> T {
        try integer(path, spelling: .number)
    }

    func optionalInt(_ path: String) throws(FamilyDataError) -> Int? { raw(path) == nil ? nil : try int(path) }

    func bool(_ path: String) throws(FamilyDataError) -> Bool {
        guard case .bool(let value)? = raw(path) else { throw fail(path, "expected true or false") }
        return value
    }

    func optionalBool(_ path: String) throws(FamilyDataError) -> Bool? { raw(path) == nil ? nil : try bool(path) }

    /// "0x0800_0000"-style hexadecimal (underscores between digit groups) within `T`'s range.
    func hex<T: FixedWidthInteger>(_ path: String, as _: T.Type = UInt32.self) throws(FamilyDataError) -> T {
        try integer(path, spelling: .familyHex)
    }

    func optionalHex(_ path: String) throws(FamilyDataError) -> UInt32? { raw(path) == nil ? nil : try hex(path) }

    private func integer<T: FixedWidthInteger>(_ path: String, spelling: IntegerSpelling) throws(FamilyDataError) -> T {
        guard let value = raw(path) else { throw fail(path, "is missing") }
        do { return try value.integer(T.self, spelling: spelling) } catch { throw fail(path, error.description) }
    }

    /// "AA F8 EF FF"
    func bytes(_ path: String) throws(FamilyDataError) -> [UInt8] {
        let parts = try string(path).split(separator: " ")
        let values = parts.compactMap { UInt8($0, radix: 16) }
        guard values.count == parts.count else { throw fail(path, "expected hex bytes separated by spaces") }
        return values
    }

    func strings(_ path: String) throws(FamilyDataError) -> [String] {
        guard case .array(let items)? = raw(path) else { throw fail(path, "expected a list of strings") }
        var result: [String] = []
        for item in items {
            guard case .string(let text) = item else { throw fail(path, "expected a list of strings") }
            result.append(text)
        }
        return result
    }

    func count(_ path: String) -> Int {
        guard case .array(let items)? = raw(path) else { return 0 }
        return items.count
    }

    /// The keys of an object, sorted; none when the value is not an object.
    func keys(_ path: String) -> [String] {
        guard case .object(let members)? = raw(path) else { return [] }
        return members.keys.sorted()
    }

    /// A number of milliseconds (fractions allowed), or nil when absent.
    func milliseconds(_ path: String) throws(FamilyDataError) -> Duration? {
        try duration(path, unit: 1_000_000)
    }

    /// A number of microseconds (fractions allowed), or nil when absent.
    func microseconds(_ path: String) throws(FamilyDataError) -> Duration? {
        try duration(path, unit: 1000)
    }

    /// Durations are measurements, so a fraction is fine; a boolean or a string is not a number.
    private func duration(_ path: String, unit nanoseconds: Double) throws(FamilyDataError) -> Duration? {
        let number: Double
        switch raw(path) {
        case nil: return nil
        case .integer(let value)?: number = Double(value)
        case .number(let value)?: number = value
        default: throw fail(path, "expected a non-negative number")
        }
        // Below a day: a bigger figure is a typo, and the product must not overflow Int64 nanoseconds.
        guard number >= 0, number * nanoseconds < 86_400e9 else { throw fail(path, "expected a non-negative number below a day") }
        return .nanoseconds(Int64((number * nanoseconds).rounded()))
    }
}
