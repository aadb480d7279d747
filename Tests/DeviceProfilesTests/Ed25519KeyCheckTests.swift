import Foundation
import Testing

@testable import DeviceProfiles

private let demoProfile = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("protocols/devices/dfuhop-demo-g474.json")

/// Weak Ed25519 public keys (issue 21, item 4): every small-order encoding and every non-canonical one is
/// refused, in profiles too; real keys pass.
@Suite(.timeLimit(.minutes(10))) struct Ed25519KeyCheckTests {
    /// The 7 y values of libsodium's list, each with the sign bit clear and set: 8 points, 6 other spellings.
    static var smallOrderEncodings: [[UInt8]] {
        Ed25519KeyCheck.smallOrder.flatMap { [$0, Array($0.dropLast()) + [$0[31] | 0x80]] }
    }

    @Test("the identity, the 8-torsion points and their other encodings are refused as small order")
    func smallOrder() {
        #expect(Set(Self.smallOrderEncodings).count == 14)
        for key in Self.smallOrderEncodings {
            #expect(Ed25519KeyCheck.problem(withPublicKey: key)?.contains("small order") == true, "\(key)")
        }
        let identity = Array(Data(base64Encoded: "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")!)
        #expect(Ed25519KeyCheck.problem(withPublicKey: identity)?.contains("small order") == true)
    }

    @Test("y ≥ p is refused as non-canonical, whatever the sign bit")
    func nonCanonical() {
        // p + 2 ... p + 18 and 2^255 - 1: the encodings above p that are not already on the small-order list.
        for low in 0xEF...0xFF {
            for sign in [0x00, 0x80] as [UInt8] {
                let key = [UInt8(low)] + [UInt8](repeating: 0xFF, count: 30) + [0x7F | sign]
                #expect(Ed25519KeyCheck.problem(withPublicKey: key)?.contains("non-canonical") == true, "\(key)")
            }
        }
        let belowP = [0xEB] + [UInt8](repeating: 0xFF, count: 30) + [0x7F]
        #expect(Ed25519KeyCheck.isCanonical(belowP))
    }

    /// RFC 8032 §7.1's test 1 public key, and keys one bit away from the list, pass.
    @Test("real keys pass")
    func realKeys() {
        let rfc =
            [
                0xD7, 0x5A, 0x98, 0x01, 0x82, 0xB1, 0x0A, 0xB7, 0xD5, 0x4B, 0xFE, 0xD3, 0xC9, 0x64, 0x07, 0x3A,
                0x0E, 0xE1, 0x72, 0xF3, 0xDA, 0xA6, 0x23, 0x25, 0xAF, 0x02, 0x1A, 0x68, 0xF7, 0x07, 0x51, 0x1A
            ] as [UInt8]
        #expect(Ed25519KeyCheck.problem(withPublicKey: rfc) == nil)
        for key in Ed25519KeyCheck.smallOrder {
            var near = key
            near[10] ^= 0x01
            #expect(!Ed25519KeyCheck.hasSmallOrder(near))
        }
        #expect(Ed25519KeyCheck.problem(withPublicKey: rfc.dropLast())?.contains("31 bytes") == true)
    }

    /// Which small y values have a point, and three random ones that do not, from RFC 8032 §5.1.3's
    /// decoding done with Python integers (x² = (y² - 1)/(d·y² + 1) a square or not).
    @Test("a y with no point on the curve is refused")
    func offTheCurve() {
        func encoding(_ y: UInt8) -> [UInt8] { [y] + [UInt8](repeating: 0, count: 31) }
        for y in [3, 4, 5, 6, 9, 10] as [UInt8] { #expect(Ed25519Field.isY(Ed25519Field(encoding: encoding(y))), "y = \(y)") }
        for y in [2, 7, 8, 11] as [UInt8] { #expect(!Ed25519Field.isY(Ed25519Field(encoding: encoding(y))), "y = \(y)") }
        for hex in [
            "8c2e0718822ce47ca8c74107e66cb0e4b2b3f4d58d82ca6386d2c96e3b87c04d",
            "3129903ac1d45597a242fdf11f8f2b1a39f3c3e693114351dcbed4077173db02",
            "a0661970ef3f6df0148ded7e8a34888d396cab3b80d27f58df111a3b1ef9a256"
        ] {
            let key = stride(from: 0, to: 64, by: 2).map { UInt8(hex.dropFirst($0).prefix(2), radix: 16)! }
            #expect(Ed25519KeyCheck.problem(withPublicKey: key)?.contains("not a point of the curve") == true, "\(hex)")
        }
        #expect(Ed25519KeyCheck.problem(withPublicKey: [UInt8](repeating: 7, count: 32))?.contains("not a point") == true)
    }

    @Test("S must be below the group order L")
    func scalars() {
        var belowL = Ed25519KeyCheck.order
        belowL[0] -= 1
        #expect(Ed25519KeyCheck.isCanonicalScalar(belowL))
        #expect(Ed25519KeyCheck.isCanonicalScalar([UInt8](repeating: 0, count: 32)))
        #expect(!Ed25519KeyCheck.isCanonicalScalar(Ed25519KeyCheck.order))
        #expect(!Ed25519KeyCheck.isCanonicalScalar([UInt8](repeating: 0xFF, count: 32)))
    }

    @Test("a profile listing a weak key is refused, naming the key's field")
    func weakKeyInAProfile() throws {
        var object = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: demoProfile)) as? [String: Any])
        let good = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=" // RFC 8032 §7.1, test 1
        for key in Self.smallOrderEncodings + [[0xF0] + [UInt8](repeating: 0xFF, count: 30) + [0x7F]] {
            object["signing"] = ["publicKeys": [good, Data(key).base64EncodedString()], "required": true]
            let data = try JSONSerialization.data(withJSONObject: object)
            let error = try #require(throws: ProductProfileError.self) { _ = try ProductProfile.decode(data, file: "p.json") }
            #expect(error.field == "signing.publicKeys.1" && error.problem.contains("refused"), "\(error)")
        }
    }
}
