import PropertyBased
import Testing

@testable import FirmwareImage

/// The table-driven CRC (eight bytes per step) against the definition, one bit at a time.
@Suite("CRC-32", .timeLimit(.minutes(10)))
struct CRC32Tests {
    /// The reflected CRC-32 register update straight from the polynomial 0xEDB88320, a bit per step.
    static func bitwise(_ register: UInt32, _ bytes: [UInt8]) -> UInt32 {
        var crc = register
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        return crc
    }

    /// The check values of the catalogue (CRC-32/ISO-HDLC: zlib; the DFU suffix keeps the register).
    @Test func checkValues() {
        let check = Array("123456789".utf8)
        #expect(CRC32.zlib(check) == 0xCBF4_3926)
        #expect(CRC32.dfu(check) == 0x340B_C6D9)
        #expect(CRC32.zlib([UInt8]()) == 0)
    }

    /// Any bytes, fed whole or in two pieces at any split (so every alignment and tail length of the
    /// eight-byte loop is reached), give the bitwise register.
    @Test func matchesTheBitwiseDefinitionAtEverySplit() async {
        await propertyCheck(count: 300, input: Gen.uint8().array(of: 0...80), Gen.int(in: 0...80)) { bytes, cut in
            let split = min(cut, bytes.count)
            var crc = CRC32()
            crc.update(bytes[..<split])
            crc.update(bytes[split...])
            #expect(crc.register == Self.bitwise(0xFFFF_FFFF, bytes))
            #expect(CRC32.zlib(bytes) == ~Self.bitwise(0xFFFF_FFFF, bytes))
        }
    }

    /// A run of one byte value fed in O(log n) equals the same bytes fed one by one.
    @Test func repeatedBytesEqualTheBytesThemselves() async {
        await propertyCheck(count: 60, input: Gen.uint8(), Gen.int(in: 0...1_000), Gen.uint8().array(of: 0...9)) {
            value, count, prefix in
            var fast = CRC32()
            fast.update(prefix)
            fast.update(repeating: value, count: UInt64(count))
            #expect(fast.register == Self.bitwise(0xFFFF_FFFF, prefix + [UInt8](repeating: value, count: count)))
        }
    }
}
