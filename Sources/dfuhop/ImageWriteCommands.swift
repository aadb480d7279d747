import ArgumentParser
import Crypto
import DeviceProfiles
import FirmwareImage
import HexFormat

// MARK: - convert

struct ImageConvertCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert a firmware file to .dfu, Intel HEX, S-record or raw binary.",
        discussion: """
            The output format comes from --format, else from OUT's extension (.dfu, .hex, .srec/.s19/.s28/.s37, \
            .bin). The image is normalised on the way (adjacent segments merged, overlaps refused); a raw \
            binary runs from the lowest to the highest address with gaps filled with 0xFF.

            A .dfu gets one target per memory, one element per segment, and a suffix with the USB identity \
            from --vid/--pid/--bcd-device (else the input's suffix, else ST's ROM: 0483:DF11, bcdDevice \
            0xFFFF = any). HEX, S-record and binary hold one memory: for a .dfu with several targets, pick \
            one with --alt-setting.

            The output is written to a temporary file and renamed, so a failure never leaves half a file.

            Examples:
              dfuhop image convert app.hex app.bin
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
            var normalized = source
            for index in normalized.targets.indices {
                normalized.targets[index].segments = try FirmwareImage.normalize(
                    normalized.targets[index].segments, granularity: 1, entryPoint: nil
                ).segments
            }
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
            if !json {
                Output.print(
                    "\(input) (\(image.format.displayName)) -> \(output) (\(chosenFormat.displayName)): \(segments) segment(s), \(normalized.payloadSize) bytes"
                )
            }
            return result
        }
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
            try ImageFile.write(stamped, to: output, as: chosenFormat, options: options)
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
            }
            return result
        }
    }
}
