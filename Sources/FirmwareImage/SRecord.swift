import HexFormat

/// Motorola S-record (srec(5)): `S` type, count (bytes of address + data + checksum), address, data,
/// checksum = ones' complement of the low byte of the sum of count, address and data.
/// S0 header; S1/S2/S3 data with 16/24/32-bit addresses; S5/S6 count of data records so far (16/24 bit);
/// S7/S8/S9 start address (32/24/16 bit) and end of file (optional: srec_cat omits it without a start
/// address; an S5/S6 count, when present, still catches lost records). S4 is reserved.
struct SRecordParser: LineRecordParser {
    static let maximumLineLength = 4 + 2 * 255

    let file: String
    private var builder: SegmentBuilder
    private let scratch = ScratchBuffer(capacity: 255)
    private var dataRecords = 0
    private var entryPoint: UInt32?
    private var terminationLine: Int?
    private var records = 0
    /// Characters of the lines seen, for the segment allowance (`SegmentBuilder.textBytesPerSegment`).
    private var textBytes = 0

    init(file: String, expectedSize: Int) {
        self.file = file
        builder = SegmentBuilder(expectedPayload: expectedSize / 2)
    }

    /// Address width in bytes of each record type, nil for the reserved S4.
    private static let addressLength: [Int?] = [2, 2, 3, 4, nil, 2, 3, 4, 3, 2]

    mutating func parse(line: UnsafeBufferPointer<UInt8>, number: Int) throws(ImageError) {
        textBytes += line.count + 1
        guard !line.isEmpty else { return }
        if let end = terminationLine {
            throw ImageError(file: file, at: .line(number), "content after the termination record (S7/S8/S9) on line \(end)")
        }
        let header = try recordHeader(line, number: number)
        let bytes = try decodeRecord(line, header: header, number: number)
        records += 1
        var address: UInt32 = 0
        for index in 0..<header.addressLength { address = address << 8 | UInt32(bytes[index]) }
        let data = UnsafeBufferPointer(rebasing: UnsafeBufferPointer(bytes)[header.addressLength..<header.count - 1])
        try apply(type: header.type, address: address, data: data, line: number)
    }

    /// What the first four characters say: the record type (S0 to S9), its address width, and how many
    /// bytes follow (address, data and checksum), checked against the line and the type.
    private func recordHeader(_ line: UnsafeBufferPointer<UInt8>, number: Int) throws(ImageError) -> (
        type: Int, addressLength: Int, count: Int
    ) {
        guard line[0] == UInt8(ascii: "S") else {
            throw ImageError(file: file, at: .line(number), "expected 'S' at the start of a record, found \(describeCharacter(line[0]))")
        }
        guard line.count >= 4 else {
            throw ImageError(
                file: file, at: .line(number), "record has \(line.count) characters, too few for a type, a byte count and a checksum")
        }
        let type = Int(line[1]) - 0x30
        guard (0...9).contains(type), let addressLength = Self.addressLength[type] else {
            throw ImageError(
                file: file, at: .line(number),
                "unknown record type \(describeCharacter(line[1])) (S-records are S0 to S9, S4 reserved)")
        }
        let countHigh = hexDigitValue[Int(line[2])]
        let countLow = hexDigitValue[Int(line[3])]
        guard countHigh | countLow <= 0x0F else {
            let position = countHigh > 0x0F ? 2 : 3
            throw ImageError(
                file: file, at: .line(number), "\(describeCharacter(line[position])) at column \(position + 1) is not a hex digit")
        }
        let count = Int(countHigh << 4 | countLow)
        guard line.count == 4 + 2 * count else {
            throw ImageError(
                file: file, at: .line(number),
                "byte count says \(count) bytes follow (\(2 * count) hex digits), the record holds \(line.count - 4) digits")
        }
        guard count >= addressLength + 1 else {
            throw ImageError(
                file: file, at: .line(number),
                "byte count \(count) is too small for an S\(type) record (\(addressLength)-byte address and a checksum)")
        }
        return (type, addressLength, count)
    }

    /// The record's bytes after the count, in the scratch buffer, with the checksum checked.
    private func decodeRecord(
        _ line: UnsafeBufferPointer<UInt8>, header: (type: Int, addressLength: Int, count: Int), number: Int
    ) throws(ImageError) -> UnsafeMutableBufferPointer<UInt8> {
        let count = header.count
        let bytes = scratch.buffer
        let invalid = hexDigitValue.withUnsafeBufferPointer { table in
            decodeHexPairs(line, from: 4, pairs: count, into: bytes, table: table)
        }
        if let position = invalid {
            throw ImageError(
                file: file, at: .line(number),
                "\(describeCharacter(line[position])) at column \(position + 1) is not a hex digit")
        }
        var sum = UInt8(count)
        for index in 0..<count - 1 { sum &+= bytes[index] }
        let stated = bytes[count - 1]
        guard stated == ~sum else {
            throw ImageError(
                file: file, at: .line(number),
                "checksum is 0x\(Hex.digits(stated, width: 2)), the record needs 0x\(Hex.digits(~sum, width: 2))")
        }
        return bytes
    }

    private mutating func apply(type: Int, address: UInt32, data: UnsafeBufferPointer<UInt8>, line number: Int) throws(ImageError) {
        switch type {
        case 0:
            break // Header: free text, nothing to load.
        case 1, 2, 3:
            guard UInt64(address) + UInt64(data.count) <= 0x1_0000_0000 else {
                throw ImageError(
                    file: file, at: .line(number), "data record at 0x\(Hex.digits(address, width: 8)) runs past the 4 GiB address space")
            }
            dataRecords += 1
            try append(address: address, data, line: number)
        case 5, 6:
            // The count covers S1/S2/S3 records so far; a mismatch means records were lost or added.
            guard Int(address) == dataRecords else {
                throw ImageError(
                    file: file, at: .line(number),
                    "record count S\(type) says \(address) data records, the file has \(dataRecords) before it")
            }
        default:
            // S7/S8/S9. Writers put 0 here when there is no start address.
            entryPoint = address == 0 ? nil : address
            terminationLine = number
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
            throw ImageError(file: file, "no S-records found (an S-record file has lines starting with 'S0'...'S9')")
        }
        // No termination record is accepted: srec_cat leaves it out when there is no start address.
        return FirmwareImage(format: .srec, segments: try finishSegments(), entryPoint: entryPoint)
    }
}

/// Writes S-records: an S0 header, the narrowest data record type that reaches every address, an S5/S6
/// count when it fits, and the matching termination record with the entry point (or 0).
struct SRecordWriter {
    var bytesPerRecord: Int
    var header: String = "dfuhop"

    func write(_ segments: [Segment], entryPoint: UInt32?, to output: inout ChunkedOutput) throws(ImageError) {
        let highest = max(segments.map { $0.end }.max() ?? 0, UInt64(entryPoint ?? 0) + 1)
        // S1 reaches 64 KiB, S2 16 MiB, S3 4 GiB; the terminator's width matches (S9, S8, S7).
        let (dataType, addressLength): (UInt8, Int) = highest <= 0x1_0000 ? (1, 2) : highest <= 0x100_0000 ? (2, 3) : (3, 4)
        var line = [UInt8]()
        line.reserveCapacity(4 + 2 * 255 + 1)
        var fields = [UInt8]()
        fields.reserveCapacity(255)
        try emit(type: 0, address: 0, addressLength: 2, data: Array(header.utf8.prefix(250)), fields: &fields, line: &line, output: &output)
        var dataRecords = 0
        let perRecord = min(bytesPerRecord, 255 - 1 - addressLength)
        for segment in segments {
            var offset = 0
            while offset < segment.bytes.count {
                let count = min(perRecord, segment.bytes.count - offset)
                try emit(
                    type: dataType, address: segment.address &+ UInt32(offset), addressLength: addressLength,
                    data: segment.bytes[offset..<offset + count], fields: &fields, line: &line, output: &output)
                dataRecords += 1
                offset += count
            }
        }
        if dataRecords <= 0xFFFF {
            try emit(type: 5, address: UInt32(dataRecords), addressLength: 2, data: [], fields: &fields, line: &line, output: &output)
        } else if dataRecords <= 0xFF_FFFF {
            try emit(type: 6, address: UInt32(dataRecords), addressLength: 3, data: [], fields: &fields, line: &line, output: &output)
        }
        try emit(
            type: 10 - dataType, address: entryPoint ?? 0, addressLength: addressLength, data: [],
            fields: &fields, line: &line, output: &output)
    }

    private func emit<Data: Collection<UInt8>>(
        type: UInt8, address: UInt32, addressLength: Int, data: Data,
        fields: inout [UInt8], line: inout [UInt8],
        output: inout ChunkedOutput
    ) throws(ImageError) {
        fields.removeAll(keepingCapacity: true)
        fields.append(UInt8(addressLength + data.count + 1))
        for index in stride(from: addressLength - 1, through: 0, by: -1) {
            fields.append(UInt8(truncatingIfNeeded: address >> (8 * UInt32(index))))
        }
        fields.append(contentsOf: data)
        line.removeAll(keepingCapacity: true)
        line.append(UInt8(ascii: "S"))
        line.append(0x30 + type)
        var sum: UInt8 = 0
        for byte in fields {
            sum &+= byte
            line.appendHex(byte)
        }
        line.appendHex(~sum)
        line.append(0x0A)
        try output.write(line)
    }
}
