import HexFormat

/// Intel HEX (Intel, "Hexadecimal Object File Format Specification", rev. A, 1988).
/// Record: `:LLAAAATT<data>CC`, LL data bytes, AAAA offset, TT type, CC two's-complement checksum of
/// everything before it. Types 00 data, 01 end of file, 02 extended segment address (base = value × 16,
/// offsets wrap within 64 KiB), 03 start segment address (CS:IP), 04 extended linear address (upper 16
/// bits), 05 start linear address (EIP).
struct IntelHexParser: LineRecordParser {
    static let maximumLineLength = 1 + 2 * (5 + 255)

    let file: String
    private var builder: SegmentBuilder
    private let scratch = ScratchBuffer(capacity: 5 + 255)
    private var base: UInt32 = 0
    /// True after an 02 record: offsets wrap within the 64 KiB segment (8086 real mode).
    private var segmentAddressing = false
    private var entryPoint: UInt32?
    private var entryLine = 0
    private var endOfFileLine: Int?
    private var records = 0
    /// Characters of the lines seen, for the segment allowance (`SegmentBuilder.textBytesPerSegment`).
    private var textBytes = 0

    init(file: String, expectedSize: Int) {
        self.file = file
        // Each data byte takes at least two characters.
        builder = SegmentBuilder(expectedPayload: expectedSize / 2)
    }

    mutating func parse(line: UnsafeBufferPointer<UInt8>, number: Int) throws(ImageError) {
        textBytes += line.count + 1
        guard !line.isEmpty else { return }
        if let endLine = endOfFileLine {
            throw ImageError(file: file, at: .line(number), "content after the end-of-file record on line \(endLine)")
        }
        let bytes = try decodeRecord(line, number: number)
        records += 1
        let dataCount = Int(bytes[0])
        let offset = UInt32(bytes[1]) << 8 | UInt32(bytes[2])
        let data = UnsafeBufferPointer(rebasing: UnsafeBufferPointer(bytes)[4..<4 + dataCount])
        try apply(type: bytes[3], data: data, offset: offset, line: number)
    }

    /// The record's bytes (count, offset, type, data, checksum) in the scratch buffer, its framing, byte
    /// count and checksum checked.
    private func decodeRecord(_ line: UnsafeBufferPointer<UInt8>, number: Int) throws(ImageError) -> UnsafeMutableBufferPointer<UInt8> {
        guard line[0] == UInt8(ascii: ":") else {
            throw ImageError(file: file, at: .line(number), "expected ':' at the start of a record, found \(describeCharacter(line[0]))")
        }
        guard line.count >= 11 else {
            throw ImageError(file: file, at: .line(number), "record has \(line.count) characters; the shortest valid record has 11")
        }
        guard line.count % 2 == 1 else {
            throw ImageError(file: file, at: .line(number), "record has an odd number of hex digits (\(line.count - 1))")
        }
        let pairs = (line.count - 1) / 2
        let bytes = scratch.buffer
        let invalid = hexDigitValue.withUnsafeBufferPointer { table in
            decodeHexPairs(line, from: 1, pairs: pairs, into: bytes, table: table)
        }
        if let position = invalid {
            throw ImageError(
                file: file, at: .line(number),
                "\(describeCharacter(line[position])) at column \(position + 1) is not a hex digit")
        }
        let dataCount = Int(bytes[0])
        guard pairs == dataCount + 5 else {
            throw ImageError(
                file: file, at: .line(number),
                "byte count says \(dataCount) data bytes but the record holds \(pairs - 5)")
        }
        var sum: UInt8 = 0
        for index in 0..<pairs { sum &+= bytes[index] }
        guard sum == 0 else {
            let stated = bytes[pairs - 1]
            throw ImageError(
                file: file, at: .line(number),
                "checksum is 0x\(Hex.digits(stated, width: 2)), the record needs 0x\(Hex.digits(stated &- sum, width: 2))")
        }
        return bytes
    }

    private mutating func apply(type: UInt8, data: UnsafeBufferPointer<UInt8>, offset: UInt32, line number: Int) throws(ImageError) {
        switch type {
        case 0x00:
            try appendData(data, offset: offset, line: number)
        case 0x01:
            guard data.isEmpty else {
                throw ImageError(file: file, at: .line(number), "end-of-file record (type 01) must have no data, has \(data.count) bytes")
            }
            endOfFileLine = number
        case 0x02, 0x04:
            guard data.count == 2 else {
                throw ImageError(
                    file: file, at: .line(number),
                    "extended address record (type 0\(type)) must have 2 data bytes, has \(data.count)")
            }
            let value = UInt32(data[0]) << 8 | UInt32(data[1])
            segmentAddressing = type == 0x02
            base = segmentAddressing ? value << 4 : value << 16
        case 0x03, 0x05:
            try setEntryPoint(type: type, data: data, line: number)
        default:
            throw ImageError(
                file: file, at: .line(number), "unknown record type 0x\(Hex.digits(type, width: 2)) (Intel HEX has types 00 to 05)")
        }
    }

    private mutating func setEntryPoint(type: UInt8, data: UnsafeBufferPointer<UInt8>, line number: Int) throws(ImageError) {
        guard data.count == 4 else {
            throw ImageError(
                file: file, at: .line(number),
                "start address record (type 0\(type)) must have 4 data bytes, has \(data.count)")
        }
        let high = UInt32(data[0]) << 8 | UInt32(data[1])
        let low = UInt32(data[2]) << 8 | UInt32(data[3])
        // 03 holds CS:IP (address = CS × 16 + IP); 05 holds a 32-bit EIP.
        let address = type == 0x03 ? (high << 4) &+ low : high << 16 | low
        if let previous = entryPoint, previous != address {
            throw ImageError(
                file: file, at: .line(number),
                "start address 0x\(Hex.digits(address, width: 8)) contradicts 0x\(Hex.digits(previous, width: 8)) on line \(entryLine)")
        }
        entryPoint = address
        entryLine = number
    }

    private mutating func appendData(_ data: UnsafeBufferPointer<UInt8>, offset: UInt32, line: Int) throws(ImageError) {
        guard !data.isEmpty else { return }
        if segmentAddressing {
            // Offsets wrap within the segment: a record crossing 0xFFFF continues at offset 0.
            let beforeWrap = min(data.count, Int(0x1_0000 - offset))
            try append(address: base + offset, UnsafeBufferPointer(rebasing: data[0..<beforeWrap]), line: line)
            if beforeWrap < data.count {
                try append(address: base, UnsafeBufferPointer(rebasing: data[beforeWrap...]), line: line)
            }
        } else {
            let start = UInt64(base) + UInt64(offset)
            guard start + UInt64(data.count) <= 0x1_0000_0000 else {
                throw ImageError(
                    file: file, at: .line(line), "data record at 0x\(Hex.digits(UInt32(start), width: 8)) runs past the 4 GiB address space"
                )
            }
            try append(address: UInt32(start), data, line: line)
        }
    }

    private mutating func append(address: UInt32, _ data: UnsafeBufferPointer<UInt8>, line: Int) throws(ImageError) {
        do { try builder.append(address: address, data) } catch { throw ImageError(file: file, at: .line(line), error.problem) }
    }

    private mutating func finishSegments() throws(ImageError) -> [Segment] {
        do { return try builder.finish(textBytes: textBytes) } catch { throw ImageError(file: file, error.problem) }
    }

    mutating func finish(lines: Int) throws(ImageError) -> FirmwareImage {
        guard records > 0 else {
            throw ImageError(file: file, "no Intel HEX records found (an Intel HEX file has lines starting with ':')")
        }
        guard endOfFileLine != nil else {
            throw ImageError(file: file, at: .line(lines), "file ends without an end-of-file record (:00000001FF); is it truncated?")
        }
        return FirmwareImage(format: .intelHex, segments: try finishSegments(), entryPoint: entryPoint)
    }
}

/// Writes Intel HEX: type 04 records whenever the upper 16 address bits change, data records that never
/// cross a 64 KiB boundary, a type 05 record for the entry point, and the end-of-file record.
struct IntelHexWriter {
    var bytesPerRecord: Int

    func write(_ segments: [Segment], entryPoint: UInt32?, to output: inout ChunkedOutput) throws(ImageError) {
        var upper: UInt32? = nil
        var record = [UInt8]()
        record.reserveCapacity(5 + 255)
        var line = [UInt8]()
        line.reserveCapacity(Self.lineLength(255))
        for segment in segments {
            var offset = 0
            while offset < segment.bytes.count {
                let address = segment.address &+ UInt32(offset)
                if upper != address >> 16 {
                    upper = address >> 16
                    try emit(
                        [0x02, 0x00, 0x00, 0x04, UInt8(address >> 24), UInt8(truncatingIfNeeded: address >> 16)], into: &line,
                        output: &output)
                }
                let toBoundary = Int(0x1_0000 - (address & 0xFFFF))
                let count = min(bytesPerRecord, segment.bytes.count - offset, toBoundary)
                record.removeAll(keepingCapacity: true)
                record.append(UInt8(count))
                record.append(UInt8(truncatingIfNeeded: address >> 8))
                record.append(UInt8(truncatingIfNeeded: address))
                record.append(0x00)
                record.append(contentsOf: segment.bytes[offset..<offset + count])
                try emit(record, into: &line, output: &output)
                offset += count
            }
        }
        if let entry = entryPoint {
            try emit(
                [
                    0x04, 0x00, 0x00, 0x05, UInt8(entry >> 24), UInt8(truncatingIfNeeded: entry >> 16),
                    UInt8(truncatingIfNeeded: entry >> 8), UInt8(truncatingIfNeeded: entry)
                ], into: &line, output: &output)
        }
        try emit([0x00, 0x00, 0x00, 0x01], into: &line, output: &output)
    }

    static func lineLength(_ dataCount: Int) -> Int { 1 + 2 * (dataCount + 5) + 1 }

    /// One record: the fields without the checksum, which is appended here.
    private func emit(_ fields: [UInt8], into line: inout [UInt8], output: inout ChunkedOutput) throws(ImageError) {
        line.removeAll(keepingCapacity: true)
        line.append(UInt8(ascii: ":"))
        var sum: UInt8 = 0
        for byte in fields {
            sum &+= byte
            line.appendHex(byte)
        }
        line.appendHex(0 &- sum)
        line.append(0x0A)
        try output.write(line)
    }
}

/// A fixed scratch area owned by a parser (so decoding a record allocates nothing).
final class ScratchBuffer {
    let buffer: UnsafeMutableBufferPointer<UInt8>

    init(capacity: Int) {
        buffer = .allocate(capacity: capacity)
        buffer.initialize(repeating: 0)
    }

    deinit { buffer.deallocate() }
}
