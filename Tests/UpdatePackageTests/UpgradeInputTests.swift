import Crypto
import DeviceProfiles
import FirmwareImage
import Foundation
import Testing

@testable import UpdatePackage

/// The signing policy `dfuhop upgrade` applies to the file it is given.
@Suite("upgrade input")
struct UpgradeInputTests {
    @Test func aSignedPackageForAProductThatRequiresSigningGivesItsImage() throws {
        let release = try Release()
        let input = try UpgradeInput.load(path: release.packagePath, profiles: [release.profile])
        #expect(input.signedBy == SigningPublicKey(release.key.publicKey))
        #expect(input.source == release.packagePath + ":demo-g474-v2.hex")
        #expect(input.digest == sha256Hex(try release.bytes))
        #expect(input.image == (try ImageFile.read(path: Repository.example("demo-g474-v2.hex"))))
        #expect(input.notes.isEmpty)
    }

    @Test func aBareImageForAProductThatRequiresSigningIsRefused() throws {
        let profile = try Repository.demoProfile(keys: [Curve25519.Signing.PrivateKey().publicKey], required: true)
        let error = try #require(throws: PackageError.self) {
            _ = try UpgradeInput.load(path: Repository.example("demo-g474-v2.hex"), profiles: [profile])
        }
        #expect(error.kind == .untrusted && error.problem.contains("requires signed packages"))
    }

    @Test func aBareImageIsTakenWhenSigningIsNotRequired() throws {
        let path = Repository.example("demo-g474-v2.hex")
        for profile in [try Repository.demoProfile(signing: false), try Repository.demoProfile(keys: [], required: false)] {
            let input = try UpgradeInput.load(path: path, profiles: [profile])
            #expect(input.manifest == nil && input.source == path)
            #expect(input.digest == sha256Hex(Array(try Data(contentsOf: URL(fileURLWithPath: path)))))
        }
    }

    /// Key rotation: any listed key verifies; removing a key revokes the packages it signed.
    @Test func anyListedKeyVerifiesAndARemovedKeyIsRevoked() throws {
        let release = try Release()
        let newKey = Curve25519.Signing.PrivateKey().publicKey
        let rotated = try Repository.demoProfile(keys: [newKey, release.key.publicKey], required: true)
        #expect(try UpgradeInput.load(path: release.packagePath, profiles: [rotated]).signedBy == SigningPublicKey(release.key.publicKey))
        let revoked = try Repository.demoProfile(keys: [newKey], required: true)
        let error = try #require(throws: PackageError.self) { _ = try UpgradeInput.load(path: release.packagePath, profiles: [revoked]) }
        #expect(error.kind == .untrusted && error.problem.contains(SigningPublicKey(newKey).base64))
    }

    /// A profile that lists keys is checked even when it does not require signing.
    @Test func listedKeysAreCheckedEvenWhenSigningIsOptional() throws {
        let release = try Release()
        let other = try Repository.demoProfile(keys: [Curve25519.Signing.PrivateKey().publicKey], required: false)
        #expect(throws: PackageError.self) { _ = try UpgradeInput.load(path: release.packagePath, profiles: [other]) }
        let none = try UpgradeInput.load(path: release.packagePath, profiles: [try Repository.demoProfile(signing: false)])
        #expect(none.signedBy == nil && none.notes.first?.contains("signature not checked") == true)
    }

    /// A manifest signed for a product without a loaded profile cannot carry an image of a product that has one.
    @Test func aPackageCannotCarryAnotherProductsImagePastItsPolicy() throws {
        let release = try Release()
        let package = try SignedPackage(bytes: try release.bytes, file: "p")
        var manifest = package.manifest
        manifest.productID = 0x1234_5678
        let manifestBytes = try manifest.encoded()
        let entries = [
            HandZip.Entry("manifest.json", manifestBytes),
            HandZip.Entry("manifest.sig", Array(try release.key.signature(for: Data(manifestBytes)))),
            HandZip.Entry("demo-g474-v2.hex", package.contents(of: manifest.images[0]))
        ]
        let path = try release.scratch.write("other.dfuhop", HandZip(entries: entries).bytes())
        let error = try #require(throws: PackageError.self) { _ = try UpgradeInput.load(path: path, profiles: [release.profile]) }
        #expect(error.kind == .untrusted && error.problem.contains("0x12345678"))
    }

    @Test func theMinimumVersionAdmitsOnlyNewerUnits() throws {
        let release = try Release(minimumVersion: FirmwareVersion(major: 1, minor: 5, patch: 0))
        let input = try UpgradeInput.load(path: release.packagePath, profiles: [release.profile])
        #expect(!input.admits(running: FirmwareVersion(major: 1, minor: 0, patch: 0)))
        #expect(input.admits(running: FirmwareVersion(major: 1, minor: 5, patch: 0)))
    }
}

/// The profile's `signing` field: keys are the base64 of exactly 32 bytes.
@Suite("profile signing")
struct ProfileSigningTests {
    func decode(_ signing: Any) throws -> ProductProfile {
        let url = Repository.root.appendingPathComponent("protocols/devices/dfuhop-demo-g474.json")
        var object = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        object["signing"] = signing
        return try ProductProfile.decode(JSONSerialization.data(withJSONObject: object), file: "p.json")
    }

    @Test func validKeysAreRead() throws {
        let key = Curve25519.Signing.PrivateKey().publicKey
        let profile = try decode(["publicKeys": [key.rawRepresentation.base64EncodedString()], "required": true])
        #expect(profile.signing == .init(publicKeys: [Array(key.rawRepresentation)], required: true))
    }

    @Test func badKeysAndShapesAreRefusedNamingTheField() throws {
        let short = Data(repeating: 7, count: 31).base64EncodedString()
        let good = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=" // RFC 8032 §7.1, test 1 (on the curve)
        let cases: [(Any, String)] = [
            (["publicKeys": [short], "required": true], "signing.publicKeys.0"),
            (["publicKeys": ["not base64!"], "required": false], "signing.publicKeys.0"),
            (["publicKeys": [good, good], "required": false], "signing.publicKeys.1"),
            (["publicKeys": [], "required": true], "signing.publicKeys"),
            (["publicKeys": [good]], "signing.required"),
            (["publicKeys": [good], "required": true, "other": 1], "signing.other")
        ]
        for (signing, field) in cases {
            let error = try #require(throws: ProductProfileError.self) { _ = try decode(signing) }
            #expect(error.field == field, "\(error)")
        }
    }
}
