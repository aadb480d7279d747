/// Decodes `Decodable` types from JSON read by `JSONValue.parse`, refusing what Foundation's JSONDecoder lets
/// through: a key given twice (the parse refuses it), a key the type does not declare, `null` for a field (a
/// field is given or left out), and an integer that breaks the integer rule (`IntegerSpelling`): JSONDecoder
/// reads `1.0` and `1e2` as integers. Every refusal names the value's path.
///
/// A type's `CodingKeys` list its fields: a key that `CodingKeys(stringValue:)` does not know is refused.
/// Dictionaries (`[String: T]`) take any key.
public struct StrictJSONDecoder: Sendable {
    /// How integers may be written in this format.
    public var integers: IntegerSpelling
    /// Whether `null` stands for a field left out (family files, as they have always been read) rather than
    /// being refused.
    public var nullIsAbsent = false
    /// Whether a key the type does not declare is passed over (family files: their format has never refused
    /// one) rather than refused.
    public var ignoresUnknownKeys = false

    public init(integers: IntegerSpelling = .number, nullIsAbsent: Bool = false, ignoresUnknownKeys: Bool = false) {
        self.integers = integers
        self.nullIsAbsent = nullIsAbsent
        self.ignoresUnknownKeys = ignoresUnknownKeys
    }

    /// Parses `bytes` strictly and decodes a `T` from them.
    public func decode<T: Decodable>(_: T.Type, from bytes: some Collection<UInt8>) throws(StrictJSONError) -> T {
        let value: JSONValue
        do { value = try JSONValue.parse(bytes) } catch {
            throw StrictJSONError(path: error.path, problem: "is not valid JSON: \(error.problem) at byte \(error.offset)")
        }
        return try decode(T.self, from: value)
    }

    /// Decodes a `T` from an already parsed value.
    public func decode<T: Decodable>(_: T.Type, from value: JSONValue) throws(StrictJSONError) -> T {
        do {
            return try T(from: ValueDecoder(value: value, path: .root, options: self))
        } catch let error as StrictJSONError {
            throw error
        } catch let error as DecodingError {
            throw StrictJSONError(error)
        } catch {
            throw StrictJSONError(path: .root, problem: "\(error)")
        }
    }
}

/// A value the strict decoder refuses: where, and why.
public struct StrictJSONError: Error, Sendable, Hashable, CustomStringConvertible {
    public var path: JSONPath
    public var problem: String

    public init(path: JSONPath, problem: String) {
        self.path = path
        self.problem = problem
    }

    /// `$.images[0].size: must be an integer (…)`.
    public var description: String { "\(path): \(problem)" }

    /// A refusal thrown by a type's own `init(from:)`.
    init(_ error: DecodingError) {
        let context: DecodingError.Context
        switch error {
        case .dataCorrupted(let found), .keyNotFound(_, let found), .typeMismatch(_, let found), .valueNotFound(_, let found):
            context = found
        @unknown default:
            self.init(path: .root, problem: "\(error)")
            return
        }
        self.init(path: JSONPath(codingPath: context.codingPath), problem: context.debugDescription)
    }
}

extension JSONPath {
    init(codingPath: [any CodingKey]) {
        self.init(codingPath.map { key in key.intValue.map { .index($0) } ?? .key(key.stringValue) })
    }
}

/// One value being decoded, with its path.
private struct ValueDecoder: Decoder {
    let value: JSONValue
    let path: JSONPath
    let options: StrictJSONDecoder

    var codingPath: [any CodingKey] { path.components.map(PathKey.init) }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func refusal(_ problem: String) -> StrictJSONError { StrictJSONError(path: path, problem: problem) }

    func container<Key: CodingKey>(keyedBy _: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .object(let members) = value else { throw refusal(problem(expecting: "an object")) }
        // A key the type does not declare is refused, so a typo cannot silently drop a setting; sorted, so the
        // error is the same on every run.
        if !options.ignoresUnknownKeys, let unknown = members.keys.sorted().first(where: { Key(stringValue: $0) == nil }) {
            throw StrictJSONError(path: path.appending(key: unknown), problem: "is not a field of this object\(Self.known(Key.self))")
        }
        return KeyedDecodingContainer(ObjectContainer<Key>(members: members, decoder: self))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard case .array(let items) = value else { throw refusal(problem(expecting: "an array")) }
        return ArrayContainer(items: items, decoder: self)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer { SingleValue(decoder: self) }

    func child(_ value: JSONValue, _ component: JSONPath.Component) -> ValueDecoder {
        ValueDecoder(value: value, path: path.appending(component), options: options)
    }

    /// "must be a string", or "is missing"-like words for null.
    func problem(expecting kind: String) -> String {
        if case .null = value { return "must be \(kind), not null" }
        return "must be \(kind)"
    }

    static func known<Key: CodingKey>(_: Key.Type) -> String {
        guard let cases = Key.self as? any CaseIterable.Type else { return "" }
        return " (known: \(names(of: cases).sorted().joined(separator: ", ")))"
    }

    static func names<T: CaseIterable>(of _: T.Type) -> [String] { T.allCases.compactMap { ($0 as? any CodingKey)?.stringValue } }

    // MARK: Scalars

    func decodeString() throws(StrictJSONError) -> String {
        guard case .string(let text) = value else { throw refusal(problem(expecting: "a string")) }
        return text
    }

    func decodeBool() throws(StrictJSONError) -> Bool {
        guard case .bool(let flag) = value else { throw refusal(problem(expecting: "true or false")) }
        return flag
    }

    func decodeInteger<T: FixedWidthInteger>(_: T.Type) throws(StrictJSONError) -> T {
        do { return try value.integer(T.self, spelling: options.integers) } catch { throw refusal(error.description) }
    }

    func decodeDouble() throws(StrictJSONError) -> Double {
        switch value {
        case .integer(let number): return Double(number)
        case .number(let number): return number
        default: throw refusal(problem(expecting: "a number"))
        }
    }

    func decode<T: Decodable>(_: T.Type) throws -> T {
        switch T.self {
        case is String.Type: return try decodeString() as! T
        case is Bool.Type: return try decodeBool() as! T
        case is Double.Type: return try decodeDouble() as! T
        case is Float.Type: return Float(try decodeDouble()) as! T
        case is Int.Type: return try decodeInteger(Int.self) as! T
        case is Int8.Type: return try decodeInteger(Int8.self) as! T
        case is Int16.Type: return try decodeInteger(Int16.self) as! T
        case is Int32.Type: return try decodeInteger(Int32.self) as! T
        case is Int64.Type: return try decodeInteger(Int64.self) as! T
        case is UInt.Type: return try decodeInteger(UInt.self) as! T
        case is UInt8.Type: return try decodeInteger(UInt8.self) as! T
        case is UInt16.Type: return try decodeInteger(UInt16.self) as! T
        case is UInt32.Type: return try decodeInteger(UInt32.self) as! T
        case is UInt64.Type: return try decodeInteger(UInt64.self) as! T
        default: return try T(from: self)
        }
    }
}

/// A coding key for a path component (the decoder's `codingPath`).
private struct PathKey: CodingKey {
    let stringValue: String
    let intValue: Int?

    init(_ component: JSONPath.Component) {
        switch component {
        case .key(let key): (stringValue, intValue) = (key, nil)
        case .index(let index): (stringValue, intValue) = ("\(index)", index)
        }
    }

    init?(stringValue: String) { (self.stringValue, intValue) = (stringValue, nil) }
    init?(intValue: Int) { (stringValue, self.intValue) = ("\(intValue)", intValue) }
}

/// An object's members. `null` is refused like a wrong type: a field is given or left out.
private struct ObjectContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let members: [String: JSONValue]
    let decoder: ValueDecoder

    var codingPath: [any CodingKey] { decoder.codingPath }
    var allKeys: [Key] { members.keys.sorted().compactMap { Key(stringValue: $0) } }

    func contains(_ key: Key) -> Bool { members[key.stringValue] != nil }

    func member(_ key: Key) throws(StrictJSONError) -> ValueDecoder {
        guard let value = members[key.stringValue] else {
            throw StrictJSONError(path: decoder.path.appending(key: key.stringValue), problem: "is missing")
        }
        return decoder.child(value, .key(key.stringValue))
    }

    /// Only `decodeIfPresent` asks, for a member that is there: null is refused rather than read as absent,
    /// unless the format reads it so.
    func decodeNil(forKey key: Key) throws -> Bool {
        let member = try member(key)
        guard case .null = member.value else { return false }
        if decoder.options.nullIsAbsent { return true }
        throw member.refusal("must not be null: leave the field out instead")
    }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T { try member(key).decode(type) }
    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try member(key).decode(type) }
    func decode(_ type: String.Type, forKey key: Key) throws -> String { try member(key).decode(type) }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try member(key).decode(type) }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try member(key).decode(type) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try member(key).decode(type) }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try member(key).decode(type) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try member(key).decode(type) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try member(key).decode(type) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try member(key).decode(type) }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try member(key).decode(type) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try member(key).decode(type) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try member(key).decode(type) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try member(key).decode(type) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try member(key).decode(type) }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        try member(key).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer { try member(key).unkeyedContainer() }

    func superDecoder() throws -> any Decoder { decoder }

    func superDecoder(forKey key: Key) throws -> any Decoder { try member(key) }
}

/// An array's items, in order.
private struct ArrayContainer: UnkeyedDecodingContainer {
    let items: [JSONValue]
    let decoder: ValueDecoder
    var currentIndex = 0

    init(items: [JSONValue], decoder: ValueDecoder) {
        self.items = items
        self.decoder = decoder
    }

    var codingPath: [any CodingKey] { decoder.codingPath }
    var count: Int? { items.count }
    var isAtEnd: Bool { currentIndex >= items.count }

    mutating func next() throws(StrictJSONError) -> ValueDecoder {
        guard !isAtEnd else {
            throw StrictJSONError(path: decoder.path.appending(index: currentIndex), problem: "is missing: the array is too short")
        }
        defer { currentIndex += 1 }
        return decoder.child(items[currentIndex], .index(currentIndex))
    }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd, case .null = items[currentIndex] else { return false }
        throw decoder.child(items[currentIndex], .index(currentIndex)).refusal("must not be null")
    }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T { try next().decode(type) }
    mutating func decode(_ type: Bool.Type) throws -> Bool { try next().decode(type) }
    mutating func decode(_ type: String.Type) throws -> String { try next().decode(type) }
    mutating func decode(_ type: Double.Type) throws -> Double { try next().decode(type) }
    mutating func decode(_ type: Float.Type) throws -> Float { try next().decode(type) }
    mutating func decode(_ type: Int.Type) throws -> Int { try next().decode(type) }
    mutating func decode(_ type: Int8.Type) throws -> Int8 { try next().decode(type) }
    mutating func decode(_ type: Int16.Type) throws -> Int16 { try next().decode(type) }
    mutating func decode(_ type: Int32.Type) throws -> Int32 { try next().decode(type) }
    mutating func decode(_ type: Int64.Type) throws -> Int64 { try next().decode(type) }
    mutating func decode(_ type: UInt.Type) throws -> UInt { try next().decode(type) }
    mutating func decode(_ type: UInt8.Type) throws -> UInt8 { try next().decode(type) }
    mutating func decode(_ type: UInt16.Type) throws -> UInt16 { try next().decode(type) }
    mutating func decode(_ type: UInt32.Type) throws -> UInt32 { try next().decode(type) }
    mutating func decode(_ type: UInt64.Type) throws -> UInt64 { try next().decode(type) }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        try next().container(keyedBy: type)
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer { try next().unkeyedContainer() }

    mutating func superDecoder() throws -> any Decoder { try next() }
}

/// One value on its own (a type that decodes itself from a string, say).
private struct SingleValue: SingleValueDecodingContainer {
    let decoder: ValueDecoder

    var codingPath: [any CodingKey] { decoder.codingPath }

    func decodeNil() -> Bool {
        if case .null = decoder.value { return true }
        return false
    }

    func decode<T: Decodable>(_ type: T.Type) throws -> T { try decoder.decode(type) }
    func decode(_ type: Bool.Type) throws -> Bool { try decoder.decode(type) }
    func decode(_ type: String.Type) throws -> String { try decoder.decode(type) }
    func decode(_ type: Double.Type) throws -> Double { try decoder.decode(type) }
    func decode(_ type: Float.Type) throws -> Float { try decoder.decode(type) }
    func decode(_ type: Int.Type) throws -> Int { try decoder.decode(type) }
    func decode(_ type: Int8.Type) throws -> Int8 { try decoder.decode(type) }
    func decode(_ type: Int16.Type) throws -> Int16 { try decoder.decode(type) }
    func decode(_ type: Int32.Type) throws -> Int32 { try decoder.decode(type) }
    func decode(_ type: Int64.Type) throws -> Int64 { try decoder.decode(type) }
    func decode(_ type: UInt.Type) throws -> UInt { try decoder.decode(type) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try decoder.decode(type) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try decoder.decode(type) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try decoder.decode(type) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try decoder.decode(type) }
}
