import Foundation

/// Reads one family file (protocols/families/README.md): every value sits in a group that carries its
/// `source` (a string or a list of strings) and, when no public source confirms it, `"unverified": true`.
/// A value with no source at its own level or above is an error, so nothing unsourced gets in.
struct FamilyFileReader {
    static let formatVersion = 1
    let name: String
    let root: [String: Any]
    private(set) var sources: [String: ValueSource] = [:]

    init(name: String, text: String) throws(FamilyDataError) {
        self.name = name
        let parsed: Any
        do { parsed = try JSONSerialization.jsonObject(with: Data(text.utf8)) } catch {
            throw FamilyDataError(file: name, field: "(file)", problem: "not JSON: \(error.localizedDescription)")
        }
        guard let root = parsed as? [String: Any] else { throw FamilyDataError(file: name, field: "(file)", problem: "not an object") }
        self.root = root
        guard root["format"] as? Int == Self.formatVersion else {
            throw FamilyDataError(file: name, field: "format", problem: "must be \(Self.formatVersion)")
        }
        for (key, value) in root where !["format", "id", "name"].contains(key) {
            try collectSources(value, path: key, sourced: false)
        }
    }

    // MARK: Sources

    private mutating func collectSources(_ value: Any, path: String, sourced: Bool) throws(FamilyDataError) {
        var covered = sourced
        if let object = value as? [String: Any] {
            if let source = object["source"] {
                guard let text = Self.sourceText(source), !text.isEmpty else { throw fail(path, "source must be a non-empty string") }
                sources[path] = ValueSource(text, unverified: object["unverified"] as? Bool ?? false)
                covered = true
            }
            for (key, member) in object where key != "source" && key != "unverified" {
                try collectSources(member, path: path + "." + key, sourced: covered)
            }
        } else if let array = value as? [Any] {
            for (index, member) in array.enumerated() { try collectSources(member, path: "\(path)[\(index)]", sourced: covered) }
        } else if !covered {
            throw fail(path, "has no source (give \"source\", and \"unverified\": true when no public source confirms it)")
        }
    }

    private static func sourceText(_ value: Any) -> String? {
        if let text = value as? String { return text }
        if let lines = value as? [String] { return lines.joined(separator: " ") }
        return nil
    }

    func fail(_ field: String, _ problem: String) -> FamilyDataError { FamilyDataError(file: name, field: field, problem: problem) }

    // MARK: Typed access (a `{"value": ...}` group stands for its value)

    func raw(_ path: String) -> Any? {
        var current: Any? = root
        for key in path.split(separator: ".") {
            if let array = current as? [Any], let index = Int(key) {
                current = array.indices.contains(index) ? array[index] : nil
                continue
            }
            guard let object = current as? [String: Any] else { return nil }
            current = object[String(key)]
            if let wrapped = current as? [String: Any], let inner = wrapped["value"], wrapped["source"] != nil { current = inner }
        }
        return current is NSNull ? nil : current
    }

    func string(_ path: String) throws(FamilyDataError) -> String {
        guard let value = raw(path) as? String else { throw fail(path, "expected a string") }
        return value
    }

    func optionalString(_ path: String) throws(FamilyDataError) -> String? {
        raw(path) == nil ? nil : try string(path)
    }

    func int(_ path: String) throws(FamilyDataError) -> Int {
        guard let number = raw(path) as? NSNumber, let value = Int(exactly: number.doubleValue) else {
            throw fail(path, "expected an integer")
        }
        return value
    }

    func optionalInt(_ path: String) throws(FamilyDataError) -> Int? { raw(path) == nil ? nil : try int(path) }

    func bool(_ path: String) throws(FamilyDataError) -> Bool {
        guard let value = raw(path) as? Bool else { throw fail(path, "expected true or false") }
        return value
    }

    func optionalBool(_ path: String) throws(FamilyDataError) -> Bool? { raw(path) == nil ? nil : try bool(path) }

    /// "0x0800_0000"-style hexadecimal (underscores allowed).
    func hex(_ path: String) throws(FamilyDataError) -> UInt32 {
        let text = try string(path).replacingOccurrences(of: "_", with: "")
        guard text.hasPrefix("0x"), let value = UInt32(text.dropFirst(2), radix: 16) else { throw fail(path, "expected 0x and hex digits") }
        return value
    }

    func optionalHex(_ path: String) throws(FamilyDataError) -> UInt32? { raw(path) == nil ? nil : try hex(path) }

    /// "AA F8 EF FF"
    func bytes(_ path: String) throws(FamilyDataError) -> [UInt8] {
        let parts = try string(path).split(separator: " ")
        let values = parts.compactMap { UInt8($0, radix: 16) }
        guard values.count == parts.count else { throw fail(path, "expected hex bytes separated by spaces") }
        return values
    }

    func strings(_ path: String) throws(FamilyDataError) -> [String] {
        guard let value = raw(path) as? [String] else { throw fail(path, "expected a list of strings") }
        return value
    }

    func count(_ path: String) -> Int { (raw(path) as? [Any])?.count ?? 0 }

    /// A number of milliseconds (fractions allowed), or nil when absent.
    func milliseconds(_ path: String) throws(FamilyDataError) -> Duration? {
        try duration(path, unit: 1_000_000)
    }

    /// A number of microseconds (fractions allowed), or nil when absent.
    func microseconds(_ path: String) throws(FamilyDataError) -> Duration? {
        try duration(path, unit: 1000)
    }

    private func duration(_ path: String, unit nanoseconds: Double) throws(FamilyDataError) -> Duration? {
        guard let value = raw(path) else { return nil }
        guard let number = value as? NSNumber, number.doubleValue >= 0 else { throw fail(path, "expected a non-negative number") }
        return .nanoseconds(Int64((number.doubleValue * nanoseconds).rounded()))
    }
}
