import Testing

@testable import FirmwareImage

@Suite("Image descriptor")
struct DescriptorTests {
    let version = FirmwareVersion(major: 1, minor: 2, patch: 3, build: 4)

    func stampedApplication() throws -> FirmwareImage {
        try Sample.image(Sample.application()).stamped(productID: 0x1209_A001, version: version, name: "blinky", file: "a.bin")
    }

    @Test func encodingFollowsTheDocumentedLayout() throws {
        let descriptor = ImageDescriptor(productID: 0x1209_A001, version: version, name: "blinky", imageSize: 0x300, crc: 0xC0FF_EE00)
        let bytes = descriptor.encoded()
        #expect(bytes.count == 64)
        #expect(Array(bytes[0..<4]) == Sample.ascii("DFHP"))
        #expect(Array(bytes[4..<8]) == [1, 0, 64, 0])
        #expect(Array(bytes[8..<12]) == [0x01, 0xA0, 0x09, 0x12])
        #expect(Array(bytes[12..<20]) == [1, 0, 2, 0, 3, 0, 4, 0])
        #expect(Array(bytes[20..<24]) == [0x00, 0x03, 0, 0])
        #expect(Array(bytes[24..<28]) == [0x00, 0xEE, 0xFF, 0xC0])
        #expect(Array(bytes[28..<32]) == [0, 0, 0, 0])
        #expect(Array(bytes[32..<38]) == Sample.ascii("blinky"))
        #expect(bytes[38...].allSatisfy { $0 == 0 })
        #expect(try ImageDescriptor(decoding: bytes, at: 0, source: "x") == descriptor)
    }

    @Test func stampFillsSizeAndCrcThatValidationThenAccepts() throws {
        let image = try stampedApplication().normalized()
        let descriptor = try ImageDescriptor.validate(image, base: Sample.flashBase, source: "a.bin")
        #expect(descriptor.productID == 0x1209_A001)
        #expect(descriptor.version == version)
        #expect(descriptor.name == "blinky")
        #expect(descriptor.imageSize == 0x300)
        // The CRC is zlib's CRC-32 of the flat image with the CRC field zeroed.
        var flat = image.flattened()
        flat.replaceSubrange(0x118..<0x11C, with: [0, 0, 0, 0])
        #expect(descriptor.crc == CRC32.zlib(flat))
    }

    @Test func aDeviceFlashHoldingTheImageValidatesAndAnyChangeIsCaught() throws {
        let flat = try stampedApplication().normalized().flattened()
        // A 16 KiB flash sector: the image, then erased bytes.
        var flash = flat + [UInt8](repeating: 0xFF, count: 0x4000 - flat.count)
        let memory = FlatMemory(base: Sample.flashBase, bytes: flash)
        #expect(try ImageDescriptor.validate(memory, base: Sample.flashBase, source: "flash").version == version)
        flash[0x250] ^= 1
        let status = ImageDescriptor.inspect(FlatMemory(base: Sample.flashBase, bytes: flash), base: Sample.flashBase, source: "flash")
        guard case .invalid(let error) = status else {
            Issue.record("expected invalid, got \(status)")
            return
        }
        #expect(error.location == .address(0x0800_0118))
        #expect(error.problem.contains("corrupted"))
        // A flash that ends inside the declared size: truncated.
        let short = FlatMemory(base: Sample.flashBase, bytes: Array(flat.prefix(0x200)))
        guard case .invalid(let truncated) = ImageDescriptor.inspect(short, base: Sample.flashBase, source: "flash") else {
            Issue.record("expected invalid")
            return
        }
        #expect(truncated.problem.contains("runs past the end"))
    }

    @Test func gapsCountAsErasedBytesInSizeAndCrc() throws {
        var bytes = Sample.application(size: 0x200)
        bytes[0x30] = 0x42
        let image = FirmwareImage(
            format: .intelHex,
            segments: [
                Segment(address: Sample.flashBase, bytes: bytes), Segment(address: Sample.flashBase + 0x1000, bytes: [1, 2, 3, 4])
            ])
        let stamped = try image.stamped(productID: 1, version: version, name: "", file: "a.hex")
        let normalized = try stamped.normalized()
        #expect(normalized.segments.count == 2)
        let descriptor = try ImageDescriptor.validate(normalized, base: Sample.flashBase, source: "a.hex")
        #expect(descriptor.imageSize == 0x1004)
        var flat = normalized.flattened()
        flat.replaceSubrange(0x118..<0x11C, with: [0, 0, 0, 0])
        #expect(descriptor.crc == CRC32.zlib(flat))
    }

    @Test func restampingReplacesAnEarlierDescriptor() throws {
        let first = try stampedApplication()
        let second = try first.stamped(productID: 7, version: FirmwareVersion(major: 2, minor: 0, patch: 0), name: "next", file: "a.bin")
        let descriptor = try ImageDescriptor.validate(try second.normalized(), base: Sample.flashBase, source: "a.bin")
        #expect(descriptor.productID == 7 && descriptor.name == "next")
    }

    @Test func stampRefusesImagesThatDidNotReserveTheArea() throws {
        func failure(_ image: FirmwareImage, name: String = "x") -> ImageError? {
            do {
                _ = try image.stamped(productID: 1, version: version, name: name, file: "a.bin")
                return nil
            } catch { return error }
        }
        #expect(failure(Sample.image(Sample.application(reserveDescriptor: false)))?.problem.contains("reserves no descriptor") == true)
        var code = Sample.application()
        code[0x110] = 0x12
        #expect(failure(Sample.image(code))?.problem.contains("hold other data") == true)
        var unaligned = Sample.application()
        Sample.put(Sample.flashBase + 0x102, at: 0x20, in: &unaligned)
        #expect(failure(Sample.image(unaligned))?.problem.contains("not 4-byte aligned") == true)
        var outside = Sample.application()
        Sample.put(Sample.flashBase + 0x2F0, at: 0x20, in: &outside)
        #expect(failure(Sample.image(outside))?.problem.contains("does not hold 64 bytes") == true)
        #expect(failure(Sample.image([1, 2, 3]))?.problem.contains("no vector table") == true)
        #expect(failure(Sample.image(Sample.application()), name: String(repeating: "n", count: 33))?.kind == .unsupported)
    }

    @Test func inspectTellsAbsentReservedUnstampedAndInvalidApart() throws {
        func status(_ bytes: [UInt8]) throws -> DescriptorStatus {
            ImageDescriptor.inspect(try Sample.image(bytes).normalized(), base: Sample.flashBase, source: "a.bin")
        }
        #expect(try status(Sample.application(reserveDescriptor: false)) == .absent(pointer: 0))
        #expect(try status(Sample.application()) == .reserved(address: Sample.flashBase + 0x100))
        var unstamped = Sample.application()
        unstamped.replaceSubrange(0x100..<0x140, with: ImageDescriptor(productID: 1, version: version, name: "u").encoded())
        guard case .unstamped = try status(unstamped) else {
            Issue.record("expected unstamped")
            return
        }
        var badMagic = unstamped
        badMagic[0x100] = 0x45
        guard case .invalid(let error) = try status(badMagic) else {
            Issue.record("expected invalid")
            return
        }
        #expect(error.location == .address(Sample.flashBase + 0x100))
        var badFlags = unstamped
        badFlags[0x11C] = 1
        guard case .invalid(let flags) = try status(badFlags) else {
            Issue.record("expected invalid")
            return
        }
        #expect(flags.problem.contains("flags"))
        var badName = unstamped
        badName[0x120] = 0xC3 // a lone UTF-8 lead byte
        guard case .invalid(let name) = try status(badName) else {
            Issue.record("expected invalid")
            return
        }
        #expect(name.problem.contains("UTF-8"))
    }

    @Test func versionsParseAndOrder() {
        #expect(FirmwareVersion(parsing: "1.2.3") == FirmwareVersion(major: 1, minor: 2, patch: 3, build: 0))
        #expect(FirmwareVersion(parsing: "1.2.3.65535")?.build == 65535)
        #expect(FirmwareVersion(parsing: "1.2") == FirmwareVersion(major: 1, minor: 2, patch: 0))
        #expect(FirmwareVersion(parsing: "1.2", minimumComponents: 3) == nil, "a hand-written image version names the patch")
        for bad in ["1", "1.2.3.4.5", "1..3", "1.2.65536", "a.b.c", "-1.2.3", "+1.2.3", "1.2.3 ", ""] {
            #expect(FirmwareVersion(parsing: bad) == nil, "\(bad)")
        }
        #expect(FirmwareVersion(major: 1, minor: 10, patch: 0) > FirmwareVersion(major: 1, minor: 9, patch: 9, build: 9))
    }

    @Test func versionsPrintShortAndFull() {
        let release = FirmwareVersion(major: 2, minor: 1, patch: 0)
        #expect(release.description == "2.1.0")
        #expect(release.fullDescription == "2.1.0.0")
        let build = FirmwareVersion(major: 2, minor: 1, patch: 0, build: 7)
        #expect(build.description == "2.1.0.7")
        #expect(build.fullDescription == "2.1.0.7")
        for version in [release, build] {
            #expect(FirmwareVersion(parsing: version.description) == version)
            #expect(FirmwareVersion(parsing: version.fullDescription, minimumComponents: 3) == version)
        }
    }
}

@Suite("Image checks")
struct ImageCheckTests {
    let f407 = TargetMemoryMap(
        partName: "STM32F405/407", ram: [0x2000_0000...0x2001_FFFF, 0x1000_0000...0x1000_FFFF],
        flash: [0x0800_0000...0x080F_FFFF])

    func findings(
        _ bytes: [UInt8], base: UInt32 = Sample.flashBase, entry: UInt32? = nil,
        target: TargetMemoryMap? = nil
    ) throws -> [ImageFinding] {
        let image = FirmwareImage(format: .binary, segments: [Segment(address: base, bytes: bytes)], entryPoint: entry)
        return ImageCheck.check(try image.normalized(), for: target, source: "a.bin").findings
    }

    @Test func aStampedImageInsideTheFamilysMemoryHasNoFindings() throws {
        let stamped = try Sample.image(Sample.application()).stamped(
            productID: 1, version: FirmwareVersion(major: 1, minor: 0, patch: 0), name: "ok", file: "a")
        let report = ImageCheck.check(try stamped.normalized(granularity: 4), for: f407, source: "a")
        #expect(report.findings == [])
        #expect(
            report.vectorTable
                == VectorTable(
                    address: Sample.flashBase, initialStackPointer: 0x2002_0000,
                    resetHandler: 0x0800_0201, descriptorPointer: 0x0800_0100))
    }

    /// Each stray segment is an error, but a hostile file of thousands costs eight findings and a count, not
    /// one finding (and one printed line) each: the image is refused either way.
    @Test func segmentsOutsideTheFlashAreNamedUpToEightThenCounted() throws {
        var segments = [Segment(address: Sample.flashBase, bytes: Sample.application())]
        for index in 0..<20 { segments.append(Segment(address: 0x0810_0000 + UInt32(index) * 64, bytes: [1, 2, 3, 4])) }
        let report = ImageCheck.check(try FirmwareImage(format: .intelHex, segments: segments).normalized(), for: f407, source: "a.hex")
        let outside = report.errors.filter { $0.message.contains("outside the flash of STM32F405/407") }
        #expect(outside.count == 9)
        let named: [UInt32?] = outside.prefix(8).map(\.address)
        let expected: [UInt32?] = (0..<8).map { (index: Int) -> UInt32? in 0x0810_0000 + UInt32(index) * 64 }
        #expect(named == expected)
        #expect(outside.last?.message.hasPrefix("12 more segment(s) lie outside") == true, "\(outside.last?.message ?? "")")
    }

    @Test func stackPointerOutsideRamIsAnErrorWithTheFamilyAndAWarningWithout() throws {
        let bytes = Sample.application(stackPointer: 0x2003_0000)
        let withFamily = try findings(bytes, target: f407).filter { $0.severity == .error }
        #expect(withFamily.count == 1)
        #expect(withFamily.first?.address == Sample.flashBase)
        #expect(withFamily.first?.message.contains("outside the RAM of STM32F405/407") == true)
        let far = try findings(Sample.application(stackPointer: 0x0800_1000))
        #expect(far.contains { $0.severity == .warning && $0.message.contains("Cortex-M SRAM region") })
        // The end of RAM is a valid initial SP (the stack grows down from it); CCM too.
        #expect(
            try findings(Sample.application(stackPointer: 0x1001_0000), target: f407).allSatisfy { !$0.message.contains("stack pointer") })
    }

    @Test func resetHandlerMustHaveTheThumbBitAndLieInsideTheImage() throws {
        let even = try findings(Sample.application(resetOffset: 0x200))
        #expect(even.contains { $0.severity == .error && $0.address == Sample.flashBase + 4 && $0.message.contains("Thumb bit") })
        let outside = try findings(Sample.application(resetOffset: 0x4001))
        #expect(outside.contains { $0.severity == .error && $0.message.contains("outside the image") })
    }

    @Test func erasedOrMissingVectorTablesAreErrors() throws {
        #expect(try findings([UInt8](repeating: 0xFF, count: 64)).contains { $0.message.contains("erased") })
        #expect(try findings([1, 2, 3, 4]).contains { $0.message.contains("no vector table") })
    }

    @Test func segmentsOutsideFlashAndOddBasesAreReported() throws {
        let image = FirmwareImage(
            format: .intelHex,
            segments: [
                Segment(address: Sample.flashBase, bytes: Sample.application()), Segment(address: 0x0810_0000, bytes: [1])
            ])
        let found = ImageCheck.check(try image.normalized(), for: f407, source: "a").findings
        #expect(found.contains { $0.severity == .error && $0.address == 0x0810_0000 && $0.message.contains("outside the flash") })
        let offset = try findings(Sample.application(base: 0x0800_4000), base: 0x0800_4000, target: f407)
        #expect(offset.contains { $0.severity == .warning && $0.message.contains("not at the flash base") })
        let odd = try findings(Sample.application(base: 0x0800_0100), base: 0x0800_0100)
        #expect(odd.contains { $0.message.contains("512-byte aligned") })
    }

    @Test func startAddressThatIsNeitherResetHandlerNorTableIsAWarning() throws {
        #expect(try findings(Sample.application(), entry: 0x0800_0201).allSatisfy { !$0.message.contains("start address") })
        #expect(try findings(Sample.application(), entry: 0x0800_0000).allSatisfy { !$0.message.contains("start address") })
        #expect(
            try findings(Sample.application(), entry: 0x0800_0301).contains {
                $0.severity == .warning && $0.message.contains("start address")
            })
    }

    @Test func dataAfterTheStampedSizeIsAnError() throws {
        let stamped = try Sample.image(Sample.application()).stamped(
            productID: 1, version: FirmwareVersion(major: 1, minor: 0, patch: 0), name: "", file: "a")
        var grown = stamped
        grown.targets[0].segments.append(Segment(address: Sample.flashBase + 0x300, bytes: [0xFF, 0xFF, 0x12]))
        let found = ImageCheck.check(try grown.normalized(), source: "a").findings
        #expect(found.contains { $0.severity == .error && $0.address == Sample.flashBase + 0x302 })
        // Erased padding after the declared size (normalising to a write unit) is fine.
        grown.targets[0].segments[1].bytes[2] = 0xFF
        #expect(ImageCheck.check(try grown.normalized(granularity: 32), source: "a").findings.isEmpty)
    }

    /// Issue 23: a library finding names no command of dfuhop's; the step it asks for is data (`next`).
    @Test func aReservedDescriptorAsksForStampingAsData() throws {
        let report = ImageCheck.check(try Sample.image(Sample.application()).normalized(), source: "a.bin")
        let reserved = report.findings.filter { $0.next == .stamp }
        #expect(reserved.count == 1 && reserved[0].severity == .warning && reserved[0].address == Sample.flashBase + 0x100)
        #expect(reserved.allSatisfy { $0.message.hasSuffix(ImageFinding.NextStep.stamp.clause) })
        #expect(report.findings.allSatisfy { !$0.message.contains("dfuhop") && !$0.message.contains("--") }, "\(report.findings)")
    }

    @Test func emptyImageIsAnError() throws {
        let report = ImageCheck.check(try FirmwareImage(format: .binary, segments: []).normalized(), source: "a")
        #expect(report.errors.map(\.message) == ["the image is empty"])
    }
}
