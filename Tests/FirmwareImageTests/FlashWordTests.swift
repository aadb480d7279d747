import PropertyBased
import Testing

@testable import FirmwareImage

/// Files dfuhop writes are padded to flash words so no client writes a word twice (issue 25, seed 004).
@Suite("Flash-word padding", .timeLimit(.minutes(10)))
struct FlashWordTests {
    static let l476 = FlashWordRule(wordSize: 8, partName: "STM32L476", regions: [0x0800_0000...0x080F_FFFF])

    /// The HEX of issue 25: 0x7F3 bytes at 0x08003000 and 0x2001 bytes at 0x08006001.
    static let gapped = FirmwareImage(
        format: .intelHex,
        segments: [
            Segment(address: 0x0800_6001, bytes: (0..<0x2001).map { UInt8(truncatingIfNeeded: $0 * 7 + 1) }),
            Segment(address: 0x0800_3000, bytes: (0..<0x7F3).map { UInt8(truncatingIfNeeded: $0 * 3 + 2) })
        ])

    @Test func gappedImageGetsWholeEightByteWordsOnL476() throws {
        let (padded, summary) = try Self.gapped.paddedToFlashWords(Self.l476)
        #expect(
            padded.segments.map(\.extent) == [
                Segment.Extent(start: 0x0800_3000, end: 0x0800_37F8), Segment.Extent(start: 0x0800_6000, end: 0x0800_8008)
            ])
        // 5 bytes after the first, 1 before and 6 after the second.
        #expect(summary.paddedBytes == 12 && summary.segmentsBefore == 2 && summary.segmentsAfter == 2)
        #expect(summary.unaligned.count == 2 && summary.sharedWords.isEmpty)
    }

    @Test func withoutAPartTheLargestWordIsUsed() throws {
        let (padded, summary) = try Self.gapped.paddedToFlashWords(.anySTM32)
        #expect(
            padded.segments.map(\.extent) == [
                Segment.Extent(start: 0x0800_3000, end: 0x0800_3800), Segment.Extent(start: 0x0800_6000, end: 0x0800_8020)
            ])
        #expect(summary.paddedBytes == 13 + 1 + 30 && summary.rule.wordSize == 32)
        #expect(summary.rule.wordDescription == "32-byte flash word (the largest on any STM32)")
    }

    @Test func segmentsSharingAWordAreNamedAndBecomeOneElement() throws {
        let image = FirmwareImage(
            format: .intelHex,
            segments: [Segment(address: 0x0800_0000, bytes: [1, 2, 3]), Segment(address: 0x0800_0005, bytes: [4, 5])])
        let (padded, summary) = try image.paddedToFlashWords(Self.l476)
        #expect(padded.segments == [Segment(address: 0x0800_0000, bytes: [1, 2, 3, 0xFF, 0xFF, 4, 5, 0xFF])])
        #expect(
            summary.sharedWords == [
                SharedFlashWord(
                    word: 0x0800_0000, first: Segment.Extent(start: 0x0800_0000, end: 0x0800_0003),
                    second: Segment.Extent(start: 0x0800_0005, end: 0x0800_0007))
            ])
    }

    @Test func bytesOutsideTheFlashKeepTheirExactExtent() throws {
        // Option bytes (another target, or another region) are never widened: their size is the ROM's.
        let image = FirmwareImage(
            format: .dfuse,
            targets: [
                ImageTarget(alternateSetting: 0, segments: [Segment(address: 0x0800_0001, bytes: [1])]),
                ImageTarget(alternateSetting: 1, segments: [Segment(address: 0x1FFF_7800, bytes: [0xAA, 0xF8, 0xFF, 0xFF, 0x55])])
            ])
        let (padded, _) = try image.paddedToFlashWords(.anySTM32)
        #expect(padded.targets[0].segments[0].extent == Segment.Extent(start: 0x0800_0000, end: 0x0800_0020))
        #expect(padded.targets[1] == image.targets[1])
    }

    @Test func overlapsAreStillRefused() {
        let image = FirmwareImage(
            format: .intelHex, segments: [Segment(address: 0x0800_0000, bytes: [1, 2, 3, 4]), Segment(address: 0x0800_0002, bytes: [9])])
        #expect(throws: NormalizationError.self) { try image.paddedToFlashWords(Self.l476) }
    }

    /// Sparse images in the flash, word sizes of every STM32 (2 to 32 bytes).
    static let layouts = zip(
        Gen.uint32(in: 0x0800_0000...0x0810_0000),
        zip(Gen.int(in: 0...80), Gen.uint8().array(of: 1...90)).array(of: 1...8),
        Gen.int(in: 1...5))

    @Test func everyElementIsWholeWordsNoWordIsSharedAndEveryByteKept() async {
        await propertyCheck(count: 200, input: Self.layouts) { base, runs, power in
            var address = UInt64(base)
            var segments: [Segment] = []
            for (gap, bytes) in runs {
                address += UInt64(gap)
                segments.append(Segment(address: UInt32(address), bytes: bytes))
                address += UInt64(bytes.count)
            }
            let rule = FlashWordRule(wordSize: 1 << power, partName: nil, regions: [FlashWordRule.stm32FlashRegion])
            let (padded, summary) = try FirmwareImage(format: .intelHex, segments: segments.shuffled()).paddedToFlashWords(rule)
            let output = padded.segments
            #expect(output.allSatisfy { $0.isAligned(to: rule.wordSize) })
            #expect(FirmwareImage.sharedFlashWords(output, rule: rule).isEmpty)
            for (previous, next) in zip(output, output.dropFirst()) { #expect(previous.end < UInt64(next.address)) }
            let flat = try FirmwareImage.normalize(output, granularity: 1, entryPoint: nil)
            for segment in segments {
                for (offset, byte) in segment.bytes.enumerated() { #expect(flat.byte(at: segment.address + UInt32(offset)) == byte) }
            }
            // Whatever was added is erased flash, and only what whole words need.
            let original = try FirmwareImage.normalize(segments, granularity: 1, entryPoint: nil)
            for segment in output {
                for (offset, byte) in segment.bytes.enumerated() where original.byte(at: segment.address + UInt32(offset)) == nil {
                    #expect(byte == 0xFF)
                }
            }
            #expect(summary.paddedBytes == padded.payloadSize - original.payloadSize)
            #expect(summary.paddedBytes < 2 * rule.wordSize * segments.count)
            // dfuhop's own output needs nothing more: converting it again changes nothing.
            let (again, second) = try padded.paddedToFlashWords(rule)
            #expect(again == padded && !second.changed && second.unalignedCount == 0 && second.sharedWordCount == 0)
        }
    }
}
