import DeviceProfiles
import Foundation
import Testing

/// Unmodified `dfu-util -l` against the emulated ROM of each part line that has a real capture
/// (protocols/families/fixtures/<id>.txt): the emulated ROM must show the bcdDevice and the alternate
/// settings the real ROM showed.
@Suite(
    "Emulated ROMs against real dfu-util logs", .serialized, .timeLimit(.minutes(10)),
    .enabled(if: EmulatedUSB.enabled, Comment(rawValue: EmulatedUSB.skipReason)))
struct RomFixtureTests {
    static let fixtures = EmulatedUSB.packageRoot.appendingPathComponent("protocols/families/fixtures")

    /// One `Found DFU:` line: bcdDevice as printed (`ver=`), the alternate number and its name.
    struct Listing: Equatable, CustomStringConvertible {
        var version: String
        var alternates: [Int: String]
        var description: String {
            "ver=\(version) " + alternates.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: "; ")
        }
    }

    static func listing(_ text: String) -> Listing {
        var version = ""
        var alternates: [Int: String] = [:]
        for line in text.split(separator: "\n") where line.contains("Found DFU: [0483:df11]") {
            if let ver = field(line, "ver=", until: ",") { version = ver }
            guard let alt = field(line, "alt=", until: ","), let number = Int(alt), let name = field(line, "name=\"", until: "\"") else {
                continue
            }
            alternates[number] = name
        }
        return Listing(version: version, alternates: alternates)
    }

    static func field(_ line: Substring, _ key: String, until end: Character) -> String? {
        guard let range = line.range(of: key) else { return nil }
        let rest = line[range.upperBound...]
        guard let stop = rest.firstIndex(of: end) else { return nil }
        return String(rest[..<stop])
    }

    static var partLines: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: fixtures.path)) ?? []).filter { $0.hasSuffix(".txt") }
            .map { String($0.dropLast(4)) }.sorted()
    }

    @Test("dfu-util -l shows what the real ROM showed", arguments: partLines)
    func emulatedROMMatchesTheLog(id: String) async throws {
        guard EmulatedUSB.find("dfu-util") != nil else {
            if EmulatedUSB.isCI { Issue.record("dfu-util is not installed (apt: dfu-util)") }
            return
        }
        let expected = Self.listing(try String(contentsOf: Self.fixtures.appendingPathComponent(id + ".txt"), encoding: .utf8))
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dfuhop-fixture-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let state = directory.appendingPathComponent("unit.json").path
        let result = try await VirtualPeerTests.run(["dfu-util", "-l"], state: state, simulate: "\(id):dfu")
        #expect(result.status == 0, "\(result.errors)")
        let shown = Self.listing(result.output)
        #expect(shown == expected, "\(id): emulated \(shown), real \(expected)")
    }
}
