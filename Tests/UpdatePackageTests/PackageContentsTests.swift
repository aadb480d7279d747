import Crypto
import DeviceProfiles
import FirmwareImage
import Foundation
import Testing

@testable import UpdatePackage

/// `package verify` makes upgrade's checks on the package alone (issue 21, item 5): each image's
/// descriptor against the signed manifest, with or without a profile, and the manifest's option bytes
/// against the profile's.
@Suite("package contents", .timeLimit(.minutes(10)))
struct PackageContentsTests {
    /// The release's package with its manifest changed and signed again by the release key.
    static func resigned(_ release: Release, _ change: (inout PackageManifest) -> Void) throws -> SignedPackage {
        let signed = try SignedPackage(bytes: resignedBytes(release, change), file: "resigned.dfuhop")
        try signed.verify(trusting: [SigningPublicKey(release.key.publicKey)], keySource: "the release key")
        return signed
    }

    static func resignedBytes(_ release: Release, _ change: (inout PackageManifest) -> Void) throws -> [UInt8] {
        let package = try SignedPackage(bytes: try release.bytes, file: "p")
        var manifest = package.manifest
        change(&manifest)
        let manifestBytes = try manifest.encoded()
        let entries = [
            HandZip.Entry("manifest.json", manifestBytes),
            HandZip.Entry("manifest.sig", Array(try release.key.signature(for: Data(manifestBytes)))),
            HandZip.Entry("demo-g474-v2.hex", package.contents(of: package.manifest.images[0]))
        ]
        return HandZip(entries: entries).bytes()
    }

    @Test func aConsistentPackagePassesWithAndWithoutAProfile() throws {
        let release = try Release()
        let package = try SignedPackage(bytes: try release.bytes, file: "p")
        try package.checkContents(profile: release.profile)
        // Without a profile, a manifest naming no option bytes (the release's names DBANK=1: see below).
        let plain = try Self.resigned(release) { $0.requiredOptionBytes = [] }
        try plain.checkContents(profile: nil)
    }

    /// The case: a signed manifest whose version is not the image's; `upgrade` refused it later.
    @Test func aVersionOrProductTheImageDoesNotCarryIsRefusedEvenWithoutAProfile() throws {
        let release = try Release()
        let version = try Self.resigned(release) { $0.version = FirmwareVersion(major: 6, minor: 6, patch: 6) }
        for profile in [release.profile, nil] {
            let error = try #require(throws: PackageError.self) { try version.checkContents(profile: profile) }
            #expect(error.kind == .untrusted && error.problem.contains("version 6.6.6"), "\(error)")
        }
        let product = try Self.resigned(release) { $0.productID = 0x0DF0_0475 }
        let error = try #require(throws: PackageError.self) { try product.checkContents(profile: nil) }
        #expect(error.problem.contains("product 0x0DF00475"), "\(error)")
    }

    @Test func optionBytesThatDifferFromTheProfilesAreAConflict() throws {
        let release = try Release()
        let other = try Self.resigned(release) { $0.requiredOptionBytes = [.init(name: "DBANK", value: 0)] }
        let error = try #require(throws: PackageError.self) { try other.checkContents(profile: release.profile) }
        #expect(error.problem.contains("DBANK=0") && error.problem.contains("DBANK=1") && error.problem.contains("conflicts"), "\(error)")
        let more = try Self.resigned(release) { $0.requiredOptionBytes.append(.init(name: "nBOOT0", value: 1)) }
        #expect(throws: PackageError.self) { try more.checkContents(profile: release.profile) }
        let none = try Self.resigned(release) { $0.requiredOptionBytes = [] }
        try none.checkContents(profile: release.profile) // the profile's own still apply
    }

    @Test func optionBytesNoProfileRequiresCannotBeHonoured() throws {
        let release = try Release()
        let package = try SignedPackage(bytes: try release.bytes, file: "p")
        let error = try #require(throws: PackageError.self) { try package.checkContents(profile: nil) }
        #expect(error.problem.contains("cannot apply option bytes"), "\(error)")
        var profile = release.profile
        profile.requiredOptionBytes = []
        let withNone = try #require(throws: PackageError.self) { try package.checkContents(profile: profile) }
        #expect(withNone.problem.contains("requires none"), "\(withNone)")
    }

    @Test func aFamilyOtherThanTheProfilesOrUnknownIsRefused() throws {
        let release = try Release()
        let f407 = try Self.resigned(release) { $0.family = "f407" }
        #expect(throws: PackageError.self) { try f407.checkContents(profile: release.profile) }
        let unknown = try Self.resigned(release) {
            $0.family = "z999"
            $0.requiredOptionBytes = []
        }
        let error = try #require(throws: PackageError.self) { try unknown.checkContents(profile: nil) }
        #expect(error.problem.contains("z999"), "\(error)")
    }

    /// `upgrade` refuses what `package verify` refuses: the same check on its path.
    @Test func upgradeInputMakesTheSameChecks() throws {
        let release = try Release()
        let bytes = try Self.resignedBytes(release) { $0.version = FirmwareVersion(major: 6, minor: 6, patch: 6) }
        let path = try release.scratch.write("v666.dfuhop", bytes)
        for profiles in [[release.profile], []] {
            let error = try #require(throws: PackageError.self) { _ = try UpgradeInput.load(path: path, profiles: profiles) }
            #expect(error.kind == .untrusted && error.problem.contains("version 6.6.6"), "\(error)")
        }
    }
}
