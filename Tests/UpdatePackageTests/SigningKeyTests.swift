import Crypto
import DeviceProfiles
import Foundation
import Testing

@testable import UpdatePackage

/// Keys as dfuhop reads them: weak public keys refused wherever read, forged and malleable signatures
/// never verify, key files never left half made, private keys others can read refused.
@Suite("signing keys", .timeLimit(.minutes(10)))
struct SigningKeyTests {
    static let identity = "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="

    /// Issue 21: with the identity as the key, R = identity and S = 0 "sign" any manifest.
    static func forgedSignature() -> [UInt8] { [1] + [UInt8](repeating: 0, count: 63) }

    @Test func theIdentityKeyIsRefusedAsAKeyAndNeverVerifies() throws {
        let error = try #require(throws: PackageError.self) { _ = try SigningPublicKey(base64: Self.identity, source: "k.pub") }
        #expect(error.kind == .untrusted && error.problem.contains("small order"), "\(error)")
        let raw = SigningPublicKey(raw: Array(Data(base64Encoded: Self.identity)!))
        #expect(!raw.isValidSignature(Self.forgedSignature(), of: Array("any manifest".utf8)))
    }

    /// The forged package the issue describes, verified by a profile-sourced identity key: refused.
    @Test func aForgedPackageDoesNotVerifyWithTheIdentityKey() throws {
        let release = try Release()
        var entries = try release.members().map { HandZip.Entry($0.0, $0.1) }
        entries[1].data = Self.forgedSignature()
        let package = try SignedPackage(bytes: HandZip(entries: entries).bytes(), file: "forged.dfuhop")
        let key = SigningPublicKey(raw: Array(Data(base64Encoded: Self.identity)!))
        let error = try #require(throws: PackageError.self) { try package.verify(trusting: [key], keySource: "a hostile profile") }
        #expect(error.kind == .untrusted)
    }

    @Test func aKeyFileWithAWeakKeyIsRefused() throws {
        let scratch = try Scratch()
        for key in Ed25519KeyCheck.smallOrder.flatMap({ [$0, Array($0.dropLast()) + [$0[31] | 0x80]] }) {
            let path = try scratch.write("weak-\(UUID().uuidString).pub", Array((Data(key).base64EncodedString() + " weak\n").utf8))
            let error = try #require(throws: PackageError.self) { _ = try SigningKeys.loadPublicKey(path: path) }
            #expect(error.file == path && error.problem.contains("small order"), "\(error)")
        }
    }

    /// S + L is the same signature to a lax verifier (RFC 8032 §5.1.7 requires S < L); a small-order R is refused too.
    @Test func malleableAndSmallOrderSignaturesNeverVerify() throws {
        let key = Curve25519.Signing.PrivateKey()
        let message = Array("manifest".utf8)
        let signature = Array(try key.signature(for: Data(message)))
        let publicKey = SigningPublicKey(key.publicKey)
        #expect(publicKey.isValidSignature(signature, of: message))
        var s = Array(signature[32...])
        var carry = 0
        for index in 0..<32 {
            let sum = Int(s[index]) + Int(Ed25519KeyCheck.order[index]) + carry
            s[index] = UInt8(sum & 0xFF)
            carry = sum >> 8
        }
        #expect(!publicKey.isValidSignature(Array(signature[..<32]) + s, of: message), "S + L")
        #expect(!publicKey.isValidSignature(Self.forgedSignature(), of: message))
        #expect(!publicKey.isValidSignature(signature.dropLast(), of: message))
    }

    /// Every key dfuhop generates passes its own check (a property over fresh keys).
    @Test func generatedKeysAreNeverWeak() {
        for _ in 0..<200 {
            #expect(Ed25519KeyCheck.problem(withPublicKey: Curve25519.Signing.PrivateKey().publicKey.rawRepresentation) == nil)
        }
    }

    /// Issue 21: `k.pub` a dangling symlink: refused, and neither `k` nor anything at the link's target is made.
    @Test func aDanglingPublicKeyLinkLeavesNoPrivateKey() throws {
        let scratch = try Scratch()
        let key = scratch.path("k")
        let target = scratch.path("elsewhere")
        try FileManager.default.createSymbolicLink(atPath: key + ".pub", withDestinationPath: target)
        let error = try #require(throws: PackageError.self) { _ = try SigningKeys.generate(privateKeyPath: key, comment: nil) }
        #expect(error.kind == .cannotWrite && error.problem.contains("symbolic link"), "\(error)")
        #expect(!FileManager.default.fileExists(atPath: key) && !FileManager.default.fileExists(atPath: target))
    }

    /// A failure after the private key was written removes it: a 252-byte name fits, the same name with
    /// ".pub" does not (NAME_MAX is 255 on Linux and macOS).
    @Test func aFailedPublicKeyWriteRemovesThePrivateKey() throws {
        let scratch = try Scratch()
        let key = scratch.path(String(repeating: "k", count: 252))
        let error = try #require(throws: PackageError.self) { _ = try SigningKeys.generate(privateKeyPath: key, comment: nil) }
        #expect(error.kind == .cannotWrite && error.file == key + ".pub", "\(error)")
        #expect(!FileManager.default.fileExists(atPath: key))
    }

    @Test func aPrivateKeyOthersCanReadIsRefusedUnlessAllowed() throws {
        let scratch = try Scratch()
        let path = scratch.path("release.key")
        _ = try SigningKeys.generate(privateKeyPath: path, comment: nil)
        #expect(throws: Never.self) { _ = try SigningKeys.loadPrivateKey(path: path) }
        for mode in [0o640, 0o604, 0o660, 0o644, 0o602] as [mode_t] {
            chmod(path, mode)
            let error = try #require(throws: PackageError.self) { _ = try SigningKeys.loadPrivateKey(path: path) }
            #expect(error.problem.contains("mode 0\(String(mode, radix: 8))") && error.problem.contains("chmod 600"), "\(error)")
            #expect(throws: Never.self) { _ = try SigningKeys.loadPrivateKey(path: path, allowReadable: true) }
        }
    }
}
