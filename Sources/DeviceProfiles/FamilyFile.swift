import StrictJSON

/// A family file as written (protocols/families/README.md), decoded by the strict decoder once its
/// `{"value": V, "source": S}` groups stand for their values. Every field is optional here: a part line
/// without USB DFU has only `id`, `name`, `usbDFU` and `refusal`; `FamilyFileReader` says which are
/// missing. Keys beside these (`source`, `unverified`) are read by the source rule, not here.
struct FamilyFile: Decodable {
    var format: Int
    var id: String
    var name: String
    var usbDFU: Bool?
    var refusal: String?
    var deviceID: FamilyHex<UInt16>?
    var core: String?
    var romVersions: [RomVersion]?
    var flash: Flash?
    var flashWord: FlashWord?
    var ram: Ram?
    var systemMemory: FamilyHex<UInt32>?
    var uid: FamilyHex<UInt32>?
    var backupRegister: FamilyHex<UInt32>?
    var serial: Serial?
    var emptyCheck: Bool?
    var emptyCheckClearedAtStartup: Bool?
    var applicationJump: Bool?
    var applicationEntry: ApplicationEntryGroup?
    var writeLimits: WriteLimits?
    var boot0: Boot0?
    var leave: Leave?
    var optionBytes: OptionBytes?
    var readProtection: ReadProtection?
    var timings: Timings?
    var pollTimeouts: PollTimeouts?
    var quirks: [Quirk]?

    struct RomVersion: Decodable {
        var bcdDevice: FamilyHex<UInt16>
        var product: String
        var transferSize: UInt16
        var alternates: [String]
    }

    struct Flash: Decodable {
        var base: FamilyHex<UInt32>
        var modes: [Mode]

        struct Mode: Decodable {
            var name: String
            var layout: String
            var selectedBy: String?
        }
    }

    struct FlashWord: Decodable {
        var writeGranularity: Int
        var ecc: Bool
    }

    struct Ram: Decodable {
        var regions: [Region]

        struct Region: Decodable {
            var start: FamilyHex<UInt32>
            var size: UInt32
        }
    }

    struct Serial: Decodable {
        var rule: String
        var offset: FamilyHex<UInt16>?
        var lastWord: Int?
        var constant: String?
        var alsoSeen: [String]?
    }

    struct ApplicationEntryGroup: Decodable {
        var method: String?
    }

    struct WriteLimits: Decodable {
        var maxBytes: Int?
        var alignedAbove: Int?
        var alignment: Int?
    }

    struct Boot0: Decodable {
        var pattern: String
        var pinIgnoredBit: Int?
        var pinIgnoredWhenSet: Bool?
        var nBoot0Bit: Int?
    }

    struct Leave: Decodable {
        var jump: String
    }

    struct OptionBytes: Decodable {
        var address: FamilyHex<UInt32>
        var factory: String
        var dualBankBit: Int?
        var size: Int?
    }

    struct ReadProtection: Decodable {
        var byteOffset: Int
        var level0: FamilyHex<UInt8>
        var level2: FamilyHex<UInt8>?
    }

    struct Timings: Decodable {
        /// By sector size in bytes (the keys), milliseconds.
        var sectorEraseMs: [String: Double]?
        var defaultSectorEraseMs: Double
        var massEraseMs: Double
        var programUnitUs: Double
    }

    struct PollTimeouts: Decodable {
        var setAddressMs: Double?
        var eraseMs: Double?
        var massEraseMs: Double?
    }

    struct Quirk: Decodable {
        var kind: String
        var actualMs: Double?
        var maxStalls: Int?
        var clearStatusCount: Int?
    }
}

/// An address or identifier written as family files write them: `"0x0800_0000"` (IntegerSpelling.familyHex),
/// within `T`'s range.
struct FamilyHex<T: FixedWidthInteger & Sendable>: Decodable {
    var value: T

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        do { value = try JSONValue.string(text).integer(T.self, spelling: .familyHex) } catch {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: error.description)
        }
    }
}

extension JSONValue {
    /// The value with every `{"value": V, "source": S}` group replaced by V, as family files mean them.
    var withSourcedValuesUnwrapped: JSONValue {
        switch self {
        case .object(let members):
            if let inner = members["value"], members["source"] != nil { return inner.withSourcedValuesUnwrapped }
            return .object(members.mapValues(\.withSourcedValuesUnwrapped))
        case .array(let items): return .array(items.map(\.withSourcedValuesUnwrapped))
        default: return self
        }
    }
}
