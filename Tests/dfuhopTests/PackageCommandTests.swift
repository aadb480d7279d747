import FirmwareImage
import Foundation
import TestSupport
import Testing

/// Signed update packages end to end, on virtual G474 units whose profile requires signatures: the
/// one that is signed by a trusted key upgrades the unit; every other input is refused and the unit's
/// saved state is byte-for-byte what it was.
@Suite("dfuhop package", .timeLimit(.minutes(10)))
struct PackageCommandTests {
    static func example(_ name: String) async -> String { UpgradeCommandTests.example(name) }

    /// A key, a profile directory trusting it (signing required), and a simulated unit running 1.0.0.
    struct Bench {
        let directory: TemporaryDirectory
        let key: String
        let profiles: String
        let unit: String

        init() async throws {
            directory = try TemporaryDirectory()
            key = directory.path("release.key")
            let generated = try await Dfuhop.run("key", "generate", "--out", key)
            #expect(generated.status == 0, "\(generated)")
            let publicKey = String(try String(contentsOfFile: key + ".pub", encoding: .utf8).split(separator: " ")[0])
            profiles = directory.path("profiles")
            try FileManager.default.createDirectory(atPath: profiles, withIntermediateDirectories: true)
            let demo = URL(fileURLWithPath: Self.repositoryFile("protocols/devices/dfuhop-demo-g474.json"))
            var profile = try JSONSerialization.jsonObject(with: Data(contentsOf: demo)) as! [String: Any]
            profile["signing"] = ["publicKeys": [publicKey], "required": true]
            try JSONSerialization.data(withJSONObject: profile).write(to: URL(fileURLWithPath: profiles + "/dfuhop-demo-g474.json"))
            unit = directory.path("unit.json")
            let info = try await Dfuhop.run("info", "--simulate", "g474:programmed", "--simulate-state", unit, "--json")
            #expect(try info.result().unit?.version == "1.0.0", "\(info)")
        }

        static func repositoryFile(_ path: String) -> String {
            URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../\(path)").standardized.path
        }

        func package(_ image: String, key: String? = nil, name: String) async throws -> String {
            let output = directory.path(name)
            let result = try await Dfuhop.run(
                "package", "create", PackageCommandTests.example(image), "--key", key ?? self.key, "-o", output,
                "--profile", profiles)
            #expect(result.status == 0, "\(result)")
            return output
        }

        func upgrade(_ file: String) async throws -> Dfuhop.Result {
            try await Dfuhop.run("upgrade", file, "--simulate-state", unit, "--profile", profiles, "--state-dir", directory.path("state"))
        }

        func version() async throws -> String? { try await Dfuhop.run("info", "--simulate-state", unit, "--json").result().unit?.version }

        /// `file` is refused with `status` and a message holding `words`, and the unit is untouched.
        func expectRefused(_ file: String, status: Int32, _ words: String) async throws {
            let before = try Data(contentsOf: URL(fileURLWithPath: unit))
            let result = try await upgrade(file)
            #expect(result.status == status, "\(result)")
            #expect(result.stderr.contains(words), "\(result)")
            #expect(try Data(contentsOf: URL(fileURLWithPath: unit)) == before, "the unit's state changed")
        }
    }

    @Test func aSignedPackageUpgradesAndEveryUntrustedInputIsRefused() async throws {
        let bench = try await Bench()
        let signed = try await bench.package("demo-g474-v2.hex", name: "v2.dfuhop")

        try await bench.expectRefused(Self.example("demo-g474-v2.hex"), status: 87, "requires signed packages")

        let otherKey = bench.directory.path("other.key")
        #expect(try await Dfuhop.run("key", "generate", "--out", otherKey).status == 0)
        let untrusted = try await bench.package("demo-g474-v2.hex", key: otherKey, name: "untrusted.dfuhop")
        try await bench.expectRefused(untrusted, status: 87, "signature does not verify")

        // The member is the image padded to whole G474 flash words (issue 25): what `image convert --family g474` writes.
        let member = bench.directory.path("member.hex")
        #expect(try await Dfuhop.run("image", "convert", Self.example("demo-g474-v2.hex"), member, "--family", "g474").status == 0)
        let tampered = try Self.tamperedCopy(of: signed, image: member, in: bench.directory)
        try await bench.expectRefused(tampered, status: 87, "the image was altered")
        #expect(try await bench.version() == "1.0.0")

        let result = try await bench.upgrade(signed)
        #expect(result.status == 0, "\(result)")
        #expect(try await bench.version() == "2.0.0")

        let older = try await bench.package("demo-g474-v1.hex", name: "v1.dfuhop")
        try await bench.expectRefused(older, status: 80, "older than")
        #expect(try await bench.version() == "2.0.0")
    }

    @Test func verifyAndInfoDescribeThePackage() async throws {
        let bench = try await Bench()
        let signed = try await bench.package("demo-g474-v2.hex", name: "v2.dfuhop")
        let verify = try await Dfuhop.run("package", "verify", signed, "--key", bench.key + ".pub", "--json")
        #expect(verify.status == 0, "\(verify)")
        let object = try #require(try verify.result().package)
        #expect(object.verified == true && object.version == "2.0.0")
        let byProfile = try await Dfuhop.run("package", "verify", signed, "--profile", bench.profiles)
        #expect(byProfile.status == 0 && byProfile.stdout.contains("verified: signed by"), "\(byProfile)")
        let info = try await Dfuhop.run("package", "info", signed)
        #expect(info.status == 0 && info.stdout.contains("demo-g474-v2.hex") && info.stdout.contains("not checked"), "\(info)")
        let otherKey = bench.directory.path("other.key")
        _ = try await Dfuhop.run("key", "generate", "--out", otherKey)
        let wrong = try await Dfuhop.run("package", "verify", signed, "--key", otherKey + ".pub")
        #expect(wrong.status == 87, "\(wrong)")
        let codes = try await Dfuhop.run("exit-codes")
        #expect(codes.stdout.contains(" 87  the update package or image failed verification"))
    }

    /// Issue 21, item 4: the identity point as a `--key` file or a profile key is refused with the reason.
    @Test func weakKeysAreRefusedWhereverTheyAreRead() async throws {
        let bench = try await Bench()
        let signed = try await bench.package("demo-g474-v2.hex", name: "v2.dfuhop")
        let identity = "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
        let keyFile = try bench.directory.write("identity.pub", Array((identity + " hostile\n").utf8))
        let byKey = try await Dfuhop.run("package", "verify", signed, "--key", keyFile)
        #expect(byKey.status == 87 && byKey.stderr.contains("small order"), "\(byKey)")

        let profiles = bench.directory.path("weak-profiles")
        try FileManager.default.createDirectory(atPath: profiles, withIntermediateDirectories: true)
        let demo = URL(fileURLWithPath: Bench.repositoryFile("protocols/devices/dfuhop-demo-g474.json"))
        var profile = try JSONSerialization.jsonObject(with: Data(contentsOf: demo)) as! [String: Any]
        profile["signing"] = ["publicKeys": [identity], "required": true]
        try JSONSerialization.data(withJSONObject: profile).write(to: URL(fileURLWithPath: profiles + "/weak.json"))
        let byProfile = try await Dfuhop.run("package", "verify", signed, "--profile", profiles)
        #expect(byProfile.status == 78 && byProfile.stderr.contains("signing.publicKeys.0"), "\(byProfile)")
        #expect(byProfile.stderr.contains("small order"), "\(byProfile)")
    }

    /// Issue 21, item 5: the manifest's option bytes against the profile's, as `upgrade` would judge them.
    @Test func verifyRefusesOptionBytesTheProfileDoesNotRequire() async throws {
        let bench = try await Bench()
        let signed = try await bench.package("demo-g474-v2.hex", name: "v2.dfuhop")
        let demo = URL(fileURLWithPath: bench.profiles + "/dfuhop-demo-g474.json")
        var profile = try JSONSerialization.jsonObject(with: Data(contentsOf: demo)) as! [String: Any]
        for (options, words) in [([["name": "DBANK", "value": 0]], "conflicts"), ([], "requires none")] as [([[String: Any]], String)] {
            let directory = bench.directory.path("profiles-\(words.filter(\.isLetter))")
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            profile["requiredOptionBytes"] = options
            try JSONSerialization.data(withJSONObject: profile).write(to: URL(fileURLWithPath: directory + "/p.json"))
            let result = try await Dfuhop.run("package", "verify", signed, "--profile", directory)
            #expect(result.status == 87 && result.stderr.contains(words), "\(result)")
            let upgrade = try await Dfuhop.run(
                "upgrade", signed, "--simulate-state", bench.unit, "--profile", directory, "--state-dir", bench.directory.path("state"))
            #expect(upgrade.status == 87 && upgrade.stderr.contains(words), "\(upgrade)")
        }
        #expect(try await bench.version() == "1.0.0")
    }

    /// Issue 21, item 10: a dangling `KEY.pub` link leaves no `KEY`; a private key others can read is refused.
    @Test func keyFilesAreNeverHalfMadeOrReadableByOthers() async throws {
        let bench = try await Bench()
        let key = bench.directory.path("k")
        try FileManager.default.createSymbolicLink(atPath: key + ".pub", withDestinationPath: bench.directory.path("nowhere"))
        let generated = try await Dfuhop.run("key", "generate", "--out", key)
        #expect(generated.status == 73 && generated.stderr.contains("symbolic link"), "\(generated)")
        #expect(!FileManager.default.fileExists(atPath: key))

        chmod(bench.key, 0o644)
        let output = bench.directory.path("readable.dfuhop")
        let image = await Self.example("demo-g474-v2.hex")
        let arguments = ["package", "create", image, "--key", bench.key, "-o", output, "--profile", bench.profiles]
        let refused = try await Dfuhop.run(arguments)
        #expect(refused.status == 65 && refused.stderr.contains("mode 0644") && refused.stderr.contains("chmod 600"), "\(refused)")
        #expect(!FileManager.default.fileExists(atPath: output))
        let allowed = try await Dfuhop.run(arguments + ["--allow-readable-key"])
        #expect(allowed.status == 0 && allowed.stderr.contains("--allow-readable-key"), "\(allowed)")
    }

    /// Issue 21, item 7: a package with a shell-script prefix and its offsets moved to match is refused.
    @Test func aPrefixedPackageIsRefused() async throws {
        let bench = try await Bench()
        let signed = try await bench.package("demo-g474-v2.hex", name: "v2.dfuhop")
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: signed)))
        let count = bytes.count
        let end = count - 22
        // Move the central directory's offset and each entry's local-header offset past a 16-byte prefix.
        func shift(_ at: Int) {
            let value = (0..<4).reduce(0) { $0 | Int(bytes[at + $1]) << (8 * $1) } + 16
            for index in 0..<4 { bytes[at + index] = UInt8(truncatingIfNeeded: value >> (8 * index)) }
        }
        let entries = Int(bytes[end + 10]) | Int(bytes[end + 11]) << 8
        var position = (0..<4).reduce(0) { $0 | Int(bytes[end + 16 + $1]) << (8 * $1) }
        for _ in 0..<entries {
            shift(position + 42)
            position +=
                46 + (Int(bytes[position + 28]) | Int(bytes[position + 29]) << 8)
                + (Int(bytes[position + 30]) | Int(bytes[position + 31]) << 8)
                + (Int(bytes[position + 32]) | Int(bytes[position + 33]) << 8)
        }
        shift(end + 16)
        let prefixed = try bench.directory.write("prefixed.dfuhop", Array("#!/bin/sh\nexit 0\n".utf8.prefix(16)) + bytes)
        try await bench.expectRefused(prefixed, status: 87, "before the first member")
    }

    /// A copy of `package` with one byte of `image` changed inside it and the zip's CRC-32 fixed, so only
    /// the signed SHA-256 can tell.
    static func tamperedCopy(of package: String, image: String, in directory: TemporaryDirectory) throws -> String {
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: package)))
        let imageBytes = Array(try Data(contentsOf: URL(fileURLWithPath: image)))
        let start = try #require(Self.offset(of: imageBytes, in: bytes))
        let oldCRC = CRC32.zlib(imageBytes)
        bytes[start + imageBytes.count / 2] ^= 0x01
        let newCRC = CRC32.zlib(bytes[start..<(start + imageBytes.count)])
        let old = (0..<4).map { UInt8((oldCRC >> (8 * $0)) & 0xFF) }
        let new = (0..<4).map { UInt8((newCRC >> (8 * $0)) & 0xFF) }
        var replaced = 0
        var index = 0
        while let found = Self.offset(of: old, in: bytes, from: index) {
            bytes.replaceSubrange(found..<(found + 4), with: new)
            replaced += 1
            index = found + 4
        }
        #expect(replaced == 2, "the CRC is in the local and the central header")
        return try directory.write("tampered.dfuhop", bytes)
    }

    static func offset(of needle: [UInt8], in haystack: [UInt8], from start: Int = 0) -> Int? {
        guard needle.count <= haystack.count else { return nil }
        var index = start
        while index + needle.count <= haystack.count {
            if haystack[index] == needle[0], haystack[index..<(index + needle.count)].elementsEqual(needle) { return index }
            index += 1
        }
        return nil
    }
}
