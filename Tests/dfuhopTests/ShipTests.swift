import Foundation
import TestSupport
import Testing

/// What a user installing dfuhop meets first: `--version` and `doctor`'s exit status.
@Suite("CLI: version and doctor", .timeLimit(.minutes(10)))
struct ShipTests {
    static let checkout = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// `git rev-parse HEAD` of the checkout, or nil where git cannot tell (a source tarball).
    static func headCommit() async throws -> String? {
        let result = try await ProcessRunner.run("git", ["-C", checkout.path, "rev-parse", "HEAD"])
        guard result.status == 0, !result.signalled else { return nil }
        return result.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func versionNamesTheReleaseTheCommitAndTheUSBLibraries() async throws {
        let result = try await Dfuhop.run("--version")
        #expect(result.status == 0, "\(result)")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 2, "\(result)")
        let first = try #require(lines.first)
        #expect(first.hasPrefix("dfuhop 0."), "\(first)")
        let commit = try #require(first.split(separator: "(commit ").last?.dropLast(), "\(first)")
        if let head = try await Self.headCommit() {
            // Built from this checkout: the embedded commit is HEAD's (abbreviated, maybe marked dirty).
            #expect(head.hasPrefix(String(commit.prefix(12))), "binary says \(commit), the checkout is at \(head)")
        } else {
            #expect(!commit.isEmpty)
        }
        let libraries = lines.count > 1 ? lines[1] : ""
        #expect(
            libraries.range(of: #"^libusb \d+\.\d+\.\d+\S*, hidapi \d+\.\d+\.\d+"#, options: .regularExpression) != nil,
            "\(libraries)")
    }

    @Test func doctorExitsNonZeroExactlyWhenItPrintedAWarningOrAProblem() async throws {
        // Whatever this machine's USB state is, the status must agree with what the doctor said about it.
        let result = try await Dfuhop.run("doctor")
        let marks = result.stdout.split(separator: "\n").compactMap { $0.split(separator: " ").first.map(String.init) }
        let libraryFailed = result.stdout.split(separator: "\n").contains {
            $0.hasPrefix("PROBLEM") && ($0.contains(" libusb ") || $0.contains(" hidapi "))
        }
        let flagged = marks.contains("warning") || marks.contains("PROBLEM")
        #expect(marks.contains("ok") || flagged, "\(result)")
        #expect(result.status == (libraryFailed ? 74 : flagged ? 77 : 0), "\(result)")
    }
}
