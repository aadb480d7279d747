/// Ed25519 encodings (RFC 8032 §5.1.2: y little-endian in 255 bits, x's sign in the top bit) that no honest
/// key pair produces and that make a signature mean nothing: dfuhop refuses them wherever a key is read
/// (profiles, `--key` files) and wherever a signature's R is checked.
///
/// - Small order: A point of order 1, 2, 4 or 8 (the curve's 8-torsion) as a public key lets anyone sign:
///   with the identity as the key, R = identity and S = 0 satisfy the verification equation for every
///   message. The list is libsodium's (jedisct1/libsodium, src/libsodium/crypto_core/ed25519/ref10/
///   ed25519_ref10.c, `ge25519_has_small_order`), which compares with the sign bit cleared: y = 0 (order 4),
///   y = 1 (the identity), the two order-8 y values, y = p-1 (order 2), and the non-canonical y = p and
///   y = p+1 (0 and 1 again). That is 8 points and 6 other encodings of them, the set C2SP/CCTV's
///   ed25519 vectors flag `low_order`. ed25519-dalek's `verify_strict` refuses the same keys by computing
///   8·A (`is_small_order`) instead of a list.
/// - Non-canonical: y ≥ p, which names the point y - p by another encoding (libsodium's
///   `ge25519_is_canonical`; RFC 8032 §5.1.3 says decoding fails).
/// - Off the curve: a y for which RFC 8032 §5.1.3's decoding finds no x (`Ed25519Field.isY`), which
///   no verifier can use: refused when read, with a reason, rather than failing every signature later.
public enum Ed25519KeyCheck {
    /// p = 2^255 - 19, little-endian.
    static let p: [UInt8] = [0xED] + [UInt8](repeating: 0xFF, count: 30) + [0x7F]
    /// The group order L = 2^252 + 27742317777372353535851937790883648493 (RFC 8032 §5.1), little-endian.
    public static let order: [UInt8] =
        [0xED, 0xD3, 0xF5, 0x5C, 0x1A, 0x63, 0x12, 0x58, 0xD6, 0x9C, 0xF7, 0xA2, 0xDE, 0xF9, 0xDE, 0x14]
        + [UInt8](repeating: 0, count: 15) + [0x10]

    /// The y values of the small-order encodings, sign bit cleared (libsodium's list, see above).
    public static let smallOrder: [[UInt8]] = [
        [UInt8](repeating: 0, count: 32), // y = 0: order 4
        [0x01] + [UInt8](repeating: 0, count: 31), // y = 1: the identity, order 1
        [
            0x26, 0xE8, 0x95, 0x8F, 0xC2, 0xB2, 0x27, 0xB0, 0x45, 0xC3, 0xF4, 0x89, 0xF2, 0xEF, 0x98, 0xF0,
            0xD5, 0xDF, 0xAC, 0x05, 0xD3, 0xC6, 0x33, 0x39, 0xB1, 0x38, 0x02, 0x88, 0x6D, 0x53, 0xFC, 0x05
        ], // order 8
        [
            0xC7, 0x17, 0x6A, 0x70, 0x3D, 0x4D, 0xD8, 0x4F, 0xBA, 0x3C, 0x0B, 0x76, 0x0D, 0x10, 0x67, 0x0F,
            0x2A, 0x20, 0x53, 0xFA, 0x2C, 0x39, 0xCC, 0xC6, 0x4E, 0xC7, 0xFD, 0x77, 0x92, 0xAC, 0x03, 0x7A
        ], // order 8
        [0xEC] + [UInt8](repeating: 0xFF, count: 30) + [0x7F], // y = p-1: order 2
        [0xED] + [UInt8](repeating: 0xFF, count: 30) + [0x7F], // y = p, i.e. 0 again: order 4
        [0xEE] + [UInt8](repeating: 0xFF, count: 30) + [0x7F] // y = p+1, i.e. 1 again: the identity
    ]

    /// Why `encoding` cannot be a trusted public key, or nil.
    public static func problem(withPublicKey encoding: some Collection<UInt8>) -> String? {
        let bytes = Array(encoding)
        guard bytes.count == 32 else { return "is \(bytes.count) bytes; an Ed25519 public key is 32" }
        if hasSmallOrder(bytes) {
            return "is a point of small order (the identity or another 8-torsion point), "
                + "with which anyone can forge a signature: a placeholder or a hostile key, never a real one"
        }
        if !isCanonical(bytes) {
            return "is a non-canonical encoding (y ≥ 2^255-19): another spelling of a point, which no key generator writes"
        }
        if !Ed25519Field.isY(Ed25519Field(encoding: bytes)) {
            return "is not a point of the curve (no x goes with its y): not a public key at all, perhaps mistyped"
        }
        return nil
    }

    /// Whether the encoding, sign bit cleared, is one of the small-order list's.
    public static func hasSmallOrder(_ encoding: [UInt8]) -> Bool {
        guard encoding.count == 32 else { return false }
        var y = encoding
        y[31] &= 0x7F
        return smallOrder.contains(y)
    }

    /// Whether y (the low 255 bits) is below p.
    public static func isCanonical(_ encoding: [UInt8]) -> Bool {
        guard encoding.count == 32 else { return false }
        var y = encoding
        y[31] &= 0x7F
        return isLess(y, than: p)
    }

    /// Whether a signature's S (its last 32 bytes) is below L, as RFC 8032 §5.1.7 requires.
    public static func isCanonicalScalar(_ scalar: some Collection<UInt8>) -> Bool {
        let bytes = Array(scalar)
        return bytes.count == 32 && isLess(bytes, than: order)
    }

    /// Little-endian comparison of two 32-byte numbers.
    static func isLess(_ a: [UInt8], than b: [UInt8]) -> Bool {
        for index in stride(from: 31, through: 0, by: -1) where a[index] != b[index] { return a[index] < b[index] }
        return false
    }
}
