import DeviceProfiles
import FirmwareImage
import Foundation
import HexFormat
import Testing
import USBTransport

@testable import VirtualDevice

/// The emulated-USB tier with the real device model behind it: dfuhop-usb-peer answers the umockdev
/// server from a VirtualUnit, so unmodified dfu-util and dfuhop's own libusb backend meet the same
/// ROM behaviour the in-process tests use (one model, not two). Each test keeps its unit in a state
/// file, so a sequence of client runs acts on one unit, and the test inspects the unit afterwards.
@Suite(
    "Emulated USB with the VirtualDevice model", .serialized, .timeLimit(.minutes(10)),
    .enabled(if: EmulatedUSB.enabled, Comment(rawValue: EmulatedUSB.skipReason)))
struct VirtualPeerTests {
    static let buildDirectory = EmulatedUSB.probe.deletingLastPathComponent()
    static let peer = buildDirectory.appendingPathComponent("dfuhop-usb-peer")
    static let dfuhop = buildDirectory.appendingPathComponent("dfuhop")
    static let examples = EmulatedUSB.packageRoot.appendingPathComponent("protocols/examples")

    /// Runs `command` under the peer with the unit kept in `state` (created from `simulate` if absent),
    /// and with the peer's jig control FIFO at `control` if given.
    static func run(
        _ command: [String], state: String, simulate: String? = nil, control: String? = nil, denyAccess: Bool = false
    ) async throws -> EmulatedUSB.Result {
        if let problem = EmulatedUSB.buildProblem { throw EmulatedUSBFailure(description: problem) }
        var arguments = [peer.path, "--server", EmulatedUSB.server.path, "--state", state]
        if let simulate { arguments += ["--simulate", simulate] }
        if let control { arguments += ["--control", control] }
        if denyAccess { arguments.append("--deny-access") }
        return await EmulatedUSB.runOffPool(arguments + ["--"] + command)
    }

    static func unit(_ state: String) throws -> VirtualUnit {
        try VirtualUnit.load(from: URL(fileURLWithPath: state), clock: VirtualClock())
    }

    /// The demo application v`version` of a part line as a HEX file: the repository's example where there is
    /// one, else the image a `FAMILY:programmed` virtual unit runs (DemoImage), one major version on.
    static func demoImage(_ family: String, version: UInt16, in directory: URL) throws -> String {
        let example = examples.appendingPathComponent("demo-\(family)-v\(version).hex").path
        if FileManager.default.fileExists(atPath: example) { return example }
        let mcu = try #require(McuFamily.named(family))
        let image = try DemoImage.make(family: mcu, version: FirmwareVersion(major: version, minor: 0, patch: 0))
        let path = directory.appendingPathComponent("demo-\(family)-v\(version).hex").path
        try ImageFile.write(FirmwareImage(format: .intelHex, segments: image.segments), to: path, as: .intelHex)
        return path
    }

    /// The demo image as a raw binary, for dfu-util.
    static func demoBinary(_ directory: URL, family: String) throws -> (path: String, bytes: [UInt8]) {
        let image = try ImageFile.read(path: examples.appendingPathComponent("demo-\(family)-v1.hex").path)
        let bytes = try image.normalized().flattened()
        let path = directory.appendingPathComponent("demo.bin").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return (path, bytes)
    }

    func scratch() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("dfuhop-peer-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    @Test func unmodifiedDfuUtilDownloadsUploadsAndLeavesOnTheModel() async throws {
        guard EmulatedUSB.find("dfu-util") != nil else {
            if EmulatedUSB.isCI { Issue.record("dfu-util is not installed (apt: dfu-util)") }
            return
        }
        let directory = try scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let state = directory.appendingPathComponent("unit.json").path
        let demo = try Self.demoBinary(directory, family: "f407")

        let list = try await Self.run(["dfu-util", "-l"], state: state, simulate: "f407:dfu")
        #expect(list.status == 0, "\(list.errors)")
        let serial = try #require(McuFamily.f407.romSerial.serial(uid: VirtualUnit.uid(index: 1)))
        #expect(
            list.output.contains(
                "path=\"1-3.2\", alt=0, name=\"@Internal Flash  /0x08000000/04*016Kg,01*064Kg,07*128Kg\", serial=\"\(serial)\""),
            "\(list.output)")

        let download = try await Self.run(["dfu-util", "-a", "0", "-s", "0x08000000", "-D", demo.path], state: state)
        #expect(download.status == 0, "\(download.output)\(download.errors)")
        #expect(try Self.unit(state).flashContents().read(0x0800_0000, count: demo.bytes.count) == demo.bytes)

        let uploaded = directory.appendingPathComponent("up.bin").path
        let upload = try await Self.run(["dfu-util", "-a", "0", "-s", "0x08000000:\(demo.bytes.count)", "-U", uploaded], state: state)
        #expect(upload.status == 0, "\(upload.output)\(upload.errors)")
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: uploaded))) == demo.bytes)

        let leave = try await Self.run(["dfu-util", "-a", "0", "-s", "0x08000000:leave", "-D", demo.path], state: state)
        #expect(leave.status == 0, "\(leave.output)\(leave.errors)")
        #expect(try Self.unit(state).currentMode == .application, "after :leave the demo application runs")
    }

    @Test func dfuhopFlashesThroughTheRealLibusbBackendAndTheApplicationStarts() async throws {
        let directory = try scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let state = directory.appendingPathComponent("unit.json").path
        let image = Self.examples.appendingPathComponent("demo-g474-v2.hex").path

        let list = try await Self.run([Self.dfuhop.path, "list", "--json"], state: state, simulate: "g474:dfu")
        #expect(list.status == 0, "\(list.errors)")
        #expect(list.output.contains("\"port\":\"1-3.2\""), "\(list.output)")
        #expect(list.output.contains("\"family\":\"g474\""), "\(list.output)")

        let flash = try await Self.run([Self.dfuhop.path, "flash", image, "--leave", "--json"], state: state)
        #expect(flash.status == 0, "\(flash.output)\(flash.errors)")
        let unit = try Self.unit(state)
        #expect(unit.currentMode == .application)
        let expected = try ImageFile.read(path: image).normalized(granularity: 8)
        #expect(unit.flashContents().read(0x0800_0000, count: expected.payloadSize) == expected.flattened())
        #expect(!unit.requestLog.contains { $0.isDestructive }, "no mass erase, no read-unprotect")
    }

    /// `command` as a user the device nodes refuse: root keeps its files' owner bits but loses CAP_DAC_OVERRIDE
    /// (and DAC_READ_SEARCH), so a node of mode 0000 is refused as on a desktop without dfuhop's udev rules.
    static func withoutDeviceAccess(_ command: [String]) -> [String] {
        guard geteuid() == 0 else { return command }
        let dropped = "-dac_override,-dac_read_search"
        return ["setpriv", "--bounding-set=\(dropped)", "--inh-caps=\(dropped)", "--"] + command
    }

    /// Exit 77 from a real refusal, and its hint followed: the OS refuses the ROM's device node, so `flash`
    /// stops with 77 before anything is sent (not "unknown part line": the ROM's strings were unreadable) and
    /// points to `dfuhop doctor`; `list` says why the unit cannot be read; doctor names the node, its mode and
    /// what to do; once the node is accessible (the rules applied), the same flash finishes.
    @Test func aRefusedDeviceNodeIsExit77AndDoctorNamesIt() async throws {
        let directory = try scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let state = directory.appendingPathComponent("unit.json").path
        let image = Self.examples.appendingPathComponent("demo-g474-v2.hex").path

        let refused = try await Self.run(
            Self.withoutDeviceAccess([Self.dfuhop.path, "flash", image, "--leave", "--json"]), state: state, simulate: "g474:dfu",
            denyAccess: true)
        #expect(refused.status == 77, "\(refused.output)\(refused.errors)")
        #expect(refused.output.contains("\"exitCode\":77"), "\(refused.output)")
        #expect(refused.errors.contains("run `dfuhop doctor`"), "\(refused.errors)")
        #expect(try Self.unit(state).flashContents().bytes.allSatisfy { $0 == 0xFF }, "nothing written")
        #expect(try Self.unit(state).requestLog.isEmpty, "not one request reached the unit")

        let list = try await Self.run(Self.withoutDeviceAccess([Self.dfuhop.path, "list", "--json"]), state: state, denyAccess: true)
        #expect(list.status == 0, "\(list.output)\(list.errors)")
        let listed = try #require(try EmulatedUSB.jsonLines(list.output).last?["devices"] as? [[String: Any]], "\(list.output)")
        #expect((listed.first?["problem"] as? String)?.contains("access to the device was denied") == true, "list says why: \(list.output)")

        let doctor = try await Self.run(Self.withoutDeviceAccess([Self.dfuhop.path, "doctor", "--json"]), state: state, denyAccess: true)
        #expect(doctor.status == 77, "\(doctor.output)\(doctor.errors)")
        let line = try #require(doctor.output.split(separator: "\n").last { $0.contains("\"type\":\"result\"") }, "\(doctor.output)")
        let result = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        let findings = try #require(result["findings"] as? [[String: Any]], "\(line)")
        let problem = try #require(
            findings.first { $0["check"] as? String == "usb device" && $0["status"] as? String == "problem" }, "\(line)")
        #expect((problem["subject"] as? String)?.hasPrefix("/dev/bus/usb/") == true, "the node is named: \(problem)")
        #expect((problem["detail"] as? String)?.contains("mode 0000") == true, "\(problem)")
        #expect((problem["fix"] as? String)?.isEmpty == false, "and what to do: \(problem)")

        let granted = try await Self.run([Self.dfuhop.path, "flash", image, "--leave", "--json"], state: state)
        #expect(granted.status == 0, "\(granted.output)\(granted.errors)")
        let expected = try ImageFile.read(path: image).normalized(granularity: 8)
        #expect(try Self.unit(state).flashContents().read(0x0800_0000, count: expected.payloadSize) == expected.flattened())
    }

    /// The same through hidapi: the application's hidraw node refused, `upgrade` stops with 77 before anything
    /// is written and points to `dfuhop doctor` (not to the cable and a rerun, which would fail the same way);
    /// `list` shows the unit with the reason, `--all` stops with 77 rather than skip it; with the node granted,
    /// the same upgrade finishes.
    @Test func aRefusedHIDNodeStopsTheUpgradeWith77AndNothingWritten() async throws {
        let directory = try scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let state = directory.appendingPathComponent("unit.json").path
        let image = Self.examples.appendingPathComponent("demo-g474-v2.hex").path
        let upgrade = [Self.dfuhop.path, "upgrade", image, "--json", "--state-dir", directory.path]

        let refused = try await Self.run(Self.withoutDeviceAccess(upgrade), state: state, simulate: "g474:programmed", denyAccess: true)
        #expect(refused.status == 77, "\(refused.output)\(refused.errors)")
        #expect(refused.errors.contains("dfuhop doctor"), "\(refused.errors)")
        #expect(!refused.errors.contains("cable"), "\(refused.errors)")
        let before = try Self.unit(state)
        #expect(before.currentMode == .application, "still running its application")
        #expect(before.requestLog.isEmpty, "its ROM never saw a request: \(before.requestLog)")

        // `list` still shows the unit, with the reason; `--all` does not skip it silently.
        let list = try await Self.run(Self.withoutDeviceAccess([Self.dfuhop.path, "list", "--json"]), state: state, denyAccess: true)
        #expect(list.status == 0, "\(list.output)\(list.errors)")
        let listed = try #require(try EmulatedUSB.jsonLines(list.output).last?["devices"] as? [[String: Any]], "\(list.output)")
        #expect(listed.first?["kind"] as? String == "hid", "\(list.output)")
        #expect((listed.first?["problem"] as? String)?.contains("access to the device was denied") == true, "\(list.output)")
        let all = try await Self.run(Self.withoutDeviceAccess(upgrade + ["--all"]), state: state, denyAccess: true)
        #expect(all.status == 77, "\(all.output)\(all.errors)")
        #expect(try Self.unit(state).requestLog.isEmpty, "still untouched")

        let granted = try await Self.run(upgrade, state: state)
        #expect(granted.status == 0, "\(granted.output)\(granted.errors)")
        #expect(try EmulatedUSB.jsonLines(granted.output).last?["newVersion"] as? String == "2.0.0", "\(granted.output)")
    }

    @Test func aRefusedPlanTouchesNothingOverUSBEither() async throws {
        let directory = try scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let state = directory.appendingPathComponent("unit.json").path
        let far = directory.appendingPathComponent("far.bin").path
        try Data(repeating: 0x11, count: 1024).write(to: URL(fileURLWithPath: far))
        let result = try await Self.run([Self.dfuhop.path, "flash", far, "--address", "0x08080000"], state: state, simulate: "g474:dfu")
        #expect(result.status == 80, "\(result.output)\(result.errors)")
        #expect(try Self.unit(state).flashContents().bytes.allSatisfy { $0 == 0xFF })
    }

    /// The whole product path over real USB libraries: the application's HID interface through hidapi
    /// (hidraw), ENTER_BOOTLOADER, the ROM arriving through libusb hotplug, DfuSe through libusb, leave,
    /// and the application confirming over HID again — on every part line dfuhop models.
    @Test(arguments: McuFamily.all.map(\.id))
    func dfuhopUpgradesAProgrammedUnitThroughLibusbAndHidapi(family: String) async throws {
        let directory = try scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let state = directory.appendingPathComponent("unit.json").path
        let image = try Self.demoImage(family, version: 2, in: directory)
        // The jig, for part lines whose ROM cannot start the application by itself (H5: its leave locks the core up).
        let control = directory.appendingPathComponent("jig").path
        let hook = "echo \"boot0 $DFUHOP_BOOT0; power-cycle; boot0 0\" > \(control)"

        // `list` (and a second one at the end) on the part lines with example images; the others go straight to the upgrade.
        let detailed = ["g474", "f407"].contains(family)
        if detailed {
            let list = try await Self.run(
                [Self.dfuhop.path, "list", "--json"], state: state, simulate: "\(family):programmed", control: control)
            #expect(list.status == 0, "\(list.errors)")
            let listResult = try #require(try EmulatedUSB.jsonLines(list.output).last, "\(list.output)")
            let listed = listResult["devices"] as? [[String: Any]] ?? []
            #expect(listed.count == 1, "\(list.output)")
            #expect(listed.first?["classification"] as? String == "programmed", "\(list.output)")
            #expect(listed.first?["version"] as? String == "1.0.0", "\(list.output)")
            #expect(listed.first?["port"] as? String == "1-3.2", "\(list.output)")
        }

        let recording = directory.appendingPathComponent("upgrade.jsonl").path
        let upgrade = try await Self.run(
            [
                Self.dfuhop.path, "upgrade", image, "--json", "--state-dir", directory.path, "--boot0-command", hook, "--record",
                recording
            ], state: state, simulate: detailed ? nil : "\(family):programmed", control: control)
        #expect(upgrade.status == 0, "\(upgrade.output)\(upgrade.errors)")
        let result = try #require(try EmulatedUSB.jsonLines(upgrade.output).last, "\(upgrade.output)")
        #expect(result["outcome"] as? String == "upgraded", "\(upgrade.output)")
        // Recorded through libusb, hidapi and real time (its ENTER_BOOTLOADER nonce included): replays as it ran. On the
        // part lines with example images only: an L4 run's real-time GETSTATUS stalls can change which hidraw node the
        // confirmation opens, and replay then reports "another device" (noted in docs/recordings.md).
        if detailed {
            let replay = await EmulatedUSB.runOffPool([Self.dfuhop.path, "replay", recording, "--json"])
            #expect(replay.status == 0, "\(replay.output)\(replay.errors)")
            #expect(replay.output.contains("\"outcome\":\"replayed\""), "\(replay.output)")
            let header = try String(contentsOfFile: recording, encoding: .utf8).prefix { $0 != "\n" }
            #expect(header.contains("\"clock\":\"system\""), "recorded in real time: \(header)")
        }
        #expect(result["oldVersion"] as? String == "1.0.0")
        #expect(result["newVersion"] as? String == "2.0.0")
        let phases = (result["phases"] as? [[String: Any]])?.compactMap { $0["phase"] as? String } ?? []
        #expect(
            phases.filter { $0 != "option-bytes" } == ["find", "plan", "enter", "flash", "leave", "confirm"],
            "\(upgrade.output)")

        let unit = try Self.unit(state)
        #expect(unit.currentMode == .application, "the new application runs")
        let expected = try ImageFile.read(path: image).normalized(granularity: unit.family.writeGranularity)
        for segment in expected.segments {
            #expect(unit.flashContents().read(segment.address, count: segment.bytes.count) == segment.bytes)
        }
        #expect(!unit.requestLog.contains { $0.isDestructive }, "no mass erase, no read-unprotect")
        #expect(unit.backupRegister(0) == 0, "the start-up code cleared the bootloader request")

        if detailed {
            let again = try await Self.run([Self.dfuhop.path, "list", "--json"], state: state, control: control)
            #expect(again.output.contains("\"version\":\"2.0.0\""), "\(again.output)")
        }
    }

    /// A blank G474 shows nothing on the bus; dfuhop reaches its ROM through --boot0-command, a shell hook
    /// that drives the peer's jig as a relay board would (the README's contract: DFUHOP_BOOT0=1 holds BOOT0
    /// through a reset, then releases it), then flashes, leaves, and confirms the application over HID.
    @Test func aBlankUnitIsUpgradedThroughTheBoot0HookOverUSB() async throws {
        let directory = try scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let state = directory.appendingPathComponent("unit.json").path
        let control = directory.appendingPathComponent("jig").path
        let image = Self.examples.appendingPathComponent("demo-g474-v2.hex").path
        let hookLog = directory.appendingPathComponent("hook.log").path
        let hook =
            "echo \"$DFUHOP_ACTION $DFUHOP_BOOT0 $DFUHOP_PORT\" >> \(hookLog); echo \"boot0 $DFUHOP_BOOT0; power-cycle; boot0 0\" > \(control)"

        let list = try await Self.run([Self.dfuhop.path, "list", "--json"], state: state, simulate: "g474:blank", control: control)
        let devices = try EmulatedUSB.jsonLines(list.output).last?["devices"] as? [[String: Any]]
        #expect(list.status == 0 && devices?.isEmpty == true, "a blank unit shows nothing: \(list.output)\(list.errors)")

        let refused = try await Self.run(
            [Self.dfuhop.path, "upgrade", image, "--state-dir", directory.path], state: state, control: control)
        // Nothing on the bus and no BOOT0 path: a blank unit cannot be told from none, "no unit" as everywhere.
        #expect(refused.status == 69, "without a BOOT0 path: exit 69, \(refused.errors)")

        let upgrade = try await Self.run(
            [Self.dfuhop.path, "upgrade", image, "--json", "--state-dir", directory.path, "--boot0-command", hook],
            state: state, control: control)
        #expect(upgrade.status == 0, "\(upgrade.output)\(upgrade.errors)")
        let result = try #require(try EmulatedUSB.jsonLines(upgrade.output).last, "\(upgrade.output)")
        #expect(result["outcome"] as? String == "upgraded", "\(upgrade.output)")
        #expect((result["unit"] as? [String: Any])?["classification"] as? String == "blank", "\(upgrade.output)")
        #expect(result["newVersion"] as? String == "2.0.0")

        let hookRuns = try String(contentsOfFile: hookLog, encoding: .utf8).split(separator: "\n")
        #expect(hookRuns.first?.hasPrefix("enter-rom 1") == true, "the hook raised BOOT0 first: \(hookRuns)")
        let unit = try Self.unit(state)
        #expect(unit.currentMode == .application)
        #expect(!unit.isBoot0High, "BOOT0 released, so the unit boots its application from now on")
        let expected = try ImageFile.read(path: image).normalized(granularity: 8)
        for segment in expected.segments {
            #expect(unit.flashContents().read(segment.address, count: segment.bytes.count) == segment.bytes)
        }
    }

    /// hidraw as hidapi sees it: the interface found by usage page, on its USB port, with the serial
    /// from HID_UNIQ; nothing to read before a request; two answers queued behind each other come out
    /// as two 64-byte reports (boundaries kept); a feature report the application does not have stalls.
    @Test func hidapiTalksToTheApplicationThroughEmulatedHidraw() async throws {
        let directory = try scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let state = directory.appendingPathComponent("unit.json").path
        let result = try await Self.run([EmulatedUSB.probe.path, "hid"], state: state, simulate: "g474:programmed")
        #expect(result.status == 0, "\(result.errors)")
        let line = try #require(try EmulatedUSB.jsonLines(result.output).first, "\(result.output)\(result.errors)")
        #expect(line["port"] as? String == "1-3.2")
        #expect(line["usagePage"] as? String == "FFDF")
        #expect(line["serial"] as? String == Hex.string(VirtualUnit.uid(index: 1)))
        #expect(line["numberedReports"] as? Bool == true)
        let steps = try #require(line["steps"] as? [[String: Any]])
        let outcomes = steps.map { "\($0["request"] ?? "") \($0["result"] ?? "")" }
        #expect(
            outcomes == [
                "read with nothing sent ok", "write GET_INFO #1 ok", "write GET_INFO #2 ok", "read answer #1 ok",
                "read answer #2 ok", "get feature report 3 stall"
            ], "\(outcomes)")
        #expect((steps[0]["bytes"] as? [Int]) == nil, "no report before a request")
        for (index, sequence) in [(3, 1), (4, 2)] {
            let report = steps[index]["bytes"] as? [Int] ?? []
            #expect(report.count == 64, "one whole report per read")
            #expect(Array(report.prefix(4)) == [0x02, 0x01, sequence, 0x01], "response report 0x02 to GET_INFO #\(sequence)")
        }
    }
}
