import Foundation
import TestSupport
import Testing

/// Each exit code dfuhop documents is produced here by a run that really ends that way, on a simulated
/// unit whose state file carries the fault (`faults` in the state file fires once, in the next command).
/// 70 (a bug) cannot come from a simulated run: UnexpectedErrorTests makes it from an undescribed error.
/// 77 (the OS denies the device) needs a device node the OS refuses, which a root CI run never meets:
/// UnexpectedErrorTests checks the mapping from libusb's access error to 77.
@Suite("Exit codes, produced", .timeLimit(.minutes(10)))
struct ExitCodeTests {
    static func example(_ name: String) -> String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../protocols/examples/\(name)").path
    }

    /// A programmed G474 in a state file, with `faults` armed for the next command.
    static func unit(in directory: TemporaryDirectory, faults: [String: Any]) async throws -> String {
        let state = directory.path("unit.json")
        let created = try await Dfuhop.run("info", "--simulate", "g474:programmed", "--simulate-state", state)
        #expect(created.status == 0, "\(created)")
        var object = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: state))) as? [String: Any])
        var plan: [String: Any] = ["stallCount": 1, "neverReturnAfterReset": false]
        plan.merge(faults) { $1 }
        object["faults"] = plan
        try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: state))
        return state
    }

    static func upgrade(_ state: String, _ directory: TemporaryDirectory, _ extra: String...) async throws -> Dfuhop.Result {
        try await Dfuhop.run(
            [
                "upgrade", example("demo-g474-v2.hex"), "--simulate-state", state, "--state-dir", directory.path("journal"),
                "--timeout", "2"
            ] + extra)
    }

    @Test("74: the cable is pulled while writing")
    func usbFailure() async throws {
        let directory = try TemporaryDirectory()
        let state = try await Self.unit(in: directory, faults: ["disconnectAtTransfer": 40])
        let result = try await Self.upgrade(state, directory)
        #expect(result.status == 74, "\(result)")
    }

    @Test("75: the application answers ENTER_BOOTLOADER with BUSY: nothing written, and the next run, once it is idle, finishes")
    func applicationBusy() async throws {
        let directory = try TemporaryDirectory()
        let state = try await Self.unit(in: directory, faults: ["applicationBusy": true])
        let busy = try await Self.upgrade(state, directory)
        #expect(busy.status == 75, "\(busy)")
        #expect(busy.stderr.lowercased().contains("busy"), "the message says the product is busy: \(busy.stderr)")
        let idle = try await Self.upgrade(state, directory)
        #expect(idle.status == 0, "\(idle)")
    }

    @Test("81: the ROM reports a write error it does not recover from")
    func deviceError() async throws {
        let directory = try TemporaryDirectory()
        let state = try await Self.unit(in: directory, faults: ["statusErrorAtBlock": ["block": 2, "status": 0x03]])
        let result = try await Self.upgrade(state, directory)
        #expect(result.status == 81, "\(result)")
        #expect(result.stderr.contains("errWRITE") || result.stderr.contains("write"), "\(result.stderr)")
    }

    @Test("82: a worn flash cell reads back differently even after a full rewrite; the hint does not promise a rerun")
    func verifyFailed() async throws {
        let directory = try TemporaryDirectory()
        // 0x08000004 holds the reset handler's address, 0x08000085: an odd byte, so a stuck bit 0 shows.
        let state = try await Self.unit(in: directory, faults: ["stuckBitAt": 0x0800_0004])
        let result = try await Self.upgrade(state, directory)
        #expect(result.status == 82, "\(result)")
        #expect(result.stderr.contains("0x08000004"), "the error names the address: \(result.stderr)")
        #expect(result.stderr.contains("running again will fail the same way"), "\(result.stderr)")
        #expect(!result.stderr.contains("run the same command again"), "\(result.stderr)")
    }

    @Test("83: the application reports another version than its image")
    func notConfirmed() async throws {
        let directory = try TemporaryDirectory()
        let state = try await Self.unit(in: directory, faults: ["reportedVersion": ["major": 1, "minor": 0, "patch": 0, "build": 0]])
        let result = try await Self.upgrade(state, directory)
        #expect(result.status == 83, "\(result)")
        #expect(result.stderr.contains("running again will not change it"), "the hint does not promise a rerun: \(result.stderr)")
    }

    @Test("84: two units and none named; 69: a --unit that matches nothing touches nothing")
    func ambiguousAndAbsent() async throws {
        let directory = try TemporaryDirectory()
        let two = try await Dfuhop.run(
            "upgrade", Self.example("demo-g474-v2.hex"), "--simulate", "g474:programmed", "--simulate-units", "2",
            "--state-dir", directory.path("journal"))
        #expect(two.status == 84, "\(two)")
        let none = try await Dfuhop.run(
            "upgrade", Self.example("demo-g474-v2.hex"), "--simulate", "g474:programmed", "--unit", "NOSUCHUNIT",
            "--state-dir", directory.path("journal"))
        #expect(none.status == 69, "\(none)")
        #expect(!none.stderr.contains("BOOT0 path ("), "no BOOT0 request for a name that matches nothing: \(none.stderr)")
    }

    @Test("85: SIGINT while a BOOT0 hook runs stops the run and kills the hook's process group, children too")
    func cancelled() async throws {
        let directory = try TemporaryDirectory()
        let marker = directory.path("hook-still-running")
        let started = directory.path("hook-started")
        // A hook that never returns by itself, and whose child would touch a file later if it were orphaned.
        // (It once slept 30 s: under the full suite beside two CPU hogs this test's task was sometimes not run
        // for longer than that, so its SIGINT came after the upgrade had finished, exit 0. Now only the SIGINT,
        // or the hook's 600 s limit (a failed BOOT0 path), can end the run.)
        let hook = "touch \(started); (sleep 8; touch \(marker)) & exec sleep 3600"
        let process = Process()
        process.executableURL = try Dfuhop.executable()
        process.arguments = [
            "upgrade", Self.example("demo-g474-v2.hex"), "--simulate", "g474:blank", "--boot0-command", hook,
            "--state-dir", directory.path("journal"), "--json",
            // Longer than this test can take on a loaded machine: the SIGINT, not the hook's timeout, must end the run.
            "--boot0-timeout", "600"
        ]
        let output = Pipe()
        process.standardOutput = output
        let errors = directory.path("stderr")
        _ = FileManager.default.createFile(atPath: errors, contents: nil)
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errors))
        try process.run()
        // SIGINT once the hook runs (a loaded machine may take a while to get there).
        while process.isRunning, !FileManager.default.fileExists(atPath: started) { try await Task.sleep(for: .milliseconds(20)) }
        try #require(FileManager.default.fileExists(atPath: started), "the hook started")
        let hookAge = Date().timeIntervalSince(Self.modified(started))
        kill(process.processIdentifier, SIGINT)
        let signalled = ContinuousClock.now
        let reader = output.fileHandleForReading
        let data = await offCooperativePool { reader.readDataToEndOfFile() }
        while process.isRunning { try await Task.sleep(for: .milliseconds(20)) }
        let lines = String(decoding: data, as: UTF8.self).split(separator: "\n")
        let stderr = (try? String(contentsOfFile: errors, encoding: .utf8)) ?? ""
        let events = lines.filter { !$0.contains("progress") && !$0.contains("bytesRead") }.joined(separator: "\n")
        #expect(
            process.terminationStatus == 85,
            "SIGINT sent \(hookAge) s after the hook started; exit \(process.terminationStatus); stderr: \(stderr)\nevents: \(events)")
        let last = try JSONLines.last(Dfuhop.ResultLine.self, in: String(decoding: data, as: UTF8.self))
        #expect(last.type == "result" && last.exitCode == 85, "the last JSON line is the result, with exit code 85: \(last)")
        // No process of the hook's is left once dfuhop has exited...
        let survivors = Self.processes(mentioning: marker)
        #expect(survivors.isEmpty, "hook processes outlived dfuhop: \(survivors)")
        // ...so the marker, which an orphan would touch 8 s after the hook started, never appears (unless a
        // loaded machine delayed dfuhop's reaction past those 8 s: then it was there before dfuhop exited).
        let beforeExit = FileManager.default.fileExists(atPath: marker)
        try await Task.sleep(until: signalled + .seconds(9), clock: .continuous)
        #expect(beforeExit || !FileManager.default.fileExists(atPath: marker), "the hook's process group was killed, children too")
    }

    static func modified(_ path: String) -> Date {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date) ?? .distantPast
    }

    @Test(
        "a SIGINT at any moment of a run is never lost: the run stops (85) or dies of it, never waits out the hook",
        arguments: [0, 2, 5, 10, 20, 50, 100, 200])
    func sigintEarly(afterMilliseconds delay: Int) async throws {
        let directory = try TemporaryDirectory()
        let process = Process()
        process.executableURL = try Dfuhop.executable()
        // A blank unit is reached only through the hook, so a run that ignored the signal would wait out its
        // 300 s and then finish (exit 0); a SIGINT before dfuhop's handlers exist kills it (signal 2).
        process.arguments = [
            "upgrade", Self.example("demo-g474-v2.hex"), "--simulate", "g474:blank", "--boot0-command", "sleep 300",
            "--state-dir", directory.path("journal"), "--boot0-timeout", "600"
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        try await Task.sleep(for: .milliseconds(delay))
        kill(process.processIdentifier, SIGINT)
        while process.isRunning { try await Task.sleep(for: .milliseconds(20)) }
        let status = (process.terminationReason, process.terminationStatus)
        #expect(status == (.exit, 85) || status == (.uncaughtSignal, SIGINT), "ended \(status) after SIGINT at \(delay) ms")
    }

    /// Live processes whose command line contains `text` (from /proc).
    static func processes(mentioning text: String) -> [String] {
        let pids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc"))?.filter { $0.allSatisfy(\.isNumber) } ?? []
        return pids.compactMap { pid in
            guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return nil }
            let line = String(decoding: data.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
            return line.contains(text) ? "\(pid): \(line)" : nil
        }
    }
}
