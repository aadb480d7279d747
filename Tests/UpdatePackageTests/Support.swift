import Crypto
import DeviceProfiles
import FirmwareImage
import Foundation

@testable import UpdatePackage

/// The repository's files the tests use: demo images and profiles.
enum Repository {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static func example(_ name: String) -> String { root.appendingPathComponent("protocols/examples/\(name)").path }

    /// The demo G474 profile, with `signing` set (or left out).
    static func demoProfile(
        keys: [Curve25519.Signing.PublicKey] = [], required: Bool = false,
        signing: Bool = true
    ) throws -> ProductProfile {
        let url = root.appendingPathComponent("protocols/devices/dfuhop-demo-g474.json")
        var object = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        if signing { object["signing"] = ["publicKeys": keys.map { $0.rawRepresentation.base64EncodedString() }, "required": required] }
        return try ProductProfile.decode(JSONSerialization.data(withJSONObject: object), file: "demo-g474.json")
    }

    static func f407Profile() throws -> ProductProfile {
        try ProductProfile.load(contentsOf: root.appendingPathComponent("protocols/devices/dfuhop-demo-f407.json"))
    }
}

/// A scratch directory removed when the test ends.
final class Scratch {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("dfuhop-pkg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    func path(_ name: String) -> String { url.appendingPathComponent(name).path }

    func write(_ name: String, _ bytes: [UInt8]) throws -> String {
        try Data(bytes).write(to: URL(fileURLWithPath: path(name)))
        return path(name)
    }

    deinit { try? FileManager.default.removeItem(at: url) }
}

/// A release: a key, a profile trusting it, and a package of demo-g474-v2 signed with it.
struct Release {
    let scratch: Scratch
    let key = Curve25519.Signing.PrivateKey()
    let profile: ProductProfile
    let packagePath: String

    init(image: String = "demo-g474-v2.hex", required: Bool = true, minimumVersion: FirmwareVersion? = nil) throws {
        scratch = try Scratch()
        profile = try Repository.demoProfile(keys: [key.publicKey], required: required)
        packagePath = scratch.path("release.dfuhop")
        _ = try PackageBuilder.create(
            .init(images: [Repository.example(image)], minimumVersion: minimumVersion, releaseNotes: "notes"),
            key: key, profiles: [profile], output: packagePath)
    }

    var bytes: [UInt8] { get throws { Array(try Data(contentsOf: URL(fileURLWithPath: packagePath))) } }

    /// The package's members, in order, as (name, bytes).
    func members() throws -> [(String, [UInt8])] {
        let archive = try ZipArchive(bytes: bytes, file: packagePath)
        return archive.members.map { ($0.name, Array(archive.contents(of: $0))) }
    }
}

/// Assembles zip files byte by byte (PKWARE APPNOTE 6.3.x §4.3), including the hostile shapes no zip
/// library writes: symlinks, `../` names, duplicates, lying sizes, compression claims.
struct HandZip {
    struct Entry {
        var name: String
        var data: [UInt8]
        var method: UInt16 = 0
        var declaredSize: UInt32?
        var declaredCompressedSize: UInt32?
        /// Unix mode in the high half of the external attributes (made on Unix).
        var unixMode: UInt32 = 0o100644
        var flags: UInt16 = 0
        /// The local header's flags, when they differ from the central directory's.
        var localFlags: UInt16?
        /// "Version made by": host in the high byte (3 Unix, 19 OS X), APPNOTE §4.4.2.
        var madeBy: UInt16 = 0x031E
        /// DOS attribute bits in the low half of the external attributes.
        var dosAttributes: UInt16 = 0
        /// Bytes written between the previous member and this one's local header (covered by no offset).
        var gapBefore: [UInt8] = []
        var crc: UInt32?
        /// Point this entry's central record at another entry's local header.
        var localHeaderOf: Int?

        init(_ name: String, _ data: [UInt8]) {
            self.name = name
            self.data = data
        }
    }

    var entries: [Entry]
    /// Bytes before the first member (a shell-script prefix), with every offset moved past them.
    var prefix: [UInt8] = []
    /// The zip comment after the end record.
    var comment: [UInt8] = []

    func bytes() -> [UInt8] {
        var out: [UInt8] = prefix
        var offsets: [Int] = []
        for entry in entries {
            out += entry.gapBefore
            offsets.append(out.count)
            out += le32(0x0403_4B50) + le16(20) + le16(entry.localFlags ?? entry.flags) + le16(entry.method) + le16(0) + le16(0x21)
            out += le32(crc(entry)) + le32(entry.declaredCompressedSize ?? UInt32(entry.data.count))
            out += le32(entry.declaredSize ?? UInt32(entry.data.count)) + le16(UInt16(entry.name.utf8.count)) + le16(0)
            out += Array(entry.name.utf8) + entry.data
        }
        let directoryStart = out.count
        for (index, entry) in entries.enumerated() {
            out += le32(0x0201_4B50) + le16(entry.madeBy) + le16(20) + le16(entry.flags) + le16(entry.method) + le16(0) + le16(0x21)
            out += le32(crc(entry)) + le32(entry.declaredCompressedSize ?? UInt32(entry.data.count))
            out += le32(entry.declaredSize ?? UInt32(entry.data.count)) + le16(UInt16(entry.name.utf8.count)) + le16(0) + le16(0)
            out += le16(0) + le16(0) + le32(entry.unixMode << 16 | UInt32(entry.dosAttributes))
            out += le32(UInt32(offsets[entry.localHeaderOf ?? index]))
            out += Array(entry.name.utf8)
        }
        let directorySize = out.count - directoryStart
        out += le32(0x0605_4B50) + le16(0) + le16(0) + le16(UInt16(entries.count)) + le16(UInt16(entries.count))
        out += le32(UInt32(directorySize)) + le32(UInt32(directoryStart)) + le16(UInt16(comment.count))
        return out + comment
    }

    func crc(_ entry: Entry) -> UInt32 { entry.crc ?? CRC32.zlib(entry.data) }
    func le16(_ value: UInt16) -> [UInt8] { [UInt8(value & 0xFF), UInt8(value >> 8)] }
    func le32(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8((value >> (8 * $0)) & 0xFF) } }
}

/// Reads `bytes` as a package and verifies it with `key`, as `dfuhop upgrade` would.
func readAndVerify(_ bytes: [UInt8], key: Curve25519.Signing.PublicKey) throws(PackageError) -> SignedPackage {
    let package = try SignedPackage(bytes: bytes, file: "test.dfuhop")
    try package.verify(trusting: [SigningPublicKey(key)], keySource: "the test key")
    return package
}
