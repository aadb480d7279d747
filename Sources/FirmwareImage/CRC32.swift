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

    /// Slicing-by-8 (Kounavis and Berry, "A Systematic Approach to Building High Performance Software-Based
    /// CRC Generators", 2005; zlib's crc32.c uses the same tables): `slices[k]` advances a byte through k
    /// further zero bytes, so eight bytes cost eight lookups and one register update instead of eight.
    private static let slices: [UInt32] = {
        var tables = table + [UInt32](repeating: 0, count: 7 * 256)
        for slice in 1..<8 {
            for index in 0..<256 {
                let previous = tables[(slice - 1) * 256 + index]
                tables[slice * 256 + index] = (previous >> 8) ^ table[Int(previous & 0xFF)]
            }
        }
        return tables
    }()

    private static func update(_ register: UInt32, _ bytes: UnsafeBufferPointer<UInt8>) -> UInt32 {
        var crc = register
        slices.withUnsafeBufferPointer { tables in
            let t = tables.baseAddress!
            func lookup(_ slice: Int, _ value: UInt32) -> UInt32 { t[slice &* 256 &+ Int(value & 0xFF)] }
            let raw = UnsafeRawBufferPointer(bytes)
            var offset = 0
            while offset &+ 8 <= raw.count {
                let low = crc ^ UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
                let high = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset &+ 4, as: UInt32.self))
                crc =
                    lookup(7, low) ^ lookup(6, low >> 8) ^ lookup(5, low >> 16) ^ lookup(4, low >> 24)
                    ^ lookup(3, high) ^ lookup(2, high >> 8) ^ lookup(1, high >> 16) ^ lookup(0, high >> 24)
                offset &+= 8
            }
            while offset < raw.count {
                crc = lookup(0, crc ^ UInt32(raw[offset])) ^ (crc >> 8)
                offset &+= 1
            }
        }
        return crc
    }

    /// Feeds `count` copies of `byte` in O(log count) steps, so a 4 GiB gap of 0xFF costs no more than a
    /// few thousand operations. Each byte is an affine map of the register over GF(2) (the table is linear:
    /// `register' = L(register) ^ table[byte]`), and n bytes are that map raised to the n-th power by
    /// squaring; zlib's crc32_combine uses the same idea for zeros.
    public mutating func update(repeating byte: UInt8, count: UInt64) {
        if count < 256 {
            for _ in 0..<count { register = Self.table[Int((register ^ UInt32(byte)) & 0xFF)] ^ (register >> 8) }
            return
        }
        var power = AffineMap.byte(byte)
        var result = AffineMap.identity
        var remaining = count
        while remaining > 0 {
            if remaining & 1 == 1 { result = power.after(result) }
            power = power.after(power)
            remaining >>= 1
        }
        register = result.apply(register)
    }

    /// `x -> L(x) ^ constant` over GF(2)^32; `columns[i]` is L applied to bit i.
    private struct AffineMap {
        var columns: [UInt32]
        var constant: UInt32

        static let identity = AffineMap(columns: (0..<32).map { UInt32(1) << $0 }, constant: 0)

        /// One CRC step feeding `byte`: L(x) = table[x & 0xFF] ^ (x >> 8), constant table[byte].
        static func byte(_ byte: UInt8) -> AffineMap {
            let linear = (0..<32).map { bit -> UInt32 in
                let x = UInt32(1) << bit
                return CRC32.table[Int(x & 0xFF)] ^ (x >> 8)
            }
            return AffineMap(columns: linear, constant: CRC32.table[Int(byte)])
        }

        func linear(_ value: UInt32) -> UInt32 {
            var result: UInt32 = 0
            var bits = value
            var bit = 0
            while bits != 0 {
                if bits & 1 == 1 { result ^= columns[bit] }
                bits >>= 1
                bit += 1
            }
            return result
        }

        func apply(_ value: UInt32) -> UInt32 { linear(value) ^ constant }

        /// self ∘ other: first `other`, then `self`.
        func after(_ other: AffineMap) -> AffineMap {
            AffineMap(columns: other.columns.map(linear), constant: apply(other.constant))
        }
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
