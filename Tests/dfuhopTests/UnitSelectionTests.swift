import Foundation
import TestSupport
import Testing

/// Issue 23: one decider selects the unit for every device command. Each command, given the unit by its
/// unique ID (either case), ROM serial or port, finds it; an empty name is a usage error (64) and a name
/// that matches nothing is "no unit" (69), whichever command it is.
@Suite("CLI: --unit means the same unit for every command", .timeLimit(.minutes(10)))
struct UnitSelectionTests {
    static let image = DeviceCommandTests.example("demo-g474-v2.hex")

    enum Name: String, CaseIterable, CustomStringConvertible {
        case lowerUID = "lower-case UID"
        case upperUID = "upper-case UID"
        case serial = "ROM serial"
        case port
        case empty
        case unknownPort = "unknown port"
        case unknownUID = "unknown UID"

        var description: String { rawValue }

        /// The exit status `command` must give for this name.
        func expected(_ command: Command) -> Int32 {
            switch self {
            case .lowerUID, .upperUID, .serial, .port: 0
            case .empty: 64
            // A port may hold a silent unit: `upgrade` asks the BOOT0 path (the virtual jig) for it, and when
            // no ROM shows there, that path did not reach a unit (86). Every other command: no unit (69).
            case .unknownPort: command == .upgrade ? 86 : 69
            case .unknownUID: 69
            }
        }
    }

    enum Command: String, CaseIterable, CustomStringConvertible {
        case info
        case enterDFU = "enter-dfu"
        case upgrade, flash, read, erase, leave

        var description: String { rawValue }

        /// The virtual unit the command needs: a running application, an empty ROM, or (for `leave`) the ROM
        /// of a programmed unit.
        func simulation(in directory: TemporaryDirectory) async throws -> [String] {
            switch self {
            case .info, .enterDFU, .upgrade: return ["--simulate", "g474:programmed"]
            case .flash, .read, .erase: return ["--simulate", "g474:dfu"]
            case .leave:
                let state = directory.path("unit.json")
                let enter = try await Dfuhop.run("enter-dfu", "--simulate", "g474:programmed", "--simulate-state", state)
                #expect(enter.status == 0, "\(enter)")
                return ["--simulate-state", state]
            }
        }

        func arguments(in directory: TemporaryDirectory) -> [String] {
            switch self {
            case .info: ["info"]
            case .enterDFU: ["enter-dfu"]
            case .upgrade: ["upgrade", UnitSelectionTests.image, "--state-dir", directory.path("state")]
            case .flash: ["flash", UnitSelectionTests.image, "--dry-run"]
            case .read: ["read", "--length", "64", "-o", directory.path("read.bin")]
            case .erase: ["erase", "--sector", "0x08004000"]
            case .leave: ["leave"]
            }
        }
    }

    /// The unit's UID and ROM serial, as `info` reports them (the virtual unit 1 is the same in every state).
    static func identity() async throws -> (uid: String, serial: String) {
        let info = try await Dfuhop.run("info", "--simulate", "g474:programmed", "--json")
        let uid = try #require(try info.result().unit?.uid, "\(info)")
        let serial = try #require(try info.result().unit?.romSerial, "\(info)")
        return (uid, serial)
    }

    @Test(arguments: Command.allCases, Name.allCases)
    func everyCommandSelectsTheSameWay(command: Command, name: Name) async throws {
        let (uid, serial) = try await Self.identity()
        #expect(uid != uid.lowercased(), "the UID has letters, so case matters to the test: \(uid)")
        let text =
            switch name {
            case .lowerUID: uid.lowercased()
            case .upperUID: uid.uppercased()
            case .serial: serial.lowercased()
            case .port: "1-1"
            case .empty: ""
            case .unknownPort: "9-9"
            case .unknownUID: "FFFFFFFFFFFFFFFFFFFFFFFF"
            }
        let directory = try TemporaryDirectory()
        let simulation = try await command.simulation(in: directory)
        let run = try await Dfuhop.run(command.arguments(in: directory) + ["--unit", text, "--json"] + simulation)
        #expect(run.status == name.expected(command), "\(command) --unit \"\(text)\" (\(name)): \(run)")
        if name == .empty { #expect(run.stdout.contains("empty") || run.stderr.contains("empty"), "\(run)") }
    }

    /// A blank L476 shows nothing on the bus: for every command that needs a unit to show, "no unit" (69).
    @Test(arguments: [
        ["upgrade", image, "--all"], ["info"], ["enter-dfu"], ["flash", image, "--dry-run"], ["read", "--length", "64", "-o", "/dev/null"],
        ["erase", "--sector", "0x08004000"], ["leave"]
    ])
    func nothingShowingIsNoUnitEverywhere(arguments: [String]) async throws {
        let directory = try TemporaryDirectory()
        let list = try await Dfuhop.run("list", "--simulate", "l476:blank", "--json")
        #expect(try list.result().devices?.isEmpty == true, "a blank L476 shows nothing: \(list)")
        let state = arguments[0] == "upgrade" ? ["--state-dir", directory.path("state")] : []
        let run = try await Dfuhop.run(arguments + state + ["--simulate", "l476:blank", "--json"])
        #expect(run.status == 69, "\(arguments): \(run)")
    }

    @Test func listShowsTheUIDEveryCommandAccepts() async throws {
        let (uid, _) = try await Self.identity()
        let list = try await Dfuhop.run("list", "--simulate", "g474:programmed")
        #expect(list.stdout.contains(uid), "\(list)")
    }

    @Test func journalForgetFindsAnEntryWhateverTheCase() async throws {
        let directory = try TemporaryDirectory()
        let state = directory.path("state")
        let uid = "0029003A3532510C35383234"
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        // Any content: an unreadable entry can be forgotten too.
        try Data("{}".utf8).write(to: URL(fileURLWithPath: state).appendingPathComponent("unit-\(uid).json"))
        let empty = try await Dfuhop.run("journal", "forget", "", "--state-dir", state)
        #expect(empty.status == 64, "\(empty)")
        let forget = try await Dfuhop.run("journal", "forget", uid.lowercased(), "--state-dir", state)
        #expect(forget.status == 0, "\(forget)")
        let again = try await Dfuhop.run("journal", "forget", uid, "--state-dir", state)
        #expect(again.status == 69, "the entry is gone: \(again)")
    }
}
