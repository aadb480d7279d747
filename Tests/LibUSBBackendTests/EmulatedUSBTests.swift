import Foundation
import Testing

/// The emulated-USB tier: a umockdev device server (emulated-usb/server.c) presents an STM32F407 ROM
/// in DFU mode, answered by emulated-usb/fixed_peer.py, and real libusb clients talk to it: unmodified
/// dfu-util, and this package's libusb backend through the dfuhop-usb-probe tool (a test process
/// cannot put itself under the umockdev preload, so the probe runs in a child process).
///
/// Without umockdev these tests are skipped with the reason shown; with `CI` set they fail instead.
enum EmulatedUSB {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let directory = packageRoot.appendingPathComponent("emulated-usb")
    static let server = directory.appendingPathComponent("build/dfuhop-usb-server")
    static let peer = directory.appendingPathComponent("fixed_peer.py")
    /// The probe is built next to the test bundle (the test target depends on it).
    static let probe = URL(
        fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            ?? CommandLine.arguments[0]
    ).deletingLastPathComponent().appendingPathComponent("dfuhop-usb-probe")

    static let isCI = ProcessInfo.processInfo.environment["CI"].map { !$0.isEmpty } ?? false

    /// What is missing for this tier, or nil when everything is there.
    static let missing: String? = {
        var missing: [String] = []
        let preloads = ["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib"]
            .map { "\($0)/libumockdev-preload.so.0" }
        if !preloads.contains(where: FileManager.default.fileExists) { missing.append("libumockdev-preload.so.0 (apt: umockdev)") }
        if find("pkg-config") == nil || run(["pkg-config", "--exists", "umockdev-1.0"]).status != 0 {
            missing.append("umockdev-1.0 headers (apt: libumockdev-dev)")
        }
        for tool in ["python3", "make", "cc"] where find(tool) == nil { missing.append(tool) }
        return missing.isEmpty ? nil : missing.joined(separator: ", ")
    }()

    static let skipReason = "umockdev is not installed (missing: \(missing ?? "nothing")); set CI=1 to make this a failure"
    static var enabled: Bool { missing == nil || isCI }

    /// Builds the server once per test run; nil when it built.
    static let buildProblem: String? = {
        if let missing { return "cannot run the emulated-USB tier: missing \(missing)" }
        let result = run(["make", "-s", "-C", directory.path, "build/dfuhop-usb-server"])
        return result.status == 0 ? nil : "building the server failed:\n\(result.output)\(result.errors)"
    }()

    static func find(_ tool: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/\(tool)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    struct Result {
        var status: Int32
        var output: String
        var errors: String
    }

    /// Runs a program to completion (killed after `limit`); blocking, so call it off the cooperative pool.
    static func run(_ arguments: [String], limit: DispatchTimeInterval = .seconds(120)) -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        process.standardInput = FileHandle.nullDevice
        do { try process.run() } catch {
            return Result(status: -1, output: "", errors: "cannot start \(arguments[0]): \(error)")
        }
        let watchdog = DispatchWorkItem { if process.isRunning { process.terminate() } }
        DispatchQueue.global().asyncAfter(deadline: .now() + limit, execute: watchdog)
        let errorData = DispatchQueue(label: "stderr")
        nonisolated(unsafe) var errorBytes = Data()
        errorData.async { errorBytes = errors.fileHandleForReading.readDataToEndOfFile() }
        let outputBytes = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        watchdog.cancel()
        errorData.sync {}
        return Result(
            status: process.terminationStatus, output: String(decoding: outputBytes, as: UTF8.self),
            errors: String(decoding: errorBytes, as: UTF8.self))
    }

    /// `run` on a Dispatch thread: the cooperative pool (two threads here) must not wait on a process.
    static func runOffPool(_ arguments: [String], limit: DispatchTimeInterval = .seconds(120)) async -> Result {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(returning: run(arguments, limit: limit)) }
        }
    }

    /// Runs `command` against the emulated ROM at `port`, through the peer.
    static func againstROM(_ command: [String], port: String = "1-3.2") async throws -> Result {
        if let buildProblem { throw EmulatedUSBFailure(description: buildProblem) }
        let arguments = ["python3", peer.path, "--server", server.path, "--port", port, "--"] + command
        return await runOffPool(arguments)
    }

    static func jsonLines(_ text: String) throws -> [[String: Any]] {
        try text.split(separator: "\n").map { line in
            guard let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                throw EmulatedUSBFailure(description: "not a JSON object: \(line)")
            }
            return object
        }
    }
}

struct EmulatedUSBFailure: Error, CustomStringConvertible {
    var description: String
}

@Suite(
    "Emulated USB (umockdev)", .serialized, .timeLimit(.minutes(10)),
    .enabled(if: EmulatedUSB.enabled, Comment(rawValue: EmulatedUSB.skipReason)))
struct EmulatedUSBTests {
    static let layouts = [
        "@Internal Flash  /0x08000000/04*016Kg,01*064Kg,07*128Kg",
        "@Option Bytes  /0x1FFFC000/01*016 g",
        "@OTP Memory /0x1FFF7800/01*512 g,01*016 g",
        "@Device Feature/0xFFFF0000/01*004 g"
    ]

    @Test func unmodifiedDfuUtilListsTheEmulatedROMWithItsAlternateSettings() async throws {
        guard EmulatedUSB.find("dfu-util") != nil else {
            if EmulatedUSB.isCI { Issue.record("dfu-util is not installed (apt: dfu-util)") }
            return
        }
        let result = try await EmulatedUSB.againstROM(["dfu-util", "-l"])
        #expect(result.status == 0, "\(result.errors)")
        let found = result.output.split(separator: "\n").filter { $0.hasPrefix("Found DFU: [0483:df11]") }
        #expect(found.count == 4, "\(result.output)\(result.errors)")
        for (alternate, layout) in Self.layouts.enumerated() {
            #expect(
                found.contains { $0.contains("path=\"1-3.2\", alt=\(alternate), name=\"\(layout)\", serial=\"2061336E5056\"") },
                "alt \(alternate) missing in:\n\(result.output)")
        }
    }

    @Test func libusbBackendEnumeratesTheEmulatedROMAndItsHubs() async throws {
        let result = try await EmulatedUSB.againstROM([EmulatedUSB.probe.path, "list"])
        #expect(result.status == 0, "\(result.errors)")
        let devices = try EmulatedUSB.jsonLines(result.output)
        #expect(devices.compactMap { $0["port"] as? String } == ["usb1", "1-3", "1-3.2"])
        let rom = try #require(devices.first { $0["port"] as? String == "1-3.2" })
        #expect(rom["vidPid"] as? String == "0483:df11")
        #expect(rom["dfuMode"] as? Bool == true)
        #expect(rom["serial"] as? String == "2061336E5056")
        #expect(rom["product"] as? String == "STM32  BOOTLOADER")
        #expect(rom["alternateSettings"] as? [String] == Self.layouts)
        #expect(rom["transferSize"] as? Int == 2048)
        #expect(rom["dfuVersion"] as? Int == 0x011A)
        #expect((rom["problems"] as? [String])?.isEmpty == true)
    }

    @Test func libusbBackendRunsDFURequestsAgainstTheEmulatedROM() async throws {
        let result = try await EmulatedUSB.againstROM([EmulatedUSB.probe.path, "session", "1-3.2"])
        #expect(result.status == 0, "\(result.errors)")
        let session = try #require(try EmulatedUSB.jsonLines(result.output).first)
        #expect(session["serial"] as? String == "2061336E5056")
        let steps = try #require(session["steps"] as? [[String: Any]])
        let outcomes = steps.map { "\($0["request"] ?? "?"): \($0["result"] ?? "?") \(($0["bytes"] as? [Int]) ?? [])" }
        #expect(
            outcomes == [
                "SET_INTERFACE 0: ok []",
                "GETSTATUS: ok [0, 0, 0, 0, 2, 0]", // OK, poll 0 ms, dfuIDLE
                "UPLOAD 0: ok [0, 33, 65, 146]", // DfuSe commands 0x00 0x21 0x41 0x92
                "GETSTATE: ok [9]", // dfuUPLOAD-IDLE
                "ABORT: ok []",
                "DNLOAD set-address: stall []", // the fixed peer stalls every DNLOAD: LIBUSB_ERROR_PIPE → .stall
                "GETSTATE: ok [2]"
            ])
    }

    @Test func hotplugFollowsAReEnumerationAndTheUnitIsOpenedAgainOnItsPort() async throws {
        let result = try await EmulatedUSB.againstROM([EmulatedUSB.probe.path, "replug", "1-3.2"])
        #expect(result.status == 0, "\(result.errors)")
        let replug = try #require(try EmulatedUSB.jsonLines(result.output).first)
        let before = try #require(replug["before"] as? [String: Any])
        let after = try #require(replug["after"] as? [String: Any])
        let oldAddress = try #require(before["address"] as? Int)
        let newAddress = try #require(after["address"] as? Int)
        #expect(oldAddress != newAddress)
        #expect(replug["events"] as? [String] == ["left \(oldAddress)", "arrived \(newAddress)"])
        let unit = "DFU 0483:df11 at 1-3.2 serial 2061336E5056"
        #expect(replug["discovery"] as? [String] == ["left \(unit)", "arrived \(unit)"])
        #expect(after["port"] as? String == "1-3.2")
        #expect(after["serial"] as? String == "2061336E5056")
        #expect((after["steps"] as? [[String: Any]])?.first?["result"] as? String == "ok")
    }
}
