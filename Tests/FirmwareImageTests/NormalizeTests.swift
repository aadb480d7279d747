import Testing

@testable import FirmwareImage

@Suite("Normalisation")
struct NormalizeTests {
    func normalize(_ segments: [Segment], _ granularity: Int = 1) throws(NormalizationError) -> [Segment] {
        try FirmwareImage.normalize(segments, granularity: granularity, entryPoint: nil).segments
    }

    @Test func sortsAndMergesAdjacentSegmentsAndDropsEmptyOnes() throws {
        let result = try normalize([
            Segment(address: 0x104, bytes: [5, 6]), Segment(address: 0x100, bytes: [1, 2, 3, 4]),
            Segment(address: 0x200, bytes: []), Segment(address: 0x300, bytes: [9])
        ])
        #expect(result == [Segment(address: 0x100, bytes: [1, 2, 3, 4, 5, 6]), Segment(address: 0x300, bytes: [9])])
    }

    @Test func overlapsAreRefusedNamingBothRanges() {
        let error = #expect(throws: NormalizationError.self) {
            try normalize([
                Segment(address: 0x0800_0000, bytes: [UInt8](repeating: 0, count: 16)),
                Segment(address: 0x0800_000C, bytes: [1, 2, 3, 4, 5, 6])
            ])
        }
        #expect(
            error
                == .overlap(
                    first: Segment.Extent(start: 0x0800_0000, end: 0x0800_0010),
                    second: Segment.Extent(start: 0x0800_000C, end: 0x0800_0012)))
        #expect(
            error?.description == "segments overlap: [0x08000000, 0x08000010) and [0x0800000C, 0x08000012) both hold bytes at 0x0800000C")
    }

    @Test func padsEachSegmentToWholeWriteUnitsWithErasedBytes() throws {
        // Seed 004: on L4/G4 a 6-byte segment at 0x...03 must become one or two whole 8-byte words.
        let result = try normalize([Segment(address: 0x0800_0003, bytes: [1, 2, 3, 4, 5, 6])], 8)
        #expect(
            result == [Segment(address: 0x0800_0000, bytes: [0xFF, 0xFF, 0xFF, 1, 2, 3, 4, 5, 6, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])]
        )
    }

    @Test func segmentsSharingAWriteUnitBecomeOneSoNoWordIsWrittenTwice() throws {
        let result = try normalize(
            [
                Segment(address: 0x10, bytes: [1, 2]), Segment(address: 0x1C, bytes: [3]),
                Segment(address: 0x40, bytes: [4])
            ], 32)
        #expect(result.count == 2)
        #expect(result[0].address == 0 && result[0].bytes.count == 32)
        #expect(result[0].bytes[0x10] == 1 && result[0].bytes[0x11] == 2 && result[0].bytes[0x1C] == 3)
        #expect(result[0].bytes.enumerated().allSatisfy { [0x10, 0x11, 0x1C].contains($0.offset) || $0.element == 0xFF })
        #expect(result[1] == Segment(address: 0x40, bytes: [4] + [UInt8](repeating: 0xFF, count: 31)))
    }

    @Test func noTwoOutputSegmentsTouchTheSameWriteUnit() throws {
        // A small exhaustive sweep of positions and lengths for the H7's 32-byte flash word.
        for first in 0..<40 {
            for gap in 0..<40 {
                let a = Segment(address: UInt32(first), bytes: [UInt8](repeating: 1, count: 3))
                let b = Segment(address: UInt32(first + 3 + gap), bytes: [2, 2])
                let result = try normalize([b, a], 32)
                for segment in result {
                    #expect(segment.address % 32 == 0 && segment.bytes.count % 32 == 0)
                }
                for (x, y) in zip(result, result.dropFirst()) { #expect(x.end < UInt64(y.address)) }
                let payload = result.flatMap(\.bytes).filter { $0 != 0xFF }
                #expect(payload == [1, 1, 1, 2, 2])
            }
        }
    }

    @Test func alreadyAlignedSegmentsAreKeptAsTheyAre() throws {
        let segment = Segment(address: 0x0800_0000, bytes: [UInt8](repeating: 7, count: 64))
        #expect(try normalize([segment], 32) == [segment])
    }

    @Test func paddingReachesTheTopOfTheAddressSpaceButNothingRunsPastIt() throws {
        let top = try normalize([Segment(address: 0xFFFF_FFFE, bytes: [1])], 8)
        #expect(top == [Segment(address: 0xFFFF_FFF8, bytes: [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 0xFF])])
        #expect(throws: NormalizationError.beyondAddressSpace(Segment.Extent(start: 0xFFFF_FFFF, end: 0x1_0000_0001))) {
            try normalize([Segment(address: 0xFFFF_FFFF, bytes: [1, 2])], 1)
        }
    }

    @Test func normalizedImageReadsWordsBytesAndGaps() throws {
        let image = try FirmwareImage.normalize(
            [Segment(address: 0x100, bytes: [1, 2, 3, 4]), Segment(address: 0x108, bytes: [9])],
            granularity: 1, entryPoint: nil)
        #expect(image.word(at: 0x100) == 0x0403_0201)
        #expect(image.word(at: 0x102) == nil)
        #expect(image.byte(at: 0x106) == nil)
        #expect(image.byte(at: 0x108) == 9)
        #expect(image.flattened() == [1, 2, 3, 4, 0xFF, 0xFF, 0xFF, 0xFF, 9])
        #expect(image.read(0x102, count: 7) == [3, 4, 0xFF, 0xFF, 0xFF, 0xFF, 9])
        #expect(image.read(0x102, count: 8) == nil)
        #expect(image.read(0xFF, count: 1) == nil)
    }
}
