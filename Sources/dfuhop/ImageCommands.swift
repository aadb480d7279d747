import ArgumentParser
import Crypto
import DeviceProfiles
import FirmwareImage
import Foundation
import HexFormat

/// `dfuhop image …`: look inside, convert and stamp firmware files. No device is touched.
struct ImageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "image",
        abstract: "Inspect, convert and stamp firmware images (no device needed).",
        discussion: """
            dfuhop reads raw binary, Intel HEX, Motorola S-record, ELF32 (ARM) and DfuSe .dfu files, and \
            binaries with a plain DFU suffix. The format is recognised from the content (DfuSe and ELF magic), \
            then the file name's extension, then the first character (':' HEX, 'S0'-'S9' S-record); anything \
            else is a raw binary, placed at --address (default 0x08000000).

            Every file is read into one sparse image: segments with addresses, never the gaps between them. \
            Before a device sees it, the image is normalised: adjacent segments merged, overlapping ones \
            refused (both ranges named), and each segment padded with 0xFF to the part's write unit so no \
            flash word is written twice (8 bytes on L4/G4, 32 on H7).

            Examples:
              dfuhop image info app.hex --family f407
              dfuhop image convert app.elf app.dfu --vid 0x1209 --pid 0x0001
              dfuhop image stamp app.hex app-1.2.0.hex --product-id 0x1209A001 --version 1.2.0 --name blinky
            """,
        subcommands: [ImageInfoCommand.self, ImageConvertCommand.self, ImageStampCommand.self])
}

/// Options every image command shares for reading its input.
struct ImageInputOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Where a raw binary goes in memory (0x hex).", valueName: "address"))
    var address = Address(0x0800_0000)

    @Option(
        name: .long,
        help: ArgumentHelp(
            "For .dfu files with several targets: the alternate setting to use (default: 0, the internal flash).",
            valueName: "n"))
    var altSetting: UInt8?

    func readOptions() throws -> ReadOptions { ReadOptions(binaryAddress: address.value) }

    func read(_ path: String) throws -> FirmwareImage {
        try ImageFile.read(path: path, options: readOptions())
    }

    /// The image reduced to the chosen target, for commands that work on one memory.
    func selectTarget(of image: FirmwareImage, file: String) throws -> FirmwareImage {
        guard let altSetting else {
            guard image.targets.count > 1 else { return image }
            var single = image
            single.targets = [image.targets.first { $0.alternateSetting == 0 } ?? image.targets[0]]
            return single
        }
        guard let target = image.targets.first(where: { $0.alternateSetting == altSetting }) else {
            let present = image.targets.map { String($0.alternateSetting) }.joined(separator: ", ")
            throw Failure(.usage, "\(file) has no target with alternate setting \(altSetting) (it has: \(present))")
        }
        var single = image
        single.targets = [target]
        return single
    }
}

/// Turns `--family f407` into the memory map the checks use.
func targetMemoryMap(family id: String?) throws -> (McuFamily, TargetMemoryMap)? {
    guard let id else { return nil }
    guard let family = McuFamily.named(id) else {
        throw ValidationError("unknown family '\(id)'; known: \(McuFamily.all.map(\.id).joined(separator: ", "))")
    }
    let ram = family.ramRegions.map { $0.start...UInt32($0.end - 1) }
    let flash = family.defaultFlashMode.layout.zones.map { $0.start...UInt32($0.end - 1) }
    return (family, TargetMemoryMap(partName: family.name, ram: ram, flash: flash))
}

func formatNamed(_ name: String) throws -> ImageFormat {
    switch name.lowercased() {
    case "dfu", "dfuse": return .dfuse
    case "hex", "ihex", "intel-hex": return .intelHex
    case "srec", "s19", "s28", "s37", "mot": return .srec
    case "bin", "binary", "raw": return .binary
    default: throw ValidationError("unknown output format '\(name)'; use dfu, hex, srec or bin")
    }
}

/// The output format: --format if given, else the output file's extension, else `fallback`.
func outputFormat(_ option: String?, path: String, fallback: ImageFormat?) throws -> ImageFormat {
    if let option { return try formatNamed(option) }
    if let format = ImageReader.formatForExtension(of: path), format != .elf { return format }
    if let fallback, fallback != .elf, fallback != .dfuSuffixed { return fallback }
    throw ValidationError("cannot tell the output format from '\(path)'; name it with --format dfu|hex|srec|bin")
}

// MARK: - info

struct ImageInfoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info",
        abstract: "Show what is in a firmware file, and check it.",
        discussion: """
            Prints the format, the segments after normalisation (start, end, size), the total size, the CRC-32 \
            (zlib) and SHA-256 of the normalised content (from the lowest to the highest address, gaps as \
            0xFF: the bytes a raw binary holds), the initial stack pointer and reset handler from the vector \
            table at the image base, the image descriptor (protocols/image-descriptor.md), and what looks \
            wrong, each with its address:
              error    the image cannot be right (e.g. reset handler without the Thumb bit, stack pointer \
            outside RAM, descriptor CRC mismatch);
              warning  unusual, maybe intended (e.g. no descriptor, image not at the flash base).
            Without --family the stack pointer is only checked against the Cortex-M SRAM region; with it, \
            against the part's RAM and flash, and segments are padded to its write unit. Segments that share \
            a flash word, or start or end off one, are warned about (the word of --family, else of the product \
            the descriptor names, else 32 bytes): a client that writes them as they are writes a word twice.

            Exit status: 0 when the file could be read (look at the findings), 65 when it is malformed \
            (the message names the line or byte offset), 66 when it cannot be opened.

            Examples:
              dfuhop image info protocols/examples/blinky-f407.hex
              dfuhop image info build/app.elf --family l476 --json
              dfuhop image info app.bin --address 0x08004000
            """)

    @Argument(help: "The firmware file (.bin, .hex, .srec/.s19/.s28/.s37, .elf, .dfu).", completion: .file())
    var file: String

    @Flag(help: "One JSON object on stdout instead of text.")
    var json = false

    @Option(
        help: ArgumentHelp(
            "The MCU family, to check against its RAM and flash and pad to its write unit (\(McuFamily.all.map(\.id).joined(separator: ", "))).",
            valueName: "family"), completion: .families)
    var family: String?

    @OptionGroup var input: ImageInputOptions

    func run() async throws {
        let segments = StreamedResultArray()
        try await runCommand("image info", json: json, streaming: segments) {
            let target = try targetMemoryMap(family: family)
            let image = try input.read(file)
            let selected = try input.selectTarget(of: image, file: file)
            let normalized = try selected.normalized(granularity: target?.0.writeGranularity ?? 1)
            var report = ImageCheck.check(normalized, for: target?.1, source: file)
            report.findings = report.findings.map(\.inDfuhopWords) + (try flashWordFindings(selected))
            let digests = Digests(normalized)
            var result = ResultLine("described")
            guard json else {
                // Text: printed as it is made; the JSON result (a copy of every segment) is built only for --json.
                printInfo(image: image, normalized: normalized, report: report, digests: digests, family: target?.0)
                return result
            }
            // JSON: the segments are written as they are encoded, not held as one result (memory bounded by the file).
            result.image = ImageInfoJSON(
                file: file, image: image, normalized: normalized, report: report, digests: digests, family: target?.0)
            segments.set(key: "segments", elements: normalized.segments.lazy.map(ImageInfoJSON.SegmentJSON.line))
            return result
        }
    }

    /// Segments that share a flash word of the given or recognised part (else the largest STM32 word), or
    /// start or end off one: a client writing them as they are writes a word twice. The first eight are named.
    private func flashWordFindings(_ image: FirmwareImage) throws -> [ImageFinding] {
        let (rule, from) = try flashWordRule(family: family, image: image)
        let merged = try FirmwareImage.normalize(image.segments, granularity: 1, entryPoint: nil).segments
        let part = rule.partName ?? "any STM32, \(from)"
        var findings = FirmwareImage.sharedFlashWords(merged, rule: rule, limit: Self.namedWordFindings).map {
            ImageFinding(
                .warning, at: $0.word,
                "segments \($0.first) and \($0.second) share a flash word (\(rule.wordSize) bytes on \(part)); a client that "
                    + "writes them separately writes it twice (`dfuhop image convert` merges them)")
        }
        let offWord = merged.lazy.filter { rule.applies(to: $0) && !$0.isAligned(to: rule.wordSize) }
        for segment in offWord.prefix(max(0, Self.namedWordFindings - findings.count)) {
            findings.append(
                ImageFinding(
                    .warning, at: segment.address,
                    "segment \(segment.extent) starts or ends off a flash word (\(rule.wordSize) bytes on \(part)); a client that "
                        + "writes it in blocks may write a word twice (`dfuhop image convert` pads it)"))
        }
        return findings
    }

    static let namedWordFindings = 8

    private func printInfo(image: FirmwareImage, normalized: NormalizedImage, report: ImageReport, digests: Digests, family: McuFamily?) {
        var lines: [String] = []
        func field(_ name: String, _ value: String) { lines.append(name.padding(toLength: 15, withPad: " ", startingAt: 0) + value) }
        field("file:", file)
        field("format:", image.format.displayName)
        if let identity = image.suffixIdentity {
            field(
                "dfu suffix:",
                "VID 0x\(Hex.digits(identity.vendorID, width: 4)), PID 0x\(Hex.digits(identity.productID, width: 4)), bcdDevice 0x\(Hex.digits(identity.bcdDevice, width: 4))"
            )
        }
        if image.targets.count > 1 || image.format == .dfuse {
            for target in image.targets {
                let size = target.segments.reduce(0) { $0 + $1.bytes.count }
                let name = target.name.map { " '\(TerminalText.escaped($0))'" } ?? ""
                field("target:", "alt \(target.alternateSetting)\(name): \(target.segments.count) element(s), \(size) bytes")
            }
        }
        if let family { field("family:", "\(family.name) (write unit \(family.writeGranularity) bytes)") }
        field("segments:", "\(normalized.segments.count)")
        for segment in normalized.segments {
            lines.append("  \(Hex.word(segment.address))-\(Hex.word(UInt32(segment.end - 1)))  \(segment.bytes.count) bytes")
            // An image of 100,000 segments would otherwise hold all its text at once (memory bounded by the file).
            if lines.count >= 4096 {
                Output.print(lines: lines)
                lines.removeAll(keepingCapacity: true)
            }
        }
        if let base = normalized.baseAddress {
            let span = normalized.end - UInt64(base)
            field(
                "total:", "\(normalized.payloadSize) bytes in a span of \(span) (\(Hex.word(base))-\(Hex.word(UInt32(normalized.end - 1))))"
            )
        }
        field("crc32:", Hex.word(digests.crc32))
        field("sha256:", digests.sha256 ?? Digests.sha256Omitted(span: normalized.baseAddress.map { normalized.end - UInt64($0) } ?? 0))
        if let entry = image.entryPoint { field("start address:", "\(Hex.word(entry)) (from the file)") }
        if let table = report.vectorTable {
            field("initial SP:", Hex.word(table.initialStackPointer))
            field("reset handler:", Hex.word(table.resetHandler))
        }
        switch report.descriptor {
        case .valid(let descriptor, let address)?:
            field("descriptor:", "at \(Hex.word(address)), valid")
            describe(descriptor, into: &lines)
        case .unstamped(let descriptor, let address)?:
            field("descriptor:", "at \(Hex.word(address)), not stamped")
            describe(descriptor, into: &lines)
        case .reserved(let address)?: field("descriptor:", "at \(Hex.word(address)), reserved, not stamped")
        case .absent?: field("descriptor:", "none")
        case .invalid?: field("descriptor:", "invalid (see below)")
        case nil: break
        }
        for finding in report.findings { lines.append(finding.description) }
        if report.findings.isEmpty { lines.append("no problems found") }
        Output.print(lines: lines)
    }

    private func describe(_ descriptor: ImageDescriptor, into lines: inout [String]) {
        lines.append("  product id:  \(Hex.word(descriptor.productID)) (\(descriptor.productID))")
        lines.append("  version:     \(descriptor.version.description)")
        lines.append("  name:        \(TerminalText.escaped(descriptor.name))")
        lines.append("  image size:  \(descriptor.imageSize) bytes")
        lines.append("  image crc32: \(Hex.word(descriptor.crc))")
    }
}

/// CRC-32 and SHA-256 of a normalised image's bytes from base to end, gaps as 0xFF, streamed. The CRC
/// takes a gap in O(log n) steps; SHA-256 cannot skip one, so it is left out (nil) for a span beyond
/// `sha256SpanLimit`, which no STM32's flash comes near: a 72-byte HEX spanning 4 GiB costs nothing.
struct Digests {
    static let sha256SpanLimit: UInt64 = 64 << 20

    var crc32: UInt32
    var sha256: String?

    init(_ image: NormalizedImage) {
        var crc = CRC32()
        let span = image.baseAddress.map { image.end - UInt64($0) } ?? 0
        var hasher: SHA256? = span <= Self.sha256SpanLimit ? SHA256() : nil
        let erased = [UInt8](repeating: 0xFF, count: 1 << 16)
        if let base = image.baseAddress {
            _ = image.withPieces(from: base, count: Int(span)) { piece in
                crc.update(piece)
                guard hasher != nil else { return }
                switch piece {
                case .bytes(let bytes): hasher?.update(bufferPointer: UnsafeRawBufferPointer(bytes))
                case .fill(_, var remaining):
                    while remaining > 0 {
                        let step = min(remaining, erased.count)
                        erased.withUnsafeBytes { hasher?.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0[0..<step])) }
                        remaining -= step
                    }
                }
            }
        }
        crc32 = crc.zlibValue
        sha256 = hasher?.finalize().map { byte in
            let digits = String(byte, radix: 16)
            return digits.count == 1 ? "0" + digits : digits
        }.joined()
    }

    /// What `image info` shows when the SHA-256 was left out.
    static func sha256Omitted(span: UInt64) -> String {
        "not computed: the span of \(span) bytes is over \(sha256SpanLimit >> 20) MiB (gaps would be hashed as 0xFF)"
    }
}

extension ImageFinding {
    /// The finding in dfuhop's words: the step it names becomes dfuhop's command.
    var inDfuhopWords: ImageFinding {
        guard let next else { return self }
        var finding = self
        finding.message = message.replacingOccurrences(of: next.clause, with: Self.clause(next))
        return finding
    }

    static func clause(_ step: NextStep) -> String {
        switch step {
        case .stamp: "run `dfuhop image stamp`"
        }
    }
}
