import HexFormat

/// Shared machinery of the line-oriented formats (Intel HEX, S-record): chunked input split into lines,
/// and hex pairs decoded straight from bytes, without a String per line.

/// A parser of one record per line.
protocol LineRecordParser {
    /// Longest line a valid file can hold (longer ones are refused before they are buffered).
    static var maximumLineLength: Int { get }
    /// Called for each line, without its line terminator or trailing blanks. `number` is 1-based.
    mutating func parse(line: UnsafeBufferPointer<UInt8>, number: Int) throws(ImageError)
    /// Called once after the last line; `lines` is how many there were.
    mutating func finish(lines: Int) throws(ImageError) -> FirmwareImage
}

/// Splits chunks of input into lines for a `LineRecordParser`. Only a line that straddles two chunks is
/// copied (into `carry`); every other line is parsed where it lies.
struct LineSplitter<Parser: LineRecordParser> {
    var parser: Parser
    let file: String
    private var carry: [UInt8] = []
    private var lineNumber = 0

    init(parser: Parser, file: String) {
        self.parser = parser
        self.file = file
    }

    mutating func consume(_ chunk: UnsafeBufferPointer<UInt8>) throws(ImageError) {
        var start = 0
        var index = 0
        let count = chunk.count
        while index < count {
            if chunk[index] == 0x0A {
                if carry.isEmpty {
                    try emit(UnsafeBufferPointer(rebasing: chunk[start..<index]))
                } else {
                    carry.append(contentsOf: chunk[start..<index])
                    try emitCarry()
                }
                start = index + 1
            }
            index += 1
        }
        if start < count {
            carry.append(contentsOf: chunk[start..<count])
            // A line this long cannot be a record: stop before buffering an unbounded amount.
            if carry.count > Parser.maximumLineLength + 64 {
                throw ImageError(
                    file: file, at: .line(lineNumber + 1),
                    "line is longer than any valid record (\(Parser.maximumLineLength) characters); is this a text image?")
            }
        }
    }

    mutating func finish() throws(ImageError) -> FirmwareImage {
        if !carry.isEmpty { try emitCarry() }
        return try parser.finish(lines: lineNumber)
    }

    private mutating func emitCarry() throws(ImageError) {
        let line = carry
        carry.removeAll(keepingCapacity: true)
        try line.withUnsafeBufferPointer { (buffer) throws(ImageError) in try emit(buffer) }
    }

    private mutating func emit(_ raw: UnsafeBufferPointer<UInt8>) throws(ImageError) {
        lineNumber += 1
        var end = raw.count
        // Trailing CR (DOS line ends), blanks, and a DOS end-of-file mark (0x1A) are not content.
        while end > 0, raw[end - 1] == 0x0D || raw[end - 1] == 0x20 || raw[end - 1] == 0x09 || raw[end - 1] == 0x1A {
            end -= 1
        }
        if end > Parser.maximumLineLength {
            throw ImageError(
                file: file, at: .line(lineNumber),
                "line has \(end) characters, more than any valid record (\(Parser.maximumLineLength))")
        }
        try parser.parse(line: UnsafeBufferPointer(rebasing: raw[0..<end]), number: lineNumber)
    }
}

/// `Hex.value(ofDigit:)` by ASCII code, as a table for the record parsers' inner loop; 0xFF marks a byte
/// that is not a hex digit.
let hexDigitValue: [UInt8] = (0..<256).map { Hex.value(ofDigit: UInt8($0)) ?? 0xFF }

let upperHexDigits: [UInt8] = Array("0123456789ABCDEF".utf8)

/// Decodes `pairs` hex pairs from `line` starting at `offset` into `output`. Returns the index (in
/// characters) of the first non-hex character, or nil when all were valid.
@inline(__always)
func decodeHexPairs(
    _ line: UnsafeBufferPointer<UInt8>, from offset: Int, pairs: Int,
    into output: UnsafeMutableBufferPointer<UInt8>, table: UnsafeBufferPointer<UInt8>
) -> Int? {
    var position = offset
    for index in 0..<pairs {
        let high = table[Int(line[position])]
        let low = table[Int(line[position + 1])]
        if high | low > 0x0F {
            return high > 0x0F ? position : position + 1
        }
        output[index] = high << 4 | low
        position += 2
    }
    return nil
}

/// A printable description of one input character, for messages.
func describeCharacter(_ byte: UInt8) -> String {
    if byte >= 0x21 && byte < 0x7F { return "'\(Character(Unicode.Scalar(byte)))'" }
    return "byte 0x\(String(byte, radix: 16, uppercase: true))"
}

/// Appends hex text to a byte buffer for the writers.
extension Array where Element == UInt8 {
    @inline(__always)
    mutating func appendHex(_ byte: UInt8) {
        append(upperHexDigits[Int(byte >> 4)])
        append(upperHexDigits[Int(byte & 0x0F)])
    }
}
