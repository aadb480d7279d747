import ArgumentParser
import Crypto
import DeviceProfiles
import FirmwareImage
import HexFormat
import UpgradeEngine

// MARK: - convert

struct ImageConvertCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert a firmware file to .dfu, Intel HEX, S-record or raw binary.",
        discussion: """
            The output format comes from --format, else from OUT's extension (.dfu, .hex, .srec/.s19/.s28/.s37, \
            .bin). The image is normalised on the way (adjacent segments merged, overlaps refused); a raw \
            binary runs from the lowest to the highest address with gaps filled with 0xFF.

            So that no client (dfu-util, pydfu, a programmer) can write one flash word twice, which breaks \
            ECC flash (L4, G4, H5, H7, U5), the flash part of the image is padded to whole flash words: \
            every element starts and ends on a word, segments that share a word become one element, and \
            the bytes added are 0xFF. The word is the part's (--family, else the family of the product \
            profile the image's descriptor names), else 32 bytes, the largest on any STM32. The command \
            says what it padded, and warns about segments that shared a word.

            A .dfu gets one target per memory, one element per segment, and a suffix with the USB identity \
            from --vid/--pid/--bcd-device (else the input's suffix, else ST's ROM: 0483:DF11, bcdDevice \
            0xFFFF = any). HEX, S-record and binary hold one memory: for a .dfu with several targets, pick \
            one with --alt-setting.

            The output is written to a temporary file and renamed, so a failure never leaves half a file.

            Examples:
              dfuhop image convert app.hex app.bin
              dfuhop image convert gapped.hex gapped.dfu --family l476
              dfuhop image convert app.bin app.dfu --address 0x08000000 --vid 0x1209
              dfuhop image convert app.hex app.dfu --target-name "Internal Flash"
              dfuhop image convert update.dfu flash.hex --alt-setting 0
              dfuhop image convert app.elf app.s37 --format srec
            """)

    @Argument(help: "The input firmware file.", completion: .file())
    var input: String

    @Argument(help: "The file to write.", completion: .file())
    var output: String

    @Option(
        help: ArgumentHelp("Output format: dfu, hex, srec or bin (default: from OUT's extension).", valueName: "format"),
        completion: .imageFormats)
    var format: String?

    @OptionGroup var inputOptions: ImageInputOptions

    @Option(
        help: ArgumentHelp(
            "The MCU family, whose flash word the output is padded to (default: the image's product, else 32 bytes).",
            valueName: "family"))
    var family: String?

    @Option(help: ArgumentHelp("USB vendor ID for the .dfu suffix.", valueName: "vid")) var vid: String?
    @Option(help: ArgumentHelp("USB product ID for the .dfu suffix.", valueName: "pid")) var pid: String?
    @Option(help: ArgumentHelp("bcdDevice for the .dfu suffix (0xFFFF: any).", valueName: "bcd")) var bcdDevice: String?
    @Option(help: ArgumentHelp("Name of the .dfu target (for targets without one).", valueName: "name")) var targetName: String?

    @Flag(help: "One JSON object on stdout instead of text.")
    var json = false

    func validate() throws {
        if let targetName, targetName.utf8.count > 254 {
            throw ValidationError("--target-name is \(targetName.utf8.count) bytes; a DfuSe target name holds at most 254")
        }
    }

    func run() async throws {
        try await runCommand("image convert", json: json) {
            let image = try inputOptions.read(input)
            let chosenFormat = try outputFormat(format, path: output, fallback: nil)
            // Without --alt-setting every target is kept: .dfu holds them all, the others refuse several.
            let source = inputOptions.altSetting == nil ? image : try inputOptions.selectTarget(of: image, file: input)
            let rule = try flashWordRule(family: family, image: source)
            let (normalized, padding) = try source.paddedToFlashWords(rule.rule)
            var options = WriteOptions(targetName: targetName)
            if vid != nil || pid != nil || bcdDevice != nil {
                let base = image.suffixIdentity ?? WriteOptions.defaultIdentity
                options.suffixIdentity = DfuSuffixIdentity(
                    vendorID: try usbNumber(vid, "--vid") ?? base.vendorID,
                    productID: try usbNumber(pid, "--pid") ?? base.productID,
                    bcdDevice: try usbNumber(bcdDevice, "--bcd-device") ?? base.bcdDevice)
            }
            try ImageFile.write(normalized, to: output, as: chosenFormat, options: options)
            let segments = normalized.targets.reduce(0) { $0 + $1.segments.count }
            var result = ResultLine("converted")
            result.converted = ConvertedJSON(
                input: input, inputFormat: image.format.rawValue, output: output, outputFormat: chosenFormat.rawValue,
                segments: segments, payloadSize: normalized.payloadSize)
            result.converted?.flashWord = FlashWordJSON(padding, from: rule.from)
            if !json {
                Output.print(
                    "\(input) (\(image.format.displayName)) -> \(output) (\(chosenFormat.displayName)): \(segments) segment(s), \(normalized.payloadSize) bytes"
                )
                Output.print(padding.summary(from: rule.from))
                let (before, after) = (source.segments.map(\.address).min(), normalized.segments.first?.address)
                if chosenFormat == .binary, let before, let after, before != after {
                    Output.print(
                        "the raw binary starts at \(Hex.word(after)), not \(Hex.word(before)): give that address to the tool that writes it"
                    )
                }
            }
            for warning in padding.warnings { Output.message("warning: \(warning)") }
            return result
        }
    }
}

/// The flash word files dfuhop writes are padded to (issue 25): the part named by --family, else the family
/// of the product profile the image's descriptor names, else the largest STM32 word. `from` says which.
func flashWordRule(family id: String?, image: FirmwareImage) throws -> (rule: FlashWordRule, from: String) {
    if let (family, _) = try targetMemoryMap(family: id) { return (FlashWordRule(family), "--family \(family.id)") }
    if let profile = productProfile(of: image) { return (FlashWordRule(profile.family), "the image's product, profile \(profile.id)") }
    return (.anySTM32, "no part given or recognised")
}

/// The profile of the product the image's descriptor names. The descriptor is read once, on the image as it
/// is (not once per family, as `upgrade` does): a hostile file of 100,000 segments costs one pass. The
/// profiles only sharpen the word; without them the largest word is still safe, so a broken set is no error.
private func productProfile(of image: FirmwareImage) -> ProductProfile? {
    guard let normalized = try? image.normalized(), let base = normalized.baseAddress,
        let descriptor = try? ImageDescriptor.validate(normalized, base: base, source: "")
    else { return nil }
    return ((try? Profiles.load([])) ?? []).first { $0.imageProductID == descriptor.productID }
}

extension FlashWordRule {
    /// The family's flash word over its main flash (and the STM32 flash region, for aliases).
    init(_ family: McuFamily) {
        let zones = family.defaultFlashMode.layout.zones.map { $0.start...UInt32($0.end - 1) }
        self.init(wordSize: family.writeGranularity, partName: family.name, regions: zones + [Self.stm32FlashRegion])
    }
}

extension FlashWordPadding {
    /// One line: what was padded, or that nothing needed it.
    func summary(from: String) -> String {
        let word = "\(rule.wordDescription), from \(from)"
        guard changed else { return "nothing padded: every element is already whole words (the \(word))" }
        return "padded to the \(word): \(segmentsBefore) segment(s) -> \(segmentsAfter) element(s), \(paddedBytes) bytes of 0xFF added"
    }

    /// Segments that shared a word, and segments off a word, named with the word and the part: the first
    /// eight, then a count (a file of 100,000 stray records would otherwise print 100,000 lines).
    var warnings: [String] {
        let part = rule.partName ?? "any STM32"
        let shared = sharedWords.prefix(8).map {
            "segments \($0.first) and \($0.second) share the flash word at \(Hex.word($0.word)) (\(rule.wordSize) bytes on \(part)); "
                + "a client that writes them separately writes it twice (merged into one element here)"
        }
        let offWord = unaligned.prefix(8 - shared.count).map {
            "segment \($0) starts or ends off a flash word (\(rule.wordSize) bytes on \(part)); "
                + "widened to whole words with 0xFF here"
        }
        let more = sharedWordCount + unalignedCount - shared.count - offWord.count
        return shared + offWord + (more > 0 ? ["\(more) more segment(s) shared a word or started or ended off one (widened too)"] : [])
    }
}

func usbNumber(_ text: String?, _ option: String) throws -> UInt16? {
    guard let text else { return nil }
    guard let value = parseNumber(text), value <= 0xFFFF else {
        throw ValidationError("\(option) '\(text)' is not a 16-bit number (e.g. 0x0483)")
    }
    return UInt16(value)
}

// MARK: - stamp

struct ImageStampCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stamp",
        abstract: "Fill in the image descriptor: product, version, name, size and CRC.",
        discussion: """
            The image must reserve its descriptor: word 8 of the vector table (offset 0x20 from the image \
            base, reserved on every Cortex-M) holds the address of a 64-byte area inside the image that holds \
            zeros, 0xFF or an earlier descriptor. stamp writes the magic "DFHP", the product id, the version, \
            the name, the image size (from the base to the highest address, gaps counted) and the CRC-32 of \
            those bytes (gaps as 0xFF, the CRC field as zero). The layout is in protocols/image-descriptor.md.

            In the firmware (GNU ld and C):
              .isr_vector: ... word 8 = (uint32_t)&dfuhop_descriptor
              __attribute__((section(".rodata.dfuhop"), used)) const uint8_t dfuhop_descriptor[64];

            Stamp last: any change to the image after stamping breaks the CRC (`dfuhop image info` says so).
            OUT's format comes from --format, else its extension, else the input's format.

            Examples:
              dfuhop image stamp app.hex out.hex --product-id 0x1209A001 --version 1.4.2
              dfuhop image stamp a.hex b.hex --product-id 7 --version 1.4.2 --name "hub 2"
              dfuhop image stamp app.elf app.dfu --product-id 7 --version 2.0.0.15
            """)

    @Argument(help: "The input image (its descriptor area reserved).", completion: .file())
    var input: String

    @Argument(help: "The stamped image to write.", completion: .file())
    var output: String

    @Option(help: ArgumentHelp("The product id (32-bit, decimal or 0x hex).", valueName: "n"))
    var productId: String

    @Option(help: ArgumentHelp("The version, A.B.C or A.B.C.D (each 0-65535).", valueName: "version"))
    var version: String

    @Option(help: ArgumentHelp("The name, up to 32 bytes of UTF-8.", valueName: "name"))
    var name: String

    @Option(
        help: ArgumentHelp("Output format: dfu, hex, srec or bin (default: from OUT's extension).", valueName: "format"),
        completion: .imageFormats)
    var format: String?

    @OptionGroup var inputOptions: ImageInputOptions

    @Option(help: ArgumentHelp("USB vendor ID for a .dfu output.", valueName: "vid")) var vid: String?
    @Option(help: ArgumentHelp("USB product ID for a .dfu output.", valueName: "pid")) var pid: String?

    @Flag(help: "One JSON object on stdout instead of text.")
    var json = false

    func validate() throws {
        guard let value = parseNumber(productId), value <= UInt64(UInt32.max) else {
            throw ValidationError("--product-id '\(productId)' is not a 32-bit number")
        }
        _ = value
        guard FirmwareVersion(parsing: version, minimumComponents: 3) != nil else {
            throw ValidationError("--version '\(version)' is not A.B.C or A.B.C.D with each part 0-65535")
        }
        guard name.utf8.count <= ImageDescriptor.nameLength, !name.utf8.contains(0) else {
            throw ValidationError("--name is \(name.utf8.count) bytes of UTF-8; the descriptor holds at most \(ImageDescriptor.nameLength)")
        }
    }

    func run() async throws {
        try await runCommand("image stamp", json: json) {
            guard let product = parseNumber(productId).map(UInt32.init),
                let parsedVersion = FirmwareVersion(parsing: version, minimumComponents: 3)
            else {
                throw ValidationError("invalid --product-id or --version")
            }
            let image = try inputOptions.selectTarget(of: try inputOptions.read(input), file: input)
            let stamped = try image.stamped(productID: product, version: parsedVersion, name: name, file: input)
            let chosenFormat = try outputFormat(format, path: output, fallback: image.format)
            var options = WriteOptions()
            if vid != nil || pid != nil {
                let base = image.suffixIdentity ?? WriteOptions.defaultIdentity
                options.suffixIdentity = DfuSuffixIdentity(
                    vendorID: try usbNumber(vid, "--vid") ?? base.vendorID,
                    productID: try usbNumber(pid, "--pid") ?? base.productID,
                    bcdDevice: base.bcdDevice)
            }
            // Padded to flash words like `convert` (the descriptor's product names the part, if it has a profile).
            let rule = try flashWordRule(family: nil, image: stamped)
            let (padded, padding) = try stamped.paddedToFlashWords(rule.rule)
            try ImageFile.write(padded, to: output, as: chosenFormat, options: options)
            for warning in padding.warnings { Output.message("warning: \(warning)") }
            let normalized = try stamped.normalized()
            guard let base = normalized.baseAddress else { throw Failure(.badInput, "\(output): the stamped image is empty") }
            let descriptor = try ImageDescriptor.validate(normalized, base: base, source: output)
            var result = ResultLine("stamped")
            result.stamped = StampedJSON(
                output: output, outputFormat: chosenFormat.rawValue, productID: Hex.word(descriptor.productID),
                version: descriptor.version.description, name: descriptor.name,
                imageSize: Int(descriptor.imageSize), crc32: Hex.word(descriptor.crc))
            if !json {
                Output.print(
                    "stamped \(output): product \(Hex.word(descriptor.productID)), version \(descriptor.version.description), name '\(descriptor.name)', \(descriptor.imageSize) bytes, CRC-32 \(Hex.word(descriptor.crc))"
                )
                if padding.changed { Output.print(padding.summary(from: rule.from)) }
            }
            return result
        }
    }
}
