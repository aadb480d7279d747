import DeviceProfiles
import FirmwareImage
import Testing
import USBTransport

@testable import DfuSe

/// Issue 26: what verification reads back, and that every byte of it counts. The read-back covers the
/// image's whole span (its gaps, and sectors skipped as unchanged), not only the bytes written, and a
/// wrong byte fails it wherever it is, 0xFF gap bytes included.
@Suite("DfuSe read-back covers the span and judges every byte")
struct ReadBackTests {
    let f407 = McuFamily.f407.defaultFlashMode.layout

    /// Two segments with a gap (0x0800_1800..<0x0800_9000), a span that runs 0x1000 past the last one.
    func gappedImage() throws -> (NormalizedImage, Range<UInt64>) {
        let firmware = try image([(0x0800_0000, 6 * 1024), (0x0800_9000, 2 * 1024)], granularity: 4)
        return (firmware, 0x0800_0000..<0x0800_A800)
    }

    @Test("readBackRanges is the whole span, gaps and skipped sectors included, not only the writes")
    func readBackRangesCoverTheSpan() throws {
        let (firmware, span) = try gappedImage()
        let plan = try FlashPlan(image: firmware, layout: f407, family: .f407, transferSize: 2048, span: span)
        #expect(plan.readBackRanges == [span])
        #expect(plan.bytesToVerify == 0xA800)
        let skipping = try FlashPlan(
            image: firmware, layout: f407, family: .f407, transferSize: 2048, span: span, unchangedSectors: [0x0800_4000, 0x0800_8000])
        #expect(skipping.skippedSectors.map(\.start) == [0x0800_4000, 0x0800_8000])
        #expect(!skipping.writes.contains { $0.end > 0x0800_4000 }, "nothing is written in the skipped sectors")
        #expect(skipping.readBackRanges == [span], "the skipped sectors are read back with the rest of the span")
    }

    @Test("without a span, readBackRanges are the writes, adjacent ones merged, in address order")
    func readBackRangesWithoutSpan() throws {
        let (firmware, _) = try gappedImage()
        let plan = try FlashPlan(image: firmware, layout: f407, family: .f407, transferSize: 2048)
        #expect(plan.readBackRanges == [0x0800_0000..<0x0800_1800, 0x0800_9000..<0x0800_9800])
    }

    /// A worn cell in the span that no segment covers: it keeps `value` through the erase.
    struct WornGapCell: Sendable, CustomTestStringConvertible {
        let place: String
        let address: UInt32
        let value: UInt8
        /// The index of the F407 sector holding `address`, which the mismatch names.
        let sector: Int
        var testDescription: String { place }
    }

    static let wornGapCells = [
        WornGapCell(place: "in the gap between the segments", address: 0x0800_2345, value: 0x00, sector: 0),
        WornGapCell(place: "in the span's tail, past the last write", address: 0x0800_A7FF, value: 0x12, sector: 2)
    ]

    @Test(
        "a gap byte that does not read 0xFF fails verification, naming its address and 0xFF as expected, the span's tail included",
        arguments: wornGapCells)
    func wrongGapByteIsCaught(_ cell: WornGapCell) async throws {
        let bench = try Bench()
        let (firmware, span) = try gappedImage()
        await bench.device.preload([cell.value], at: cell.address)
        await bench.device.configure { $0.unerasable = [cell.address] }
        let plan = try FlashPlan(image: firmware, layout: f407, family: .f407, transferSize: 2048, span: span)
        await #expect(
            throws: DfuSeError.verifyMismatch(address: cell.address, expected: 0xFF, actual: cell.value, sector: f407.sectors[cell.sector])
        ) {
            try await bench.client.execute(plan, image: firmware)
        }
    }

    /// FlashPlan promises (its `skippedSectors`, the plan's "verified by read-back" line) that a sector
    /// reported unchanged is read back: a wrong report fails verification instead of passing unseen.
    @Test("a sector skipped as unchanged that holds wrong bytes fails verification")
    func wrongSkippedSectorIsCaught() async throws {
        for address: UInt32 in [0x0800_4100, 0x0800_9010] {
            let bench = try Bench()
            let (firmware, span) = try gappedImage()
            let expected = FlashPlan.expectedBytes(in: UInt64(address)..<UInt64(address) + 1, of: firmware)[0]
            let wrong = expected ^ 0x5A
            // Sector 2 (0x0800_8000) as the image wants it, but for one byte: the gap, or the second segment.
            await bench.device.preload(FlashPlan.expectedBytes(in: 0x0800_8000..<0x0800_C000, of: firmware), at: 0x0800_8000)
            await bench.device.preload([wrong], at: address)
            let plan = try FlashPlan(
                image: firmware, layout: f407, family: .f407, transferSize: 2048, span: span,
                unchangedSectors: [0x0800_4000, 0x0800_8000])
            await #expect(
                throws: DfuSeError.verifyMismatch(
                    address: address, expected: expected, actual: wrong, sector: f407.sector(containing: address))
            ) {
                try await bench.client.execute(plan, image: firmware)
            }
        }
    }

    @Test("skipped sectors that hold the right bytes verify, and the report counts the whole span")
    func rightSkippedSectorsVerify() async throws {
        let bench = try Bench()
        let (firmware, span) = try gappedImage()
        await bench.device.preload(FlashPlan.expectedBytes(in: 0x0800_9000..<0x0800_9800, of: firmware), at: 0x0800_9000)
        let plan = try FlashPlan(
            image: firmware, layout: f407, family: .f407, transferSize: 2048, span: span,
            unchangedSectors: [0x0800_4000, 0x0800_8000])
        let report = try await bench.client.execute(plan, image: firmware)
        #expect(report.bytesVerified == 0xA800)
        let holds = await bench.device.bytes(at: 0x0800_0000, count: 0xA800) == FlashPlan.expectedBytes(in: span, of: firmware)
        #expect(holds, "the flash holds the span as the image wants it")
    }
}
