/// The command-specific parts of a `--json` result (docs/json.md): image, package, key, journal,
/// exit-code and doctor payloads.

struct ImageInfoJSON: Codable, Equatable, Sendable {
    struct SegmentJSON: Codable, Equatable, Sendable {
        var start: String
        var end: String
        var size: Int
    }
    struct TargetJSON: Codable, Equatable, Sendable {
        var altSetting: Int
        var size: Int
        var name: String?
    }
    struct FindingJSON: Codable, Equatable, Sendable {
        var severity: String
        var message: String
        var address: String?
    }
    struct SuffixJSON: Codable, Equatable, Sendable {
        var vendorID: String
        var productID: String
        var bcdDevice: String
    }
    struct VectorTableJSON: Codable, Equatable, Sendable {
        var address: String
        var initialStackPointer: String
        var resetHandler: String
    }
    struct DescriptorJSON: Codable, Equatable, Sendable {
        /// "valid", "unstamped", "reserved", "absent" or "invalid".
        var state: String
        var address: String?
        var productID: String?
        var version: String?
        var name: String?
        var imageSize: Int?
        var crc32: String?
        var problem: String?
    }

    var file: String
    var format: String
    var family: String?
    var segments: [SegmentJSON]
    var payloadSize: Int
    var span: Int
    var crc32: String
    /// Nil when the span is too large to hash (over 64 MiB: a hostile file must not cost its gaps).
    var sha256: String?
    var startAddress: String?
    var dfuSuffix: SuffixJSON?
    var targets: [TargetJSON]
    var vectorTable: VectorTableJSON?
    var descriptor: DescriptorJSON?
    var findings: [FindingJSON]
    var errors: Int
    var warnings: Int
}

struct ConvertedJSON: Codable, Equatable, Sendable {
    var input: String
    var inputFormat: String
    var output: String
    var outputFormat: String
    var segments: Int
    var payloadSize: Int
    /// What was padded to whole flash words (issue 25).
    var flashWord: FlashWordJSON?
}

struct FlashWordJSON: Codable, Equatable, Sendable {
    var size: Int
    var part: String?
    var from: String
    var paddedBytes: Int
    var segmentsBefore: Int
    var elementsAfter: Int
    var warnings: [String]
}

struct StampedJSON: Codable, Equatable, Sendable {
    var output: String
    var outputFormat: String
    var productID: String
    var version: String
    var name: String
    var imageSize: Int
    var crc32: String
}

struct PackageJSON: Codable, Equatable, Sendable {
    struct ImageJSON: Codable, Equatable, Sendable {
        var file: String
        var sha256: String
        var size: Int
    }
    var file: String
    var profile: String
    var productID: String
    var family: String
    var part: String
    var version: String
    var minimumVersion: String?
    var requiredOptionBytes: [String: UInt32]
    var releaseNotes: String?
    var created: String
    var images: [ImageJSON]
    var verified: Bool
    var signedBy: String?
    var packageSHA256: String?
}

struct KeyJSON: Codable, Equatable, Sendable {
    var privateKey: String
    var publicKeyFile: String
    var publicKey: String
}

struct JournalEntryJSON: Codable, Equatable, Sendable {
    var unit: String
    var uid: String?
    var port: String
    var family: String
    var image: String
    var newVersion: String
    var step: String
    var updated: String
}

struct ExitCodeJSON: Codable, Equatable, Sendable {
    var code: Int32
    var name: String
    var meaning: String
}

struct FindingJSON: Codable, Equatable, Sendable {
    var check: String
    var status: String
    var detail: String
    var fix: String?
    var subject: String?
}
