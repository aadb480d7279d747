import FirmwareImage

/// Builders for test images: small, explicit, and each byte accounted for.
enum Sample {
    static let flashBase: UInt32 = 0x0800_0000

    /// A Cortex-M image at `base`: vector table (SP, reset handler, word 8 = descriptor address or 0),
    /// a zeroed descriptor area at base + 0x100 when `reserveDescriptor`, and code up to `size` bytes.
    static func application(
        base: UInt32 = flashBase, stackPointer: UInt32 = 0x2002_0000, resetOffset: UInt32 = 0x201,
        reserveDescriptor: Bool = true, size: Int = 0x300
    ) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: size)
        put(stackPointer, at: 0, in: &bytes)
        put(base &+ resetOffset, at: 4, in: &bytes)
        put(reserveDescriptor ? base + 0x100 : 0, at: 0x20, in: &bytes)
        for index in 0x200..<size { bytes[index] = UInt8(truncatingIfNeeded: index * 7 + 3) }
        return bytes
    }

    static func image(_ bytes: [UInt8], at base: UInt32 = flashBase, format: ImageFormat = .binary) -> FirmwareImage {
        FirmwareImage(format: format, segments: [Segment(address: base, bytes: bytes)])
    }

    static func put(_ value: UInt32, at offset: Int, in bytes: inout [UInt8]) {
        for index in 0..<4 { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(index))) }
    }

    static func le32(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * UInt32($0))) } }
    static func le16(_ value: UInt16) -> [UInt8] { [UInt8(truncatingIfNeeded: value), UInt8(value >> 8)] }

    /// A minimal ELF32 little-endian ARM executable with the given program headers
    /// (type, physical address, file bytes, memory size).
    static func elf(
        entry: UInt32, segments: [(type: UInt32, paddr: UInt32, data: [UInt8], memsz: UInt32)],
        machine: UInt16 = 40, elfClass: UInt8 = 1, data: UInt8 = 1, type: UInt16 = 2
    ) -> [UInt8] {
        var header: [UInt8] = [0x7F, 0x45, 0x4C, 0x46, elfClass, data, 1, 0] + [UInt8](repeating: 0, count: 8)
        let phoff: UInt32 = 52
        header += le16(type) + le16(machine) + le32(1) + le32(entry) + le32(phoff) + le32(0) + le32(0x0500_0200)
        header += le16(52) + le16(32) + le16(UInt16(segments.count)) + le16(40) + le16(0) + le16(0)
        var offset = UInt32(52 + 32 * segments.count)
        var table: [UInt8] = []
        var payload: [UInt8] = []
        for segment in segments {
            table += le32(segment.type) + le32(offset) + le32(segment.paddr) + le32(segment.paddr)
            table += le32(UInt32(segment.data.count)) + le32(segment.memsz) + le32(5) + le32(4)
            payload += segment.data
            offset += UInt32(segment.data.count)
        }
        return header + table + payload
    }

    static func ascii(_ text: String) -> [UInt8] { Array(text.utf8) }
}

extension FirmwareImage {
    /// The normalised segments (granularity 1): what two equivalent images must agree on.
    func canonicalSegments() throws -> [Segment] { try normalized(granularity: 1).segments }
}
