import Foundation
import TestSupport
import Testing

/// Issues 20 and 21 at the command line: the operator's statement, the rehearsal faults, signing on
/// `flash` and the station's policy, each judged by the exit code and by the virtual unit's own state.
@Suite("CLI: fail closed and signed on every path", .timeLimit(.minutes(5)))
struct FailClosedCommandTests {
    static let examples = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("protocols/examples")
    static func example(_ name: String) -> String { examples.appendingPathComponent(name).path }

    /// A profile for the demo G474 product that requires signed packages.
    static func signingProfile(in directory: TemporaryDirectory) throws -> String {
        let path = directory.path("signed-g474.json")
        let json = """
            {"format": 1, "id": "signed-g474", "name": "dfuhop demo (signed)", "family": "g474",
             "application": {"usbVendorID": "0x1209", "usbProductID": "0x0001", "hidUsagePage": "0xFFDF",
                             "hidUsage": "0x0001", "protocol": "dfuhop", "imageProductID": "0x0DF00474"},
             "dfu": {"usbVendorID": "0x0483", "usbProductID": "0xDF11"},
             "boot0": {"method": "prompt", "instructions": "Hold BOOT0 and replug."}, "reenumerationTimeoutMs": 10000,
             "signing": {"required": true, "publicKeys": ["11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="]}}
            """
        try Data(json.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test("flash refuses an unsigned image of a signing product (87, nothing written); --allow-unsigned writes it and says so")
    func flashSigningPolicy() async throws {
        let directory = try TemporaryDirectory()
        let state = directory.path("unit.json")
        let profile = try Self.signingProfile(in: directory)
        let image = Self.example("demo-g474-v2.hex")
        let refused = try await Dfuhop.run(
            "flash", image, "--profile", profile, "--simulate", "g474:dfu", "--simulate-state", state, "--json")
        #expect(refused.status == 87, "\(refused)")
        let read = try await Dfuhop.run(
            "read", "--address", "0x08000000", "--length", "8", "-o", directory.path("head.bin"), "--simulate-state", state)
        #expect(read.status == 0, "\(read)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: directory.path("head.bin"))) == Data(repeating: 0xFF, count: 8))
        let allowed = try await Dfuhop.run(
            "flash", image, "--profile", profile, "--allow-unsigned", "--simulate-state", state, "--json")
        #expect(allowed.status == 0, "\(allowed)")
        #expect(try allowed.result().allowedUnsigned == true)
        #expect(allowed.stdout.contains("not signed"))
    }

    @Test("the station's policy refuses every unsigned write, blank units included; a malformed policy file is 78")
    func stationPolicy() async throws {
        let directory = try TemporaryDirectory()
        let image = Self.example("demo-g474-v2.hex")
        var environment = ProcessInfo.processInfo.environment
        environment["DFUHOP_REQUIRE_SIGNED"] = "1"
        let refused = try await Dfuhop.run(
            ["upgrade", image, "--simulate", "g474:blank", "--state-dir", directory.path("state"), "--json"], environment: environment)
        #expect(refused.status == 87, "\(refused)")
        environment["DFUHOP_REQUIRE_SIGNED"] = nil
        try FileManager.default.createDirectory(atPath: directory.path("state"), withIntermediateDirectories: true)
        try Data(#"{"requireSignedPackages": true}"#.utf8).write(to: URL(fileURLWithPath: directory.path("state/policy.json")))
        let byFile = try await Dfuhop.run(
            ["upgrade", image, "--simulate", "g474:programmed", "--state-dir", directory.path("state")], environment: environment)
        #expect(byFile.status == 87, "\(byFile)")
        try Data(#"{"requireSigned": true}"#.utf8).write(to: URL(fileURLWithPath: directory.path("state/policy.json")))
        let malformed = try await Dfuhop.run(
            ["upgrade", image, "--simulate", "g474:programmed", "--state-dir", directory.path("state")], environment: environment)
        #expect(malformed.status == 78, "\(malformed)")
    }

    @Test("--simulate-fault rehearses a failure: a silent unit is reached through BOOT0, a stall is read again, a bad spec is 64")
    func rehearsedFaults() async throws {
        let directory = try TemporaryDirectory()
        let image = Self.example("demo-g474-v2.hex")
        let silent = try await Dfuhop.run(
            "upgrade", image, "--simulate", "g474:programmed", "--simulate-fault", "silent,stall@3*3", "--unit", "1-1",
            "--state-dir", directory.path("state"), "--json")
        #expect(silent.status == 0, "\(silent)")
        #expect(silent.stdout.contains("reading again"), "\(silent)")
        let bad = try await Dfuhop.run("upgrade", image, "--simulate", "g474:programmed", "--simulate-fault", "stall@zero")
        #expect(bad.status == 64, "\(bad)")
        let real = try await Dfuhop.run("list", "--simulate-fault", "silent")
        #expect(real.status == 64, "\(real)")
    }

    @Test("a silent unit whose flash was rehearsed torn at another station: the hint's --assume-product finishes it")
    func assumeProductFinishes() async throws {
        let directory = try TemporaryDirectory()
        let state = directory.path("unit.json")
        let image = Self.example("demo-g474-v2.hex")
        let first = try await Dfuhop.run(
            "upgrade", image, "--simulate", "g474:programmed", "--simulate-state", state, "--simulate-fault", "power-loss@flash-op:1",
            "--state-dir", directory.path("station-a"))
        #expect(first.status != 0, "\(first)")
        let other = try await Dfuhop.run(
            "upgrade", image, "--simulate-state", state, "--unit", "1-1", "--assume-product", "0x0DF00474",
            "--state-dir", directory.path("station-b"), "--json")
        #expect(other.status == 0, "\(other)")
        #expect(try other.result().newVersion == "2.0.0")
        let wrong = try await Dfuhop.run(
            "upgrade", Self.example("demo-f407-v2.hex"), "--simulate", "f407:programmed", "--simulate-fault", "silent", "--unit", "1-1",
            "--assume-product", "0x0DF00474", "--state-dir", directory.path("station-c"))
        #expect(wrong.status != 0, "\(wrong)")
    }
}

/// Issue 20, finding 6: exit 69 promises an untouched unit. The cable is pulled at every transfer of an
/// upgrade that writes option bytes; whatever the exit, 69 only ever comes with the option bytes as they were.
@Suite("CLI: exit 69 only for an untouched unit", .timeLimit(.minutes(10)))
struct UntouchedExitTests {
    @Test(
        "a unit that vanishes after its option bytes were written is never reported with 69",
        arguments: Array(stride(from: 1, through: 120, by: 7)))
    func vanishedAfterOptionBytes(transfer: Int) async throws {
        let directory = try TemporaryDirectory()
        let state = directory.path("unit.json")
        let image = FailClosedCommandTests.example("demo-g474-v2.hex")
        let create = try await Dfuhop.run("info", "--simulate", "g474-single:programmed", "--simulate-state", state)
        #expect(create.status == 0, "\(create)")
        let before = try Self.optionBytes(state)
        let run = try await Dfuhop.run(
            "upgrade", image, "--simulate-state", state, "--write-option-bytes", "--boot0-timeout", "2",
            "--simulate-fault", "disconnect@\(transfer)", "--state-dir", directory.path("journal"))
        if run.status == 69 {
            #expect(try Self.optionBytes(state) == before, "transfer \(transfer): exit 69 after the option bytes changed\n\(run)")
        }
    }

    static func optionBytes(_ state: String) throws -> String {
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: state))) as? [String: Any]
        return object?["optionBytes"] as? String ?? ""
    }
}
