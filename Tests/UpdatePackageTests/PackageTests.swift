import Crypto
import DeviceProfiles
import FirmwareImage
import Foundation
import Testing
import ZIPFoundation

@testable import UpdatePackage

/// Creating and verifying packages, and what each kind of tampering is refused as.
@Suite("signed packages")
struct PackageTests {
    @Test func aCreatedPackageVerifiesAndDescribesItsImage() throws {
        let release = try Release()
        let package = try readAndVerify(try release.bytes, key: release.key.publicKey)
        let manifest = package.manifest
        let image = try Data(contentsOf: URL(fileURLWithPath: Repository.example("demo-g474-v2.hex")))
        #expect(manifest.profile == "dfuhop-demo-g474")
        #expect(manifest.productID == 0x0DF0_0474)
        #expect(manifest.family == "g474")
        #expect(manifest.version == FirmwareVersion(major: 2, minor: 0, patch: 0))
        #expect(manifest.requiredOptionBytes == [.init(name: "DBANK", value: 1)])
        #expect(manifest.releaseNotes == "notes")
        #expect(manifest.images == [.init(file: "demo-g474-v2.hex", sha256: sha256Hex(Array(image)), size: image.count)])
        #expect(package.contents(of: manifest.images[0]) == Array(image))
        #expect(try PackageManifest.decode(try manifest.encoded(), file: "m") == manifest)
    }

    /// Another zip reader (ZIPFoundation's) lists the same members with the same bytes: any unzip tool can open it.
    @Test func anotherZipReaderSeesTheSameMembers() throws {
        let release = try Release()
        let archive = try Archive(url: URL(fileURLWithPath: release.packagePath), accessMode: .read)
        var theirs: [(String, [UInt8])] = []
        for entry in archive {
            var data = Data()
            _ = try archive.extract(entry) { data.append($0) }
            theirs.append((entry.path, Array(data)))
        }
        let ours = try release.members()
        #expect(theirs.map(\.0) == ours.map(\.0))
        #expect(theirs.map(\.1) == ours.map(\.1))
        #expect(ours.map(\.0) == ["manifest.json", "manifest.sig", "demo-g474-v2.hex"])
    }

    @Test func aPackageFromAnUntrustedKeyIsRefusedNamingTheKey() throws {
        let release = try Release()
        let other = Curve25519.Signing.PrivateKey().publicKey
        let error = try #require(throws: PackageError.self) { _ = try readAndVerify(try release.bytes, key: other) }
        #expect(error.kind == .untrusted)
        #expect(error.problem.contains(SigningPublicKey(other).base64))
    }

    @Test func aSignatureOverADifferentManifestIsRefused() throws {
        let release = try Release()
        var members = try release.members()
        let text = String(decoding: members[0].1, as: UTF8.self).replacingOccurrences(of: "\"notes\"", with: "\"other notes\"")
        members[0].1 = Array(text.utf8)
        let bytes = HandZip(entries: members.map { HandZip.Entry($0.0, $0.1) }).bytes()
        let error = try #require(throws: PackageError.self) { _ = try readAndVerify(bytes, key: release.key.publicKey) }
        #expect(error.kind == .untrusted)
        #expect(error.problem.contains("signature does not verify"))
    }

    /// The image changed inside a well-formed zip (its CRC recomputed): the signed SHA-256 catches it.
    @Test func aTamperedImageIsRefusedNamingTheFileAndBothHashes() throws {
        let release = try Release()
        var members = try release.members()
        let original = members[2].1
        members[2].1[100] ^= 0x01
        let bytes = HandZip(entries: members.map { HandZip.Entry($0.0, $0.1) }).bytes()
        let error = try #require(throws: PackageError.self) { _ = try readAndVerify(bytes, key: release.key.publicKey) }
        #expect(error.kind == .untrusted)
        #expect(error.file.hasSuffix(":demo-g474-v2.hex"))
        #expect(error.problem.contains(sha256Hex(original)) && error.problem.contains(sha256Hex(members[2].1)))
    }

    @Test func creationRefusesImagesThatDisagree() throws {
        let scratch = try Scratch()
        let key = Curve25519.Signing.PrivateKey()
        let profiles = [try Repository.demoProfile(), try Repository.f407Profile()]
        func create(_ images: [String], minimum: FirmwareVersion? = nil) throws(PackageError) {
            _ = try PackageBuilder.create(
                .init(images: images.map(Repository.example), minimumVersion: minimum), key: key,
                profiles: profiles, output: scratch.path("out.dfuhop"))
        }
        let versions = try #require(throws: PackageError.self) { try create(["demo-g474-v2.hex", "demo-g474-v1.hex"]) }
        #expect(versions.kind == .refused && versions.problem.contains("version 1.0.0"))
        let products = try #require(throws: PackageError.self) { try create(["demo-g474-v2.hex", "demo-f407-v2.hex"]) }
        #expect(products.kind == .refused)
        let unstamped = try #require(throws: PackageError.self) { try create(["demo-g474-v2.unstamped.hex"]) }
        #expect(unstamped.kind == .refused)
        let newer = FirmwareVersion(major: 3, minor: 0, patch: 0)
        let minimum = try #require(throws: PackageError.self) { try create(["demo-g474-v2.hex"], minimum: newer) }
        #expect(minimum.problem.contains("minimum version"))
        #expect(!FileManager.default.fileExists(atPath: scratch.path("out.dfuhop")))
    }

    @Test func keyFilesAreWrittenPrivateAndNeverReplaced() throws {
        let scratch = try Scratch()
        let path = scratch.path("release.key")
        let generated = try SigningKeys.generate(privateKeyPath: path, comment: "ci key")
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        let line = try String(contentsOfFile: path + ".pub", encoding: .utf8)
        #expect(line == generated.base64 + " ci key\n")
        #expect(try SigningKeys.loadPublicKey(path: path + ".pub") == generated)
        #expect(SigningPublicKey(try SigningKeys.loadPrivateKey(path: path).publicKey) == generated)
        let again = try #require(throws: PackageError.self) { _ = try SigningKeys.generate(privateKeyPath: path, comment: nil) }
        #expect(again.kind == .cannotWrite)
    }
}
