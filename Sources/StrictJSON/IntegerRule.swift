import HexFormat

/// The one integer rule of dfuhop's JSON files: an integer is a JSON number with no fraction and no
/// exponent (`4660`, not `4660.0`, `4.66e3` or `true`), or — where a format documents it — a string of hex
/// digits after `0x` or of decimal digits; it must fit the field's type. Nothing is rounded or wrapped.
public struct IntegerSpelling: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// A JSON number without fraction or exponent: `4660`, `-1`.
    public static let number = IntegerSpelling(rawValue: 1 << 0)
    /// `"0x1234"` (either case of x and of the digits).
    public static let hexString = IntegerSpelling(rawValue: 1 << 1)
    /// `"4660"`, `"-1"`: decimal digits, an optional leading minus.
    public static let decimalString = IntegerSpelling(rawValue: 1 << 2)
    /// Hex digits grouped by single underscores: `"0x0800_0000"` (family files).
    public static let underscores = IntegerSpelling(rawValue: 1 << 3)

    /// Product profiles (protocols/devices/README.md): `4660`, `"0x1234"` or `"4660"`.
    public static let profile: IntegerSpelling = [.number, .hexString, .decimalString]
    /// Family files' addresses and identifiers (protocols/families/README.md): `"0x0800_0000"`.
    public static let familyHex: IntegerSpelling = [.hexString, .underscores]

    /// What a refused value should have been, for the error.
    var expectation: String {
        switch (contains(.number), contains(.hexString), contains(.decimalString)) {
        case (true, true, true): "must be an integer (a JSON number, or a string such as \"0x1209\" or \"4660\")"
        case (true, true, false): "must be an integer (a JSON number, or a string such as \"0x1209\")"
        case (false, true, _):
            contains(.underscores) ? "must be 0x and hex digits, e.g. \"0x0800_0000\"" : "must be 0x and hex digits, e.g. \"0x1209\""
        default: "must be an integer (a JSON number with no fraction or exponent)"
        }
    }
}

/// A value the integer rule refuses, in words (the caller adds the file and the path).
public struct IntegerProblem: Error, Sendable, Hashable, CustomStringConvertible {
    public var description: String

    public init(description: String) { self.description = description }
}

extension JSONValue {
    /// This value as an integer of type `T` under the integer rule, spelled as `spelling` allows.
    public func integer<T: FixedWidthInteger>(
        _: T.Type = T.self, spelling: IntegerSpelling = .number
    ) throws(IntegerProblem) -> T {
        let magnitude: (negative: Bool, digits: Substring, radix: Int)?
        switch self {
        case .integer(let value) where spelling.contains(.number):
            guard let exact = T(exactly: value) else { throw IntegerProblem(description: "\(value) is outside \(T.min)...\(T.max)") }
            return exact
        case .number(let value) where spelling.contains(.number) && value.magnitude >= 0x1p63:
            // Past Int64 (the reader keeps such numbers as Double, and so a fraction may not show): out of
            // range for every type dfuhop reads. A smaller Double had a fraction or an exponent.
            throw IntegerProblem(description: "\(value) is outside \(T.min)...\(T.max)")
        case .string(let text): magnitude = Self.digits(of: text, spelling: spelling)
        default: magnitude = nil
        }
        guard let magnitude else { throw IntegerProblem(description: spelling.expectation) }
        return try Self.value(magnitude.digits, radix: magnitude.radix, negative: magnitude.negative)
    }

    /// The digits of an integer written in a string, with the sign and radix; nil when `spelling` does not
    /// allow the way it is written.
    static func digits(of text: String, spelling: IntegerSpelling) -> (negative: Bool, digits: Substring, radix: Int)? {
        var rest = Substring(text)
        if spelling.contains(.hexString), rest.hasPrefix("0x") || rest.hasPrefix("0X") {
            rest = rest.dropFirst(2)
            let groups = rest.split(separator: "_", omittingEmptySubsequences: false)
            guard groups.count == 1 || spelling.contains(.underscores) else { return nil }
            guard groups.allSatisfy({ !$0.isEmpty && $0.utf8.allSatisfy { Hex.value(ofDigit: $0) != nil } }) else { return nil }
            return (false, Substring(groups.joined()), 16)
        }
        guard spelling.contains(.decimalString) else { return nil }
        let negative = rest.hasPrefix("-")
        if negative { rest = rest.dropFirst() }
        guard !rest.isEmpty, rest.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }) else { return nil }
        return (negative, rest, 10)
    }

    /// Digits (already checked) to `T`, refused when out of `T`'s range however many digits there are.
    static func value<T: FixedWidthInteger>(_ digits: Substring, radix: Int, negative: Bool) throws(IntegerProblem) -> T {
        let shown = (negative ? "-" : "") + (radix == 16 ? "0x" : "") + digits.prefix(40)
        let outside = IntegerProblem(description: "\(shown) is outside \(T.min)...\(T.max)")
        var value: T = 0
        for digit in digits.utf8 {
            guard let nibble = Hex.value(ofDigit: digit) else { throw outside }
            let (shifted, overflow) = value.multipliedReportingOverflow(by: T(radix))
            let (next, carry) = negative ? shifted.subtractingReportingOverflow(T(nibble)) : shifted.addingReportingOverflow(T(nibble))
            guard !overflow, !carry else { throw outside }
            value = next
        }
        return value
    }
}
