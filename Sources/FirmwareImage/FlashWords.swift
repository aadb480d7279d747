import HexFormat

/// The flash word files dfuhop writes are padded to, so that no client (dfu-util, pydfu, a programmer)
/// can write one word twice: every element starts and ends on a word, and elements never share one
/// (seed 004: an ECC word written twice on an L476). Applied only inside `regions` (main flash), so
/// option bytes, OTP or RAM targets keep their exact bytes.
public struct FlashWordRule: Sendable, Hashable {
    /// Bytes per flash word (a power of two).
    public var wordSize: Int
    /// The part it comes from, for messages; nil when no part is known.
    public var partName: String?
    /// Where words apply: segments starting inside these ranges are padded.
    public var regions: [ClosedRange<UInt32>]

    public init(wordSize: Int, partName: String?, regions: [ClosedRange<UInt32>]) {
        precondition(wordSize > 0 && wordSize & (wordSize - 1) == 0, "a flash word is a power of two")
        self.wordSize = wordSize
        self.partName = partName
        self.regions = regions
    }

    /// STM32 main flash and its aliases (0x0800_0000, and 0x0C00_0000 secure on H5/U5/L5) up to the system memory.
    public static let stm32FlashRegion: ClosedRange<UInt32> = 0x0800_0000...0x0FFF_FFFF
    /// The largest STM32 flash word: 256 bits on H74x/H75x (RM0433; protocols/families/h753.json).
    public static let largestSTM32Word = 32
    /// When the part is not known: the largest word, over the STM32 flash region.
    public static let anySTM32 = FlashWordRule(wordSize: largestSTM32Word, partName: nil, regions: [stm32FlashRegion])

    /// "8-byte flash word of STM32L476" or "32-byte flash word (the largest on any STM32)".
    public var wordDescription: String {
        partName.map { "\(wordSize)-byte flash word of \($0)" } ?? "\(wordSize)-byte flash word (the largest on any STM32)"
    }

    public func applies(to segment: Segment) -> Bool {
        regions.contains { $0.contains(segment.address) }
    }
}

/// Two segments of an image that hold bytes of one flash word: a client that writes them separately
/// writes that word twice.
public struct SharedFlashWord: Sendable, Hashable, CustomStringConvertible {
    public var word: UInt32
    public var first: Segment.Extent
    public var second: Segment.Extent

    public var description: String { "\(first) and \(second) share the word at 0x\(Hex.digits(word, width: 8))" }
}

/// What `paddedToFlashWords` did to one image, for the command to say.
public struct FlashWordPadding: Sendable, Hashable {
    public var rule: FlashWordRule
    public var segmentsBefore: Int
    public var segmentsAfter: Int
    /// 0xFF bytes added (inside words the image touched only in part).
    public var paddedBytes: Int
    /// Pairs of input segments that shared a word (now merged into one element): the first `namedLimit`.
    public var sharedWords: [SharedFlashWord]
    public var sharedWordCount = 0
    /// Input segments in the flash that started or ended off a word (now widened): the first `namedLimit`.
    public var unaligned: [Segment.Extent]
    public var unalignedCount = 0

    /// How many of each are named (a file of 100,000 stray records costs no list of them).
    public static let namedLimit = 8

    public var changed: Bool { paddedBytes > 0 || segmentsBefore != segmentsAfter }
}

extension FirmwareImage {
    /// Every target's segments merged where they touch, overlaps refused, and those in `rule.regions`
    /// widened to whole words with 0xFF (segments sharing a word become one): the same `normalize` the
    /// upgrade uses before a device sees the image.
    public func paddedToFlashWords(_ rule: FlashWordRule) throws(NormalizationError) -> (FirmwareImage, FlashWordPadding) {
        var padded = self
        var summary = FlashWordPadding(rule: rule, segmentsBefore: 0, segmentsAfter: 0, paddedBytes: 0, sharedWords: [], unaligned: [])
        for index in padded.targets.indices {
            let input = padded.targets[index].segments
            let merged = try Self.normalize(input, granularity: 1, entryPoint: nil).segments
            // Usually every segment is in the flash: then no copies of the segment list are made.
            let allFlash = merged.allSatisfy(rule.applies)
            let flash = allFlash ? merged : merged.filter(rule.applies)
            let other = allFlash ? [] : merged.filter { !rule.applies(to: $0) }
            let words = try Self.normalize(flash, granularity: rule.wordSize, entryPoint: nil).segments
            let output = other.isEmpty ? words : (words + other).sorted { $0.address < $1.address }
            summary.segmentsBefore += input.filter { !$0.bytes.isEmpty }.count
            summary.segmentsAfter += output.count
            summary.paddedBytes += words.reduce(0) { $0 + $1.bytes.count } - flash.reduce(0) { $0 + $1.bytes.count }
            Self.forEachSharedWord(merged, rule: rule) { shared in
                if summary.sharedWords.count < FlashWordPadding.namedLimit { summary.sharedWords.append(shared) }
                summary.sharedWordCount += 1
                return true
            }
            for segment in flash where !segment.isAligned(to: rule.wordSize) {
                if summary.unalignedCount < FlashWordPadding.namedLimit { summary.unaligned.append(segment.extent) }
                summary.unalignedCount += 1
            }
            padded.targets[index].segments = output
        }
        return (padded, summary)
    }

    /// Neighbouring segments in `rule.regions` that hold bytes of one word; `segments` sorted and merged where
    /// they touch (as `normalize` leaves them). Neighbours suffice: a word two segments share holds every
    /// segment between them too. At most `limit` (a file of 100,000 stray records costs no list of them).
    public static func sharedFlashWords(_ segments: [Segment], rule: FlashWordRule, limit: Int = .max) -> [SharedFlashWord] {
        var found: [SharedFlashWord] = []
        forEachSharedWord(segments, rule: rule) { shared in
            found.append(shared)
            return found.count < limit
        }
        return found
    }

    /// Calls `body` for each shared word (see `sharedFlashWords`) until it returns false.
    static func forEachSharedWord(_ segments: [Segment], rule: FlashWordRule, _ body: (SharedFlashWord) -> Bool) {
        let mask = ~UInt64(rule.wordSize - 1)
        var last: Segment?
        for next in segments where !next.bytes.isEmpty && rule.applies(to: next) {
            if let previous = last, next.end > previous.end, (previous.end - 1) & mask == UInt64(next.address) & mask {
                let shared = SharedFlashWord(word: UInt32(UInt64(next.address) & mask), first: previous.extent, second: next.extent)
                guard body(shared) else { return }
            }
            last = next
        }
    }
}

extension Segment {
    /// Whether the segment starts and ends on a boundary of `wordSize`.
    public func isAligned(to wordSize: Int) -> Bool {
        let mask = UInt64(wordSize - 1)
        return UInt64(address) & mask == 0 && end & mask == 0
    }
}
