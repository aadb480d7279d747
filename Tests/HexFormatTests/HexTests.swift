import HexFormat
import Testing

@Suite("Hex: formatting and digits read back")
struct HexTests {
    @Test("digits are upper case, padded to the width, and never cut")
    func digits() {
        #expect(Hex.digits(UInt8(0x0A), width: 2) == "0A")
        #expect(Hex.digits(UInt16(0x483), width: 4) == "0483")
        #expect(Hex.digits(UInt32(0x0800_4000), width: 8) == "08004000")
        #expect(Hex.digits(UInt64(0x1_0000_0000), width: 8) == "100000000")
        #expect(Hex.digits(0, width: 0) == "0")
    }

    @Test("a word is 0x and eight digits")
    func word() {
        #expect(Hex.word(0x0800_4000) == "0x08004000")
        #expect(Hex.word(0) == "0x00000000")
        #expect(Hex.word(.max) == "0xFFFFFFFF")
    }

    @Test("every byte value round-trips through the string, in upper and lower case")
    func roundTrip() {
        let bytes = (0...255).map(UInt8.init)
        let text = Hex.string(bytes)
        #expect(text.count == 512)
        #expect(text.hasPrefix("000102") && text.hasSuffix("FDFEFF"))
        #expect(Hex.bytes(fromHex: text) == bytes)
        #expect(Hex.bytes(fromHex: text.lowercased()) == bytes)
        #expect(Hex.string([UInt8]()) == "")
        #expect(Hex.bytes(fromHex: "") == [])
    }

    @Test("spaces anywhere are skipped only when asked")
    func spaces() {
        #expect(Hex.bytes(fromHex: "3F 01 42", ignoringSpaces: true) == [0x3F, 0x01, 0x42])
        #expect(Hex.bytes(fromHex: " 3 F01 ", ignoringSpaces: true) == [0x3F, 0x01])
        #expect(Hex.bytes(fromHex: "3F 01 4", ignoringSpaces: true) == nil)
        #expect(Hex.bytes(fromHex: "3F 01") == nil)
    }

    @Test("an odd count or a character that is no hex digit reads as nil")
    func rejects() {
        for bad in ["0", "ABC", "0G", " 0A", "0x0A", "é0"] {
            #expect(Hex.bytes(fromHex: bad) == nil, "\"\(bad)\"")
        }
    }

    @Test("the digit value of every byte: 0-9, A-F and a-f only")
    func digitValues() {
        var expected: [UInt8: UInt8] = [:]
        for (value, digit) in "0123456789ABCDEF".utf8.enumerated() { expected[digit] = UInt8(value) }
        for (value, digit) in "abcdef".utf8.enumerated() { expected[digit] = UInt8(value + 10) }
        for byte in UInt8.min...UInt8.max {
            #expect(Hex.value(ofDigit: byte) == expected[byte], "byte 0x\(Hex.digits(byte, width: 2))")
        }
    }
}
