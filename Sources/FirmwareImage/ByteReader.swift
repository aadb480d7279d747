/// Bounds-checked little-endian reads from a binary file, every failure naming the byte offset.
struct ByteReader {
    let bytes: [UInt8]
    let file: String

    /// Checks that `count` bytes from `offset` lie inside the file (64-bit arithmetic: no overflow).
    func require(_ offset: Int, _ count: Int, _ what: @autoclosure () -> String) throws(ImageError) {
        guard offset >= 0, count >= 0, UInt64(offset) + UInt64(count) <= UInt64(bytes.count) else {
            throw ImageError(
                file: file, at: .byteOffset(offset),
                "\(what()) needs \(count) bytes here, the file has \(max(0, bytes.count - offset)) left; is it truncated?")
        }
    }

    func u8(_ offset: Int) -> UInt8 { bytes[offset] }

    func u16(_ offset: Int) -> UInt16 { UInt16(bytes[offset]) | UInt16(bytes[offset + 1]) << 8 }

    func u32(_ offset: Int) -> UInt32 {
        UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8 | UInt32(bytes[offset + 2]) << 16 | UInt32(bytes[offset + 3]) << 24
    }

    func matches(_ offset: Int, _ text: String) -> Bool {
        let expected = Array(text.utf8)
        guard offset >= 0, offset + expected.count <= bytes.count else { return false }
        return bytes[offset..<offset + expected.count].elementsEqual(expected)
    }
}

extension Array where Element == UInt8 {
    mutating func appendLE(_ value: UInt16) {
        append(UInt8(truncatingIfNeeded: value))
        append(UInt8(truncatingIfNeeded: value >> 8))
    }

    mutating func appendLE(_ value: UInt32) {
        for shift in stride(from: 0, to: 32, by: 8) { append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) }
    }
}

/// Reads a little-endian u32 from any byte collection at an index offset (for descriptors in memory).
func littleEndianU32<C: RandomAccessCollection<UInt8>>(_ bytes: C, _ offset: Int) -> UInt32 {
    let start = bytes.index(bytes.startIndex, offsetBy: offset)
    var value: UInt32 = 0
    for (shift, byte) in bytes[start..<bytes.index(start, offsetBy: 4)].enumerated() { value |= UInt32(byte) << UInt32(8 * shift) }
    return value
}

func littleEndianU16<C: RandomAccessCollection<UInt8>>(_ bytes: C, _ offset: Int) -> UInt16 {
    let start = bytes.index(bytes.startIndex, offsetBy: offset)
    return UInt16(bytes[start]) | UInt16(bytes[bytes.index(after: start)]) << 8
}
