/// Just enough arithmetic modulo p = 2^255 - 19 to tell whether a y coordinate belongs to a point of
/// edwards25519 (RFC 8032 §5.1.3, step 2: x² = (y² - 1) / (d·y² + 1) must have a square root). Values are
/// four 64-bit limbs, little-endian, kept below 2^256 and fully reduced only when compared.
struct Ed25519Field: Equatable {
    var limbs: [UInt64]

    static let p = Ed25519Field(limbs: [0xFFFF_FFFF_FFFF_FFED, 0xFFFF_FFFF_FFFF_FFFF, 0xFFFF_FFFF_FFFF_FFFF, 0x7FFF_FFFF_FFFF_FFFF])
    /// d = -121665/121666 mod p (RFC 8032 §5.1).
    static let d = Ed25519Field(limbs: [0x75EB_4DCA_1359_78A3, 0x0070_0A4D_4141_D8AB, 0x8CC7_4079_7779_E898, 0x5203_6CEE_2B6F_FE73])
    static let one = Ed25519Field(limbs: [1, 0, 0, 0])
    /// (p - 1) / 2: w^((p-1)/2) is 1 for a non-zero square, p - 1 for a non-square (Euler's criterion).
    static let halfOrder: [UInt64] = [0xFFFF_FFFF_FFFF_FFF6, 0xFFFF_FFFF_FFFF_FFFF, 0xFFFF_FFFF_FFFF_FFFF, 0x3FFF_FFFF_FFFF_FFFF]

    init(limbs: [UInt64]) { self.limbs = limbs }

    /// 32 little-endian bytes, the top bit (the sign of x in an encoding) cleared.
    init(encoding: [UInt8]) {
        var bytes = encoding
        bytes[31] &= 0x7F
        limbs = (0..<4).map { limb in (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[limb * 8 + $1]) << (8 * UInt64($1)) } }
    }

    /// Whether some point has this y: (y² - 1)·(d·y² + 1) is zero or a square (d·y² + 1 is never zero,
    /// d being a non-square, so the quotient is a square exactly when the product is).
    static func isY(_ y: Ed25519Field) -> Bool {
        let square = y * y
        let product = (square - one) * (d * square + one)
        let euler = product.power(halfOrder).reduced
        return euler == Ed25519Field(limbs: [0, 0, 0, 0]) || euler == one
    }

    static func * (a: Ed25519Field, b: Ed25519Field) -> Ed25519Field {
        var wide = [UInt64](repeating: 0, count: 8)
        for i in 0..<4 {
            var carry: UInt64 = 0
            for j in 0..<4 {
                let (high, low) = a.limbs[i].multipliedFullWidth(by: b.limbs[j])
                let (sum, overflow1) = wide[i + j].addingReportingOverflow(low)
                let (total, overflow2) = sum.addingReportingOverflow(carry)
                wide[i + j] = total
                carry = high &+ (overflow1 ? 1 : 0) &+ (overflow2 ? 1 : 0)
            }
            wide[i + 4] = carry
        }
        // 2^256 ≡ 38 (mod p): fold the high half onto the low one.
        var result = Array(wide[0..<4])
        var carry: UInt64 = 0
        for k in 0..<4 {
            let (high, low) = wide[4 + k].multipliedFullWidth(by: 38)
            let (sum, overflow1) = result[k].addingReportingOverflow(low)
            let (total, overflow2) = sum.addingReportingOverflow(carry)
            result[k] = total
            carry = high &+ (overflow1 ? 1 : 0) &+ (overflow2 ? 1 : 0)
        }
        return Ed25519Field(limbs: result).adding(carry &* 38)
    }

    static func + (a: Ed25519Field, b: Ed25519Field) -> Ed25519Field {
        var result = a.limbs
        var carry: UInt64 = 0
        for k in 0..<4 {
            let (sum, overflow1) = result[k].addingReportingOverflow(b.limbs[k])
            let (total, overflow2) = sum.addingReportingOverflow(carry)
            result[k] = total
            carry = (overflow1 ? 1 : 0) + (overflow2 ? 1 : 0)
        }
        return Ed25519Field(limbs: result).adding(carry &* 38)
    }

    /// a - b as a + (p - b), with b fully reduced so that p - b does not borrow.
    static func - (a: Ed25519Field, b: Ed25519Field) -> Ed25519Field {
        let b = b.reduced.limbs
        var negated = [UInt64](repeating: 0, count: 4)
        var borrow: UInt64 = 0
        for k in 0..<4 {
            let (difference, underflow1) = p.limbs[k].subtractingReportingOverflow(b[k])
            let (total, underflow2) = difference.subtractingReportingOverflow(borrow)
            negated[k] = total
            borrow = (underflow1 ? 1 : 0) + (underflow2 ? 1 : 0)
        }
        return a + Ed25519Field(limbs: negated)
    }

    /// Adds a small value (at most a few thousand) below 2^256, folding any carry out of the top limb.
    func adding(_ small: UInt64) -> Ed25519Field {
        var result = limbs
        var carry = small
        while carry != 0 {
            for k in 0..<4 {
                let (sum, overflow) = result[k].addingReportingOverflow(carry)
                result[k] = sum
                carry = overflow ? 1 : 0
                if carry == 0 { break }
            }
            carry = carry == 0 ? 0 : 38 // a carry out of 2^256 is worth 38
        }
        return Ed25519Field(limbs: result)
    }

    /// self^exponent (exponent little-endian limbs), square and multiply from the top bit.
    func power(_ exponent: [UInt64]) -> Ed25519Field {
        var result = Ed25519Field.one
        for limb in exponent.reversed() {
            for bit in stride(from: 63, through: 0, by: -1) {
                result = result * result
                if (limb >> UInt64(bit)) & 1 == 1 { result = result * self }
            }
        }
        return result
    }

    /// The value below p (at most two subtractions: every value here is below 2^256 < 3p).
    var reduced: Ed25519Field {
        var value = limbs
        while !Ed25519KeyCheck.isLess(Self.littleEndianBytes(value), than: Ed25519KeyCheck.p) {
            var borrow: UInt64 = 0
            for k in 0..<4 {
                let (difference, underflow1) = value[k].subtractingReportingOverflow(Self.p.limbs[k])
                let (total, underflow2) = difference.subtractingReportingOverflow(borrow)
                value[k] = total
                borrow = (underflow1 ? 1 : 0) + (underflow2 ? 1 : 0)
            }
        }
        return Ed25519Field(limbs: value)
    }

    static func littleEndianBytes(_ limbs: [UInt64]) -> [UInt8] {
        limbs.flatMap { limb in (0..<8).map { UInt8(truncatingIfNeeded: limb >> (8 * UInt64($0))) } }
    }
}
