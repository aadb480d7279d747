import ArgumentParser
import FirmwareImage
import Foundation
import HexFormat
import StationHistory
import UpdatePackage
import UpgradeEngine

/// `--station`, `--operator`, `--lot` on `upgrade`: who ran it where, for the history and `--report`.
struct StationOptions: ParsableArguments {
    @Option(help: ArgumentHelp("This station's name in the records (default: $DFUHOP_STATION, else the host name).", valueName: "name"))
    var station: String?
    @Option(help: ArgumentHelp("Who runs the upgrade, for the records (default: $DFUHOP_OPERATOR).", valueName: "name"))
    var `operator`: String?
    @Option(help: ArgumentHelp("The production lot or work order, for the records (default: $DFUHOP_LOT).", valueName: "lot"))
    var lot: String?

    func validate() throws {
        for (flag, value) in [("--station", station), ("--operator", `operator`), ("--lot", lot)] {
            guard let value else { continue }
            if value.trimmingCharacters(in: .whitespaces).isEmpty { throw ValidationError("\(flag) needs a value that is not blank") }
            if value.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
                throw ValidationError("\(flag) must not contain control characters")
            }
        }
    }

    /// The flag, else the environment variable (when not blank); the station falls back to the host name.
    func identity(environment: [String: String] = ProcessInfo.processInfo.environment) -> StationIdentity {
        func pick(_ flag: String?, _ variable: String) -> String? {
            flag ?? environment[variable].flatMap { $0.trimmingCharacters(in: .whitespaces).isEmpty ? nil : $0 }
        }
        return StationIdentity(
            station: pick(station, "DFUHOP_STATION") ?? ProcessInfo.processInfo.hostName, operator: pick(`operator`, "DFUHOP_OPERATOR"),
            lot: pick(lot, "DFUHOP_LOT"))
    }
}

struct StationIdentity: Sendable {
    var station: String
    var `operator`: String?
    var lot: String?
}

/// What every record of one `upgrade` command shares (who, where, with which image), and how a unit's
/// run becomes a `HistoryRecord`: the one record the history stores and `--report` exports.
struct RecordContext: Sendable {
    var identity: StationIdentity
    var image: String
    var fileSHA256: String
    var imageSHA256: String?
    var imageCRC32: String?
    var simulated: Bool

    init(input: UpgradeInput, identity: StationIdentity, simulated: Bool) {
        self.identity = identity
        image = input.source
        fileSHA256 = input.digest
        self.simulated = simulated
        // The content's digests as `image info FILE` prints them: alternate setting 0, byte granularity.
        var selected = input.image
        if selected.targets.count > 1 { selected.targets = [selected.targets.first { $0.alternateSetting == 0 } ?? selected.targets[0]] }
        if let normalized = try? selected.normalized(granularity: 1) {
            let digests = Digests(normalized)
            imageSHA256 = digests.sha256
            imageCRC32 = Hex.word(digests.crc32)
        }
    }

    /// The record of one unit's run; `tally` is what its events showed of the flash, for a failed run.
    func record(_ run: UnitRun, tally: FlashTally.Counts = FlashTally.Counts()) -> HistoryRecord {
        var record = HistoryRecord(
            time: HistoryStore.time(run.started), station: identity.station, image: image, fileSHA256: fileSHA256, outcome: run.outcome,
            exitCode: run.exitCode, seconds: run.duration.seconds, dfuhopVersion: Version.release)
        (record.operator, record.lot, record.simulated) = (identity.operator, identity.lot, simulated ? true : nil)
        (record.imageSHA256, record.imageCRC32) = (imageSHA256, imageCRC32)
        let unit = run.unit
        (record.uid, record.port, record.romSerial) = (unit?.uid?.description, run.port ?? unit?.portPath, unit?.dfuSerial)
        (record.family, record.productID, record.oldVersion) = (unit?.familyID, unit?.productID.map(Hex.word), unit?.version?.description)
        switch run.result {
        case .success(let done):
            record.newVersion = done.newVersion?.description
            if done.outcome == .upToDate { record.sectorsWritten = 0 }
            if let report = done.flashReport {
                record.sectorsWritten = report.erasedSectors
                record.sectorsSkipped = done.plan?.skippedSectors.count ?? done.skippedSectors
                record.verified = report.bytesVerified > 0
            }
        case .failure(let failure):
            record.error = failure.message
            (record.sectorsWritten, record.sectorsSkipped) = (tally.erased, tally.skipped)
        }
        return record
    }
}

/// What an upgrade's events showed of its flash, per unit (its port with `--all`, "" alone): a failed
/// run has no result to read it from. From the plan on, `erased` counts the sectors erased (and so
/// changed) before the failure, the most of any pass (a retried flash erases again from the first);
/// 0 means the flash was not touched. Both are nil when the run failed before its plan.
final class FlashTally: @unchecked Sendable {
    struct Counts: Sendable {
        var erased: Int?
        var skipped: Int?
    }

    // Guarded by `lock`: engines call their event handlers from their own tasks (several with `--all`).
    private let lock = NSLock()
    private var counts: [String: Counts] = [:]

    func note(_ event: UpgradeEvent, unit: String?) {
        let key = unit ?? ""
        switch event {
        case .planned(_, let skipped):
            lock.withLock { counts[key] = Counts(erased: counts[key]?.erased ?? 0, skipped: skipped) }
        case .flash(.sectorErased(_, let number, _)):
            lock.withLock { counts[key, default: Counts()].erased = max(counts[key]?.erased ?? 0, number) }
        default: break
        }
    }

    func counts(unit: String?) -> Counts { lock.withLock { counts[unit ?? ""] ?? Counts() } }
}

/// Records an upgrade's runs in the history. A record that cannot be written does not change the
/// upgrade's outcome (the units are upgraded whatever the database says), and is never silent: a warning
/// on stderr whatever `-q` says, a `warning` event with `--json`, and the returned text for the result's
/// `historyError`.
struct HistoryRecorder: Sendable {
    let store: HistoryStore
    let context: RecordContext

    /// Opens and migrates the history before any unit is touched: a history this dfuhop cannot use (a
    /// newer schema, not a database) stops the upgrade here, with nothing done.
    init(directory: URL, context: RecordContext) throws {
        store = HistoryStore(directory: directory)
        self.context = context
        do throws(HistoryError) { try store.prepare() } catch { throw Failure.history(error) }
    }

    func record(_ records: [HistoryRecord], json: Bool) -> String? {
        do throws(HistoryError) {
            try store.append(records)
            return nil
        } catch {
            let text = "the upgrade history did not record this run: \(error.description)"
            if json { Output.emit(EventLine(.warning, text: text)) }
            Output.error("warning: \(text)")
            return text
        }
    }
}

extension Failure {
    /// A history this dfuhop cannot read (a newer schema) is a configuration problem; the rest (locked
    /// beyond the timeout, a full disk, a file that is no database) is a file that cannot be written.
    static func history(_ error: HistoryError) -> Failure {
        switch error {
        case .newerSchema:
            Failure(.configuration, error.description, hint: "`dfuhop --version` says which dfuhop this is; the newer one reads the file")
        case .database(let failure) where failure.isBusy:
            Failure(.cannotWrite, error.description, hint: "another dfuhop holds the history; run this again when it is done")
        default: Failure(.cannotWrite, error.description)
        }
    }
}
