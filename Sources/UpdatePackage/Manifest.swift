import FirmwareImage
import Foundation
import HexFormat
import StrictJSON

/// What a package holds and for which product (`manifest.json`, docs/packages.md). The signature covers
/// the manifest's exact bytes, and the manifest names every other member with its SHA-256 and size.
public struct PackageManifest: Sendable, Hashable {
    public static let formatVersion = 1
    /// A manifest is a few hundred bytes; anything near this is not one.
    public static let maximumSize = 64 * 1024
    public static let maximumImages = 16
    /// Larger than any STM32's flash written out as Intel HEX; a package is capped at the same size.
    public static let maximumImageSize = 64 << 20

    /// The product profile's id, e.g. "dfuhop-demo-g474".
    public var profile: String
    /// The image descriptor's product id every image carries.
    public var productID: UInt32
    /// The MCU family id (e.g. "g474") and its part line, for people.
    public var family: String
    public var part: String
    /// The version every image's descriptor carries.
    public var version: FirmwareVersion
    /// The oldest version a unit may run to take this package, if any.
    public var minimumVersion: FirmwareVersion?
    /// Option bytes the product needs (from its profile), for people and other tools.
    public var requiredOptionBytes: [OptionByte]
    public var releaseNotes: String?
    /// ISO 8601, UTC.
    public var created: String
    /// dfuhop flashes the first; the others (other formats of the same release) are carried and verified.
    public var images: [Image]

    public struct Image: Sendable, Hashable {
        public var file: String
        /// Lower-case hex.
        public var sha256: String
        public var size: Int

        public init(file: String, sha256: String, size: Int) {
            self.file = file
            self.sha256 = sha256
            self.size = size
        }
    }

    public struct OptionByte: Sendable, Hashable {
        public var name: String
        public var value: UInt32

        public init(name: String, value: UInt32) {
            self.name = name
            self.value = value
        }
    }

    public init(
        profile: String, productID: UInt32, family: String, part: String, version: FirmwareVersion,
        minimumVersion: FirmwareVersion? = nil, requiredOptionBytes: [OptionByte] = [], releaseNotes: String? = nil,
        created: String, images: [Image]
    ) {
        self.profile = profile
        self.productID = productID
        self.family = family
        self.part = part
        self.version = version
        self.minimumVersion = minimumVersion
        self.requiredOptionBytes = requiredOptionBytes
        self.releaseNotes = releaseNotes
        self.created = created
        self.images = images
    }

    /// Whether a unit running `running` may take this package (its minimum version, if it names one).
    public func admits(running: FirmwareVersion) -> Bool { minimumVersion.map { running >= $0 } ?? true }

    /// The manifest as signed: JSON, keys sorted, indented, ending in a newline. Verification reads the
    /// signed bytes as stored, so this spelling only has to read back as the same manifest.
    public func encoded() throws(PackageError) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        do { return Array(try encoder.encode(ManifestFile(self))) + [0x0A] } catch {
            throw PackageError(.cannotWrite, file: PackageNames.manifest, "cannot be written as JSON: \(error)")
        }
    }
}

/// `manifest.json` as written (docs/packages.md): read by the strict decoder, so a key given twice, an unknown
/// key, a null or an integer written as anything but a JSON integer is refused with its path.
struct ManifestFile: Codable, Hashable {
    var format: Int
    var profile: String
    var productID: String
    var family: String
    var part: String
    var version: String
    var minimumVersion: String?
    var requiredOptionBytes: [OptionByte]?
    var releaseNotes: String?
    var created: String
    var images: [Image]

    struct OptionByte: Codable, Hashable {
        var name: String
        var value: UInt32
    }

    struct Image: Codable, Hashable {
        var file: String
        var sha256: String
        var size: Int
    }

    init(_ manifest: PackageManifest) {
        format = PackageManifest.formatVersion
        (profile, productID, family, part) = (manifest.profile, Hex.word(manifest.productID), manifest.family, manifest.part)
        (version, minimumVersion) = (manifest.version.fullDescription, manifest.minimumVersion?.fullDescription)
        requiredOptionBytes =
            manifest.requiredOptionBytes.isEmpty ? nil : manifest.requiredOptionBytes.map { .init(name: $0.name, value: $0.value) }
        (releaseNotes, created) = (manifest.releaseNotes, manifest.created)
        images = manifest.images.map { .init(file: $0.file, sha256: $0.sha256, size: $0.size) }
    }
}

extension PackageManifest {
    /// Parses and checks a manifest; `file` names it in errors. Unknown fields are refused, so nothing in a
    /// signed manifest is silently ignored.
    public static func decode(_ bytes: some Collection<UInt8>, file: String) throws(PackageError) -> PackageManifest {
        func refusal(_ problem: String) -> PackageError { PackageError(.malformed, file: file, problem) }
        guard bytes.count <= maximumSize else { throw refusal("is \(bytes.count) bytes; a manifest is at most \(maximumSize)") }
        let fields: ManifestFile
        do { fields = try StrictJSONDecoder().decode(ManifestFile.self, from: bytes) } catch {
            throw refusal(error.path.components.isEmpty ? error.problem : "\(error.path.dotted) \(error.problem)")
        }
        let reader = FieldReader(file: file)
        guard fields.format == formatVersion else {
            throw refusal("format is \(fields.format); this dfuhop reads package format \(formatVersion)")
        }
        let productID: UInt32
        do {
            // Eight digits at most, as written: "0x" and a 32-bit value's digits.
            guard fields.productID.utf8.count <= 10 else { throw IntegerProblem(description: "has more than 8 digits") }
            productID = try JSONValue.string(fields.productID).integer(spelling: .hexString)
        } catch {
            throw refusal("productID \"\(fields.productID.prefix(40))\" must be a 32-bit hex number such as \"0x0DF00474\" (\(error))")
        }
        guard ISO8601DateFormatter().date(from: fields.created) != nil else {
            throw refusal("created \"\(fields.created)\" is not an ISO 8601 time")
        }
        return PackageManifest(
            profile: try reader.text(fields.profile, at: "profile"), productID: productID,
            family: try reader.text(fields.family, at: "family"), part: try reader.text(fields.part, at: "part"),
            version: try reader.version(fields.version, at: "version"),
            minimumVersion: try fields.minimumVersion.map { text throws(PackageError) in try reader.version(text, at: "minimumVersion") },
            requiredOptionBytes: try reader.optionBytes(fields.requiredOptionBytes),
            releaseNotes: try fields.releaseNotes.map { text throws(PackageError) in try reader.text(text, at: "releaseNotes") },
            created: try reader.text(fields.created, at: "created"), images: try reader.images(fields.images))
    }
}

/// The checks beyond JSON's types, naming the field of the first problem.
private struct FieldReader {
    var file: String

    func error(_ field: String, _ problem: String) -> PackageError { PackageError(.malformed, file: file, "\(field) \(problem)") }

    func text(_ text: String, at field: String) throws(PackageError) -> String {
        guard !text.isEmpty else { throw error(field, "must not be empty") }
        return text
    }

    func version(_ text: String, at field: String) throws(PackageError) -> FirmwareVersion {
        guard let version = FirmwareVersion(parsing: try self.text(text, at: field), minimumComponents: 3) else {
            throw error(field, "\"\(text)\" is not a version such as \"2.1.0\" or \"2.1.0.7\"")
        }
        return version
    }

    func optionBytes(_ items: [ManifestFile.OptionByte]?) throws(PackageError) -> [PackageManifest.OptionByte] {
        guard let items else { return [] }
        guard items.count <= 16 else { throw error("requiredOptionBytes", "must be an array of at most 16") }
        var result: [PackageManifest.OptionByte] = []
        for (index, item) in items.enumerated() {
            result.append(.init(name: try text(item.name, at: "requiredOptionBytes.\(index).name"), value: item.value))
        }
        return result
    }

    func images(_ items: [ManifestFile.Image]) throws(PackageError) -> [PackageManifest.Image] {
        guard (1...PackageManifest.maximumImages).contains(items.count) else {
            throw error("images", "must list 1 to \(PackageManifest.maximumImages) images")
        }
        var result: [PackageManifest.Image] = []
        for (index, item) in items.enumerated() {
            let field = "images.\(index)"
            let name = try text(item.file, at: field + ".file")
            if let problem = PackageNames.problem(with: name) { throw error(field + ".file", "\"\(name)\": \(problem)") }
            guard name != PackageNames.manifest, name != PackageNames.signature else {
                throw error(field + ".file", "\"\(name)\" is reserved")
            }
            guard !result.contains(where: { $0.file.lowercased() == name.lowercased() }) else {
                throw error(field + ".file", "\"\(name)\" is listed twice")
            }
            let digest = try text(item.sha256, at: field + ".sha256")
            guard digest.utf8.count == 64, digest.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else {
                throw error(field + ".sha256", "must be 64 lower-case hex digits")
            }
            guard (1...PackageManifest.maximumImageSize).contains(item.size) else {
                throw error(field + ".size", "\(item.size) is outside 1...\(PackageManifest.maximumImageSize)")
            }
            result.append(.init(file: name, sha256: digest, size: item.size))
        }
        return result
    }
}

extension PackageManifest {
    /// The zip holds exactly the manifest, its signature and the listed images, each listed image at its
    /// listed size: nothing unsigned rides along, nothing signed is missing.
    public func checkMembers(of archive: ZipArchive, file: String) throws(PackageError) {
        let listed = Set(images.map(\.file))
        for member in archive.members where member.name != PackageNames.manifest && member.name != PackageNames.signature {
            guard listed.contains(member.name) else {
                throw PackageError(.untrusted, file: file, "member \"\(member.name)\" is not named in the manifest, so nothing signs it")
            }
        }
        for image in images {
            guard let member = archive.member(named: image.file) else {
                throw PackageError(.untrusted, file: file, "the manifest lists \"\(image.file)\" but the zip does not hold it")
            }
            guard member.range.count == image.size else {
                throw PackageError(
                    .untrusted, file: "\(file):\(image.file)",
                    "is \(member.range.count) bytes; the manifest says \(image.size)")
            }
        }
    }
}
