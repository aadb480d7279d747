/// CRC-32 with the reflected polynomial 0xEDB88320 (zlib, PNG, Ethernet).
public struct CRC32: Sendable {
    private static let table: [UInt32] = (0..<256).map { index in
        var value = UInt32(index)
        for _ in 0..<8 { value = value & 1 != 0 ? (value >> 1) ^ 0xEDB8_8320 : value >> 1 }
        return value
    }

    /// The running register, before the final XOR.
    public private(set) var register: UInt32 = 0xFFFF_FFFF

    public init() {}

    public mutating func update<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        var crc = register
        // Contiguous bytes (arrays, slices) take the loop over a buffer, not the generic iterator.
        if bytes.withContiguousStorageIfAvailable({ crc = Self.update(crc, $0) }) == nil {
            crc = Array(bytes).withUnsafeBufferPointer { Self.update(crc, $0) }
        }
        register = crc
    }

    private static func update(_ register: UInt32, _ bytes: UnsafeBufferPointer<UInt8>) -> UInt32 {
        var crc = register
        table.withUnsafeBufferPointer { table in
            for byte in bytes { crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        }
        return crc
    }

    /// zlib's crc32(): final XOR with 0xFFFFFFFF ("123456789" → 0xCBF43926).
    public var zlibValue: UInt32 { ~register }
    /// The DFU suffix dwCRC: no final XOR ("123456789" → 0x340BC6D9; DFU 1.1 Appendix B).
    public var dfuValue: UInt32 { register }

    public static func zlib<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 {
        var crc = CRC32()
        crc.update(bytes)
        return crc.zlibValue
    }

    public static func dfu<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 {
        var crc = CRC32()
        crc.update(bytes)
        return crc.dfuValue
    }
}
