import Foundation

/// dfuhop's `--json` lines as the tests read them: the fields of docs/dfuhop-output.schema.json that some test
/// asserts, optional where the schema lets them be absent. Written from the schema, not from the command's own
/// types, so a test reads the output as any other program would.
extension Dfuhop {
    /// The `"type":"result"` line that ends every `--json` run.
    struct ResultLine: Decodable {
        var type: String
        var schema: Int
        var command: String
        var exitCode: Int
        var outcome: String
        var error: String?
        var hint: String?
        var unit: Unit?
        var newVersion: String?
        var historyError: String?
        var image: Image?
        var package: Package?
        var optionBytes: OptionBytes?
        var families: [Family]?
        var devices: [Device]?
        var entries: [JournalEntry]?
        var records: Int?
        var replay: Replay?
        var address: String?
        var length: Int?
        var jumpTo: String?
        var erasedSectors: Int?
        var massErased: Bool?
        var allowedUnsigned: Bool?
    }

    /// Any line of a `--json` run: an event, a `unit` line of `upgrade --all`, a history record or the result.
    struct Line: Decodable {
        var type: String
        var event: String?
        var phase: String?
        var unit: Unit?
        var outcome: String?
        var newVersion: String?
        var exitCode: Int?
    }

    /// A unit as known (`$defs/unit`): every field optional.
    struct Unit: Decodable {
        var port: String?
        var uid: String?
        var romSerial: String?
        var version: String?
    }

    /// `image info` (`$defs/imageInfo`).
    struct Image: Decodable {
        var file: String
        var format: String
        var family: String?
        var segments: [Segment]
        var payloadSize: Int
        var span: Int
        var crc32: String
        var sha256: String?
        var targets: [Target]
        var vectorTable: VectorTable?
        var descriptor: Descriptor?
        var errors: Int
        var warnings: Int

        struct Segment: Decodable {
            var start: String
            var end: String
            var size: Int
            /// How many fields the line gave: the schema allows none beyond these three.
            var fieldCount: Int

            enum CodingKeys: String, CodingKey { case start, end, size }

            init(from decoder: any Decoder) throws {
                let container = try decoder.container(keyedBy: CodingKeys.self)
                start = try container.decode(String.self, forKey: .start)
                end = try container.decode(String.self, forKey: .end)
                size = try container.decode(Int.self, forKey: .size)
                fieldCount = try decoder.container(keyedBy: AnyKey.self).allKeys.count
            }
        }

        struct Target: Decodable {
            var name: String?
        }

        struct VectorTable: Decodable {
            var resetHandler: String
        }

        struct Descriptor: Decodable {
            var state: String
            var productID: String?
            var version: String?
            var name: String?
            var imageSize: Int?
        }
    }

    /// `package create/verify/info` (`$defs/package`).
    struct Package: Decodable {
        var version: String
        var verified: Bool
    }

    /// `option-bytes` (`$defs/optionBytesRead`).
    struct OptionBytes: Decodable {
        var family: String
        var address: String
        var length: Int
        var bytes: String
        var note: String?
        var fields: [Field]

        struct Field: Decodable {
            var name: String
            var value: Int
            var meaning: String?
            var source: String
            var unverified: Bool
        }
    }

    /// `families` (`$defs/family`).
    struct Family: Decodable {
        var id: String
        var usbDFU: Bool
        var sources: [String: String]?
        var unverified: [String]?
        var refusal: String?
    }

    /// `list` (`$defs/device`).
    struct Device: Decodable {
        var port: String
        var serial: String?
        var family: String?
        var alternateSettings: [String]?
    }

    /// `journal list`: one interrupted upgrade.
    struct JournalEntry: Decodable {
        var unit: String
    }

    /// `replay` (`$defs/replay`).
    struct Replay: Decodable {
        var transfers: Int
        var recordedExitCode: Int?
        var replayedExitCode: Int
        var divergence: Divergence?
        var resultDiffers: [String]?
        var replayed: Replayed?

        struct Divergence: Decodable {
            var line: Int
            var detail: String?
        }

        /// The replayed run's result (`$defs/result`), the fields tests compare.
        struct Replayed: Decodable {
            var outcome: String
            var newVersion: String?
            var devices: [Device]?
        }
    }

    /// A line of a `--record` recording (docs/recordings.md): a USB transfer, or another record.
    struct RecordingLine: Decodable {
        var event: String?
        var setup: Setup?
        var data: String?

        struct Setup: Decodable {
            var bRequest: Int
            var wValue: Int
        }
    }

    /// Any key: to count the fields an object has.
    struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
}
