import Crypto
import FirmwareImage
import Foundation
import SeededRandom
import Testing

@testable import UpdatePackage

/// Hostile packages: each is refused with an error that names the problem, before any member is used,
/// and without allocating by what a header claims (the reader only ever holds the package's own bytes).
@Suite("hostile packages")
struct HostilePackageTests {
    /// The release's members rebuilt by hand, with `change` applied, then read and verified.
    func refusal(_ change: (inout [HandZip.Entry]) -> Void) throws -> PackageError {
        let release = try Release()
        var entries = try release.members().map { HandZip.Entry($0.0, $0.1) }
        change(&entries)
        let bytes = HandZip(entries: entries).bytes()
        return try #require(throws: PackageError.self) { _ = try readAndVerify(bytes, key: release.key.publicKey) }
    }

    @Test func pathTraversalAndAbsoluteNamesAreRefused() throws {
        for name in ["../demo-g474-v2.hex", "/etc/passwd", "dir/file.hex", "..\\evil.hex", ".hidden"] {
            let error = try refusal { $0.append(HandZip.Entry(name, [1, 2, 3])) }
            #expect(error.kind == .malformed, "\(name)")
            #expect(error.problem.contains(name), "\(error)")
        }
    }

    @Test func duplicateMembersAreRefused() throws {
        let exact = try refusal { $0.append($0[2]) }
        #expect(exact.problem.contains("twice"))
        let byCase = try refusal { $0.append(HandZip.Entry("DEMO-G474-V2.HEX", $0[2].data)) }
        #expect(byCase.problem.contains("twice"))
    }

    @Test func aMemberTheManifestDoesNotNameIsRefused() throws {
        let error = try refusal { $0.append(HandZip.Entry("payload.bin", [0xDE, 0xAD])) }
        #expect(error.kind == .untrusted && error.problem.contains("\"payload.bin\" is not named in the manifest"))
    }

    @Test func aMissingImageIsRefused() throws {
        let error = try refusal { $0.remove(at: 2) }
        #expect(error.problem.contains("does not hold it"))
    }

    @Test func aSymlinkMemberIsRefused() throws {
        let error = try refusal { $0[2].unixMode = 0o120777 }
        #expect(error.kind == .malformed && error.problem.contains("symbolic link"))
    }

    @Test func aDirectoryMemberIsRefused() throws {
        let error = try refusal {
            $0.append(HandZip.Entry("images", []))
            $0[3].unixMode = 0o040755
        }
        #expect(error.problem.contains("directory"))
    }

    /// A manifest that lies about an image's size, signed by the trusted key: refused on the size.
    @Test func aManifestThatLiesAboutSizesIsRefused() throws {
        let release = try Release()
        let package = try SignedPackage(bytes: try release.bytes, file: "p")
        var manifest = package.manifest
        manifest.images[0].size += 1
        let manifestBytes = try manifest.encoded()
        let signature = Array(try release.key.signature(for: Data(manifestBytes)))
        let entries = [
            HandZip.Entry("manifest.json", manifestBytes), HandZip.Entry("manifest.sig", signature),
            HandZip.Entry("demo-g474-v2.hex", package.contents(of: package.manifest.images[0]))
        ]
        let bytes = HandZip(entries: entries).bytes()
        let error = try #require(throws: PackageError.self) { _ = try readAndVerify(bytes, key: release.key.publicKey) }
        #expect(error.kind == .untrusted && error.problem.contains("the manifest says"))
    }

    /// Zip bombs: a compressed member claiming 4 GiB, a stored member claiming more than the file holds,
    /// a member whose sizes disagree, and members that share bytes. None is inflated or allocated.
    @Test func zipBombsAreRefusedWithoutAllocatingWhatTheyClaim() throws {
        let deflated = try refusal {
            $0[2].method = 8
            $0[2].declaredSize = 0xFFFF_FFF0
        }
        #expect(deflated.problem.contains("compressed"))
        let huge = try refusal {
            $0[2].declaredSize = 0x7FFF_FFF0
            $0[2].declaredCompressedSize = 0x7FFF_FFF0
        }
        #expect(huge.problem.contains("past the end"))
        let mismatched = try refusal { $0[2].declaredSize = 0x7FFF_FFF0 }
        #expect(mismatched.problem.contains("one size"))
        let zip64 = try refusal {
            $0[2].declaredSize = 0xFFFF_FFFF
            $0[2].declaredCompressedSize = 0xFFFF_FFFF
        }
        #expect(zip64.kind == .malformed)
        let overlapping = try refusal { entries in
            var alias = entries[2]
            alias.name = "copy.hex"
            alias.localHeaderOf = 2
            entries.append(alias)
        }
        #expect(overlapping.kind == .malformed)
    }

    @Test func encryptedMembersAndBadCRCsAreRefused() throws {
        let encrypted = try refusal { $0[2].flags = 1 }
        #expect(encrypted.problem.contains("encrypted"))
        let crc = try refusal { $0[2].crc = 0x1234_5678 }
        #expect(crc.problem.contains("CRC-32"))
    }

    /// Every truncation of a good package is refused as malformed (never a crash, never accepted).
    @Test func everyTruncationIsRefused() throws {
        let bytes = try Release().bytes
        for length in stride(from: 0, to: bytes.count, by: max(1, bytes.count / 400)) + [bytes.count - 1] {
            #expect(throws: PackageError.self, "length \(length)") { _ = try SignedPackage(bytes: Array(bytes[0..<length]), file: "t") }
        }
    }

    /// Random byte changes anywhere in a package: never a crash; whenever the result still verifies, what
    /// it gives (manifest and image bytes) is exactly what was signed. Replay with DFUHOP_SEED.
    @Test func randomCorruptionNeverYieldsUnsignedContent() throws {
        let release = try Release()
        let good = try readAndVerify(try release.bytes, key: release.key.publicKey)
        let original = try release.bytes
        let seed = ProcessInfo.processInfo.environment["DFUHOP_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 0...UInt64.max)
        print("randomCorruptionNeverYieldsUnsignedContent seed \(seed) (DFUHOP_SEED=\(seed) replays it)")
        var generator = SplitMix64(seed: seed)
        for _ in 0..<300 {
            var bytes = original
            for _ in 0..<Int.random(in: 1...3, using: &generator) {
                bytes[Int.random(in: 0..<bytes.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
            }
            guard let package = try? readAndVerify(bytes, key: release.key.publicKey) else { continue }
            #expect(package.manifestBytes == good.manifestBytes, "seed \(seed)")
            #expect(package.contents(of: package.manifest.images[0]) == good.contents(of: good.manifest.images[0]), "seed \(seed)")
        }
    }

    @Test func aFileLargerThanTheCapIsRefusedBeforeItIsRead() throws {
        let scratch = try Scratch()
        let path = scratch.path("big.dfuhop")
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.truncate(atOffset: UInt64(SignedPackage.maximumSize + 1)) // sparse: no disk, no memory
        try handle.close()
        let error = try #require(throws: PackageError.self) { _ = try SignedPackage.read(path: path) }
        #expect(error.problem.contains("the limit is"))
    }

    @Test func manifestsWithUnknownFieldsOrBadValuesAreRefused() throws {
        let base = try SignedPackage(bytes: try Release().bytes, file: "p").manifest
        var object = try JSONSerialization.jsonObject(with: Data(try base.encoded())) as! [String: Any]
        func refused(_ change: ([String: Any]) -> [String: Any]) throws -> PackageError {
            let data = try JSONSerialization.data(withJSONObject: change(object))
            return try #require(throws: PackageError.self) { _ = try PackageManifest.decode(Array(data), file: "m") }
        }
        #expect(
            try refused {
                var o = $0
                o["extra"] = 1
                return o
            }.problem.contains("extra"))
        #expect(
            try refused {
                var o = $0
                o["format"] = 2
                return o
            }.problem.contains("format"))
        #expect(
            try refused {
                var o = $0
                o["images"] = []
                return o
            }.problem.contains("images"))
        #expect(
            try refused {
                var o = $0
                o["version"] = "2.x"
                return o
            }.problem.contains("version"))
        var image = (object["images"] as! [[String: Any]])[0]
        image["file"] = "../x.hex"
        object["images"] = [image]
        #expect(try refused { $0 }.problem.contains("images.0.file"))
        #expect(throws: PackageError.self) { _ = try PackageManifest.decode(Array("{\"format\":".utf8), file: "m") }
    }
}
