import HexFormat

/// How to read files whose format does not say everything.
public struct ReadOptions: Sendable, Hashable {
    /// Where a raw binary (or a plain-DFU-suffix file) goes; the usual STM32 flash base by default.
    public var binaryAddress: UInt32

    public init(binaryAddress: UInt32 = 0x0800_0000) {
        self.binaryAddress = binaryAddress
    }
}

/// Reads any supported format into one sparse `FirmwareImage`. Text formats are parsed chunk by chunk as
/// they arrive (a multi-megabyte HEX file is never held whole); binary formats are collected first.
///
///     var reader = ImageReader(format: .intelHex, file: "app.hex")
///     try reader.consume(chunk)          // as often as there is input
///     let image = try reader.finish()
public struct ImageReader {
    private enum State {
        case intelHex(LineSplitter<IntelHexParser>)
        case srec(LineSplitter<SRecordParser>)
        case whole([UInt8])
    }

    public let format: ImageFormat
    public let file: String
    public let options: ReadOptions
    private var state: State

    /// `expectedSize` (the file size, if known) lets readers reserve memory once instead of growing.
    public init(format: ImageFormat, file: String, options: ReadOptions = ReadOptions(), expectedSize: Int = 0) {
        self.format = format
        self.file = file
        self.options = options
        switch format {
        case .intelHex:
            state = .intelHex(LineSplitter(parser: IntelHexParser(file: file, expectedSize: expectedSize), file: file))
        case .srec:
            state = .srec(LineSplitter(parser: SRecordParser(file: file, expectedSize: expectedSize), file: file))
        case .binary, .elf, .dfuse, .dfuSuffixed:
            var bytes: [UInt8] = []
            bytes.reserveCapacity(max(0, min(expectedSize, 1 << 30)))
            state = .whole(bytes)
        }
    }

    public mutating func consume(_ chunk: UnsafeBufferPointer<UInt8>) throws(ImageError) {
        switch state {
        case .intelHex(var splitter):
            state = .whole([]) // Drop the enum's reference so the splitter is mutated in place.
            defer { state = .intelHex(splitter) }
            try splitter.consume(chunk)
        case .srec(var splitter):
            state = .whole([])
            defer { state = .srec(splitter) }
            try splitter.consume(chunk)
        case .whole(var bytes):
            state = .whole([])
            bytes.append(contentsOf: chunk)
            state = .whole(bytes)
        }
    }

    public mutating func consume(_ chunk: [UInt8]) throws(ImageError) {
        try chunk.withUnsafeBufferPointer { (pointer) throws(ImageError) in try consume(pointer) }
    }

    public mutating func finish() throws(ImageError) -> FirmwareImage {
        let current = state
        state = .whole([])
        switch current {
        case .intelHex(var splitter):
            return try splitter.finish()
        case .srec(var splitter):
            return try splitter.finish()
        case .whole(let bytes):
            return try Self.readWhole(bytes, format: format, file: file, options: options)
        }
    }

    private static func readWhole(_ bytes: [UInt8], format: ImageFormat, file: String, options: ReadOptions) throws(ImageError)
        -> FirmwareImage
    {
        switch format {
        case .elf:
            return try ElfReader.read(bytes, file: file)
        case .dfuse:
            return try DfuFile.readDfuSe(bytes, file: file)
        case .dfuSuffixed:
            return try DfuFile.readPlain(bytes, file: file, address: options.binaryAddress)
        case .binary, .intelHex, .srec:
            // A binary with a DFU suffix (e.g. from `dfu-suffix -a`): the suffix is not firmware.
            if DfuFile.hasValidSuffix(bytes) { return try DfuFile.readPlain(bytes, file: file, address: options.binaryAddress) }
            guard !bytes.isEmpty else { throw ImageError(file: file, "the file is empty") }
            guard UInt64(options.binaryAddress) + UInt64(bytes.count) <= 0x1_0000_0000 else {
                throw ImageError(
                    file: file, "\(bytes.count) bytes at 0x\(Hex.digits(options.binaryAddress, width: 8)) run past the 4 GiB address space")
            }
            return FirmwareImage(format: .binary, segments: [Segment(address: options.binaryAddress, bytes: bytes)])
        }
    }

    /// Reads a whole file held in memory, detecting its format unless one is given.
    public static func read(
        _ bytes: [UInt8], file: String, format: ImageFormat? = nil,
        options: ReadOptions = ReadOptions()
    ) throws(ImageError) -> FirmwareImage {
        let chosen = format ?? detectFormat(fileName: file, head: bytes.prefix(64))
        var reader = ImageReader(format: chosen, file: file, options: options, expectedSize: bytes.count)
        try reader.consume(bytes)
        return try reader.finish()
    }

    /// Names the format from the file's first bytes (magic numbers win), then its extension, then the
    /// first character of text formats. A raw binary that turns out to end in a valid DFU suffix is read as
    /// a plain DFU file when it is finished.
    public static func detectFormat<Head: Collection<UInt8>>(fileName: String, head: Head) -> ImageFormat {
        let start = Array(head.prefix(8))
        if start.starts(with: Array("DfuSe".utf8)) { return .dfuse }
        if start.starts(with: [0x7F, 0x45, 0x4C, 0x46]) { return .elf }
        switch formatForExtension(of: fileName) {
        case .intelHex?: return .intelHex
        case .srec?: return .srec
        case .elf?: return .elf // Not an ELF after all: the reader says so.
        case .dfuse?: return .dfuSuffixed // A .dfu without the DfuSe prefix can only be a plain DFU file.
        case .binary?: return .binary
        case .dfuSuffixed?, nil: break
        }
        let text = Array(head.drop { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D || $0 == 0x0A }.prefix(2))
        if text.first == UInt8(ascii: ":") { return .intelHex }
        if text.count == 2, text[0] == UInt8(ascii: "S"), (0x30...0x39).contains(text[1]) { return .srec }
        return .binary
    }

    /// The format a file name's extension suggests (`.hex`, `.ihx`, `.srec`, `.s19`/`.s28`/`.s37`, `.mot`,
    /// `.elf`/`.axf`, `.dfu`, `.bin`), or nil.
    public static func formatForExtension(of fileName: String) -> ImageFormat? {
        guard let dot = fileName.lastIndex(of: "."), !fileName[dot...].contains("/") else { return nil }
        switch fileName[fileName.index(after: dot)...].lowercased() {
        case "hex", "ihx", "ihex", "h86": return .intelHex
        case "srec", "s19", "s28", "s37", "mot", "mhx", "s": return .srec
        case "elf", "axf", "out": return .elf
        case "dfu": return .dfuse
        case "bin", "img": return .binary
        default: return nil
        }
    }
}
