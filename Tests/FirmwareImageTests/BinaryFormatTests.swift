import Testing

@testable import FirmwareImage

@Suite("ELF32 ARM")
struct ElfTests {
    func error(_ bytes: [UInt8]) -> ImageError? {
        do {
            _ = try ImageReader.read(bytes, file: "a.elf")
            return nil
        } catch { return error }
    }

    @Test func loadsFileBytesAtPhysicalAddressesAndSkipsBssAndOtherTypes() throws {
        let text: [UInt8] = [1, 2, 3, 4]
        let data: [UInt8] = [9, 9]
        let file = Sample.elf(
            entry: 0x0800_0101,
            segments: [
                (type: 1, paddr: 0x0800_0000, data: text, memsz: 4),
                (type: 1, paddr: 0x0800_0004, data: data, memsz: 8), // .data: loaded from flash, bigger in RAM
                (type: 1, paddr: 0x2000_0100, data: [], memsz: 64), // .bss: nothing in the file
                (type: 0x7000_0001, paddr: 0x0900_0000, data: [7], memsz: 1) // ARM_EXIDX-like, not PT_LOAD
            ])
        let image = try ImageReader.read(file, file: "a.elf")
        #expect(image.format == .elf)
        #expect(image.entryPoint == 0x0800_0101)
        #expect(try image.canonicalSegments() == [Segment(address: 0x0800_0000, bytes: text + data)])
    }

    @Test func refusesWhatIsNotAnArmExecutableAndSaysWhy() {
        let good = Sample.elf(entry: 0, segments: [(type: 1, paddr: 0x0800_0000, data: [1], memsz: 1)])
        #expect(error(Sample.elf(entry: 0, segments: [], elfClass: 2))?.problem.contains("64-bit ELF") == true)
        #expect(error(Sample.elf(entry: 0, segments: [], data: 2))?.problem.contains("little-endian") == true)
        #expect(
            error(Sample.elf(entry: 0, segments: [(type: 1, paddr: 0, data: [1], memsz: 1)], machine: 62))?.problem
                == "e_machine is 62, not ARM (40)")
        #expect(
            error(Sample.elf(entry: 0, segments: [(type: 1, paddr: 0, data: [1], memsz: 1)], type: 1))?.problem.contains("relocatable")
                == true)
        #expect(error(Sample.elf(entry: 0, segments: []))?.problem.contains("no program headers") == true)
        #expect(error(Sample.elf(entry: 0, segments: [(type: 1, paddr: 0, data: [], memsz: 4)]))?.problem.contains("no loadable") == true)
        let truncated = error(Array(good.prefix(60)))
        #expect(truncated?.location == .byteOffset(52))
        #expect(truncated?.problem.contains("truncated") == true)
        let missingData = error(Array(good.dropLast()))
        #expect(missingData?.location == .byteOffset(84))
    }

    @Test func refusesSegmentsPastFourGigabytesAndFileSizeAboveMemorySize() {
        let high = Sample.elf(entry: 0, segments: [(type: 1, paddr: 0xFFFF_FFFE, data: [1, 2, 3], memsz: 3)])
        #expect(error(high)?.problem.contains("4 GiB") == true)
        let inverted = Sample.elf(entry: 0, segments: [(type: 1, paddr: 0, data: [1, 2, 3], memsz: 2)])
        #expect(error(inverted)?.problem.contains("exceeds p_memsz") == true)
    }

    @Test func hugeCountsInHeadersFailCleanlyInsteadOfAllocating() {
        var file = Sample.elf(entry: 0, segments: [(type: 1, paddr: 0, data: [1], memsz: 1)])
        file[44] = 0xFE // e_phnum = 0x00FE... with one real entry
        file[45] = 0xFF
        #expect(error(file)?.problem.contains("program header table") == true)
        var offset = Sample.elf(entry: 0, segments: [(type: 1, paddr: 0, data: [1], memsz: 1)])
        offset[52 + 4..<52 + 8] = [0xFF, 0xFF, 0xFF, 0x7F] // p_offset far past the end
        #expect(error(offset)?.problem.contains("truncated") == true)
    }
}

@Suite("DfuSe and DFU suffix")
struct DfuFileTests {
    let twoTargets = FirmwareImage(
        format: .dfuse,
        targets: [
            ImageTarget(
                alternateSetting: 0, name: "Internal Flash",
                segments: [
                    Segment(address: 0x0800_0000, bytes: [1, 2, 3, 4]), Segment(address: 0x0800_4000, bytes: [5, 6])
                ]),
            ImageTarget(alternateSetting: 1, name: nil, segments: [Segment(address: 0x1FFF_C000, bytes: [0xAA, 0x55])])
        ], suffixIdentity: DfuSuffixIdentity(vendorID: 0x1209, productID: 0x0001, bcdDevice: 0x0200))

    func error(_ bytes: [UInt8], file: String = "a.dfu") -> ImageError? {
        do {
            _ = try ImageReader.read(bytes, file: file)
            return nil
        } catch { return error }
    }

    /// Recomputes the suffix CRC after a test has edited the bytes.
    func resealed(_ bytes: [UInt8]) -> [UInt8] {
        var copy = bytes
        copy.replaceSubrange(copy.count - 4..<copy.count, with: Sample.le32(CRC32.dfu(copy.dropLast(4))))
        return copy
    }

    @Test func writesAndReadsSeveralTargetsAndElementsWithTheSuffixIdentity() throws {
        let bytes = try ImageWriter.bytes(twoTargets, as: .dfuse)
        #expect(bytes.count == 11 + (274 + 8 + 4 + 8 + 2) + (274 + 8 + 2) + 16)
        #expect(Array(bytes.prefix(5)) == Sample.ascii("DfuSe"))
        #expect(Array(bytes[6..<10]) == Sample.le32(UInt32(bytes.count - 16)))
        let back = try ImageReader.read(bytes, file: "a.dfu")
        #expect(back == twoTargets)
    }

    @Test func acceptsImageSizeWithAndWithoutTheSuffixCounted() throws {
        var bytes = try ImageWriter.bytes(twoTargets, as: .dfuse)
        bytes.replaceSubrange(6..<10, with: Sample.le32(UInt32(bytes.count)))
        #expect(try ImageReader.read(resealed(bytes), file: "a.dfu").targets == twoTargets.targets)
        bytes.replaceSubrange(6..<10, with: Sample.le32(UInt32(bytes.count - 17)))
        let failure = error(resealed(bytes))
        #expect(failure?.location == .byteOffset(6))
        #expect(failure?.problem.contains("DFUImageSize") == true)
    }

    @Test func everyFlippedByteIsCaughtByTheSuffixCRC() throws {
        let bytes = try ImageWriter.bytes(twoTargets, as: .dfuse)
        for offset in stride(from: 0, to: bytes.count - 16, by: 37) {
            var corrupted = bytes
            corrupted[offset] ^= 0x40
            let failure = error(corrupted)
            #expect(failure != nil, "flip at \(offset)")
        }
        var corrupted = bytes
        corrupted[300] ^= 1
        #expect(error(corrupted)?.problem.contains("suffix CRC is") == true)
        #expect(error(corrupted)?.location == .byteOffset(bytes.count - 4))
    }

    @Test func structuralLiesAreNamedAtTheirOffset() throws {
        let bytes = try ImageWriter.bytes(twoTargets, as: .dfuse)
        var targetSize = bytes
        targetSize[11 + 266] &+= 1
        #expect(error(resealed(targetSize))?.location == .byteOffset(11 + 266))
        var elements = bytes
        elements[11 + 270] = 0xFF // 255 elements declared
        #expect(error(resealed(elements))?.problem.contains("target 0 element 2") == true)
        var elementSize = bytes
        elementSize[11 + 274 + 4..<11 + 274 + 8] = [0xFF, 0xFF, 0xFF, 0xFF]
        #expect(error(resealed(elementSize))?.problem.contains("dwElementSize 4294967295") == true)
        var targets = bytes
        targets[10] = 3
        #expect(error(resealed(targets))?.problem.contains("target 2's prefix") == true)
        var signature = bytes
        signature[11] = UInt8(ascii: "X")
        #expect(error(resealed(signature))?.problem.contains("does not start with \"Target\"") == true)
        var version = bytes
        version[bytes.count - 10] = 0x00
        #expect(error(resealed(version))?.problem.contains("bcdDFU is 0x0100") == true)
    }

    @Test func truncatedFilesFailWithTheirOffset() throws {
        let bytes = try ImageWriter.bytes(twoTargets, as: .dfuse)
        for length in [0, 5, 11, 20, 200, bytes.count - 1] {
            #expect(error(Array(bytes.prefix(length))) != nil, "length \(length)")
        }
    }

    @Test func plainDfuSuffixFilesArePayloadAtTheGivenAddress() throws {
        let payload: [UInt8] = [1, 2, 3, 4, 5]
        var bytes = payload + Sample.le16(0x0100) + Sample.le16(0xDF11) + Sample.le16(0x0483) + Sample.le16(0x0100)
        bytes += Sample.ascii("UFD") + [16]
        bytes += Sample.le32(CRC32.dfu(bytes))
        let image = try ImageReader.read(bytes, file: "a.dfu", options: ReadOptions(binaryAddress: 0x0800_4000))
        #expect(image.format == .dfuSuffixed)
        #expect(image.segments == [Segment(address: 0x0800_4000, bytes: payload)])
        #expect(image.suffixIdentity == DfuSuffixIdentity(vendorID: 0x0483, productID: 0xDF11, bcdDevice: 0x0100))
        // The same bytes named .bin: still recognised by the valid suffix.
        #expect(try ImageReader.read(bytes, file: "a.bin").format == .dfuSuffixed)
        var broken = bytes
        broken[0] = 9
        #expect(error(broken)?.problem.contains("suffix CRC") == true)
    }

    @Test func rawBinaryGoesAtTheGivenAddress() throws {
        let image = try ImageReader.read([1, 2, 3], file: "x.bin", options: ReadOptions(binaryAddress: 0x2000_0000))
        #expect(image.segments == [Segment(address: 0x2000_0000, bytes: [1, 2, 3])])
        #expect(throws: ImageError.self) { try ImageReader.read([], file: "x.bin") }
        #expect(throws: ImageError.self) { try ImageReader.read([1, 2], file: "x.bin", options: ReadOptions(binaryAddress: 0xFFFF_FFFF)) }
    }

    @Test func formatIsRecognisedByMagicThenExtensionThenContent() {
        #expect(ImageReader.detectFormat(fileName: "x.bin", head: Sample.ascii("DfuSe\u{1}")) == .dfuse)
        #expect(ImageReader.detectFormat(fileName: "x.hex", head: [0x7F, 0x45, 0x4C, 0x46]) == .elf)
        #expect(ImageReader.detectFormat(fileName: "x.s19", head: Sample.ascii(":00")) == .srec)
        #expect(ImageReader.detectFormat(fileName: "x", head: Sample.ascii("\n:020000")) == .intelHex)
        #expect(ImageReader.detectFormat(fileName: "x.txt", head: Sample.ascii("S00600")) == .srec)
        #expect(ImageReader.detectFormat(fileName: "x.dfu", head: [1, 2, 3]) == .dfuSuffixed)
        #expect(ImageReader.detectFormat(fileName: "dir.v2/firmware", head: [0xFF, 0x00]) == .binary)
    }

    @Test func singleMemoryFormatsRefuseSeveralTargetsAndOverlaps() {
        #expect(throws: ImageError.self) { try ImageWriter.bytes(twoTargets, as: .intelHex) }
        let overlapping = FirmwareImage(format: .binary, segments: [Segment(address: 0, bytes: [1, 2]), Segment(address: 1, bytes: [3])])
        #expect(throws: ImageError.self) { try ImageWriter.bytes(overlapping, as: .srec) }
    }

    @Test func rawBinaryFillsGapsAndRefusesAbsurdSizes() throws {
        let image = FirmwareImage(format: .intelHex, segments: [Segment(address: 0x10, bytes: [1]), Segment(address: 0x13, bytes: [2])])
        #expect(try ImageWriter.bytes(image, as: .binary) == [1, 0xFF, 0xFF, 2])
        let far = FirmwareImage(
            format: .intelHex, segments: [Segment(address: 0x0800_0000, bytes: [1]), Segment(address: 0x2000_0000, bytes: [2])])
        let failure = #expect(throws: ImageError.self) { try ImageWriter.bytes(far, as: .binary) }
        #expect(failure?.problem.contains("over the") == true)
    }
}
