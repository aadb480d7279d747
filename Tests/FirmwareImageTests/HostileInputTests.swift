import Foundation
import SeededRandom
import TestSupport
import Testing

@testable import FirmwareImage

/// Files built to exhaust memory or time, or to overflow address arithmetic (issue 12): each is refused
/// with an `ImageError` naming where, or read at a cost bounded by the file's size, never its span.
/// Speed is measured by `dfuhop-bench hostile-input`; these tests check the bounds structurally.
@Suite struct HostileInputTests {
    /// What a read keeps, as a model of its memory: the payload, and per segment its `Segment` and the
    /// heap header of its own array (16 + 32 bytes, rounded up to a malloc chunk: 64).
    static func retainedBytes(_ image: FirmwareImage) -> Int {
        image.payloadSize + image.targets.reduce(0) { $0 + $1.segments.count * 64 }
    }

    // MARK: ELF

    /// `count` PT_LOAD headers that all load the same `size` bytes of the file, at different addresses.
    static func elfWithSharedLoads(count: Int, size: Int) -> [UInt8] {
        let data = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        var elf = Sample.elf(
            entry: 0x0800_0001,
            segments: (0..<count).map { index in
                (type: 1, paddr: 0x0800_0000 + UInt32(index * size), data: index == 0 ? data : [], memsz: UInt32(size))
            })
        // Point every header at the first one's bytes (p_offset) with the same p_filesz.
        let dataOffset = 52 + 32 * count
        for index in 0..<count {
            let header = 52 + 32 * index
            elf.replaceSubrange(header + 4..<header + 8, with: Sample.le32(UInt32(dataOffset)))
            elf.replaceSubrange(header + 16..<header + 20, with: Sample.le32(UInt32(size)))
        }
        return elf
    }

    @Test func elfHeadersLoadingTheSameBytesAreRefusedNotMultiplied() throws {
        let file = Self.elfWithSharedLoads(count: 4_000, size: 4096)
        #expect(file.count < 150_000)
        do {
            let image = try ImageReader.read(file, file: "shared.elf")
            Issue.record("read \(image.payloadSize) bytes of payload from a \(file.count)-byte file")
        } catch {
            #expect(error.kind == .malformed)
            #expect(error.description.contains("more than the file's"), "\(error)")
            guard case .byteOffset(let offset) = error.location else {
                Issue.record("no byte offset in \(error)")
                return
            }
            #expect(offset > 52 && offset < 52 + 32 * 4_000, "the offset names a program header: \(offset)")
        }
    }

    @Test func everyReadElfHoldsAtMostItsFileSize() throws {
        let seed = UInt64.random(in: 0...UInt64.max)
        print("elf bound seed \(seed)")
        var generator = SplitMix64(seed: seed)
        for _ in 0..<200 {
            let count = Int.random(in: 1...40, using: &generator)
            let size = Int.random(in: 1...512, using: &generator)
            let file = Self.elfWithSharedLoads(count: count, size: size)
            if let image = try? ImageReader.read(file, file: "random.elf") {
                #expect(image.payloadSize <= file.count, "seed \(seed): \(count) headers of \(size) bytes")
            }
        }
    }

    // MARK: Intel HEX and S-record

    static func hexRecord(_ fields: [UInt8]) -> String {
        let sum = fields.reduce(UInt8(0), &+)
        return ":" + (fields + [0 &- sum]).map { String(format: "%02X", $0) }.joined()
    }

    /// 1-byte data records at `addresses` (all below 64 KiB above 0x08000000).
    static func oneByteRecords(_ addresses: [UInt32]) -> [UInt8] {
        var lines = [hexRecord([2, 0, 0, 4, 0x08, 0x00])]
        for address in addresses {
            lines.append(hexRecord([1, UInt8(address >> 8 & 0xFF), UInt8(address & 0xFF), 0, UInt8(truncatingIfNeeded: address)]))
        }
        lines.append(":00000001FF")
        return Array((lines.joined(separator: "\n") + "\n").utf8)
    }

    @Test func interleavedOneByteRecordsCoalesceIntoTheirRuns() throws {
        // Two streams of consecutive bytes, records alternating between them: 2 segments, not 20,000.
        let addresses = (0..<10_000).flatMap { [UInt32($0), UInt32(0x8000 + $0)] }
        let file = Self.oneByteRecords(addresses)
        let image = try ImageReader.read(file, file: "interleaved.hex")
        #expect(image.segments.count == 2)
        #expect(image.segments.map(\.address) == [0x0800_0000, 0x0800_8000])
        #expect(image.payloadSize == 20_000)
        #expect(Self.retainedBytes(image) <= 3 * file.count, "retained \(Self.retainedBytes(image)) for \(file.count) bytes of file")
    }

    @Test func descendingOneByteRecordsBecomeOneSegment() throws {
        let file = Self.oneByteRecords((0..<5_000).reversed().map(UInt32.init))
        let image = try ImageReader.read(file, file: "descending.hex")
        #expect(image.segments.count == 1)
        #expect(image.segments[0].bytes == (0..<5_000).map { UInt8(truncatingIfNeeded: $0) })
    }

    @Test func overlappingRecordsStaySeparateForNormalizeToRefuse() throws {
        let file = Self.oneByteRecords([0, 1, 1, 2])
        let image = try ImageReader.read(file, file: "overlap.hex")
        #expect(image.payloadSize == 4)
        #expect(throws: NormalizationError.self) { try image.normalized() }
    }

    @Test func scatteredOneByteRecordsAreRefusedNamingTheLimit() throws {
        // Every other byte: nothing to coalesce, and 14 characters of text per segment.
        let file = Self.oneByteRecords((0..<5_000).map { UInt32($0 * 2) })
        let error = #expect(throws: ImageError.self) { try ImageReader.read(file, file: "scattered.hex") }
        #expect(error?.description.contains("separate runs of data") == true, "\(String(describing: error))")
        #expect(error?.description.hasPrefix("scattered.hex: ") == true)
    }

    @Test func fragmentedButPlausibleFilesAreReadWithinThreeTimesTheirSize() throws {
        // 16-byte records, each in a gap of its own: 5,000 segments, read, at most 3 times the file held.
        var lines = [Self.hexRecord([2, 0, 0, 4, 0x08, 0x00])]
        for index in 0..<5_000 {
            let address = UInt16(index * 32 % 0x1_0000)
            if index > 0, address == 0 { lines.append(Self.hexRecord([2, 0, 0, 4, 0x08, UInt8((index * 32) >> 16)])) }
            let data = [UInt8](repeating: UInt8(index & 0xFF), count: 16)
            lines.append(Self.hexRecord([16, UInt8(address >> 8), UInt8(address & 0xFF), 0] + data))
        }
        lines.append(":00000001FF")
        let file = Array(lines.joined(separator: "\n").utf8)
        let image = try ImageReader.read(file, file: "fragmented.hex")
        #expect(image.segments.count == 5_000)
        #expect(Self.retainedBytes(image) <= 3 * file.count, "retained \(Self.retainedBytes(image)) for \(file.count) bytes of file")
        #expect(try image.normalized().segments.count == 5_000)
    }

    /// 72 bytes of HEX: a byte at 0x00000000 and one at 0xFFFFFFFF.
    static let fourGiBSpan = Array(
        """
        :020000040000FA
        :0100000011EE
        :02000004FFFFFC
        :01FFFF0022DF
        :00000001FF

        """.utf8)

    @Test func aSpanOfFourGiBCostsNothingProportionalToItsGap() throws {
        #expect(Self.fourGiBSpan.count == 72)
        let image = try ImageReader.read(Self.fourGiBSpan, file: "span.hex")
        let normalized = try image.normalized(granularity: 8)
        #expect(normalized.end - UInt64(normalized.baseAddress ?? 0) == 0x1_0000_0000)
        var pieces: [MemoryPiece] = []
        #expect(normalized.withPieces(from: 0, count: Int(normalized.end)) { pieces.append($0) })
        #expect(pieces.count == 3, "data, one gap, data")
        if case .fill(0xFF, let gap) = pieces[1] { #expect(gap == 0x1_0000_0000 - 16) } else { Issue.record("no gap piece") }
        let report = ImageCheck.check(normalized, source: "span.hex")
        #expect(report.vectorTable?.address == 0)
        // A descriptor CRC over the whole span goes through the gap as one piece.
        #expect(ImageDescriptor.crc32(of: normalized, base: 0, size: 0xFFFF_FFFF, crcField: 0x18) != nil)
    }

    // MARK: CRC over fills

    @Test func crcOfARepeatedByteMatchesTheBytes() {
        let seed = UInt64.random(in: 0...UInt64.max)
        print("crc fill seed \(seed)")
        var generator = SplitMix64(seed: seed)
        for _ in 0..<40 {
            let byte = UInt8.random(in: 0...255, using: &generator)
            let count = Int.random(in: 0...20_000, using: &generator)
            var prefix = CRC32()
            prefix.update((0..<Int.random(in: 0...9, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) })
            var fast = prefix
            fast.update(repeating: byte, count: UInt64(count))
            var slow = prefix
            slow.update([UInt8](repeating: byte, count: count))
            #expect(fast.register == slow.register, "seed \(seed): \(count) × 0x\(String(byte, radix: 16))")
        }
    }

    @Test func crcOfAHugeFillComposes() {
        var whole = CRC32()
        whole.update(repeating: 0xFF, count: 0xFFFF_FFF0)
        var halves = CRC32()
        halves.update(repeating: 0xFF, count: 0x7FFF_FFF8)
        halves.update(repeating: 0xFF, count: 0x7FFF_FFF8)
        #expect(whole.register == halves.register)
    }

    // MARK: Address arithmetic at the top of the address space

    @Test func stampingAnImageAtTheTopOfTheAddressSpaceIsAnErrorNotATrap() throws {
        for base: UInt32 in [0xFFFF_FFE0, 0xFFFF_FFF0, 0xFFFF_FFFC] {
            let bytes = [UInt8](repeating: 0x11, count: Int(0x1_0000_0000 - UInt64(base)))
            let image = FirmwareImage(format: .binary, segments: [Segment(address: base, bytes: bytes)])
            let error = #expect(throws: ImageError.self) {
                try image.stamped(productID: 1, version: FirmwareVersion(major: 1, minor: 0, patch: 0), name: "top", file: "top.bin")
            }
            #expect(error?.location == .address(base))
        }
    }

    @Test func inspectingMemoryAtTheTopOfTheAddressSpaceFindsNoVectorTable() {
        let memory = FlatMemory(base: 0xFFFF_FFF0, bytes: [UInt8](repeating: 0x20, count: 16))
        guard case .invalid = ImageDescriptor.inspect(memory, base: 0xFFFF_FFF0, source: "top") else {
            Issue.record("a 16-byte memory at the top of the address space has no vector table")
            return
        }
        let image = FirmwareImage(format: .binary, segments: [Segment(address: 0xFFFF_FFE0, bytes: [UInt8](repeating: 0x20, count: 32))])
        if let normalized = try? image.normalized() {
            #expect(!ImageCheck.check(normalized, source: "top").errors.isEmpty)
        }
    }

    // MARK: Output files

    @Test func aSymlinkPlantedAsThePartialFileIsNeverFollowed() throws {
        let directory = try TemporaryDirectory()
        let victim = directory.path("victim")
        try Data("keep me".utf8).write(to: URL(fileURLWithPath: victim))
        let output = directory.path("out.bin")
        try FileManager.default.createSymbolicLink(atPath: output + ".dfuhop-partial", withDestinationPath: victim)
        let error = #expect(throws: ImageError.self) {
            try ImageFile.write(Sample.image([1, 2, 3]), to: output, as: .binary)
        }
        #expect(error?.kind == .cannotWrite)
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == "keep me")
        #expect(!FileManager.default.fileExists(atPath: output))
    }

    @Test func aLeftoverPartialFileOfOursIsReplaced() throws {
        let directory = try TemporaryDirectory()
        let output = directory.path("out.bin")
        try Data("stale".utf8).write(to: URL(fileURLWithPath: output + ".dfuhop-partial"))
        try ImageFile.write(Sample.image([1, 2, 3]), to: output, as: .binary)
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: output))) == [1, 2, 3])
        #expect(!FileManager.default.fileExists(atPath: output + ".dfuhop-partial"))
    }

    @Test func anOutputPathThatIsASymlinkIsReplacedNotWrittenThrough() throws {
        let directory = try TemporaryDirectory()
        let victim = directory.path("victim")
        try Data("keep me".utf8).write(to: URL(fileURLWithPath: victim))
        let output = directory.path("out.bin")
        try FileManager.default.createSymbolicLink(atPath: output, withDestinationPath: victim)
        try ImageFile.write(Sample.image([4, 5]), to: output, as: .binary)
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == "keep me")
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: output))) == [4, 5])
    }
}
