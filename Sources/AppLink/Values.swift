import HexFormat

/// The MCU's 96-bit unique device ID, bytes in the order they sit in memory at UID_BASE.
/// The host predicts the ROM's DFU serial number from it and names the unit with it.
public struct UniqueID: Sendable, Hashable, CustomStringConvertible {
    public static let byteCount = 12
    public let bytes: [UInt8]

    /// Nil unless exactly 12 bytes.
    public init?<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        guard bytes.count == Self.byteCount else { return nil }
        self.bytes = Array(bytes)
    }

    /// From 24 hex digits, as `description` prints it.
    public init?(hex text: String) {
        guard let bytes = Hex.bytes(fromHex: text, ignoringSpaces: true) else { return nil }
        self.init(bytes)
    }

    /// Upper-case hex of the 12 bytes in memory order.
    public var description: String { Hex.string(bytes) }
}

/// What the application found at the address word 8 of its vector table holds (§5.1, §6).
public enum DescriptorState: UInt8, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// Magic "DFHP", format 1, size 64.
    case valid = 0
    /// Word 8 does not point into flash at a descriptor with the magic (an image without one).
    case absent = 1
    /// The magic is there, but the format or size is one this firmware does not know.
    case unsupported = 2

    public var description: String {
        switch self {
        case .valid: "valid"
        case .absent: "absent"
        case .unsupported: "unsupported"
        }
    }
}

// MARK: - Little-endian bytes

/// The little-endian unsigned integer of `width` bytes at `offset`; the caller has checked the bounds.
func readLE(_ bytes: [UInt8], at offset: Int, width: Int) -> UInt64 {
    var value: UInt64 = 0
    for index in (0..<width).reversed() { value = value << 8 | UInt64(bytes[offset + index]) }
    return value
}

func readLE16(_ bytes: [UInt8], at offset: Int) -> UInt16 { UInt16(readLE(bytes, at: offset, width: 2)) }
func readLE32(_ bytes: [UInt8], at offset: Int) -> UInt32 { UInt32(readLE(bytes, at: offset, width: 4)) }

extension Array where Element == UInt8 {
    mutating func appendLE16(_ value: UInt16) {
        append(UInt8(value & 0xFF))
        append(UInt8(value >> 8))
    }

    mutating func appendLE32(_ value: UInt32) {
        for shift in stride(from: 0, to: 32, by: 8) { append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) }
    }
}
