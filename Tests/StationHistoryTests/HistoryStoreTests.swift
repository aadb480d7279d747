import Foundation
import Synchronization
import Testing

@testable import StationHistory

/// The upgrade history's database: migrations, records as written, filters, locks and refusals.
@Suite("StationHistory: the store")
struct HistoryStoreTests {
    struct Failed: Error, CustomStringConvertible {
        var description: String
    }

    final class Directory {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("dfuhop-history-\(UUID().uuidString)")
        deinit { try? FileManager.default.removeItem(at: url) }
        var store: HistoryStore { HistoryStore(directory: url) }
    }

    static func record(_ index: Int, uid: String? = "0029003A3532510C35383234", time: String? = nil) -> HistoryRecord {
        var record = HistoryRecord(
            time: time ?? "2026-12-01T15:04:\(String(format: "%02d", index % 60)).001Z", station: "line-3", image: "demo-g474-v2.hex",
            fileSHA256: String(repeating: "a", count: 64), outcome: "upgraded", exitCode: 0, seconds: 1.5, dfuhopVersion: "0.1.0")
        record.uid = uid
        record.sectorsWritten = index
        return record
    }

    /// Every field set, odd values included: what is written is what is read back.
    static var fullRecord: HistoryRecord {
        var record = record(7)
        (record.operator, record.lot, record.port, record.romSerial) = ("Ann O'Neil", "0042", "1-1", "2062376E5735")
        (record.family, record.productID, record.oldVersion, record.newVersion) = ("g474", "0x0000D0F1", "1.10.0", "2.0.0")
        (record.imageSHA256, record.imageCRC32) = (String(repeating: "b", count: 64), "0x12345678")
        (record.sectorsWritten, record.sectorsSkipped, record.verified, record.simulated) = (3, 199, false, true)
        (record.outcome, record.exitCode, record.seconds, record.error) = ("failed", 83, 12.25, "line one\nline \"two\"")
        return record
    }

    func userVersion(_ path: String) throws -> Int {
        let connection = try SQLiteConnection(path: path, create: false, busyTimeout: .seconds(5))
        defer { connection.close() }
        return try connection.userVersion()
    }

    @Test func anEmptyFileIsMigratedToTheLatestVersion() throws {
        let directory = Directory()
        try FileManager.default.createDirectory(at: directory.url, withIntermediateDirectories: true)
        #expect(FileManager.default.createFile(atPath: directory.store.path, contents: Data()))
        try directory.store.prepare()
        #expect(try userVersion(directory.store.path) == HistorySchema.latest)
        try directory.store.append([Self.fullRecord])
        #expect(try directory.store.records() == [Self.fullRecord])
    }

    @Test func aVersion1DatabaseOpensAgainWithItsRecords() throws {
        let directory = Directory()
        try directory.store.append([Self.record(1)])
        #expect(try userVersion(directory.store.path) == 1)
        let mode = try FileManager.default.attributesOfItem(atPath: directory.store.path)[.posixPermissions] as? Int
        #expect(mode == 0o600, "operators' names are in it")
        let again = HistoryStore(directory: directory.url)
        try again.prepare()
        try again.append([Self.record(2)])
        #expect(try again.records().map(\.sectorsWritten) == [2, 1])
        #expect(try userVersion(directory.store.path) == 1)
        let connection = try SQLiteConnection(path: directory.store.path, create: false, busyTimeout: .seconds(5))
        #expect(try connection.rows("PRAGMA journal_mode").first?.first?.text == "wal")
    }

    /// A second migration, as a later dfuhop would ship one: a version-1 file with records reaches version 2
    /// once, keeps its records, and a failing step leaves the file at version 1, untouched.
    @Test func aSecondMigrationRunsOnceOnAVersion1File() throws {
        let directory = Directory()
        try directory.store.append([Self.record(1)])
        let connection = try SQLiteConnection(path: directory.store.path, create: false, busyTimeout: .seconds(5))
        defer { connection.close() }
        let broken = HistorySchema.migrations + [#"ALTER TABLE upgrades ADD COLUMN "workOrder" TEXT; SELECT * FROM nowhere"#]
        #expect(throws: HistoryError.self) { try HistorySchema.migrate(connection, steps: broken) }
        #expect(try connection.userVersion() == 1)
        #expect(try connection.rows(#"SELECT count(*) FROM pragma_table_info('upgrades') WHERE name = 'workOrder'"#) == [[.integer(0)]])
        let steps = HistorySchema.migrations + [#"ALTER TABLE upgrades ADD COLUMN "workOrder" TEXT"#]
        try HistorySchema.migrate(connection, steps: steps)
        try HistorySchema.migrate(connection, steps: steps)
        #expect(try connection.userVersion() == 2)
        #expect(try connection.rows(#"SELECT "sectorsWritten", "workOrder" FROM upgrades"#) == [[.integer(1), .null]])
        // This dfuhop, which knows version 1 only, now refuses the file.
        #expect(throws: HistoryError.newerSchema(path: directory.store.path, found: 2, known: 1)) { try directory.store.records() }
    }

    @Test func aNewerSchemaIsRefusedNamingTheFileAndLeftAlone() throws {
        let directory = Directory()
        try directory.store.prepare()
        let connection = try SQLiteConnection(path: directory.store.path, create: false, busyTimeout: .seconds(5))
        try connection.execute("PRAGMA user_version = \(HistorySchema.latest + 1)")
        connection.close()
        let expected = HistoryError.newerSchema(path: directory.store.path, found: HistorySchema.latest + 1, known: HistorySchema.latest)
        #expect(throws: expected) { try directory.store.prepare() }
        #expect(throws: expected) { try directory.store.append([Self.record(1)]) }
        #expect(throws: expected) { try directory.store.records() }
        #expect(expected.description.contains(directory.store.path) && expected.description.contains("newer"))
        #expect(try userVersion(directory.store.path) == HistorySchema.latest + 1)
    }

    @Test func aFileThatIsNoDatabaseIsRefusedNamingIt() throws {
        let directory = Directory()
        try FileManager.default.createDirectory(at: directory.url, withIntermediateDirectories: true)
        try Data(repeating: 0x41, count: 4096).write(to: URL(fileURLWithPath: directory.store.path))
        let error = #expect(throws: HistoryError.self) { try directory.store.prepare() }
        guard case .database(let failure)? = error else { throw Failed(description: "not a database error: \(String(describing: error))") }
        #expect(failure.path == directory.store.path && error?.description.contains(directory.store.path) == true)
    }

    @Test func aSymbolicLinkIsNotFollowed() throws {
        let directory = Directory()
        try FileManager.default.createDirectory(at: directory.url, withIntermediateDirectories: true)
        let elsewhere = directory.url.appendingPathComponent("elsewhere.sqlite").path
        try FileManager.default.createSymbolicLink(atPath: directory.store.path, withDestinationPath: elsewhere)
        #expect(throws: HistoryError.self) { try directory.store.append([Self.record(1)]) }
        #expect(!FileManager.default.fileExists(atPath: elsewhere))
    }

    @Test func recordsComeNewestFirstAndFilterByUIDInAnyCaseAndByTime() throws {
        let directory = Directory()
        let uid = "0029003A3532510C35383234"
        try directory.store.append([
            Self.record(1, uid: uid, time: "2026-11-30T23:59:59.999Z"), Self.record(2, uid: "1111", time: "2026-12-01T00:00:00.000Z"),
            Self.record(3, uid: nil, time: "2026-12-02T08:00:00.000Z"), Self.record(4, uid: uid, time: "2026-12-02T08:00:00.000Z")
        ])
        #expect(try directory.store.records().map(\.sectorsWritten) == [4, 3, 2, 1])
        #expect(try directory.store.records(matching: HistoryFilter(uid: uid.lowercased())).map(\.sectorsWritten) == [4, 1])
        let december = try #require(ISO8601DateFormatter().date(from: "2026-12-01T00:00:00Z"))
        #expect(try directory.store.records(matching: HistoryFilter(since: december)).map(\.sectorsWritten) == [4, 3, 2])
        #expect(try directory.store.records(matching: HistoryFilter(uid: uid, since: december)).map(\.sectorsWritten) == [4])
    }

    @Test func aMissingFileHoldsNoRecordsAndIsNotCreated() throws {
        let directory = Directory()
        #expect(try directory.store.records() == [])
        #expect(!directory.store.exists)
    }

    /// A writer holding the lock beyond the timeout: the append fails with a typed "locked" error and
    /// writes nothing; once the lock is gone the same append succeeds.
    @Test func aLockHeldBeyondTheTimeoutIsATypedError() throws {
        let directory = Directory()
        try directory.store.prepare()
        let holder = try SQLiteConnection(path: directory.store.path, create: false, busyTimeout: .seconds(5))
        try holder.execute("BEGIN IMMEDIATE")
        let impatient = HistoryStore(directory: directory.url, busyTimeout: .milliseconds(50))
        let error = #expect(throws: HistoryError.self) { try impatient.append([Self.record(1)]) }
        guard case .database(let failure)? = error else { throw Failed(description: "not a database error: \(String(describing: error))") }
        #expect(failure.isBusy && error?.description.contains("locked") == true)
        try holder.execute("ROLLBACK")
        holder.close()
        try impatient.append([Self.record(2)])
        #expect(try directory.store.records().map(\.sectorsWritten) == [2])
    }

    /// 16 writers on their own threads, each with its own connections (as processes have), 10 appends
    /// each: all 160 records are there.
    @Test func concurrentWritersLoseNothing() async throws {
        let directory = Directory()
        let url = directory.url
        let failures = await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                let failed = Mutex(0)
                DispatchQueue.concurrentPerform(iterations: 16) { writer in
                    for index in 0..<10 {
                        do { try HistoryStore(directory: url).append([Self.record(writer * 10 + index)]) } catch {
                            failed.withLock { $0 += 1 }
                        }
                    }
                }
                continuation.resume(returning: failed.withLock { $0 })
            }
        }
        #expect(failures == 0)
        #expect(Set(try directory.store.records().compactMap(\.sectorsWritten)) == Set(0..<160))
    }
}
