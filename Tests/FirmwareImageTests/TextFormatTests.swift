import Testing

@testable import FirmwareImage

/// An Intel HEX record with a correct checksum (so tests state fields, not arithmetic).
func hexRecord(_ type: UInt8, _ address: UInt16, _ data: [UInt8]) -> String {
    let fields = [UInt8(data.count), UInt8(address >> 8), UInt8(address & 0xFF), type] + data
    let sum = fields.reduce(UInt8(0), &+)
    return ":" + (fields + [0 &- sum]).map(hexByte).joined()
}

/// An S-record with a correct count and checksum.
func sRecord(_ type: Int, _ address: [UInt8], _ data: [UInt8]) -> String {
    let fields = [UInt8(address.count + data.count + 1)] + address + data
    let sum = fields.reduce(UInt8(0), &+)
    return "S\(type)" + (fields + [~sum]).map(hexByte).joined()
}

func hexByte(_ byte: UInt8) -> String {
    let digits = String(byte, radix: 16, uppercase: true)
    return digits.count == 1 ? "0" + digits : digits
}

@Suite("Intel HEX")
struct IntelHexTests {
    func read(_ text: String, file: String = "t.hex") throws(ImageError) -> FirmwareImage {
        try ImageReader.read(Sample.ascii(text), file: file, format: .intelHex)
    }

    func error(_ text: String) -> ImageError? {
        do {
            _ = try read(text)
            return nil
        } catch { return error }
    }

    @Test func readsDataAtExtendedLinearAddressesWithStartAddress() throws {
        let image = try read(
            """
            :020000040800F2
            :0400000001020304F2
            :0400040005060708DE
            :0400000508000201EC
            :00000001FF

            """)
        #expect(image.format == .intelHex)
        #expect(image.segments == [Segment(address: 0x0800_0000, bytes: [1, 2, 3, 4, 5, 6, 7, 8])])
        #expect(image.entryPoint == 0x0800_0201)
    }

    @Test func extendedSegmentAddressesWrapWithinTheirSegment() throws {
        // Segment 0x1000 → base 0x10000; a 4-byte record at offset 0xFFFE wraps to offset 0.
        let image = try read(
            [hexRecord(2, 0, [0x10, 0x00]), hexRecord(0, 0xFFFE, [0xAA, 0xBB, 0xCC, 0xDD]), ":00000001FF"]
                .joined(separator: "\n"))
        #expect(
            try image.canonicalSegments() == [
                Segment(address: 0x10000, bytes: [0xCC, 0xDD]),
                Segment(address: 0x1FFFE, bytes: [0xAA, 0xBB])
            ])
    }

    @Test func startSegmentAddressIsCSTimes16PlusIP() throws {
        let image = try read(":0400000312340010A3\n:00000001FF\n")
        #expect(image.entryPoint == UInt32(0x12350))
    }

    @Test func acceptsLowerCaseDigitsCRLFAndBlankLines() throws {
        let text = [hexRecord(4, 0, [0x01, 0x00]), "", hexRecord(0, 0, [0xAB, 0xCD]).lowercased(), ":00000001ff", ""]
        let image = try read(text.joined(separator: "\r\n"))
        #expect(image.segments == [Segment(address: 0x0100_0000, bytes: [0xAB, 0xCD])])
    }

    @Test func checksumErrorNamesLineAndBothValues() {
        let failure = error(":020000040800F2\n:0400000001020304F3\n:00000001FF\n")
        #expect(failure?.location == .line(2))
        #expect(failure?.problem == "checksum is 0xF3, the record needs 0xF2")
        #expect(failure?.description == "t.hex, line 2: checksum is 0xF3, the record needs 0xF2")
    }

    @Test func refusesEveryMalformedRecordWithItsLine() {
        let cases: [(String, Int, String)] = [
            ("0400000001020304F2\n:00000001FF\n", 1, "expected ':'"),
            (":0400000001020304F\n:00000001FF\n", 1, "odd number"),
            (":0400000001020304\n:00000001FF\n", 1, "byte count says 4"),
            (":04000000010G0304F2\n:00000001FF\n", 1, "'G' at column 13"),
            (":00000006FA\n:00000001FF\n", 1, "unknown record type 0x06"),
            (hexRecord(4, 0, [1]) + "\n:00000001FF\n", 1, "must have 2 data bytes"),
            (":00000001FF\n:00000001FF\n", 2, "after the end-of-file record on line 1"),
            (":0400000001020304F2\n", 1, "without an end-of-file record"),
            (hexRecord(1, 0, [1]) + "\n", 1, "must have no data"),
            (":04000005080002010000000000000000000000000000\n", 1, "byte count says 4")
        ]
        for (text, line, fragment) in cases {
            let failure = error(text)
            #expect(failure?.location == .line(line), "\(text)")
            #expect(failure?.problem.contains(fragment) == true, "\(text): \(failure?.problem ?? "no error")")
        }
    }

    @Test func conflictingStartAddressesAreRefused() {
        let failure = error(":0400000508000201EC\n:0400000508000301EB\n:00000001FF\n")
        #expect(failure?.problem.contains("contradicts 0x08000201 on line 1") == true)
    }

    @Test func emptyOrNonHexInputSaysSo() {
        #expect(error("")?.problem.contains("no Intel HEX records") == true)
        #expect(error("\n\n")?.problem.contains("no Intel HEX records") == true)
    }

    @Test func dataPastFourGigabytesIsRefused() {
        let failure = error([hexRecord(4, 0, [0xFF, 0xFF]), hexRecord(0, 0xFFFE, [1, 2, 3, 4]), ":00000001FF"].joined(separator: "\n"))
        #expect(failure?.problem.contains("runs past the 4 GiB") == true)
    }

    @Test func overlongLineIsRefusedBeforeItIsBuffered() {
        let long = ":" + String(repeating: "0", count: 5000)
        #expect(error(long)?.problem.contains("longer than any valid record") == true)
    }

    @Test func chunkBoundariesAnywhereGiveTheSameImage() throws {
        let text = Sample.ascii(":020000040800F2\r\n:0400000001020304F2\n:0400040005060708DE\n:00000001FF\n")
        let whole = try ImageReader.read(text, file: "t.hex", format: .intelHex)
        for size in [1, 2, 3, 7, 16] {
            var reader = ImageReader(format: .intelHex, file: "t.hex")
            var offset = 0
            while offset < text.count {
                try reader.consume(Array(text[offset..<min(offset + size, text.count)]))
                offset += size
            }
            #expect(try reader.finish() == whole, "chunk size \(size)")
        }
    }

    @Test func writerSplitsAtSixtyFourKilobyteBoundariesAndEmitsUpperAddressRecords() throws {
        let bytes = (0..<40).map { UInt8($0) }
        let image = FirmwareImage(format: .binary, segments: [Segment(address: 0x0800_FFF0, bytes: bytes)], entryPoint: 0x0800_0201)
        let text = String(decoding: try ImageWriter.bytes(image, as: .intelHex), as: UTF8.self)
        let lines = text.split(separator: "\n")
        #expect(lines.first == ":020000040800F2")
        #expect(lines.contains(":020000040801F1"))
        #expect(lines.last == ":00000001FF")
        #expect(lines.contains(":0400000508000201EC"))
        let back = try ImageReader.read(Array(text.utf8), file: "w.hex")
        #expect(try back.canonicalSegments() == [Segment(address: 0x0800_FFF0, bytes: bytes)])
        #expect(back.entryPoint == 0x0800_0201)
    }
}

@Suite("S-record")
struct SRecordTests {
    func read(_ text: String) throws(ImageError) -> FirmwareImage {
        try ImageReader.read(Sample.ascii(text), file: "t.srec", format: .srec)
    }

    func error(_ text: String) -> ImageError? {
        do {
            _ = try read(text)
            return nil
        } catch { return error }
    }

    @Test func readsS1S2S3DataCountAndStartAddress() throws {
        let image = try read(
            [
                sRecord(0, [0, 0], Sample.ascii("HDR")),
                sRecord(1, [0x00, 0x10], [0xAA, 0xBB]),
                sRecord(2, [0x02, 0x00, 0x00], [0xCC, 0xDD]),
                sRecord(3, [0x08, 0x00, 0x00, 0x00], [0xEE, 0xFF]),
                sRecord(5, [0x00, 0x03], []),
                sRecord(7, [0x08, 0x00, 0x02, 0x01], [])
            ].joined(separator: "\n"))
        #expect(
            try image.canonicalSegments() == [
                Segment(address: 0x0010, bytes: [0xAA, 0xBB]),
                Segment(address: 0x02_0000, bytes: [0xCC, 0xDD]),
                Segment(address: 0x0800_0000, bytes: [0xEE, 0xFF])
            ])
        #expect(image.entryPoint == 0x0800_0201)
    }

    @Test func terminationRecordIsOptionalAsSrecCatWritesIt() throws {
        let image = try read(sRecord(1, [0, 0x10], [0xAA]) + "\n" + sRecord(5, [0, 1], []) + "\n")
        #expect(image.segments == [Segment(address: 0x10, bytes: [0xAA])])
        #expect(image.entryPoint == nil)
    }

    @Test func zeroStartAddressMeansNone() throws {
        #expect(try read(sRecord(1, [0, 0x10], [0xAA]) + "\nS9030000FC\n").entryPoint == nil)
    }

    @Test func refusesEveryMalformedRecordWithItsLine() {
        let data = sRecord(1, [0x00, 0x10], [0xAA, 0xBB]) // S1050010AABB85
        let end = "S9030000FC"
        let cases: [(String, Int, String)] = [
            ("X" + data.dropFirst() + "\n" + end, 1, "expected 'S'"),
            ("S4" + data.dropFirst(2) + "\n" + end, 1, "S4 reserved"),
            ("S1050010AABB86\n" + end, 1, "checksum is 0x86, the record needs 0x85"),
            ("S1060010AABB85\n" + end, 1, "byte count says 6"),
            ("S1050010AAZB85\n" + end, 1, "'Z' at column 11"),
            (data + "\n" + sRecord(5, [0, 2], []) + "\n" + end, 2, "says 2 data records, the file has 1"),
            (end + "\n" + data, 2, "after the termination record"),
            (sRecord(3, [0, 0, 0], []) + "\n" + end, 1, "too small for an S3 record"),
            ("S1\n", 1, "too few")
        ]
        for (text, line, fragment) in cases {
            let failure = error(text)
            #expect(failure?.location == .line(line), "\(text)")
            #expect(failure?.problem.contains(fragment) == true, "\(text): \(failure?.problem ?? "no error")")
        }
    }

    @Test func writerPicksTheNarrowestRecordTypeThatReachesEveryAddress() throws {
        func types(_ address: UInt32) throws -> String {
            let image = FirmwareImage(format: .binary, segments: [Segment(address: address, bytes: [1, 2, 3])])
            let lines = String(decoding: try ImageWriter.bytes(image, as: .srec), as: UTF8.self).split(separator: "\n")
            return lines.map { String($0.prefix(2)) }.joined(separator: " ")
        }
        #expect(try types(0x100) == "S0 S1 S5 S9")
        #expect(try types(0x1_0000) == "S0 S2 S5 S8")
        #expect(try types(0x0800_0000) == "S0 S3 S5 S7")
    }
}
