import Crypto
import DeviceProfiles
import FirmwareImage
import Foundation
import HexFormat
import ZIPFoundation

/// `dfuhop package create`: checks the images as an upgrade would, writes the manifest, signs it and
/// zips all of it (stored, so any unzip tool lists it and dfuhop never inflates anything).
public enum PackageBuilder {
    public struct Request: Sendable {
        public var images: [String]
        public var minimumVersion: FirmwareVersion?
        public var releaseNotes: String?
        public var created: Date

        public init(images: [String], minimumVersion: FirmwareVersion? = nil, releaseNotes: String? = nil, created: Date = Date()) {
            self.images = images
            self.minimumVersion = minimumVersion
            self.releaseNotes = releaseNotes
            self.created = created
        }
    }

    /// Writes the signed package to `output` (atomically) and returns its manifest.
    public static func create(
        _ request: Request, key: Curve25519.Signing.PrivateKey, profiles: [ProductProfile],
        output: String
    ) throws(PackageError) -> PackageManifest {
        var members: [(name: String, bytes: [UInt8])] = []
        var images: [(name: String, image: FirmwareImage)] = []
        for path in request.images {
            let name = URL(fileURLWithPath: path).lastPathComponent
            if let problem = PackageNames.problem(with: name) {
                throw PackageError(.refused, file: path, "cannot be a package member: \(problem)")
            }
            guard name != PackageNames.manifest, name != PackageNames.signature,
                !members.contains(where: { $0.name.lowercased() == name.lowercased() })
            else {
                throw PackageError(.refused, file: path, "another member is already called \"\(name)\"")
            }
            let bytes = try BoundedFile.contents(path: path, limit: PackageManifest.maximumImageSize)
            members.append((name, bytes))
            images.append((name, try ProductImages.parse(bytes, source: path)))
        }
        let manifest = try self.manifest(
            for: images, request: request, profiles: profiles,
            hashes: members.map { ($0.name, sha256Hex($0.bytes), $0.bytes.count) })
        let manifestBytes = try manifest.encoded()
        let signature: Data
        do { signature = try key.signature(for: Data(manifestBytes)) } catch {
            throw PackageError(.cannotWrite, file: output, "signing failed: \(error)")
        }
        try writeZip(
            [(PackageNames.manifest, manifestBytes), (PackageNames.signature, Array(signature))] + members,
            created: request.created, to: output)
        return manifest
    }

    /// The manifest, once every image agrees with the product's profile, the family's checks and each other.
    static func manifest(
        for images: [(name: String, image: FirmwareImage)], request: Request, profiles: [ProductProfile],
        hashes: [(String, String, Int)]
    ) throws(PackageError) -> PackageManifest {
        guard let first = images.first else { throw PackageError(.refused, file: "", "a package needs at least one image") }
        let firstPath = request.images[0]
        guard let (_, profile) = ProductImages.identify(first.image, among: profiles) else {
            throw PackageError(
                .refused, file: firstPath,
                "names no product with a profile (no valid descriptor, or its product id has no "
                    + "profile among \(profiles.count) loaded); give --profile")
        }
        var reference: ImageDescriptor?
        for (index, entry) in images.enumerated() {
            let path = request.images[index]
            let descriptor = try ProductImages.check(entry.image, family: profile.family, source: path)
            if let reference, descriptor.productID != reference.productID || descriptor.version != reference.version {
                throw PackageError(
                    .refused, file: path,
                    "is product 0x\(Hex.digits(descriptor.productID, width: 8)) version \(descriptor.version.fullDescription); "
                        + "\(request.images[0]) is product 0x\(Hex.digits(reference.productID, width: 8)) version \(reference.version.fullDescription)"
                )
            }
            reference = reference ?? descriptor
        }
        let descriptor = reference!
        if let minimum = request.minimumVersion, minimum > descriptor.version {
            throw PackageError(
                .refused, file: firstPath,
                "the minimum version \(minimum.fullDescription) is newer than the package's own \(descriptor.version.fullDescription)")
        }
        let formatter = ISO8601DateFormatter()
        formatter.timeZone = TimeZone(identifier: "UTC")
        return PackageManifest(
            profile: profile.id, productID: descriptor.productID, family: profile.family.id, part: profile.family.name,
            version: descriptor.version, minimumVersion: request.minimumVersion,
            requiredOptionBytes: profile.requiredOptionBytes.map { .init(name: $0.name, value: $0.value) },
            releaseNotes: request.releaseNotes, created: formatter.string(from: request.created),
            images: hashes.map { PackageManifest.Image(file: $0.0, sha256: $0.1, size: $0.2) })
    }

    /// A temporary file beside `output`, renamed into place: a failed write never leaves half a package.
    static func writeZip(_ members: [(name: String, bytes: [UInt8])], created: Date, to output: String) throws(PackageError) {
        let temporary = URL(fileURLWithPath: output + ".dfuhop-partial")
        try? FileManager.default.removeItem(at: temporary)
        do {
            let archive = try Archive(url: temporary, accessMode: .create)
            for member in members {
                let bytes = member.bytes
                try archive.addEntry(
                    with: member.name, type: .file, uncompressedSize: Int64(bytes.count), modificationDate: created,
                    permissions: 0o644, compressionMethod: .none
                ) { position, size in
                    Data(bytes[Int(position)..<(Int(position) + size)])
                }
            }
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw PackageError(.cannotWrite, file: output, "cannot write the zip: \(error)")
        }
        guard rename(temporary.path, output) == 0 else {
            try? FileManager.default.removeItem(at: temporary)
            throw PackageError(.cannotWrite, file: output, "cannot move the new package into place: \(String(cString: strerror(errno)))")
        }
    }
}
