/// Writes images as .dfu (DfuSe), Intel HEX, S-record or raw binary, streaming through a sink so the
/// output never has to exist whole in memory.
public struct WriteOptions: Sendable, Hashable {
    /// USB identity for the .dfu suffix; nil keeps the input's suffix identity, or ST's ROM default
    /// (VID 0x0483, PID 0xDF11, bcdDevice 0xFFFF = any).
    public var suffixIdentity: DfuSuffixIdentity?
    /// Target name for .dfu targets that have none.
    public var targetName: String?
    /// Data bytes per Intel HEX / S-record record (16 is what most tools write).
    public var bytesPerRecord: Int
    /// Refuse a raw binary larger than this (gaps are written as 0xFF, so a stray segment far away
    /// would otherwise produce a huge file).
    public var maximumBinarySize: Int

    public init(
        suffixIdentity: DfuSuffixIdentity? = nil, targetName: String? = nil, bytesPerRecord: Int = 16,
        maximumBinarySize: Int = 256 << 20
    ) {
        self.suffixIdentity = suffixIdentity
        self.targetName = targetName
        self.bytesPerRecord = bytesPerRecord
        self.maximumBinarySize = maximumBinarySize
    }

    public static let defaultIdentity = DfuSuffixIdentity(vendorID: 0x0483, productID: 0xDF11, bcdDevice: 0xFFFF)
}

/// Buffers small writes into large ones for a sink, and keeps a running CRC when asked (the .dfu suffix).
public struct ChunkedOutput {
    public typealias Sink = (UnsafeBufferPointer<UInt8>) throws(ImageError) -> Void

    private var buffer: [UInt8] = []
    private let sink: Sink
    private let threshold: Int
    private var crcActive = false
    private(set) var runningCRC = CRC32()
    /// Bytes handed to the sink so far plus those buffered.
    public private(set) var count = 0

    public init(threshold: Int = 1 << 16, sink: @escaping Sink) {
        self.threshold = threshold
        self.sink = sink
        buffer.reserveCapacity(threshold)
    }

    mutating func startCRC() {
        crcActive = true
        runningCRC = CRC32()
    }

    public mutating func write(_ bytes: [UInt8]) throws(ImageError) {
        try bytes.withUnsafeBufferPointer { (pointer) throws(ImageError) in try write(pointer) }
    }

    public mutating func write(_ bytes: ArraySlice<UInt8>) throws(ImageError) {
        try bytes.withUnsafeBufferPointer { (pointer) throws(ImageError) in try write(pointer) }
    }

    public mutating func write(_ bytes: UnsafeBufferPointer<UInt8>) throws(ImageError) {
        if crcActive { runningCRC.update(bytes) }
        count += bytes.count
        if bytes.count >= threshold {
            try flush()
            try sink(bytes)
            return
        }
        buffer.append(contentsOf: bytes)
        if buffer.count >= threshold { try flush() }
    }

    /// Writes `count` copies of `byte` without materialising them all at once.
    public mutating func write(repeating byte: UInt8, count: Int) throws(ImageError) {
        var remaining = count
        let block = [UInt8](repeating: byte, count: min(count, threshold))
        while remaining > 0 {
            let step = min(remaining, block.count)
            try write(block[0..<step])
            remaining -= step
        }
    }

    public mutating func flush() throws(ImageError) {
        guard !buffer.isEmpty else { return }
        try buffer.withUnsafeBufferPointer { (pointer) throws(ImageError) in try sink(pointer) }
        buffer.removeAll(keepingCapacity: true)
    }
}

public enum ImageWriter {
    /// Writes `image` in `format` through `output` (flushed at the end). Single-memory formats (HEX,
    /// S-record, binary) take the image's one target; pick a target first if the image has several.
    public static func write(
        _ image: FirmwareImage, as format: ImageFormat, options: WriteOptions = WriteOptions(),
        file: String, to output: inout ChunkedOutput
    ) throws(ImageError) {
        guard (1...255).contains(options.bytesPerRecord) else {
            throw ImageError(.unsupported, file: file, "\(options.bytesPerRecord) bytes per record; a record holds 1 to 255")
        }
        switch format {
        case .dfuse:
            let targets = image.targets.map { target in
                var target = target
                if target.name?.isEmpty ?? true { target.name = options.targetName }
                target.segments = target.segments.sorted { $0.address < $1.address }
                return target
            }
            try DfuFile.writeDfuSe(
                targets, identity: options.suffixIdentity ?? image.suffixIdentity ?? WriteOptions.defaultIdentity,
                file: file, to: &output)
        case .intelHex:
            try IntelHexWriter(bytesPerRecord: options.bytesPerRecord)
                .write(try singleTarget(image, format, file), entryPoint: image.entryPoint, to: &output)
        case .srec:
            try SRecordWriter(bytesPerRecord: options.bytesPerRecord)
                .write(try singleTarget(image, format, file), entryPoint: image.entryPoint, to: &output)
        case .binary:
            try writeBinary(try singleTarget(image, format, file), maximumSize: options.maximumBinarySize, file: file, to: &output)
        case .elf, .dfuSuffixed:
            throw ImageError(
                .unsupported, file: file, "dfuhop reads \(format.displayName) but does not write it; write .dfu, .hex, .srec or .bin")
        }
        try output.flush()
    }

    /// The whole output as bytes (for tests and small images).
    public static func bytes(
        _ image: FirmwareImage, as format: ImageFormat, options: WriteOptions = WriteOptions(),
        file: String = "output"
    ) throws(ImageError) -> [UInt8] {
        var result: [UInt8] = []
        var output = ChunkedOutput { (chunk) throws(ImageError) in result.append(contentsOf: chunk) }
        try write(image, as: format, options: options, file: file, to: &output)
        return result
    }

    /// The one target's segments, sorted; refuses overlaps, which no single-memory format can hold.
    private static func singleTarget(_ image: FirmwareImage, _ format: ImageFormat, _ file: String) throws(ImageError) -> [Segment] {
        guard image.targets.count <= 1 else {
            let list = image.targets.map { "alt \($0.alternateSetting)" + ($0.name.map { " '\($0)'" } ?? "") }.joined(separator: ", ")
            throw ImageError(
                .unsupported, file: file,
                "the image has \(image.targets.count) targets (\(list)); \(format.displayName) holds one memory: choose one target")
        }
        let sorted = image.segments.filter { !$0.bytes.isEmpty }.sorted { $0.address < $1.address }
        for (previous, next) in zip(sorted, sorted.dropFirst()) where UInt64(next.address) < previous.end {
            throw ImageError(
                file: file, at: .address(next.address),
                "segments overlap: \(previous.extent) and \(next.extent)")
        }
        return sorted
    }

    /// Raw binary: from the lowest address to the end of the highest segment, gaps filled with 0xFF.
    private static func writeBinary(
        _ segments: [Segment], maximumSize: Int, file: String,
        to output: inout ChunkedOutput
    ) throws(ImageError) {
        guard let first = segments.first, let last = segments.last else { return }
        let size = last.end - UInt64(first.address)
        guard size <= UInt64(maximumSize) else {
            let gaps =
                segments.count > 1
                ? "; gaps between segments are filled with 0xFF (segments: \(segments.map(\.extent.description).joined(separator: ", ")))"
                : ""
            throw ImageError(
                .unsupported, file: file,
                "a raw binary of this image would be \(size) bytes, over the \(maximumSize)-byte limit\(gaps)")
        }
        var position = UInt64(first.address)
        for segment in segments {
            try output.write(repeating: 0xFF, count: Int(UInt64(segment.address) - position))
            try output.write(segment.bytes)
            position = segment.end
        }
    }
}
