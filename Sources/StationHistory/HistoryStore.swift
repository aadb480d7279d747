import Foundation

/// Why the history could not be opened, read or written. One error type for the module.
public enum HistoryError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The file's schema (PRAGMA user_version) is newer than this dfuhop knows: a later dfuhop wrote it.
    case newerSchema(path: String, found: Int, known: Int)
    /// The state directory could not be created.
    case directory(path: String, problem: String)
    /// SQLite refused: locked beyond the busy timeout, disk full, not a database, a symbolic link ...
    case database(SQLiteError)

    public var description: String {
        switch self {
        case .newerSchema(let path, let found, let known):
            "\(path): the upgrade history has schema version \(found), newer than this dfuhop knows (\(known)); "
                + "a later dfuhop wrote it: use that one, or name another --state-dir"
        case .directory(let path, let problem): "\(path): the state directory \(problem)"
        case .database(let error) where error.isBusy:
            "\(error.path): the upgrade history stayed locked by another process beyond the timeout (\(error.message))"
        case .database(let error): "\(error.path): the upgrade history cannot be used: \(error.message)"
        }
    }
}

/// A filter for `records(matching:)`.
public struct HistoryFilter: Sendable {
    /// The unit's UID, any case.
    public var uid: String?
    /// Records that started at or after this time.
    public var since: Date?

    public init(uid: String? = nil, since: Date? = nil) {
        self.uid = uid
        self.since = since
    }
}

/// The upgrade history: one SQLite database, `history.sqlite` in the state directory (docs/json.md, "Upgrade
/// history and factory reports"). Each call opens its own connection and closes it before returning, so any number of dfuhop
/// processes may share the file: WAL journal mode (readers never wait for the writer), every lock waited
/// for up to `busyTimeout`, and each append one `BEGIN IMMEDIATE` transaction, synced before it returns.
public struct HistoryStore: Sendable {
    public static let fileName = "history.sqlite"

    public let directory: URL
    public var busyTimeout: Duration

    public init(directory: URL, busyTimeout: Duration = .seconds(15)) {
        self.directory = directory
        self.busyTimeout = busyTimeout
    }

    public var path: String { directory.appendingPathComponent(Self.fileName).path }

    public var exists: Bool { FileManager.default.fileExists(atPath: path) }

    /// Opens (creating the directory and the file if needed) and migrates the database, and closes it:
    /// the check an upgrade makes before it touches a unit, so an unusable history stops it there.
    public func prepare() throws(HistoryError) {
        try connect().close()
    }

    /// Appends the records in one transaction: all of them are on disk when this returns, or none.
    public func append(_ records: [HistoryRecord]) throws(HistoryError) {
        let connection = try connect()
        defer { connection.close() }
        let columns = HistoryRecord.fields.map { "\"\($0)\"" }.joined(separator: ", ")
        let parameters = Array(repeating: "?", count: HistoryRecord.fields.count).joined(separator: ", ")
        do throws(SQLiteError) {
            try connection.execute("BEGIN IMMEDIATE")
            do throws(SQLiteError) {
                for record in records {
                    try connection.rows("INSERT INTO upgrades (\(columns)) VALUES (\(parameters))", record.values)
                }
                try connection.execute("COMMIT")
            } catch {
                try? connection.execute("ROLLBACK")
                throw error
            }
        } catch { throw .database(error) }
    }

    /// The records that match `filter`, newest first. A missing file holds no records (and is not created).
    public func records(matching filter: HistoryFilter = HistoryFilter()) throws(HistoryError) -> [HistoryRecord] {
        guard exists else { return [] }
        let connection = try connect()
        defer { connection.close() }
        let columns = HistoryRecord.fields.map { "\"\($0)\"" }.joined(separator: ", ")
        let sql = """
            SELECT \(columns) FROM upgrades
            WHERE (?1 IS NULL OR "uid" = ?1 COLLATE NOCASE) AND (?2 IS NULL OR "time" >= ?2)
            ORDER BY "time" DESC, "id" DESC
            """
        do throws(SQLiteError) {
            let rows = try connection.rows(sql, [SQLiteValue(filter.uid), SQLiteValue(filter.since.map(Self.time))])
            return rows.compactMap(HistoryRecord.init(row:))
        } catch { throw .database(error) }
    }

    /// The form of every record's `time`: ISO 8601, UTC, milliseconds.
    public static func time(_ date: Date) -> String {
        date.ISO8601Format(.iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted))
    }

    private func connect() throws(HistoryError) -> SQLiteConnection {
        do {
            try FileManager.default.createDirectory(
                at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch { throw .directory(path: directory.path, problem: "cannot be created (\(error.localizedDescription))") }
        // Created 0600 (operators' names are in it; SQLite gives its -wal and -shm files the same mode), never
        // through a symbolic link; O_NONBLOCK so that a FIFO put there cannot hang the open.
        let created = open(path, O_RDONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0o600)
        if created >= 0 { close(created) }
        let connection: SQLiteConnection
        do throws(SQLiteError) {
            connection = try SQLiteConnection(path: path, create: true, busyTimeout: busyTimeout)
            try useWriteAheadLog(connection)
            try connection.execute("PRAGMA synchronous = FULL")
        } catch { throw .database(error) }
        try HistorySchema.migrate(connection)
        return connection
    }

    /// Switches the file to WAL (it stays so). The switch takes an exclusive lock; SQLite may answer busy
    /// at once rather than wait when other connections hold the file, so it is retried up to the timeout.
    private func useWriteAheadLog(_ connection: SQLiteConnection) throws(SQLiteError) {
        let clock = ContinuousClock()
        let deadline = clock.now + busyTimeout
        while true {
            do throws(SQLiteError) {
                try connection.rows("PRAGMA journal_mode = WAL")
                return
            } catch let busy where busy.isBusy && clock.now < deadline {
                Thread.sleep(forTimeInterval: 0.01)
            }
        }
    }
}

/// The database's versions and how to reach the newest from any older one (PRAGMA user_version).
enum HistorySchema {
    /// `migrations[n - 1]` takes a database at version n - 1 to version n. Append new ones (a 2 would
    /// `ALTER TABLE upgrades ADD COLUMN ...` and extend `HistoryRecord.fields`); never edit one that shipped.
    static let migrations = [
        """
        CREATE TABLE upgrades (
            "id" INTEGER PRIMARY KEY,
            "time" TEXT NOT NULL, "station" TEXT NOT NULL, "operator" TEXT, "lot" TEXT,
            "uid" TEXT, "port" TEXT, "romSerial" TEXT, "family" TEXT, "productID" TEXT,
            "oldVersion" TEXT, "newVersion" TEXT,
            "image" TEXT NOT NULL, "imageSHA256" TEXT, "imageCRC32" TEXT, "fileSHA256" TEXT NOT NULL,
            "outcome" TEXT NOT NULL, "exitCode" INTEGER NOT NULL, "seconds" REAL NOT NULL,
            "sectorsWritten" INTEGER, "sectorsSkipped" INTEGER, "verified" INTEGER, "simulated" INTEGER,
            "dfuhopVersion" TEXT NOT NULL, "error" TEXT);
        CREATE INDEX upgrades_time ON upgrades ("time");
        CREATE INDEX upgrades_uid ON upgrades ("uid" COLLATE NOCASE);
        """
    ]

    static var latest: Int { migrations.count }

    /// Brings the database to the last of `steps` (the shipped `migrations`; a test passes more) under a
    /// write lock, so concurrent processes migrate it once; a version newer than that is refused, never
    /// written to (an empty file is version 0).
    static func migrate(_ connection: SQLiteConnection, steps: [String] = migrations) throws(HistoryError) {
        let found: Int
        do throws(SQLiteError) { found = try migrateIfOlder(connection, steps: steps) } catch { throw .database(error) }
        guard found <= steps.count else { throw .newerSchema(path: connection.path, found: found, known: steps.count) }
    }

    /// The version found: read again under the write lock when it is older (another process may have
    /// migrated meanwhile), and then migrated to the last of `steps` in that one transaction.
    private static func migrateIfOlder(_ connection: SQLiteConnection, steps: [String]) throws(SQLiteError) -> Int {
        let found = try connection.userVersion()
        guard found < steps.count else { return found }
        try connection.execute("BEGIN IMMEDIATE")
        do throws(SQLiteError) {
            let current = try connection.userVersion()
            for version in min(current, steps.count)..<steps.count { try connection.execute(steps[version]) }
            if current < steps.count { try connection.execute("PRAGMA user_version = \(steps.count)") }
            try connection.execute("COMMIT")
            return current
        } catch {
            try? connection.execute("ROLLBACK")
            throw error
        }
    }
}
