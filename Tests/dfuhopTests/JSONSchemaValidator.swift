import Foundation

/// A JSON value as JSON has it: numbers stay numbers and booleans stay booleans (JSONSerialization on
/// Linux cannot tell `true` from `1`, and a schema must).
enum JSONValue: Decodable, Equatable, Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    static func parse(_ text: String) throws -> JSONValue { try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)) }
}

/// A JSON Schema (draft 2020-12) validator for exactly the keywords docs/dfuhop-output.schema.json uses.
/// Loading a schema that uses any other keyword fails, so the validator can never pass a line by ignoring
/// a rule it does not know.
struct JSONSchemaValidator: Sendable {
    struct UnsupportedKeyword: Error, CustomStringConvertible {
        var keyword: String
        var path: String
        var description: String { "the schema uses \(keyword) at \(path), which this validator does not implement" }
    }

    /// Annotations (no effect on validity) and the assertions implemented below.
    static let keywords: Set<String> = [
        "$schema", "$id", "title", "description", "$defs", "$ref", "anyOf", "type", "properties", "required",
        "additionalProperties", "propertyNames", "items", "enum", "const", "pattern", "minLength", "minimum", "maximum"
    ]

    let root: [String: JSONValue]

    init(schema text: String) throws {
        guard case .object(let root) = try JSONValue.parse(text) else {
            throw UnsupportedKeyword(keyword: "a non-object schema", path: "#")
        }
        self.root = root
        try Self.checkKeywords(.object(root), path: "#")
    }

    /// Every subschema, wherever it sits, uses known keywords only.
    private static func checkKeywords(_ schema: JSONValue, path: String) throws {
        guard case .object(let object) = schema else { return } // `true`/`false` schemas need no keyword
        for (key, value) in object {
            guard keywords.contains(key) else { throw UnsupportedKeyword(keyword: key, path: path) }
            switch key {
            case "$defs", "properties":
                guard case .object(let members) = value else { continue }
                for (name, member) in members { try checkKeywords(member, path: "\(path)/\(key)/\(name)") }
            case "anyOf":
                guard case .array(let members) = value else { continue }
                for (index, member) in members.enumerated() { try checkKeywords(member, path: "\(path)/anyOf/\(index)") }
            case "items", "additionalProperties", "propertyNames": try checkKeywords(value, path: "\(path)/\(key)")
            default: continue
            }
        }
    }

    /// The reasons `value` does not validate against the schema's root (empty: it validates).
    func errors(_ value: JSONValue) -> [String] { errors(value, against: .object(root), at: "$") }

    /// The reasons `value` does not validate against `#/$defs/name`.
    func errors(_ value: JSONValue, definition name: String) -> [String] {
        errors(value, against: .object(["$ref": .string("#/$defs/\(name)")]), at: "$")
    }

    private func resolve(_ reference: String) -> JSONValue? {
        guard reference.hasPrefix("#/$defs/"), case .object(let definitions)? = root["$defs"] else { return nil }
        return definitions[String(reference.dropFirst("#/$defs/".count))]
    }

    private func errors(_ value: JSONValue, against schema: JSONValue, at path: String) -> [String] {
        switch schema {
        case .bool(let accepts): return accepts ? [] : ["\(path): not allowed here"]
        case .object(let rules): return rules.keys.sorted().flatMap { errors(value, keyword: $0, rules, at: path) }
        default: return ["\(path): the schema is neither an object nor a boolean"]
        }
    }

    private func errors(_ value: JSONValue, keyword: String, _ rules: [String: JSONValue], at path: String) -> [String] {
        let rule = rules[keyword]!
        switch keyword {
        case "$ref":
            guard case .string(let reference) = rule, let target = resolve(reference) else { return ["\(path): unresolvable \(rule)"] }
            return errors(value, against: target, at: path)
        case "anyOf": return anyOf(value, rule, at: path)
        case "type": return Self.matches(value, type: rule) ? [] : ["\(path): \(Self.text(value)) is not of type \(Self.text(rule))"]
        case "enum":
            guard case .array(let allowed) = rule else { return ["\(path): enum is not an array"] }
            return allowed.contains(value) ? [] : ["\(path): \(Self.text(value)) is not one of \(Self.text(rule))"]
        case "const": return value == rule ? [] : ["\(path): \(Self.text(value)) is not \(Self.text(rule))"]
        case "pattern":
            guard case .string(let text) = value else { return [] }
            guard case .string(let pattern) = rule, let regex = try? NSRegularExpression(pattern: pattern) else {
                return ["\(path): bad pattern \(Self.text(rule))"]
            }
            let found = regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil
            return found ? [] : ["\(path): \(Self.text(value)) does not match \(pattern)"]
        case "minLength":
            guard case .string(let text) = value, case .number(let minimum) = rule else { return [] }
            return Double(text.count) >= minimum ? [] : ["\(path): \(Self.text(value)) is shorter than \(Int(minimum))"]
        case "minimum", "maximum":
            guard case .number(let number) = value, case .number(let bound) = rule else { return [] }
            let inside = keyword == "minimum" ? number >= bound : number <= bound
            return inside ? [] : ["\(path): \(number) is beyond the \(keyword) \(bound)"]
        case "items":
            guard case .array(let elements) = value else { return [] }
            return elements.enumerated().flatMap { errors($0.element, against: rule, at: "\(path)[\($0.offset)]") }
        case "required":
            guard case .object(let members) = value, case .array(let names) = rule else { return [] }
            return names.compactMap { name in
                guard case .string(let name) = name else { return "\(path): required holds a non-string" }
                return members[name] == nil ? "\(path): \(name) is required" : nil
            }
        case "properties", "additionalProperties": return memberErrors(value, keyword: keyword, rules, at: path)
        case "propertyNames":
            guard case .object(let members) = value else { return [] }
            return members.keys.sorted().flatMap { errors(.string($0), against: rule, at: "\(path) key \($0)") }
        default: return [] // annotations: $schema, $id, title, description, $defs
        }
    }

    /// `properties` checks the members it names; `additionalProperties` checks every other member.
    private func memberErrors(_ value: JSONValue, keyword: String, _ rules: [String: JSONValue], at path: String) -> [String] {
        guard case .object(let members) = value else { return [] }
        var named: [String: JSONValue] = [:]
        if case .object(let properties)? = rules["properties"] { named = properties }
        return members.keys.sorted().flatMap { name -> [String] in
            let member = members[name]!
            if keyword == "properties" { return named[name].map { errors(member, against: $0, at: "\(path).\(name)") } ?? [] }
            return named[name] == nil ? errors(member, against: rules[keyword]!, at: "\(path).\(name)") : []
        }
    }

    /// Valid when one branch is; otherwise the errors of the branch that came closest (fewest errors).
    private func anyOf(_ value: JSONValue, _ rule: JSONValue, at path: String) -> [String] {
        guard case .array(let branches) = rule, !branches.isEmpty else { return ["\(path): anyOf is not a non-empty array"] }
        var closest: [String]?
        for branch in branches {
            let found = errors(value, against: branch, at: path)
            if found.isEmpty { return [] }
            if closest == nil || found.count < closest!.count { closest = found }
        }
        return ["\(path): matches none of the \(branches.count) alternatives; the closest fails with: "] + closest!
    }

    static func matches(_ value: JSONValue, type rule: JSONValue) -> Bool {
        guard case .string(let type) = rule else { return false }
        switch (type, value) {
        case ("null", .null), ("boolean", .bool), ("number", .number), ("string", .string), ("array", .array), ("object", .object):
            return true
        case ("integer", .number(let number)): return number.rounded() == number
        default: return false
        }
    }

    static func text(_ value: JSONValue) -> String {
        switch value {
        case .null: "null"
        case .bool(let flag): "\(flag)"
        case .number(let number): number.rounded() == number && abs(number) < 1e15 ? "\(Int(number))" : "\(number)"
        case .string(let text): "\"\(text)\""
        case .array(let elements): "[" + elements.map(text).joined(separator: ",") + "]"
        case .object(let members): "{" + members.keys.sorted().map { "\"\($0)\":" + text(members[$0]!) }.joined(separator: ",") + "}"
        }
    }
}
