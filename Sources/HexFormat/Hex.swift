/// Upper-case hexadecimal, as dfuhop writes it in messages, files and JSON ("0x08004000", "0A1B"), and
/// hex digits read back into bytes. The one copy: every module formats through it.
public enum Hex {
    /// Upper-case digits without a prefix, padded with zeros to `width` ("0A", "0483"); a value that needs
    /// more digits keeps them all.
    public static func digits<T: BinaryInteger>(_ value: T, width: Int) -> String {
        let digits = String(value, radix: 16, uppercase: true)
        return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
    }

    /// A 32-bit word (an address, a CRC, a product id) as messages and JSON show it: "0x08004000".
    public static func word(_ value: UInt32) -> String { "0x" + digits(value, width: 8) }

    /// Bytes as upper-case digits without separators ("0A1B"), built in one buffer. Inlinable, so that
    /// callers get a loop specialised for their collection (kilobyte-sized blocks go through it).
    @inlinable
    public static func string<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        let digits = Array("0123456789ABCDEF".utf8)
        return String(unsafeUninitializedCapacity: bytes.count * 2) { buffer in
            var index = 0
            for byte in bytes {
                buffer[index] = digits[Int(byte >> 4)]
                buffer[index + 1] = digits[Int(byte & 0x0F)]
                index += 2
            }
            return index
        }
    }

    /// The value of one ASCII hex digit (upper or lower case), nil for any other byte.
    @inlinable
    public static func value(ofDigit character: UInt8) -> UInt8? {
        switch character {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): character - UInt8(ascii: "0")
        case UInt8(ascii: "A")...UInt8(ascii: "F"): character - UInt8(ascii: "A") + 10
        case UInt8(ascii: "a")...UInt8(ascii: "f"): character - UInt8(ascii: "a") + 10
        default: nil
        }
    }

    /// Bytes from hex digits (upper or lower case); nil for an odd count or a non-hex digit. With
    /// `ignoringSpaces`, spaces may stand anywhere ("3F 01 42", as profiles and the UID in messages write them).
    public static func bytes<S: StringProtocol>(fromHex text: S, ignoringSpaces: Bool = false) -> [UInt8]? {
        ignoringSpaces ? bytes(fromHexDigits: text.utf8.filter { $0 != UInt8(ascii: " ") }) : bytes(fromHexDigits: text.utf8)
    }

    /// Bytes from ASCII hex digits given as bytes (e.g. a slice of a line read from a pipe). Inlinable, as
    /// `string`.
    @inlinable
    public static func bytes<C: Collection>(fromHexDigits digits: C) -> [UInt8]? where C.Element == UInt8 {
        guard digits.count % 2 == 0 else { return nil }
        var result = [UInt8]()
        result.reserveCapacity(digits.count / 2)
        var high: UInt8?
        for digit in digits {
            guard let nibble = value(ofDigit: digit) else { return nil }
            if let first = high {
                result.append(first << 4 | nibble)
                high = nil
            } else {
                high = nibble
            }
        }
        return result
    }
}
