import DeviceProfiles
import FirmwareImage
import HexFormat

/// Everything an upgrade will do to the flash, computed before the device is touched (docs/architecture.md:
/// "plan first"). Only the sectors the image touches are erased; the sector holding the vector table
/// (the image base) is erased and written last, and within it the block holding the vector table is
/// the very last write, so an interrupted upgrade never leaves a valid vector table in front of an
/// incomplete application (docs/guarantees.md).
public struct FlashPlan: Sendable, Hashable, Codable, CustomStringConvertible {
    /// One step, in execution order.
    public enum Step: Sendable, Hashable, Codable, CustomStringConvertible {
        case erase(FlashLayout.Sector)
        case write(Write)

        public var description: String {
            switch self {
            case .erase(let sector):
                "erase \(sector)"
            case .write(let write):
                write.description
            }
        }

        private enum CodingKeys: String, CodingKey { case action, sector, write }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            switch try container.decode(String.self, forKey: .action) {
            case "erase": self = .erase(try container.decode(FlashLayout.Sector.self, forKey: .sector))
            case "write": self = .write(try container.decode(Write.self, forKey: .write))
            case let other:
                throw DecodingError.dataCorruptedError(
                    forKey: .action, in: container,
                    debugDescription: "unknown plan step '\(other)'")
            }
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            switch self {
            case .erase(let sector):
                try container.encode("erase", forKey: .action)
                try container.encode(sector, forKey: .sector)
            case .write(let write):
                try container.encode("write", forKey: .action)
                try container.encode(write, forKey: .write)
            }
        }
    }

    /// A contiguous run of bytes: one set-address, then blocks 2, 3, ... of `transferSize` bytes.
    public struct Write: Sendable, Hashable, Codable, CustomStringConvertible {
        public var address: UInt32
        public var length: Int
        public var blockCount: Int
        /// This run holds the start of the image: the vector table.
        public var holdsVectorTable: Bool

        public var end: UInt64 { UInt64(address) + UInt64(length) }

        public var description: String {
            "write [\(Hex.word(address)), \(Hex.word(UInt32(truncatingIfNeeded: end)))) \(length) bytes in "
                + "\(blockCount) block\(blockCount == 1 ? "" : "s")" + (holdsVectorTable ? " (vector table)" : "")
        }
    }

    /// The layout the plan was made for, and its line as the device shows it (rendered).
    public let layout: FlashLayout
    public let transferSize: Int
    public let writeGranularity: Int
    /// Lowest address of the image: where the vector table sits.
    public let imageBase: UInt32
    /// The address range the image claims as its own (its descriptor's image size: gaps count, as
    /// 0xFF — protocols/image-descriptor.md); nil for an image without one, which owns its bytes only.
    /// Every sector in the span is erased unless known unchanged, and verification reads all of it back.
    public let span: Range<UInt64>?
    /// The sector holding the image base, unless it was skipped as unchanged.
    public let vectorTableSector: FlashLayout.Sector?
    public let steps: [Step]
    /// Sectors in the span that the caller reported unchanged: neither erased nor written, but read
    /// back by verification like every other byte of the span.
    public let skippedSectors: [FlashLayout.Sector]
    /// CRC-32 (zlib) of the bytes of every write, in step order: ties the plan to its image.
    public let payloadCRC32: UInt32

    public var layoutLine: String { layout.render() }
    public var erasedSectors: [FlashLayout.Sector] {
        steps.compactMap { if case .erase(let sector) = $0 { sector } else { nil } }
    }
    public var writes: [Write] {
        steps.compactMap { if case .write(let write) = $0 { write } else { nil } }
    }
    public var bytesToWrite: Int { writes.reduce(0) { $0 + $1.length } }
    public var blockCount: Int { writes.reduce(0) { $0 + $1.blockCount } }
    /// Set-address commands the plan's erases and writes need (one per erase is part of the erase command): one per
    /// write run, and one more before a run's short tail block, whose address may follow its own wLength (AN2662 §4.4.1; unsettled).
    public var setAddressCount: Int {
        writes.count + writes.filter { $0.blockCount > 1 && $0.length % transferSize != 0 }.count
    }
    /// What verification reads back, in address order: the span, plus any write outside it, adjacent
    /// ranges merged (one set-address and one ABORT per range).
    public var readBackRanges: [Range<UInt64>] {
        let ranges = ((span.map { [$0] } ?? []) + writes.map { UInt64($0.address)..<$0.end }).filter { !$0.isEmpty }
        return ranges.sorted { $0.lowerBound < $1.lowerBound }.reduce(into: []) { merged, range in
            if let last = merged.last, last.upperBound >= range.lowerBound {
                merged[merged.count - 1] = last.lowerBound..<max(last.upperBound, range.upperBound)
            } else {
                merged.append(range)
            }
        }
    }
    public var bytesToVerify: Int { readBackRanges.reduce(0) { $0 + Int($1.upperBound - $1.lowerBound) } }
    public var isEmpty: Bool { steps.isEmpty }

    /// Plans writing `image` into the memory `layout` describes, in named passes: check the image's
    /// words, find the sectors of the span, split them into erased and skipped, cut the writes, order
    /// them (vector-table sector last, its first block last of all).
    /// - Parameters:
    ///   - writeGranularity: the family's flash word (`McuFamily.writeGranularity`).
    ///   - transferSize: wTransferSize from the device's functional descriptor.
    ///   - span: the range the image owns (`NormalizedImage.span(imageSize:)`); nil: its bytes only.
    ///   - unchangedSectors: start addresses of sectors the caller believes already hold the image's bytes
    ///     (e.g. CRCs the application reported); they are neither erased nor written, only verified.
    /// - Throws: a `DfuSeError` refusal naming the address, the sector and the layout line.
    ///   - vectorSectorFirst: erase the vector-table sector before anything else (empty-check parts: an
    ///     interrupted upgrade then leaves the first word erased, and the part boots its ROM by itself).
    public init(
        image: NormalizedImage, layout: FlashLayout, writeGranularity: Int, transferSize: Int,
        span: Range<UInt64>? = nil, unchangedSectors: Set<UInt32> = [], vectorSectorFirst: Bool = false
    ) throws(DfuSeError) {
        let line = layout.render()
        guard let base = image.baseAddress, image.payloadSize > 0 else { throw .emptyImage }
        guard transferSize > 0 else { throw .invalidTransferSize(transferSize) }
        guard writeGranularity > 0, transferSize % writeGranularity == 0 else {
            throw .transferSizeNotMultipleOfGranularity(transferSize: transferSize, granularity: writeGranularity)
        }
        try Self.checkWords(of: image, granularity: writeGranularity, line: line)
        for address in unchangedSectors where layout.sector(containing: address)?.start != address {
            throw .notASectorStart(address: address, layout: line)
        }
        let touched = try Self.sectors(covering: (span.map { [$0] } ?? []) + image.segments.map(\.range), in: layout, line: line)
        let skipped = touched.filter { unchangedSectors.contains($0.start) }
        let toProgram = touched.filter { !unchangedSectors.contains($0.start) }
        try Self.checkAttributes(of: toProgram, line: line)

        self.layout = layout
        self.transferSize = transferSize
        self.writeGranularity = writeGranularity
        self.imageBase = base
        self.span = span
        self.vectorTableSector = toProgram.first { UInt64($0.start) <= UInt64(base) && UInt64(base) < $0.end }
        self.steps = Self.orderedSteps(
            image: image, erasing: toProgram, vectorSector: vectorTableSector,
            transferSize: transferSize, vectorSectorFirst: vectorSectorFirst)
        self.skippedSectors = skipped
        self.payloadCRC32 = Self.payloadCRC(of: steps, in: image)
    }

    /// Every segment starts and ends on a flash word (seed 004: a word is written exactly once).
    static func checkWords(of image: NormalizedImage, granularity: Int, line: String) throws(DfuSeError) {
        for segment in image.segments {
            if Int(segment.address % UInt32(granularity)) != 0 {
                throw .misaligned(address: segment.address, granularity: granularity, layout: line)
            }
            if segment.bytes.count % granularity != 0 {
                throw .misaligned(address: UInt32(truncatingIfNeeded: segment.end), granularity: granularity, layout: line)
            }
        }
    }

    /// The sectors any of `ranges` touches, in address order, each once; an address outside the layout
    /// is refused.
    static func sectors(covering ranges: [Range<UInt64>], in layout: FlashLayout, line: String) throws(DfuSeError)
        -> [FlashLayout.Sector]
    {
        var found: [UInt32: FlashLayout.Sector] = [:]
        for range in ranges {
            var address = range.lowerBound
            while address < range.upperBound {
                guard address <= UInt64(UInt32.max), let sector = layout.sector(containing: UInt32(address)) else {
                    throw .outsideMemory(address: UInt32(truncatingIfNeeded: address), layout: line)
                }
                found[sector.start] = sector
                address = sector.end
            }
        }
        return found.values.sorted { $0.start < $1.start }
    }

    /// An upgrade always erases, and seed 002's read-only sectors fail here, before anything is sent.
    static func checkAttributes(of sectors: [FlashLayout.Sector], line: String) throws(DfuSeError) {
        for sector in sectors where !sector.attributes.contains(.erasable) { throw .notErasable(sector, layout: line) }
        for sector in sectors where !sector.attributes.contains(.writable) { throw .notWritable(sector, layout: line) }
    }

    /// Erases and writes in execution order: every other sector first, then the vector-table sector,
    /// the rest of it, and the block at the image base last of all (docs/guarantees.md: an interrupted
    /// upgrade never leaves a valid vector table in front of an incomplete application).
    static func orderedSteps(
        image: NormalizedImage, erasing sectors: [FlashLayout.Sector], vectorSector: FlashLayout.Sector?,
        transferSize: Int, vectorSectorFirst: Bool
    ) -> [Step] {
        let vectorRange = vectorSector.map { UInt64($0.start)..<$0.end }
        var elsewhere: [Range<UInt64>] = []
        var inVectorSector: [Range<UInt64>] = []
        for segment in image.segments {
            for sector in sectors where UInt64(sector.start) < segment.end && UInt64(segment.address) < sector.end {
                let piece = max(UInt64(sector.start), UInt64(segment.address))..<min(sector.end, segment.end)
                if let vectorRange, vectorRange.contains(piece.lowerBound) {
                    appendMerging(piece, to: &inVectorSector)
                } else {
                    appendMerging(piece, to: &elsewhere)
                }
            }
        }
        func write(_ range: Range<UInt64>, vector: Bool) -> Step {
            let length = Int(range.upperBound - range.lowerBound)
            return .write(
                Write(
                    address: UInt32(range.lowerBound), length: length,
                    blockCount: (length + transferSize - 1) / transferSize, holdsVectorTable: vector))
        }
        var steps: [Step] = (vectorSectorFirst ? vectorSector.map { [.erase($0)] } ?? [] : [])
        steps += sectors.filter { $0 != vectorSector }.map { .erase($0) }
        steps += elsewhere.map { write($0, vector: false) }
        guard let vectorSector else { return steps }
        if !vectorSectorFirst { steps.append(.erase(vectorSector)) }
        guard let first = inVectorSector.first else { return steps }
        let vectorBlockEnd = min(first.upperBound, first.lowerBound + UInt64(transferSize))
        if vectorBlockEnd < first.upperBound { steps.append(write(vectorBlockEnd..<first.upperBound, vector: false)) }
        steps += inVectorSector.dropFirst().map { write($0, vector: false) }
        steps.append(write(first.lowerBound..<vectorBlockEnd, vector: true))
        return steps
    }

    /// What flash must hold in `range` after the plan: the image's bytes, 0xFF (erased) between them.
    public static func expectedBytes(in range: Range<UInt64>, of image: NormalizedImage) -> [UInt8] {
        var bytes = [UInt8](repeating: 0xFF, count: Int(range.upperBound - range.lowerBound))
        for segment in image.segments where segment.range.overlaps(range) {
            let from = max(UInt64(segment.address), range.lowerBound)
            let to = min(segment.end, range.upperBound)
            let source = Int(from - UInt64(segment.address))
            let target = Int(from - range.lowerBound)
            bytes.replaceSubrange(target..<target + Int(to - from), with: segment.bytes[source..<source + Int(to - from)])
        }
        return bytes
    }

    /// Plans with the family's write granularity.
    /// Empty-check parts erase the vector-table sector first (AN2606: a part whose first flash word is
    /// erased starts its ROM), so an interrupted upgrade brings the ROM back at the next power-on even
    /// where the BOOT0 pin cannot (G0, C0: pattern 11). Others keep the old vector table until the end.
    public init(
        image: NormalizedImage, layout: FlashLayout, family: McuFamily, transferSize: Int,
        span: Range<UInt64>? = nil, unchangedSectors: Set<UInt32> = []
    ) throws(DfuSeError) {
        try self.init(
            image: image, layout: layout, writeGranularity: family.writeGranularity,
            transferSize: transferSize, span: span, unchangedSectors: unchangedSectors,
            vectorSectorFirst: family.emptyCheck)
    }

    /// The bytes of `write` taken from `image`, or nil if the image does not hold all of them.
    static func bytes(of write: Write, in image: NormalizedImage) -> ArraySlice<UInt8>? {
        guard let segment = image.segment(containing: write.address), write.end <= segment.end else { return nil }
        let offset = Int(write.address - segment.address)
        return segment.bytes[offset..<offset + write.length]
    }

    static func payloadCRC(of steps: [Step], in image: NormalizedImage) -> UInt32 {
        var crc = CRC32()
        for case .write(let write) in steps {
            if let bytes = bytes(of: write, in: image) { crc.update(bytes) }
        }
        return crc.zlibValue
    }

    /// Checks that `image` is the one this plan was made from.
    func check(against image: NormalizedImage) throws(DfuSeError) {
        for write in writes where Self.bytes(of: write, in: image) == nil {
            throw .planDoesNotMatchImage("the image has no bytes for \(write)")
        }
        let crc = Self.payloadCRC(of: steps, in: image)
        guard crc == payloadCRC32 else {
            throw .planDoesNotMatchImage(
                "payload CRC-32 0x\(Hex.digits(crc, width: 8)) differs from the plan's 0x\(Hex.digits(payloadCRC32, width: 8))")
        }
    }

    /// The plan as a person reads it (`--dry-run`).
    public var description: String {
        var lines = ["flash plan for \(layoutLine)"]
        lines.append(
            "  image base \(Hex.word(imageBase))" + (span.map { ", span \($0.upperBound - $0.lowerBound) bytes" } ?? "") + "; "
                + "\(bytesToWrite) bytes in \(blockCount) blocks of up to "
                + "\(transferSize) bytes; flash word \(writeGranularity) bytes")
        if steps.isEmpty {
            lines.append("  nothing to do: every sector the image touches is unchanged")
        }
        for (number, step) in steps.enumerated() {
            var line = "  \(number + 1). \(step)"
            if case .erase(let sector) = step, sector == vectorTableSector { line += " (vector table sector, last)" }
            lines.append(line)
        }
        for sector in skippedSectors {
            lines.append("  skip \(sector) (reported unchanged; verified by read-back)")
        }
        lines.append(
            "  \(erasedSectors.count) sector\(erasedSectors.count == 1 ? "" : "s") erased, "
                + "\(writes.count) set-address command\(writes.count == 1 ? "" : "s"), "
                + "\(skippedSectors.count) skipped; payload CRC-32 0x\(Hex.digits(payloadCRC32, width: 8))")
        return lines.joined(separator: "\n")
    }
}

/// Appends `range`, merging it into the last range when they touch.
private func appendMerging(_ range: Range<UInt64>, to ranges: inout [Range<UInt64>]) {
    if let last = ranges.last, last.upperBound == range.lowerBound {
        ranges[ranges.count - 1] = last.lowerBound..<range.upperBound
    } else {
        ranges.append(range)
    }
}
