import Foundation
import Testing

@testable import DeviceProfiles

/// The family files against ST's own CMSIS device headers: protocols/families/cmsis/addresses.json is what
/// scripts/cmsis-addresses read from STMicroelectronics/cmsis_device_* (each repository with its commit), and
/// cmsis/families.json names the headers of each part line.
@Suite("Family addresses against ST's CMSIS headers", .timeLimit(.minutes(10)))
struct CmsisAddressTests {
    struct Part: Decodable {
        var backupRegister: String?
        var uid: String?
        var flashBase: String?
        var systemMemory: String?
        var repository: String
    }

    struct Table: Decodable {
        struct Repository: Decodable {
            var repository: String
            var commit: String
        }
        var repositories: [Repository]
        var parts: [String: Part]
    }

    struct Lines: Decodable { var lines: [String: [String]] }

    static let directory = FamilyDataTests.directory.appendingPathComponent("cmsis")
    static let table: Table = load("addresses.json")
    static let lines: Lines = load("families.json")

    static func load<T: Decodable>(_ name: String) -> T {
        do {
            return try JSONDecoder().decode(T.self, from: Data(contentsOf: directory.appendingPathComponent(name)))
        } catch { preconditionFailure("protocols/families/cmsis/\(name): \(error)") }
    }

    /// Where `family` disagrees with the headers its line names: "field: family X, header Y (part)".
    static func disagreements(_ family: McuFamily) -> [String] {
        guard let parts = lines.lines[family.id], !parts.isEmpty else { return ["no CMSIS headers named for \(family.id)"] }
        var found: [String] = []
        for name in parts {
            guard let part = table.parts[name] else {
                found.append("\(name) is not in the table")
                continue
            }
            let checks: [(String, UInt32, String?)] = [
                ("backupRegister", family.backupRegister, part.backupRegister), ("uid", family.uidAddress, part.uid),
                ("flash.base", family.flashBase, part.flashBase), ("systemMemory", family.systemMemoryBase, part.systemMemory)
            ]
            for (field, ours, theirs) in checks {
                guard let theirs, let value = UInt32(theirs.dropFirst(2), radix: 16) else { continue }
                if value != ours { found.append("\(field): family 0x\(String(ours, radix: 16)), \(name) 0x\(String(value, radix: 16))") }
            }
        }
        return found
    }

    @Test("the table names each repository with a full commit")
    func tableNamesCommits() {
        #expect(Self.table.repositories.count >= 19)
        for repository in Self.table.repositories {
            #expect(repository.repository.hasPrefix("STMicroelectronics/cmsis_device_"))
            #expect(repository.commit.count == 40 && repository.commit.allSatisfy(\.isHexDigit))
        }
        let named = Set(Self.table.repositories.map(\.repository))
        #expect(Self.table.parts.values.allSatisfy { named.contains($0.repository) })
    }

    @Test("every part line agrees with ST's headers", arguments: McuFamily.all)
    func familyAgrees(family: McuFamily) {
        #expect(Self.disagreements(family) == [])
    }

    /// The values issue 22 found wrong; putting any of them back must fail the check above.
    @Test(
        "the wrong values of issue 22 are caught",
        arguments: [
            ("u5", "backupRegister", 0x4000_7D00), ("h563", "backupRegister", 0x4003_6500), ("h563", "systemMemory", 0x0BF9_7000),
            ("h7a3", "backupRegister", 0x5800_4050), ("l41x", "backupRegister", 0x4000_2850)
        ] as [(String, String, UInt32)])
    func wrongValuesCaught(id: String, field: String, old: UInt32) throws {
        var family = try #require(McuFamily.named(id))
        switch field {
        case "backupRegister": family.backupRegister = old
        default: family.systemMemoryBase = old
        }
        #expect(Self.disagreements(family).contains { $0.hasPrefix(field + ":") })
    }
}
