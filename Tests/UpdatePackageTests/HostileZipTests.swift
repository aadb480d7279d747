import Crypto
import FirmwareImage
import Foundation
import SeededRandom
import Testing

@testable import UpdatePackage

/// Issue 21's zips: the layout is checked whole before any CRC, members tile the file with nothing before,
/// between or after them, both headers of a member agree on their flags, and only regular files pass,
/// whoever made the zip.
@Suite("hostile zips", .timeLimit(.minutes(10)))
struct HostileZipTests {
    func release() throws -> (Release, [HandZip.Entry]) {
        let release = try Release()
        return (release, try release.members().map { HandZip.Entry($0.0, $0.1) })
    }

    func refusal(_ zip: HandZip, key: Curve25519.Signing.PublicKey) throws -> PackageError {
        try #require(throws: PackageError.self) { _ = try readAndVerify(zip.bytes(), key: key) }
    }

    @Test func theHandBuiltReleaseIsAccepted() throws {
        let (release, entries) = try release()
        _ = try readAndVerify(HandZip(entries: entries).bytes(), key: release.key.publicKey)
    }

    /// A `#!/bin/sh` prefix with every offset moved past it (what `cat stub.sh x.zip > y; zip -A y` makes):
    /// unzip tools accept it, dfuhop does not.
    @Test func bytesBeforeTheFirstMemberAreRefused() throws {
        let (release, entries) = try release()
        let error = try refusal(HandZip(entries: entries, prefix: Array("#!/bin/sh\necho hi\nexit 0\n".utf8)), key: release.key.publicKey)
        #expect(error.kind == .malformed && error.problem.contains("before the first member"), "\(error)")
    }

    @Test func bytesBetweenMembersAreRefused() throws {
        let (release, entries) = try release()
        var gapped = entries
        gapped[2].gapBefore = [0xAA, 0xBB, 0xCC]
        let error = try refusal(HandZip(entries: gapped), key: release.key.publicKey)
        #expect(error.problem.contains("between member \"manifest.sig\" and \"demo-g474-v2.hex\""), "\(error)")
    }

    @Test func aZipCommentIsRefused() throws {
        let (release, entries) = try release()
        let error = try refusal(HandZip(entries: entries, comment: Array("hello".utf8)), key: release.key.publicKey)
        #expect(error.problem.contains("5-byte zip comment"), "\(error)")
    }

    /// Encryption or a data descriptor announced in one header only; flags packages never use.
    @Test func localAndCentralFlagsMustAgree() throws {
        let (release, entries) = try release()
        let cases: [(UInt16, UInt16, String)] = [
            (0, 0x0001, "encrypted"), (0x0001, 0, "encrypted"), (0, 0x0040, "encrypted"),
            (0x0008, 0, "flags 0x0000 in its local header but 0x0008"), (0, 0x0008, "flags 0x0008 in its local header but 0x0000"),
            (0x2000, 0x2000, "never use"), (0x0800, 0x0800, "")
        ]
        for (central, local, words) in cases {
            var changed = entries
            changed[2].flags = central
            changed[2].localFlags = local
            let bytes = HandZip(entries: changed).bytes()
            if words.isEmpty {
                _ = try readAndVerify(bytes, key: release.key.publicKey) // bit 11 (UTF-8 names) is allowed
                continue
            }
            let error = try #require(throws: PackageError.self) { _ = try readAndVerify(bytes, key: release.key.publicKey) }
            #expect(error.problem.contains(words), "central 0x\(String(central, radix: 16)) local 0x\(String(local, radix: 16)): \(error)")
        }
    }

    /// A symlink, directory or device is refused whichever host the entry says made it.
    @Test func nonRegularMembersAreRefusedWhateverMadeThem() throws {
        let (release, entries) = try release()
        for host in [0, 3, 10, 19, 255] as [UInt16] {
            for (mode, words) in [(0o120777, "symbolic link"), (0o040755, "directory"), (0o020644, "not a regular file")]
                as [(UInt32, String)]
            {
                var changed = entries
                changed[2].madeBy = host << 8 | 0x1E
                changed[2].unixMode = mode
                let error = try refusal(HandZip(entries: changed), key: release.key.publicKey)
                #expect(error.problem.contains(words) && error.problem.contains("host \(host)"), "\(error)")
            }
            var labelled = entries
            labelled[2].madeBy = host << 8
            labelled[2].unixMode = 0
            labelled[2].dosAttributes = 0x08
            #expect(try refusal(HandZip(entries: labelled), key: release.key.publicKey).problem.contains("volume label"))
        }
    }

    /// 63 members nested inside each other with CRCs that are all wrong: the overlap is what is reported,
    /// so the layout was judged before a single CRC was computed (a CRC-first reader reports the CRC, or
    /// with right CRCs hashes every member's bytes: 63 times the file).
    @Test func nestedOverlappingMembersAreRefusedBeforeAnyCRC() throws {
        let names = (0..<63).map { "m\($0).bin" }
        var headers: [[UInt8]] = []
        let payload = [UInt8](repeating: 0x5A, count: 4096)
        let headerSizes = names.map { 30 + $0.utf8.count }
        let end = headerSizes.reduce(0, +) + payload.count
        let zip = HandZip(entries: [])
        var offset = 0
        for (index, name) in names.enumerated() {
            let size = UInt32(end - offset - headerSizes[index])
            headers.append(
                zip.le32(0x0403_4B50) + zip.le16(20) + [0, 0, 0, 0, 0, 0, 0x21, 0] + zip.le32(0) + zip.le32(size) + zip.le32(size)
                    + zip.le16(UInt16(name.utf8.count)) + zip.le16(0) + Array(name.utf8))
            offset += headerSizes[index]
        }
        var bytes = headers.flatMap { $0 } + payload
        let directoryStart = bytes.count
        offset = 0
        for (index, name) in names.enumerated() {
            let size = UInt32(end - offset - headerSizes[index])
            bytes += zip.le32(0x0201_4B50) + zip.le16(0x031E) + zip.le16(20) + [0, 0, 0, 0, 0, 0, 0x21, 0] + zip.le32(0)
            bytes += zip.le32(size) + zip.le32(size) + zip.le16(UInt16(name.utf8.count)) + [0, 0, 0, 0, 0, 0, 0, 0]
            bytes += zip.le32(0o100644 << 16) + zip.le32(UInt32(offset)) + Array(name.utf8)
            offset += headerSizes[index]
        }
        let directorySize = bytes.count - directoryStart
        bytes += zip.le32(0x0605_4B50) + [0, 0, 0, 0] + zip.le16(63) + zip.le16(63)
        bytes += zip.le32(UInt32(directorySize)) + zip.le32(UInt32(directoryStart)) + [0, 0]
        let error = try #require(throws: PackageError.self) { _ = try ZipArchive(bytes: bytes, file: "nested.zip") }
        #expect(error.problem.contains("overlap") && !error.problem.contains("CRC"), "\(error)")
    }

    /// A zip is read under the package limit (64 MiB) whatever it is called; the file is refused before
    /// it is read (a sparse file: no disk, no memory).
    @Test func aZipUnderAnotherNameIsHeldToThePackageLimit() throws {
        let scratch = try Scratch()
        let path = try scratch.write("update.bin", [0x50, 0x4B, 0x03, 0x04])
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.truncate(atOffset: UInt64(SignedPackage.maximumSize + 1))
        try handle.close()
        let error = try #require(throws: PackageError.self) { _ = try UpgradeInput.load(path: path, profiles: []) }
        #expect(error.problem.contains("the limit for a package (a zip) is \(SignedPackage.maximumSize)"), "\(error)")
    }
}
