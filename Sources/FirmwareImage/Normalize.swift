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
            "segments overlap: \(first) and \(second) both hold bytes at 0x\(hex64(max(first.start, second.start)))"
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
        public var description: String { "[0x\(hex64(start)), 0x\(hex64(end)))" }
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
        // Merge touching segments and refuse overlaps, before any padding.
        var merged: [Segment] = []
        merged.reserveCapacity(sorted.count)
        for segment in sorted {
            if var last = merged.last {
                if UInt64(segment.address) < last.end {
                    throw .overlap(first: last.extent, second: segment.extent)
                }
                if UInt64(segment.address) == last.end {
                    last.bytes.append(contentsOf: segment.bytes)
                    merged[merged.count - 1] = last
                    continue
                }
            }
            merged.append(segment)
        }
        guard granularity > 1 else { return NormalizedImage(uncheckedSegments: merged, granularity: 1, entryPoint: entryPoint) }
        // Widen each segment to whole units; segments sharing a unit become one.
        let mask = UInt64(granularity - 1)
        var padded: [Segment] = []
        padded.reserveCapacity(merged.count)
        for segment in merged {
            let start = UInt64(segment.address) & ~mask
            let end = (segment.end + mask) & ~mask
            guard end <= 0x1_0000_0000 else { throw .beyondAddressSpace(segment.extent) }
            if var last = padded.last, last.end >= start {
                // The previous unit-aligned segment reaches into this one's first unit: join through the gap.
                last.bytes.append(contentsOf: repeatElement(0xFF, count: Int(UInt64(segment.address) - last.end)))
                last.bytes.append(contentsOf: segment.bytes)
                last.bytes.append(contentsOf: repeatElement(0xFF, count: Int(end - segment.end)))
                padded[padded.count - 1] = last
                continue
            }
            var bytes = [UInt8]()
            bytes.reserveCapacity(Int(end - start))
            bytes.append(contentsOf: repeatElement(0xFF, count: Int(UInt64(segment.address) - start)))
            bytes.append(contentsOf: segment.bytes)
            bytes.append(contentsOf: repeatElement(0xFF, count: Int(end - segment.end)))
            padded.append(Segment(address: UInt32(start), bytes: bytes))
        }
        return NormalizedImage(uncheckedSegments: padded, granularity: granularity, entryPoint: entryPoint)
    }
}
