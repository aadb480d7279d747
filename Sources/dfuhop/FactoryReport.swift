import Foundation
import HexFormat
import UpdatePackage

/// `upgrade --report FILE`: one record per unit appended to FILE, for a factory's records (docs/json.md,
/// "Factory reports"). CSV for `.csv` (a header when the file is new), JSON lines for `.jsonl`.
struct FactoryReport {
    enum Format { case csv, jsonLines }

    /// One record; the field names are the CSV header and the JSON keys.
    struct Record: Codable, Equatable {
        var time: String
        var station: String
        var uid: String?
        var port: String?
        var romSerial: String?
        var family: String?
        var productID: String?
        var oldVersion: String?
        var newVersion: String?
        var image: String
        var imageSHA256: String
        var outcome: String
        var exitCode: Int32
        var seconds: Double
        var error: String?

        static let fields = [
            "time", "station", "uid", "port", "romSerial", "family", "productID", "oldVersion", "newVersion",
            "image", "imageSHA256", "outcome", "exitCode", "seconds", "error"
        ]

        var values: [String] {
            [
                time, station, uid ?? "", port ?? "", romSerial ?? "", family ?? "", productID ?? "", oldVersion ?? "", newVersion ?? "",
                image, imageSHA256, outcome, String(exitCode), String(format: "%.3f", seconds), error ?? ""
            ]
        }
    }

    let path: String
    let format: Format
    let image: String
    let digest: String
    let station: String

    init(path: String, input: UpgradeInput, station: String = ProcessInfo.processInfo.hostName) throws {
        switch URL(fileURLWithPath: path).pathExtension.lowercased() {
        case "csv": format = .csv
        case "jsonl": format = .jsonLines
        default: throw Failure(.usage, "--report \(path): the name must end in .csv or .jsonl (the format follows it)")
        }
        self.path = path
        image = input.source
        digest = input.digest
        self.station = station
    }

    func record(_ run: UnitRun) -> Record {
        let unit = run.unit
        var newVersion: String?
        var failure: Failure?
        switch run.result {
        case .success(let done): newVersion = done.newVersion?.description
        case .failure(let error): failure = error
        }
        return Record(
            time: JSONContract.time(run.started), station: station, uid: unit?.uid?.description, port: run.port ?? unit?.portPath,
            romSerial: unit?.dfuSerial, family: unit?.familyID, productID: unit?.productID.map(Hex.word),
            oldVersion: unit?.version?.description, newVersion: newVersion, image: image, imageSHA256: digest,
            outcome: run.outcome, exitCode: run.exitCode, seconds: run.duration.seconds, error: failure?.message)
    }

    /// Appends one record per run; creates the file (and, for CSV, its header) when it does not exist.
    func append(_ runs: [UnitRun]) throws {
        let url = URL(fileURLWithPath: path)
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? nil
        let isNew = (size ?? 0) == 0
        var text = ""
        if isNew, format == .csv { text += Self.csvLine(Record.fields) }
        for run in runs {
            let record = record(run)
            text += format == .csv ? Self.csvLine(record.values) : Output.jsonLine(record) + "\n"
        }
        do {
            if !FileManager.default.fileExists(atPath: path) { try Data().write(to: url) }
            let handle = try FileHandle(forWritingTo: url)
            defer { try? handle.close() }
            try handle.seekToEnd()
            try handle.write(contentsOf: Data(text.utf8))
        } catch {
            throw Failure(.cannotWrite, "--report \(path): cannot append to it (\(error.localizedDescription))")
        }
    }

    /// RFC 4180: a field with a comma, quote or line break is quoted, its quotes doubled.
    static func csvLine(_ fields: [String]) -> String {
        fields.map { field in
            field.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" })
                ? "\"" + field.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : field
        }.joined(separator: ",") + "\r\n"
    }
}
