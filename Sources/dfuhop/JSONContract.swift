import DfuSe
import Foundation
import HexFormat

/// The `--json` contract (docs/json.md): every line is one object with a `type`. `event` lines come as the
/// work happens, `unit` lines (one per unit with `--all`), then exactly one `result` line, last, whose
/// `exitCode` is the process's exit status. Every line is built from these `Codable` types, never from
/// dictionaries, so names stay camelCase (`productID`), addresses and CRCs stay "0x08004000" strings.
enum JSONContract {
    /// Bumped when a field changes meaning or goes away; new optional fields do not bump it.
    /// 2: an event's `unit` is an object (`{"port":"1-1"}`), `erase` counts `erasedSectors`, versions read
    /// "2.0.0" everywhere (not "2.0.0.0"), doctor's `outcome` follows its exit status.
    static let schema = 2

    static func time(_ date: Date = Date()) -> String {
        date.ISO8601Format(.iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted))
    }
}

/// What an event is about: one name per kind, documented in docs/json.md with an example each.
enum EventKind: String, Codable, CaseIterable, Sendable {
    case phaseStarted, phaseFinished, found, resuming, planned, boot0, classified, warning, optionBytes, note
    case returnedToIdle, sectorErased, bytesWritten, bytesVerified, bytesRead, quirk, massErased, readUnprotected, left
}

/// One `"type":"event"` line. Only the fields of its kind are present.
struct EventLine: Codable, Equatable, Sendable {
    var type = "event"
    var time: String
    var event: EventKind
    /// With `--all`: the unit, by its port path (`{"port":"1-1"}`), an object like every other `unit`.
    var unit: UnitJSON?
    var phase: String?
    /// For the DfuSe client's phases inside an upgrade: the upgrade phase they belong to (`flash`, `leave` ...).
    var within: String?
    var seconds: Double?
    var address: String?
    var size: Int?
    var number: Int?
    var done: Int?
    var total: Int?
    var text: String?
    var from: String?
    var found: UnitJSON?
    var step: String?
    var image: String?
    var newVersion: String?
    var erasedSectors: Int?
    var bytesToWrite: Int?
    var skippedSectors: Int?
    var action: String?
    var path: String?
    var port: String?
    var classification: String?
    var optionBytesFound: [String: UInt32]?
    var optionBytesRequired: [String: UInt32]?
    var written: Bool?
    var deviceReset: Bool?
    var jumpTo: String?
    var leave: String?

    init(_ event: EventKind, unit: String? = nil, time: String = JSONContract.time()) {
        self.event = event
        self.unit = unit.map { UnitJSON(port: $0) }
        self.time = time
    }

    init(_ event: EventKind, unit: String? = nil, text: String) {
        self.init(event, unit: unit)
        self.text = text
    }
}

/// One `"type":"result"` line (or, with `--all`, a `"type":"unit"` line for each unit).
struct ResultLine: Codable, Equatable, Sendable {
    var type = "result"
    var schema = JSONContract.schema
    var command: String
    var exitCode: Int32
    /// What happened, in one word: upgraded, up-to-date, planned, flashed, read, left, erased, listed, failed ...
    var outcome: String
    var error: String?
    var hint: String?
    var unit: UnitJSON?
    var devices: [DeviceJSON]?
    var oldVersion: String?
    var newVersion: String?
    var resumedFrom: String?
    var phases: [PhaseJSON]?
    var plan: PlanJSON?
    var flash: FlashJSON?
    var jumpTo: String?
    var leave: String?
    /// `flash --allow-unsigned` wrote an image without a trusted signature.
    var allowedUnsigned: Bool?
    var address: String?
    var length: Int?
    var file: String?
    var crc32: String?
    /// `erase`: how many sectors were erased, or `massErased` for the whole flash.
    var erasedSectors: Int?
    var massErased: Bool?
    var deviceReset: Bool?
    var image: ImageInfoJSON?
    var converted: ConvertedJSON?
    var stamped: StampedJSON?
    var package: PackageJSON?
    var key: KeyJSON?
    var entries: [JournalEntryJSON]?
    var exitCodes: [ExitCodeJSON]?
    var findings: [FindingJSON]?
    var families: [FamilyJSON]?
    var summary: SummaryJSON?
    var replay: ReplayJSON?
    /// `upgrade`: why the upgrade history did not record this run (the upgrade's outcome stands).
    var historyError: String?
    /// `history`: how many records were listed.
    var records: Int?
    /// `option-bytes`: the bytes read and their fields.
    var optionBytes: OptionBytesJSON?

    /// A command's result; `runCommand` fills in the command's name.
    init(_ outcome: String) { self.init(command: "", outcome: outcome) }

    init(command: String, outcome: String, exitCode: Int32 = 0) {
        self.command = command
        self.outcome = outcome
        self.exitCode = exitCode
    }
}

/// A unit as known: from the survey, the application's GET_INFO, or the ROM.
struct UnitJSON: Codable, Equatable, Sendable {
    var classification: String?
    var family: String?
    var port: String?
    var uid: String?
    var romSerial: String?
    var version: String?
    var productID: String?
    var deviceID: String?
    var imageBase: String?
    var flashKiB: Int?
    var descriptor: String?
    var imageSize: Int?
    var imageCheck: String?
}

/// One entry of `list`.
struct DeviceJSON: Codable, Equatable, Sendable {
    /// "dfu" (a ROM bootloader) or "hid" (an application on dfuhop's usage page).
    var kind: String
    var classification: String
    var vidPid: String
    var serial: String?
    var port: String
    var family: String?
    var product: String?
    var usagePage: String?
    var version: String?
    var uid: String?
    var alternateSettings: [String]?
    /// Why the device could not be read (its strings, hence its part line), e.g. the OS refusing its node.
    var problem: String?
}

struct PhaseJSON: Codable, Equatable, Sendable {
    var phase: String
    var seconds: Double
}

struct PlanJSON: Codable, Equatable, Sendable {
    struct Step: Codable, Equatable, Sendable {
        /// "erase" or "write".
        var action: String
        var address: String
        var size: Int
        var holdsVectorTable: Bool?
    }

    var layout: String
    var imageBase: String
    var transferSize: Int
    var erasedSectors: Int
    var bytesToWrite: Int
    var bytesToVerify: Int
    var skippedSectors: Int
    var payloadCRC32: String
    var steps: [Step]
}

struct FlashJSON: Codable, Equatable, Sendable {
    var erasedSectors: Int
    var bytesWritten: Int
    var bytesVerified: Int
    var controlTransfers: Int
    var deviceSeconds: Double
}

/// The end of `upgrade --all`: how many units did what, and which failed.
struct SummaryJSON: Codable, Equatable, Sendable {
    var units: Int
    var upgraded: Int
    var upToDate: Int
    var planned: Int
    var failed: Int
    var failedUnits: [String]
}

extension PlanJSON {
    init(_ plan: FlashPlan) {
        layout = plan.layoutLine
        imageBase = Hex.word(plan.imageBase)
        transferSize = plan.transferSize
        erasedSectors = plan.erasedSectors.count
        bytesToWrite = plan.bytesToWrite
        bytesToVerify = plan.bytesToVerify
        skippedSectors = plan.skippedSectors.count
        payloadCRC32 = Hex.word(plan.payloadCRC32)
        steps = plan.steps.map { step in
            switch step {
            case .erase(let sector): Step(action: "erase", address: Hex.word(sector.start), size: Int(sector.size))
            case .write(let write):
                Step(
                    action: "write", address: Hex.word(write.address), size: write.length,
                    holdsVectorTable: write.holdsVectorTable)
            }
        }
    }
}

extension FlashJSON {
    init(_ report: FlashReport) {
        self.init(
            erasedSectors: report.erasedSectors, bytesWritten: report.bytesWritten, bytesVerified: report.bytesVerified,
            controlTransfers: report.controlTransfers, deviceSeconds: report.duration.seconds)
    }
}
