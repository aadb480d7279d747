import HexFormat

/// An image ready for a device: segments sorted, adjacent ones merged, overlaps refused, and every
/// segment widened to whole write units filled with 0xFF, so that no flash word is ever written
/// twice (ECC flash on L4/G4/H7 faults on a second write — seed 004).
public struct NormalizedImage: Sendable, Hashable {
    public let segments: [Segment]
    public let granularity: Int
    public let entryPoint: UInt32?

    /// Lowest address, or nil for an empty image.
    public var baseAddress: UInt32? { segments.first?.address }
    public var end: UInt64 { segments.last?.end ?? 0 }
    public var payloadSize: Int { segments.reduce(0) { $0 + $1.bytes.count } }

    /// The byte at `address`, or nil in a gap.
    public func byte(at address: UInt32) -> UInt8? {
        guard let segment = segment(containing: address) else { return nil }
        return segment.bytes[Int(address - segment.address)]
    }

    /// The segment holding `address` (binary search).
    public func segment(containing address: UInt32) -> Segment? {
        var low = 0
        var high = segments.count
        while low < high {
            let mid = (low + high) / 2
            if segments[mid].end <= UInt64(address) { low = mid + 1 } else { high = mid }
        }
        guard low < segments.count, segments[low].address <= address else { return nil }
        return segments[low]
    }

    /// The little-endian 32-bit word at `address`, if all four bytes are in the image.
    public func word(at address: UInt32) -> UInt32? {
        guard let segment = segment(containing: address), UInt64(address) + 4 <= segment.end else { return nil }
        let offset = Int(address - segment.address)
        return segment.bytes[offset..<offset + 4].reversed().reduce(0) { $0 << 8 | UInt32($1) }
    }

    /// Bytes from the base to the end, gaps as 0xFF (the flat view a CRC or a raw binary uses).
    public func flattened(fill: UInt8 = 0xFF) -> [UInt8] {
        guard let base = baseAddress else { return [] }
        var flat = [UInt8](repeating: fill, count: Int(end - UInt64(base)))
        for segment in segments {
            let offset = Int(segment.address - base)
            flat.replaceSubrange(offset..<offset + segment.bytes.count, with: segment.bytes)
        }
        return flat
    }

    /// Builds a normalised image from already-checked parts (used by readers of flat formats).
    public init(uncheckedSegments segments: [Segment], granularity: Int, entryPoint: UInt32?) {
        self.segments = segments
        self.granularity = granularity
        self.entryPoint = entryPoint
    }
}

/// Why an image cannot be normalised.
public enum NormalizationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Two segments claim the same bytes; both ranges named.
    case overlap(first: Segment.Extent, second: Segment.Extent)
    /// Widening to the write granularity would run past the 4 GiB address space.
    case beyondAddressSpace(Segment.Extent)

    public var description: String {
        switch self {
        case .overlap(let first, let second):
            "segments overlap: \(first) and \(second) both hold bytes at 0x\(Hex.digits(min(max(first.start, second.start), 1 << 32), width: 8))"
        case .beyondAddressSpace(let range):
            "segment \(range) runs past the end of the 32-bit address space"
        }
    }
}

extension Segment {
    /// A segment's extent, for messages.
    public struct Extent: Sendable, Hashable, CustomStringConvertible {
        public var start: UInt64
        public var end: UInt64
        public var description: String { "[0x\(Hex.digits(min(start, 1 << 32), width: 8)), 0x\(Hex.digits(min(end, 1 << 32), width: 8)))" }
    }

    public var extent: Extent { Extent(start: UInt64(address), end: end) }
}

extension FirmwareImage {
    /// Normalises the internal-flash target (see `NormalizedImage`). `granularity` must be a power of two.
    public func normalized(granularity: Int = 1) throws(NormalizationError) -> NormalizedImage {
        try Self.normalize(segments, granularity: granularity, entryPoint: entryPoint)
    }

    public static func normalize(_ input: [Segment], granularity: Int, entryPoint: UInt32?) throws(NormalizationError) -> NormalizedImage {
        precondition(granularity > 0 && granularity & (granularity - 1) == 0, "write granularity must be a power of two")
        let sorted = input.filter { !$0.bytes.isEmpty }.sorted { $0.address < $1.address }
        // Refuse overlaps before any padding: two segments claiming one byte is a broken image.
        for (previous, next) in zip(sorted, sorted.dropFirst()) where UInt64(next.address) < previous.end {
            throw .overlap(first: previous.extent, second: next.extent)
        }
        // Group segments that touch or share a write unit; each group becomes one unit-aligned segment.
        let mask = UInt64(granularity - 1)
        var result: [Segment] = []
        result.reserveCapacity(sorted.count)
        var groupStart = 0
        while groupStart < sorted.count {
            let start = UInt64(sorted[groupStart].address) & ~mask
            var end = (sorted[groupStart].end + mask) & ~mask
            guard end <= 0x1_0000_0000 else { throw .beyondAddressSpace(sorted[groupStart].extent) }
            var groupEnd = groupStart + 1
            while groupEnd < sorted.count, UInt64(sorted[groupEnd].address) & ~mask <= end {
                end = (sorted[groupEnd].end + mask) & ~mask
                guard end <= 0x1_0000_0000 else { throw .beyondAddressSpace(sorted[groupEnd].extent) }
                groupEnd += 1
            }
            let first = sorted[groupStart]
            if groupEnd == groupStart + 1 && UInt64(first.address) == start && first.end == end {
                result.append(first) // Already whole units: share its storage, copy nothing.
            } else {
                var bytes = [UInt8]()
                bytes.reserveCapacity(Int(end - start))
                var position = start
                for segment in sorted[groupStart..<groupEnd] {
                    bytes.append(contentsOf: repeatElement(0xFF, count: Int(UInt64(segment.address) - position)))
                    bytes.append(contentsOf: segment.bytes)
                    position = segment.end
                }
                bytes.append(contentsOf: repeatElement(0xFF, count: Int(end - position)))
                result.append(Segment(address: UInt32(start), bytes: bytes))
            }
            groupStart = groupEnd
        }
        return NormalizedImage(uncheckedSegments: result, granularity: granularity, entryPoint: entryPoint)
    }
}
