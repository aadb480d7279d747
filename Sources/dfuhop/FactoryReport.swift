import Foundation
import HexFormat
import StationHistory

/// `upgrade --report FILE`: one record per unit appended to FILE, for a factory's records (docs/json.md,
/// "Upgrade history and factory reports"). CSV for `.csv` (a header when the file is new), JSON lines for `.jsonl`.
struct FactoryReport {
    enum Format { case csv, jsonLines }

    /// One record: the history's (`HistoryRecord`), with the same field names as CSV header and JSON keys.
    typealias Record = HistoryRecord

    let path: String
    let format: Format

    /// Refuses a name that is neither .csv nor .jsonl, and a CSV another dfuhop started with other columns.
    init(path: String) throws {
        switch URL(fileURLWithPath: path).pathExtension.lowercased() {
        case "csv": format = .csv
        case "jsonl": format = .jsonLines
        default: throw Failure(.usage, "--report \(path): the name must end in .csv or .jsonl (the format follows it)")
        }
        self.path = path
        if format == .csv, let first = Self.firstLine(path), first + "\r\n" != Self.csvHeader {
            throw Failure(
                .cannotWrite, "--report \(path): its header is not this dfuhop's columns (\(Self.csvHeader.dropLast(2)))",
                hint: "start a new report file; dfuhop never mixes columns in one")
        }
    }

    /// Appends one record per run; creates the file (and, for CSV, its header) when it does not exist.
    func append(_ records: [Record]) throws {
        let lines = records.map { format == .csv ? Self.csvLine($0) : Output.jsonLine($0) + "\n" }
        try Self.append(lines, to: path, header: format == .csv ? Self.csvHeader : nil)
    }

    /// The CSV header: the field names.
    static let csvHeader = csvLine(Record.fields.map { csvCell($0, text: false) })

    /// A record's CSV line, in `Record.fields` order: text cells kept as text (`csvCell`), numbers and
    /// flags as they are, absent fields empty.
    static func csvLine(_ record: Record) -> String {
        func text(_ value: String?) -> String { csvCell(value ?? "") }
        func plain(_ value: (any CustomStringConvertible)?) -> String { value.map { csvCell($0.description, text: false) } ?? "" }
        return csvLine([
            text(record.time), text(record.station), text(record.operator), text(record.lot), text(record.uid), text(record.port),
            text(record.romSerial), text(record.family), text(record.productID), text(record.oldVersion), text(record.newVersion),
            text(record.image), text(record.imageSHA256), text(record.imageCRC32), text(record.fileSHA256), text(record.outcome),
            plain(record.exitCode), String(format: "%.3f", record.seconds), plain(record.sectorsWritten), plain(record.sectorsSkipped),
            plain(record.verified), plain(record.simulated), text(record.dfuhopVersion), text(record.error)
        ])
    }

    /// The first line of an existing, non-empty file (up to 4 KiB), without its line break.
    static func firstLine(_ path: String) -> String? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        guard let data = try? handle.read(upToCount: 4096), !data.isEmpty else { return nil }
        let text = String(decoding: data, as: UTF8.self)
        return String(text.prefix { $0 != "\r" && $0 != "\n" && $0 != "\r\n" })
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
