import CSQLite
import Foundation

/// A value bound to a statement or read from a row: the storage classes the history uses.
enum SQLiteValue: Equatable, Sendable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)

    init(_ text: String?) { self = text.map { .text($0) } ?? .null }
    init(_ number: Int?) { self = number.map { .integer(Int64($0)) } ?? .null }
    init(_ flag: Bool?) { self = flag.map { .integer($0 ? 1 : 0) } ?? .null }

    var text: String? {
        if case .text(let value) = self { return value }
        return nil
    }

    var integer: Int? {
        if case .integer(let value) = self { return Int(exactly: value) }
        return nil
    }

    var real: Double? {
        switch self {
        case .real(let value): value
        case .integer(let value): Double(value)
        default: nil
        }
    }

    var flag: Bool? { integer.map { $0 != 0 } }
}

/// What SQLite reported, with the database file it was about.
public struct SQLiteError: Error, Equatable, Sendable, CustomStringConvertible {
    public var path: String
    /// SQLite's extended result code (https://www.sqlite.org/rescode.html).
    public var code: Int32
    public var message: String

    /// SQLITE_BUSY or SQLITE_LOCKED: another connection holds the lock (beyond the busy timeout).
    public var isBusy: Bool { code & 0xFF == SQLITE_BUSY || code & 0xFF == SQLITE_LOCKED }

    public var description: String { "\(path): \(message) (SQLite result code \(code))" }
}

/// One connection to one database file, used by one task and closed when done (`close()`, or on release).
/// The thinnest layer over the C API: statements, values, the busy timeout; no pooling, no threads.
final class SQLiteConnection {
    let path: String
    private var handle: OpaquePointer?

    /// Opens `path` read-write (creating it when `create`), never through a symbolic link
    /// (SQLITE_OPEN_NOFOLLOW), with extended result codes and `busyTimeout` for every lock it waits on.
    init(path: String, create: Bool, busyTimeout: Duration) throws(SQLiteError) {
        self.path = path
        let flags = SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0) | SQLITE_OPEN_NOFOLLOW | SQLITE_OPEN_NOMUTEX
        let status = sqlite3_open_v2(path, &handle, flags, nil)
        guard status == SQLITE_OK else {
            let failure = error(status)
            close()
            throw failure
        }
        sqlite3_extended_result_codes(handle, 1)
        let milliseconds = busyTimeout.components.seconds * 1000 + busyTimeout.components.attoseconds / 1_000_000_000_000_000
        sqlite3_busy_timeout(handle, Int32(clamping: milliseconds))
    }

    deinit { close() }

    /// Closes the connection; statements not yet finalised keep it open until they are (sqlite3_close_v2).
    func close() {
        guard let open = handle else { return }
        sqlite3_close_v2(open)
        handle = nil
    }

    func error(_ status: Int32) -> SQLiteError {
        let message = handle.flatMap { sqlite3_errmsg($0) }.map { String(cString: $0) } ?? String(cString: sqlite3_errstr(status))
        return SQLiteError(path: path, code: handle.map { sqlite3_extended_errcode($0) } ?? status, message: message)
    }

    /// Runs SQL text of one or more statements that take no values and return no rows (migrations, BEGIN).
    func execute(_ sql: String) throws(SQLiteError) {
        let status = sqlite3_exec(handle, sql, nil, nil, nil)
        guard status == SQLITE_OK else { throw error(status) }
    }

    /// Runs one statement with `values` bound to its `?` parameters, and returns its rows.
    @discardableResult
    func rows(_ sql: String, _ values: [SQLiteValue] = []) throws(SQLiteError) -> [[SQLiteValue]] {
        let statement = try SQLiteStatement(self, sql)
        try statement.bind(values)
        var rows: [[SQLiteValue]] = []
        while try statement.step() { rows.append(statement.row()) }
        return rows
    }

    /// PRAGMA user_version: the schema version the history keeps in the file's header.
    func userVersion() throws(SQLiteError) -> Int {
        try rows("PRAGMA user_version").first?.first?.integer ?? 0
    }

    fileprivate var pointer: OpaquePointer? { handle }
}

/// One prepared statement, finalised when released.
final class SQLiteStatement {
    private let connection: SQLiteConnection
    private var handle: OpaquePointer?

    init(_ connection: SQLiteConnection, _ sql: String) throws(SQLiteError) {
        self.connection = connection
        let status = sqlite3_prepare_v2(connection.pointer, sql, -1, &handle, nil)
        guard status == SQLITE_OK else { throw connection.error(status) }
    }

    deinit { sqlite3_finalize(handle) }

    func bind(_ values: [SQLiteValue]) throws(SQLiteError) {
        for (offset, value) in values.enumerated() {
            let index = Int32(offset + 1)
            let status: Int32
            switch value {
            case .null: status = sqlite3_bind_null(handle, index)
            case .integer(let number): status = sqlite3_bind_int64(handle, index, number)
            case .real(let number): status = sqlite3_bind_double(handle, index, number)
            case .text(let text): status = sqlite3_bind_text(handle, index, text, -1, csqlite_transient())
            }
            guard status == SQLITE_OK else { throw connection.error(status) }
        }
    }

    /// Advances to the next row: true when there is one, false when the statement is done.
    func step() throws(SQLiteError) -> Bool {
        switch sqlite3_step(handle) {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        case let status: throw connection.error(status)
        }
    }

    func row() -> [SQLiteValue] {
        (0..<sqlite3_column_count(handle)).map { index in
            switch sqlite3_column_type(handle, index) {
            case SQLITE_INTEGER: .integer(sqlite3_column_int64(handle, index))
            case SQLITE_FLOAT: .real(sqlite3_column_double(handle, index))
            case SQLITE_NULL: .null
            default: .text(sqlite3_column_text(handle, index).map { String(cString: $0) } ?? "")
            }
        }
    }
}
