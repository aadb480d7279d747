import Foundation
import Synchronization
import TestSupport
import Testing

@testable import dfuhop

/// Issue 21 item 8: `--report` appends whole records to a file it never reaches through a link, one header
/// however many processes share the file, and cells a spreadsheet cannot run or retype.
@Suite("CLI: factory reports", .timeLimit(.minutes(10)))
struct FactoryReportTests {
    @Test func cellsAreNeutralisedAndKeptText() {
        for formula in ["=HYPERLINK(\"x\")", "+1", "-2+3", "@SUM(A1)", "\tx", "\rx"] {
            let cell = FactoryReport.csvCell(formula)
            #expect(cell.hasPrefix("\"'") && cell.hasSuffix("\""), "\(cell)")
        }
        #expect(FactoryReport.csvCell("=A1\"") == "\"'=A1\"\"\"")
        for number in ["1-1", "1-1.2", "123456789012", "1.2", "12E4", "2026/12/06"] {
            #expect(FactoryReport.csvCell(number) == "\"'\(number)\"")
        }
        for text in ["21003000114C4F5434373133", "g474", "upgraded", "0x0DF00474", "demo-g474-v2.hex", ""] {
            #expect(FactoryReport.csvCell(text) == text)
        }
        #expect(FactoryReport.csvCell("a,b") == "\"a,b\"")
        #expect(FactoryReport.csvCell("7", text: false) == "7")
    }

    @Test func aSymbolicLinkIsNeverFollowed() throws {
        let directory = try TemporaryDirectory()
        let target = directory.path("elsewhere.csv")
        let dangling = directory.path("dangling.csv")
        try FileManager.default.createSymbolicLink(atPath: dangling, withDestinationPath: target)
        #expect(throws: Failure.self) { try FactoryReport.append(["a\r\n"], to: dangling, header: "h\r\n") }
        #expect(!FileManager.default.fileExists(atPath: target), "nothing is created through a dangling link")
        _ = try directory.write("existing.csv", Array("kept\r\n".utf8))
        let link = directory.path("link.csv")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: directory.path("existing.csv"))
        #expect(throws: Failure.self) { try FactoryReport.append(["a\r\n"], to: link, header: nil) }
        #expect(try directory.read("existing.csv") == Array("kept\r\n".utf8))
        let fifo = directory.path("fifo.csv")
        #expect(mkfifo(fifo, 0o600) == 0)
        #expect(throws: Failure.self) { try FactoryReport.append(["a\r\n"], to: fifo, header: nil) }
    }

    /// 12 writers, each with its own open file (as separate processes have), appending 10 records each
    /// at once through the same code as `--report`: every record whole and none overwritten (O_APPEND).
    @Test func concurrentWritersLoseNothing() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("stress.csv")
        let failures = await offCooperativePool { () -> Int in
            let failed = Mutex(0)
            DispatchQueue.concurrentPerform(iterations: 12) { writer in
                for record in 0..<10 {
                    let line = "writer \(writer) record \(record)," + String(repeating: "x", count: 200) + "\r\n"
                    do { try FactoryReport.append([line], to: path, header: "header\r\n") } catch { failed.withLock { $0 += 1 } }
                }
            }
            return failed.withLock { $0 }
        }
        #expect(failures == 0)
        let rows = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\r\n")
        #expect(rows.first == "header" && rows.filter { $0 == "header" }.count == 1)
        let records = Set(rows.dropFirst().map(String.init))
        #expect(rows.count == 121 && records.count == 120)
        #expect(records.allSatisfy { $0.hasPrefix("writer ") && $0.hasSuffix(String(repeating: "x", count: 200)) })
    }

    /// Another process holds the lock and writes the header (it created the file): the append waits for
    /// the lock, writes nothing meanwhile, and then finds the file not empty, so it writes no header. The
    /// pause only gives the append time to reach the lock; the outcome of a correct append does not depend
    /// on it.
    @Test func theHeaderIsDecidedUnderTheLock() async throws {
        let directory = try TemporaryDirectory()
        let path = try directory.write("shared.csv", [])
        let holder = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)
        try #require(holder >= 0 && flock(holder, LOCK_EX) == 0)
        let appending = Task {
            await offCooperativePool { () throws in try FactoryReport.append(["record\r\n"], to: path, header: "header\r\n") }
        }
        try await Task.sleep(for: .milliseconds(300))
        let other = Array("header\r\nother\r\n".utf8)
        #expect(write(holder, other, other.count) == other.count)
        #expect(try directory.read("shared.csv") == other, "nothing was appended while the lock was held")
        flock(holder, LOCK_UN)
        close(holder)
        try await appending.value.get()
        #expect(String(decoding: try directory.read("shared.csv"), as: UTF8.self) == "header\r\nother\r\nrecord\r\n")
    }

    /// 12 dfuhop processes upgrading two simulated units each append to one CSV at once: 24 records and
    /// exactly one header, every line whole.
    @Test func twelveProcessesShareOneReport() async throws {
        let directory = try TemporaryDirectory()
        let csv = directory.path("line-3.csv")
        let v2 = UpgradeCommandTests.example("demo-g474-v2.hex")
        let stateDirectories = (0..<12).map { directory.path("state-\($0)") }
        let results = try await withThrowingTaskGroup(of: Dfuhop.Result.self) { group in
            for stateDirectory in stateDirectories {
                group.addTask {
                    try await Dfuhop.run([
                        "upgrade", v2, "--report", csv, "--all", "--simulate", "g474:programmed", "--simulate-units", "2",
                        "--state-dir", stateDirectory
                    ])
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results.allSatisfy { $0.status == 0 }, "\(results.filter { $0.status != 0 })")
        let text = try String(contentsOfFile: csv, encoding: .utf8)
        #expect(text.hasSuffix("\r\n"))
        let rows = text.split(separator: "\r\n", omittingEmptySubsequences: false).dropLast()
        let header = FactoryReport.Record.fields.joined(separator: ",")
        #expect(rows.first.map(String.init) == header)
        #expect(rows.filter { $0 == header }.count == 1, "exactly one header")
        let records = rows.dropFirst()
        #expect(records.count == 24, "\(rows)")
        let columns = FactoryReport.Record.fields.count
        #expect(records.allSatisfy { $0.split(separator: ",", omittingEmptySubsequences: false).count == columns }, "\(records)")
        #expect(records.allSatisfy { $0.contains(",upgraded,0,") }, "\(records)")
    }
}
