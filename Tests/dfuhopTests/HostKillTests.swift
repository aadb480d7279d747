import Foundation
import TestSupport
import Testing

/// The host dies for real: `dfuhop upgrade` runs as a process against a state file that follows every
/// change of the virtual unit (`--simulate-state`), in scaled real time (`--simulate-speed`), and gets
/// SIGKILL — no cleanup, no journal update — right after it reports a chosen event. A second, plain run
/// must then finish the upgrade, and the unit must hold exactly the image (judged from the state file's
/// bytes against the HEX file's records, not through dfuhop's own image code) and run its version.
@Suite("Host killed with SIGKILL, then a second run", .timeLimit(.minutes(10)))
struct HostKillTests {
    /// Where to kill: the n-th event of a kind (`phaseStarted` events are named by their phase).
    struct KillPoint: CustomStringConvertible, Sendable {
        var event: String
        var occurrence: Int
        var description: String { "\(event) #\(occurrence)" }
    }

    static let killPoints: [KillPoint] =
        ["enter", "read", "option-bytes", "flash", "prepare", "program", "verify", "leave", "confirm"].map {
            KillPoint(event: "phaseStarted:" + $0, occurrence: 1)
        } + [
            KillPoint(event: "sectorErased", occurrence: 1), KillPoint(event: "bytesWritten", occurrence: 1),
            KillPoint(event: "sectorErased", occurrence: 2), KillPoint(event: "found", occurrence: 1)
        ]

    @Test("SIGKILL at an event, then a second run finishes the upgrade", arguments: killPoints)
    func killedThenFinished(point: KillPoint) async throws {
        let directory = try TemporaryDirectory()
        let state = directory.path("unit.json")
        let journal = directory.path("journal")
        let created = try await Dfuhop.run("info", "--simulate", "g474:programmed", "--simulate-state", state)
        #expect(created.status == 0, "\(created)")
        let image = ExitCodeTests.example("demo-g474-v2.hex")
        let upgrade = ["upgrade", image, "--simulate-state", state, "--state-dir", journal, "--json", "--timeout", "5"]

        let killed = try await Self.runKilling(upgrade + ["--simulate-speed", "0.5"], at: point)
        #expect(killed == "killed", "the kill at \(point) came too late: dfuhop \(killed)")
        let left = try Self.flash(ofStateFile: state).mode
        let second = try await Dfuhop.run(upgrade)
        #expect(second.status == 0, "after SIGKILL at \(point), which left the unit in \(left): \(second)")
        print("SIGKILL at \(point): the unit was left in \(left); the second run: \(try second.result().outcome)")

        let flash = try Self.flash(ofStateFile: state)
        #expect(flash.mode == "application", "the unit runs \(flash.mode) after the second run")
        for (address, byte) in try Self.hexBytes(image) where flash.byte(at: address) != byte {
            Issue.record(
                "after SIGKILL at \(point): flash at 0x\(String(address, radix: 16)) holds \(flash.byte(at: address)), not \(byte)")
            break
        }
        let info = try await Dfuhop.run("info", "--simulate-state", state, "--json")
        #expect(try info.result().unit?.version == "2.0.0", "\(info)")
    }

    /// Runs dfuhop, reading its `--json` events as they come, and SIGKILLs it after the kill point's event.
    /// Says whether the kill landed before dfuhop ended by itself.
    static func runKilling(_ arguments: [String], at point: KillPoint) async throws -> String {
        let process = Process()
        process.executableURL = try Dfuhop.executable()
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
        return await offCooperativePool {
            var seen = 0
            var buffer = Data()
            while case let chunk = output.fileHandleForReading.availableData, !chunk.isEmpty {
                buffer.append(chunk)
                while let newline = buffer.firstIndex(of: 0x0A) {
                    let line = buffer[buffer.startIndex..<newline]
                    buffer.removeSubrange(buffer.startIndex...newline)
                    guard Self.event(in: line) == point.event else { continue }
                    seen += 1
                    if seen == point.occurrence { kill(process.processIdentifier, SIGKILL) }
                }
            }
            process.waitUntilExit()
            return process.terminationReason == .uncaughtSignal ? "killed" : "ended by itself with \(process.terminationStatus)"
        }
    }

    static func event(in line: Data) -> String? {
        guard let object = try? JSONDecoder().decode(Dfuhop.Line.self, from: line), let event = object.event else { return nil }
        return event == "phaseStarted" ? "phaseStarted:\(object.phase ?? "")" : event
    }

    /// The flash a state file holds: programmed runs (offset from the flash base, base64), the rest erased.
    struct StateFlash {
        var mode: String
        var base: UInt32
        var runs: [(offset: Int, bytes: [UInt8])]

        func byte(at address: UInt32) -> UInt8 {
            let offset = Int(address) - Int(base)
            for run in runs where offset >= run.offset && offset < run.offset + run.bytes.count {
                return run.bytes[offset - run.offset]
            }
            return 0xFF
        }
    }

    static func flash(ofStateFile path: String) throws -> StateFlash {
        let object = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        let runs = try #require(object["flash"] as? [[String: Any]]).map { run in
            (offset: run["offset"] as? Int ?? -1, bytes: Array(Data(base64Encoded: run["data"] as? String ?? "") ?? Data()))
        }
        // Every part line the state files here use has its flash at 0x08000000 (RM0440 §3.3.1 for the G474).
        return StateFlash(mode: object["mode"] as? String ?? "", base: 0x0800_0000, runs: runs)
    }

    /// The data records of an Intel HEX file, by address: an oracle that shares no code with FirmwareImage.
    static func hexBytes(_ path: String) throws -> [(UInt32, UInt8)] {
        var upper: UInt32 = 0
        var bytes: [(UInt32, UInt8)] = []
        for line in try String(contentsOfFile: path, encoding: .utf8).split(whereSeparator: \.isNewline) {
            let record = stride(from: 1, to: line.count - 1, by: 2).compactMap { index -> UInt8? in
                let start = line.index(line.startIndex, offsetBy: index)
                return UInt8(line[start..<line.index(start, offsetBy: 2)], radix: 16)
            }
            guard record.count >= 5 else { continue }
            let count = Int(record[0])
            let offset = UInt32(record[1]) << 8 | UInt32(record[2])
            switch record[3] {
            case 0x00: bytes += (0..<count).map { (upper + offset + UInt32($0), record[4 + $0]) }
            case 0x04: upper = (UInt32(record[4]) << 8 | UInt32(record[5])) << 16
            default: break
            }
        }
        return bytes
    }
}
