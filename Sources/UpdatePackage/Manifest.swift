import DeviceProfiles
import FirmwareImage
import Foundation
import HexFormat

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

    /// The manifest as signed: JSON, keys sorted, indented, ending in a newline.
    public func encoded() -> [UInt8] {
        var object: [String: Any] = [
            "format": Self.formatVersion, "profile": profile, "productID": "0x" + Hex.digits(productID, width: 8), "family": family,
            "part": part,
            "version": version.fullDescription, "created": created,
            "images": images.map { ["file": $0.file, "sha256": $0.sha256, "size": $0.size] as [String: Any] }
        ]
        if let minimumVersion { object["minimumVersion"] = minimumVersion.fullDescription }
        if !requiredOptionBytes.isEmpty {
            object["requiredOptionBytes"] = requiredOptionBytes.map { ["name": $0.name, "value": Int($0.value)] }
        }
        if let releaseNotes { object["releaseNotes"] = releaseNotes }
        // Only strings, integers, arrays and objects: serialising them cannot fail.
        let options: JSONSerialization.WritingOptions = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data = (try? JSONSerialization.data(withJSONObject: object, options: options)) ?? Data()
        return Array(data) + [0x0A]
    }
}

extension PackageManifest {
    static let keys: Set<String> = [
        "format", "profile", "productID", "family", "part", "version", "minimumVersion",
        "requiredOptionBytes", "releaseNotes", "created", "images"
    ]

    /// Parses and checks a manifest; `file` names it in errors. Unknown fields are refused, so nothing in a
    /// signed manifest is silently ignored.
    public static func decode(_ bytes: some Collection<UInt8>, file: String) throws(PackageError) -> PackageManifest {
        func refusal(_ problem: String) -> PackageError { PackageError(.malformed, file: file, problem) }
        guard bytes.count <= maximumSize else { throw refusal("is \(bytes.count) bytes; a manifest is at most \(maximumSize)") }
        let root: JSONValue
        do { root = try JSONValue.parse(bytes) } catch { throw refusal("is not valid JSON: \(error)") }
        let reader = FieldReader(file: file)
        let fields = try reader.object(root, at: "", allowing: keys)
        let format = try reader.integer(fields["format"], at: "format", in: 0...Int(UInt16.max))
        guard format == formatVersion else { throw refusal("format is \(format); this dfuhop reads package format \(formatVersion)") }
        let productText = try reader.string(fields["productID"], at: "productID")
        guard productText.lowercased().hasPrefix("0x"), productText.count <= 10,
            let productID = UInt32(productText.dropFirst(2), radix: 16)
        else {
            throw refusal("productID \"\(productText)\" must be a 32-bit hex number such as \"0x0DF00474\"")
        }
        let created = try reader.string(fields["created"], at: "created")
        guard ISO8601DateFormatter().date(from: created) != nil else { throw refusal("created \"\(created)\" is not an ISO 8601 time") }
        return PackageManifest(
            profile: try reader.string(fields["profile"], at: "profile"), productID: productID,
            family: try reader.string(fields["family"], at: "family"), part: try reader.string(fields["part"], at: "part"),
            version: try reader.version(fields["version"], at: "version"),
            minimumVersion: fields["minimumVersion"] == nil ? nil : try reader.version(fields["minimumVersion"], at: "minimumVersion"),
            requiredOptionBytes: try reader.optionBytes(fields["requiredOptionBytes"]),
            releaseNotes: fields["releaseNotes"] == nil ? nil : try reader.string(fields["releaseNotes"], at: "releaseNotes"),
            created: created, images: try reader.images(fields["images"]))
    }
}

/// Typed reads from the parsed JSON, naming the field of the first problem.
private struct FieldReader {
    var file: String

    func error(_ field: String, _ problem: String) -> PackageError {
        PackageError(.malformed, file: file, field.isEmpty ? problem : "\(field) \(problem)")
    }

    func object(_ value: JSONValue?, at field: String, allowing keys: Set<String>) throws(PackageError) -> [String: JSONValue] {
        guard case .object(let object)? = value else { throw error(field, value == nil ? "is missing" : "must be an object") }
        if let unknown = object.keys.sorted().first(where: { !keys.contains($0) }) {
            throw error(field.isEmpty ? unknown : "\(field).\(unknown)", "is not a field of a package manifest")
        }
        return object
    }

    func string(_ value: JSONValue?, at field: String) throws(PackageError) -> String {
        guard case .string(let text)? = value else { throw error(field, value == nil ? "is missing" : "must be a string") }
        guard !text.isEmpty else { throw error(field, "must not be empty") }
        return text
    }

    /// A JSON integer (not a boolean, not a fraction) within `range`.
    func integer(_ value: JSONValue?, at field: String, in range: ClosedRange<Int>) throws(PackageError) -> Int {
        guard case .integer(let number)? = value, let integer = Int(exactly: number) else {
            throw error(field, value == nil ? "is missing" : "must be an integer")
        }
        guard range.contains(integer) else { throw error(field, "\(integer) is outside \(range.lowerBound)...\(range.upperBound)") }
        return integer
    }

    func version(_ value: JSONValue?, at field: String) throws(PackageError) -> FirmwareVersion {
        let text = try string(value, at: field)
        guard let version = FirmwareVersion(parsing: text, minimumComponents: 3) else {
            throw error(field, "\"\(text)\" is not a version such as \"2.1.0\" or \"2.1.0.7\"")
        }
        return version
    }

    func optionBytes(_ value: JSONValue?) throws(PackageError) -> [PackageManifest.OptionByte] {
        guard let value else { return [] }
        guard case .array(let items) = value, items.count <= 16 else {
            throw error("requiredOptionBytes", "must be an array of at most 16")
        }
        var result: [PackageManifest.OptionByte] = []
        for (index, item) in items.enumerated() {
            let field = "requiredOptionBytes.\(index)"
            let fields = try object(item, at: field, allowing: ["name", "value"])
            let value = try integer(fields["value"], at: field + ".value", in: 0...Int(UInt32.max))
            result.append(.init(name: try string(fields["name"], at: field + ".name"), value: UInt32(value)))
        }
        return result
    }

    func images(_ value: JSONValue?) throws(PackageError) -> [PackageManifest.Image] {
        guard case .array(let items)? = value else { throw error("images", value == nil ? "is missing" : "must be an array") }
        guard (1...PackageManifest.maximumImages).contains(items.count) else {
            throw error("images", "must list 1 to \(PackageManifest.maximumImages) images")
        }
        var result: [PackageManifest.Image] = []
        for (index, item) in items.enumerated() {
            let field = "images.\(index)"
            let fields = try object(item, at: field, allowing: ["file", "sha256", "size"])
            let name = try string(fields["file"], at: field + ".file")
            if let problem = PackageNames.problem(with: name) { throw error(field + ".file", "\"\(name)\": \(problem)") }
            guard name != PackageNames.manifest, name != PackageNames.signature else {
                throw error(field + ".file", "\"\(name)\" is reserved")
            }
            guard !result.contains(where: { $0.file.lowercased() == name.lowercased() }) else {
                throw error(field + ".file", "\"\(name)\" is listed twice")
            }
            let digest = try string(fields["sha256"], at: field + ".sha256")
            guard digest.utf8.count == 64, digest.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else {
                throw error(field + ".sha256", "must be 64 lower-case hex digits")
            }
            let size = try integer(fields["size"], at: field + ".size", in: 1...PackageManifest.maximumImageSize)
            result.append(.init(file: name, sha256: digest, size: size))
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
