import FirmwareImage
import Foundation
import TestSupport
import Testing

/// End-to-end: the built executable on real files, checking output and the fixed exit statuses.
@Suite("dfuhop image", .timeLimit(.minutes(10)))
struct ImageCommandTests {
    /// A plausible F407 application: vector table, reserved descriptor at +0x100, code from +0x200.
    static func application() -> FirmwareImage {
        var bytes = [UInt8](repeating: 0, count: 0x300)
        func put(_ value: UInt32, _ offset: Int) {
            for index in 0..<4 { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(index))) }
        }
        put(0x2002_0000, 0)
        put(0x0800_0201, 4)
        put(0x0800_0100, 0x20)
        for index in 0x200..<0x300 { bytes[index] = UInt8(truncatingIfNeeded: index * 5) }
        return FirmwareImage(format: .intelHex, segments: [Segment(address: 0x0800_0000, bytes: bytes)], entryPoint: 0x0800_0201)
    }

    func writeApplication(_ directory: TemporaryDirectory, _ name: String = "app.hex") throws -> String {
        try directory.write(name, try ImageWriter.bytes(Self.application(), as: .intelHex))
    }

    @Test func infoDescribesAndChecksAHexFile() async throws {
        let directory = try TemporaryDirectory()
        let path = try writeApplication(directory)
        let result = try await Dfuhop.run("image", "info", path)
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains("format:        Intel HEX"))
        #expect(result.stdout.contains("0x08000000-0x080002FF  768 bytes"))
        #expect(result.stdout.contains("initial SP:    0x20020000"))
        #expect(result.stdout.contains("reset handler: 0x08000201"))
        #expect(result.stdout.contains("warning at 0x08000100: the image descriptor is reserved but not stamped; run `dfuhop image stamp`"))
        #expect(result.stderr.isEmpty)
    }

    @Test func infoJsonCarriesHashesAndFindings() async throws {
        let directory = try TemporaryDirectory()
        let path = try writeApplication(directory)
        let json = try #require(try await Dfuhop.run("image", "info", path, "--json", "--family", "f407").result().image)
        #expect(json.format == "hex")
        #expect(json.family == "f407")
        let flat = try ImageWriter.bytes(Self.application(), as: .binary)
        #expect(json.crc32 == "0x" + String(format: "%08X", CRC32.zlib(flat)))
        #expect(json.sha256?.count == 64)
        #expect(json.vectorTable?.resetHandler == "0x08000201")
        #expect(json.errors == 0)
        #expect(json.warnings == 1)
    }

    @Test func familyChecksTurnAWrongStackPointerIntoAnError() async throws {
        var image = Self.application()
        image.targets[0].segments[0].bytes[2] = 0x05 // SP 0x20050000: past the F407's 128 KiB
        let directory = try TemporaryDirectory()
        let path = try directory.write("bad-sp.hex", try ImageWriter.bytes(image, as: .intelHex))
        let result = try await Dfuhop.run("image", "info", path, "--family", "f407")
        #expect(result.status == 0)
        #expect(result.stdout.contains("error at 0x08000000: the initial stack pointer 0x20050000 is outside the RAM of STM32F405/407"))
    }

    @Test func malformedInputExits65NamingFileAndLine() async throws {
        let directory = try TemporaryDirectory()
        var text = String(decoding: try ImageWriter.bytes(Self.application(), as: .intelHex), as: UTF8.self).split(separator: "\n").map(
            String.init)
        text[3] = String(text[3].dropLast(2)) + "00"
        let path = try directory.write("broken.hex", Array(text.joined(separator: "\n").utf8))
        let result = try await Dfuhop.run("image", "info", path)
        #expect(result.status == 65, "\(result)")
        #expect(result.stderr.hasPrefix("error: \(path), line 4: checksum is 0x00, the record needs 0x"))
        #expect(result.stdout.isEmpty)
        let json = try await Dfuhop.run("image", "info", path, "--json")
        #expect(json.status == 65)
        #expect(try json.result().exitCode == 65)
    }

    @Test func truncatedBinaryFormatExits65WithByteOffset() async throws {
        let directory = try TemporaryDirectory()
        let dfu = try ImageWriter.bytes(Self.application(), as: .dfuse)
        let path = try directory.write("short.dfu", Array(dfu.prefix(400)))
        let result = try await Dfuhop.run("image", "info", path)
        #expect(result.status == 65)
        #expect(result.stderr.contains("error: \(path), byte offset"))
    }

    @Test func missingInputExits66AndUnwritableOutputExits73() async throws {
        let directory = try TemporaryDirectory()
        let missing = try await Dfuhop.run("image", "info", directory.path("nope.hex"))
        #expect(missing.status == 66)
        #expect(missing.stderr.contains("nope.hex: cannot open"))
        let path = try writeApplication(directory)
        let unwritable = try await Dfuhop.run("image", "convert", path, directory.path("no/such/dir/out.bin"))
        #expect(unwritable.status == 73, "\(unwritable)")
        #expect(unwritable.stderr.contains("cannot create"))
    }

    @Test func convertGoesThroughEveryFormatAndBackToTheSameBytes() async throws {
        let directory = try TemporaryDirectory()
        var previous = try writeApplication(directory)
        for name in ["app.dfu", "app.srec", "app.s19.hex", "app.bin"] {
            let next = directory.path(name)
            let result = try await Dfuhop.run("image", "convert", previous, next)
            #expect(result.status == 0, "\(name): \(result)")
            previous = next
        }
        #expect(try directory.read("app.bin") == ImageWriter.bytes(Self.application(), as: .binary))
        let explicit = try await Dfuhop.run(
            "image", "convert", previous, directory.path("app.out"), "--format", "hex", "--address", "0x08000000")
        #expect(explicit.status == 0)
        #expect(
            try ImageReader.read(try directory.read("app.out"), file: "app.out", format: .intelHex).segments == Self.application().segments)
    }

    @Test func convertWritesTheRequestedDfuIdentityAndTargetName() async throws {
        let directory = try TemporaryDirectory()
        let path = try writeApplication(directory)
        let result = try await Dfuhop.run(
            "image", "convert", path, directory.path("id.dfu"), "--vid", "0x1209", "--pid", "0x0007",
            "--bcd-device", "0x0102", "--target-name", "Internal Flash")
        #expect(result.status == 0, "\(result)")
        let image = try ImageReader.read(try directory.read("id.dfu"), file: "id.dfu")
        #expect(image.suffixIdentity == DfuSuffixIdentity(vendorID: 0x1209, productID: 0x0007, bcdDevice: 0x0102))
        #expect(image.targets.first?.name == "Internal Flash")
    }

    /// `--json` writes the segment list as it encodes it, in chunks: thousands of segments (more than one
    /// chunk) still make one valid line, every segment in order, the rest of the result after it.
    @Test func infoJsonListsEverySegmentOfAManySegmentImage() async throws {
        let directory = try TemporaryDirectory()
        var segments = Self.application().segments
        let count = 5000
        for index in 0..<count {
            segments.append(
                Segment(address: 0x0801_0000 + UInt32(index) * 64, bytes: [UInt8](repeating: UInt8(index & 0x7F), count: 16 + index % 7)))
        }
        let path = try directory.write(
            "many.hex", try ImageWriter.bytes(FirmwareImage(format: .intelHex, segments: segments), as: .intelHex))
        let result = try await Dfuhop.run("image", "info", path, "--json")
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.split(separator: "\n").count == 1, "one line")
        let image = try #require(try result.result().image)
        let listed = image.segments
        #expect(listed.count == count + 1)
        for (segment, json) in zip(segments, listed) {
            #expect(json.start == String(format: "0x%08X", segment.address))
            #expect(json.end == String(format: "0x%08X", segment.address + UInt32(segment.bytes.count) - 1))
            #expect(json.size == segment.bytes.count)
            #expect(json.fieldCount == 3)
        }
        #expect(image.payloadSize == segments.reduce(0) { $0 + $1.bytes.count })
        #expect(image.file == path)
    }

    @Test func convertRefusesAnUnknownOutputFormatAsAUsageError() async throws {
        let directory = try TemporaryDirectory()
        let path = try writeApplication(directory)
        let result = try await Dfuhop.run("image", "convert", path, directory.path("out.xyz"))
        #expect(result.status == 64)
        #expect(result.stderr.contains("--format"))
        #expect(!FileManager.default.fileExists(atPath: directory.path("out.xyz")))
    }

    @Test func stampWritesADescriptorThatInfoValidates() async throws {
        let directory = try TemporaryDirectory()
        let path = try writeApplication(directory)
        let stamped = directory.path("stamped.hex")
        let result = try await Dfuhop.run(
            "image", "stamp", path, stamped, "--product-id", "0x1209A001", "--version", "1.4.2.7", "--name", "sensor hub")
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains("version 1.4.2.7"))
        let info = try #require(try await Dfuhop.run("image", "info", stamped, "--json").result().image)
        let descriptor = info.descriptor
        #expect(descriptor?.state == "valid")
        #expect(descriptor?.productID == "0x1209A001")
        #expect(descriptor?.name == "sensor hub")
        #expect(descriptor?.imageSize == 0x300)
        #expect(info.warnings == 0)
    }

    @Test func stampRefusesAnImageWithoutAReservedArea() async throws {
        var image = Self.application()
        image.targets[0].segments[0].bytes.replaceSubrange(0x20..<0x24, with: [0, 0, 0, 0])
        let directory = try TemporaryDirectory()
        let path = try directory.write("plain.hex", try ImageWriter.bytes(image, as: .intelHex))
        let result = try await Dfuhop.run(
            "image", "stamp", path, directory.path("x.hex"), "--product-id", "1", "--version", "1.0.0", "--name", "x")
        #expect(result.status == 65)
        #expect(result.stderr.contains("address 0x08000020: word 8 of the vector table is 0x00000000"))
        let badVersion = try await Dfuhop.run(
            "image", "stamp", path, directory.path("x.hex"), "--product-id", "1", "--version", "1.0", "--name", "x")
        #expect(badVersion.status == 64)
    }

    @Test func helpTeachesWithExamples() async throws {
        for command in ["info", "convert", "stamp"] {
            let result = try await Dfuhop.run("image", command, "--help")
            #expect(result.status == 0)
            #expect(result.stdout.contains("Examples:"), "\(command)")
        }
        let unknownFamily = try await Dfuhop.run("image", "info", "x.hex", "--family", "f999")
        #expect(unknownFamily.status == 64)
        #expect(unknownFamily.stderr.contains("f407"))
    }
    // MARK: Flash words (issue 25, seed 004)

    /// The HEX of issue 25: 0x7F3 bytes at 0x08003000 and 0x2001 bytes at 0x08006001.
    static let gapped = FirmwareImage(
        format: .intelHex,
        segments: [
            Segment(address: 0x0800_3000, bytes: (0..<0x7F3).map { UInt8(truncatingIfNeeded: $0 * 3 + 2) }),
            Segment(address: 0x0800_6001, bytes: (0..<0x2001).map { UInt8(truncatingIfNeeded: $0 * 7 + 1) })
        ])

    @Test(arguments: [(["--family", "l476"], 8, "STM32L475/476/486"), ([], 32, "any STM32")])
    func convertPadsToTheFlashWordAndSaysSo(family: [String], word: Int, part: String) async throws {
        let directory = try TemporaryDirectory()
        let input = try directory.write("gapped.hex", try ImageWriter.bytes(Self.gapped, as: .intelHex))
        let result = try await Dfuhop.run(["image", "convert", input, directory.path("gapped.dfu")] + family)
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains("padded to the \(word)-byte flash word"), "\(result.stdout)")
        #expect(result.stderr.contains("segment [0x08006001, 0x08008002) starts or ends off a flash word (\(word) bytes on \(part))"))
        let written = try ImageReader.read(try directory.read("gapped.dfu"), file: "gapped.dfu")
        let mask = UInt64(word - 1)
        #expect(written.segments.count == 2)
        #expect(written.segments.allSatisfy { UInt64($0.address) & mask == 0 && $0.end & mask == 0 })
        for segment in Self.gapped.segments {
            let holder = try #require(written.segments.first { UInt64($0.address) <= UInt64(segment.address) && segment.end <= $0.end })
            let offset = Int(segment.address - holder.address)
            #expect(Array(holder.bytes[offset..<offset + segment.bytes.count]) == segment.bytes)
        }
    }

    @Test func infoAndConvertNameSegmentsThatShareAWord() async throws {
        let directory = try TemporaryDirectory()
        let image = FirmwareImage(
            format: .intelHex,
            segments: [Segment(address: 0x0800_0000, bytes: [1, 2, 3]), Segment(address: 0x0800_0005, bytes: [4, 5])])
        let input = try directory.write("shared.hex", try ImageWriter.bytes(image, as: .intelHex))
        let info = try await Dfuhop.run("image", "info", input, "--family", "l476")
        #expect(info.status == 0, "\(info)")
        #expect(
            info.stdout.contains(
                "warning at 0x08000000: segments [0x08000000, 0x08000003) and [0x08000005, 0x08000007) share a flash word "
                    + "(8 bytes on STM32L475/476/486)"), "\(info.stdout)")
        let convert = try await Dfuhop.run("image", "convert", input, directory.path("shared.dfu"), "--family", "l476", "--json")
        #expect(convert.status == 0, "\(convert)")
        #expect(convert.stdout.contains("\"elementsAfter\":1"), "\(convert.stdout)")
        #expect(convert.stdout.contains("share the flash word at 0x08000000 (8 bytes on STM32L475/476/486)"), "\(convert.stdout)")
        let written = try ImageReader.read(try directory.read("shared.dfu"), file: "shared.dfu")
        #expect(written.segments == [Segment(address: 0x0800_0000, bytes: [1, 2, 3, 0xFF, 0xFF, 4, 5, 0xFF])])
        let unknown = try await Dfuhop.run("image", "convert", input, directory.path("x.dfu"), "--family", "f999")
        #expect(unknown.status == 64)
    }
}
