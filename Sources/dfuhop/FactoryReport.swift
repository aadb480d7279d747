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

        /// The CSV row: text cells kept as text (`csvCell`), the exit code and the seconds as numbers.
        var cells: [String] {
            let text = [
                time, station, uid ?? "", port ?? "", romSerial ?? "", family ?? "", productID ?? "", oldVersion ?? "", newVersion ?? "",
                image, imageSHA256, outcome
            ].map { FactoryReport.csvCell($0) }
            let numbers = [String(exitCode), String(format: "%.3f", seconds)].map { FactoryReport.csvCell($0, text: false) }
            return text + numbers + [FactoryReport.csvCell(error ?? "")]
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
        let records = runs.map { run in
            format == .csv ? Self.csvLine(record(run).cells) : Output.jsonLine(record(run)) + "\n"
        }
        try Self.append(records, to: path, header: format == .csv ? Self.csvLine(Record.fields.map { Self.csvCell($0, text: false) }) : nil)
    }

    /// Appends each record with one write(2) followed by an fsync, so a record is whole on disk or absent.
    /// Several stations' processes may share one file: it is opened with O_APPEND (every write lands at
    /// the end, none overwrites another's), O_NOFOLLOW (a symbolic link at `path` is refused, and a dangling
    /// one creates nothing) and O_NONBLOCK (a FIFO does not hang the run; only a regular file is accepted),
    /// and held under an exclusive flock while it is written, so the header is written exactly once: by
    /// the process that finds the file empty under the lock.
    static func append(_ records: [String], to path: String, header: String?) throws {
        func failure(_ what: String) -> Failure {
            Failure(.cannotWrite, "--report \(path): cannot \(what) (\(String(cString: strerror(errno))))")
        }
        let descriptor = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            if errno == ELOOP { throw Failure(.cannotWrite, "--report \(path): it is a symbolic link; name the file itself") }
            throw failure("open it")
        }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw failure("read its status") }
        guard status.st_mode & S_IFMT == S_IFREG else { throw Failure(.cannotWrite, "--report \(path): not a regular file") }
        while flock(descriptor, LOCK_EX) != 0 {
            guard errno == EINTR else { throw failure("lock it") }
        }
        defer { flock(descriptor, LOCK_UN) }
        guard fstat(descriptor, &status) == 0 else { throw failure("read its status") }
        let lines = (status.st_size == 0 ? header.map { [$0] } ?? [] : []) + records
        for line in lines {
            guard writeAll(descriptor, Array(line.utf8)) else { throw failure("append to it") }
            guard fsync(descriptor) == 0 else { throw failure("sync it") }
        }
    }

    /// One write(2) for the line; only an interrupted or partial write (a full disk, a signal) takes more.
    private static func writeAll(_ descriptor: Int32, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            if written < 0, errno == EINTR { continue }
            guard written > 0 else { return false }
            offset += written
        }
        return true
    }

    /// One encoded CSV cell. A text cell is kept text as spreadsheets read it (CSV has no types, so a
    /// spreadsheet guesses them), by a leading `'` and quotes:
    /// - a cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return would run as a formula (the ROM
    ///   serial and other device strings land in cells): OWASP's rule
    ///   (https://owasp.org/www-community/attacks/CSV_Injection);
    /// - a cell a spreadsheet would turn into a number or a date (a port `1-1`, a version `1.2`, an
    ///   all-digit serial, `12E4`): made only of digits, `e`/`E`, `.`, `-`, `/`, `:`, `,` and spaces, and
    ///   starting with a digit or `.`.
    /// Then RFC 4180: a cell with a comma, quote or line break (and every guarded one) is quoted, its quotes
    /// doubled. Programs reading the file drop one leading `'` from a text cell to get the value back.
    static func csvCell(_ value: String, text: Bool = true) -> String {
        let guarded = text && needsGuard(value)
        let content = guarded ? "'" + value : value
        let quoted = guarded || content.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" })
        return quoted ? "\"" + content.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : content
    }

    static func needsGuard(_ value: String) -> Bool {
        guard let first = value.unicodeScalars.first else { return false }
        if "=+-@\t\r".unicodeScalars.contains(first) { return true }
        func digit(_ scalar: Unicode.Scalar) -> Bool { ("0"..."9").contains(scalar) }
        return (first == "." || digit(first)) && value.unicodeScalars.allSatisfy { digit($0) || "eE.-/:, ".unicodeScalars.contains($0) }
    }

    /// A CSV line of encoded cells, ended as RFC 4180 ends one.
    static func csvLine(_ cells: [String]) -> String { cells.joined(separator: ",") + "\r\n" }
}
