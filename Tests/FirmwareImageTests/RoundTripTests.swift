import PropertyBased
import Testing

@testable import FirmwareImage

/// Write → read gives the same segments, for every writable format, on generated sparse images.
@Suite("Round trips")
struct RoundTripTests {
    /// A sparse image: a base address, then runs of (gap before, bytes); a gap of 0 makes adjacent segments.
    static let layouts = zip(
        Gen.uint32(in: 0...0xFFF0_0000),
        zip(Gen.int(in: 0...70_000), Gen.uint8().array(of: 1...300)).array(of: 1...6),
        Gen.uint32(in: 0...0xFFFF_FFFF))

    static func image(base: UInt32, runs: [(Int, [UInt8])], entry: UInt32?) -> FirmwareImage {
        var address = UInt64(base)
        var segments: [Segment] = []
        for (gap, bytes) in runs {
            address += UInt64(gap)
            // Keep every run inside 32 bits: the generator's base leaves 1 MiB, runs take at most 6 × 70 KB.
            segments.append(Segment(address: UInt32(address), bytes: bytes))
            address += UInt64(bytes.count)
        }
        return FirmwareImage(format: .binary, segments: segments.shuffled(), entryPoint: entry)
    }

    @Test func intelHexKeepsSegmentsAndStartAddress() async {
        await propertyCheck(count: 60, input: Self.layouts) { base, runs, entry in
            let image = Self.image(base: base, runs: runs, entry: entry)
            let written = try ImageWriter.bytes(image, as: .intelHex)
            let back = try ImageReader.read(written, file: "p.hex")
            #expect(try back.canonicalSegments() == image.canonicalSegments())
            #expect(back.entryPoint == entry)
        }
    }

    @Test func srecordKeepsSegmentsAndNonZeroStartAddress() async {
        await propertyCheck(count: 60, input: Self.layouts) { base, runs, entry in
            let image = Self.image(base: base, runs: runs, entry: entry)
            let back = try ImageReader.read(
                try ImageWriter.bytes(image, as: .srec, options: WriteOptions(bytesPerRecord: 32)), file: "p.srec")
            #expect(try back.canonicalSegments() == image.canonicalSegments())
            #expect(back.entryPoint == (entry == 0 ? nil : entry))
        }
    }

    @Test func dfuseKeepsSegmentsAndIdentity() async {
        await propertyCheck(count: 60, input: Self.layouts, Gen.uint16(), Gen.uint16()) { layout, vendor, product in
            let (base, runs, _) = layout
            let image = Self.image(base: base, runs: runs, entry: nil)
            let identity = DfuSuffixIdentity(vendorID: vendor, productID: product, bcdDevice: 0x0200)
            let back = try ImageReader.read(
                try ImageWriter.bytes(image, as: .dfuse, options: WriteOptions(suffixIdentity: identity)), file: "p.dfu")
            #expect(try back.canonicalSegments() == image.canonicalSegments())
            #expect(back.suffixIdentity == identity)
        }
    }

    @Test func rawBinaryIsTheFlatImageAtItsBase() async {
        await propertyCheck(count: 40, input: Self.layouts) { base, runs, _ in
            let image = Self.image(base: base, runs: runs, entry: nil)
            let normalized = try image.normalized()
            let back = try ImageReader.read(
                try ImageWriter.bytes(image, as: .binary), file: "p.bin",
                options: ReadOptions(binaryAddress: normalized.baseAddress ?? 0))
            #expect(try back.canonicalSegments() == [Segment(address: normalized.baseAddress ?? 0, bytes: normalized.flattened())])
        }
    }

    @Test func readingIsIndependentOfHowTheInputIsChunked() async {
        await propertyCheck(count: 40, input: Self.layouts, Gen.int(in: 1...700)) { layout, chunk in
            let (base, runs, entry) = layout
            let image = Self.image(base: base, runs: runs, entry: entry)
            for format in [ImageFormat.intelHex, .srec] {
                let written = try ImageWriter.bytes(image, as: format)
                var reader = ImageReader(format: format, file: "p")
                var offset = 0
                while offset < written.count {
                    try reader.consume(Array(written[offset..<min(offset + chunk, written.count)]))
                    offset += chunk
                }
                #expect(try reader.finish() == ImageReader.read(written, file: "p", format: format))
            }
        }
    }
}
