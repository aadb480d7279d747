import AppLink
import DeviceProfiles
import DfuSe
import FirmwareImage
import Foundation
import HexFormat
import Testing
import USBTransport
import UpgradeEngine

@testable import VirtualDevice

/// Every hint is a promise: for each way an upgrade fails, the test does what the hint says — and only
/// that — and the next run must succeed or end in a different, clear state, never the same failure.
@Suite("Hints lead somewhere", .timeLimit(.minutes(10)))
struct HintTests {
    /// A failure scenario: how to set it up, and what following its hint means on the bench.
    struct Scenario: CustomStringConvertible, Sendable {
        var name: String
        /// Arms the failure on the bench and returns the options of the first run.
        var arm: @Sendable (Bench) throws -> UpgradeEngine.Options
        var description: String { name }
    }

    final class Bench: @unchecked Sendable {
        let clock = VirtualClock()
        let target: VirtualUnit
        let bystander: VirtualUnit
        let bus: VirtualBus
        let journal = FileManager.default.temporaryDirectory.appendingPathComponent("dfuhop-hint-\(UUID())")
        var file: FirmwareImage
        var lock: UnitLock?
        /// The unit never comes back after the next leave (its application does not start by itself).
        var armNeverReturnAtLeave = false
        /// The operator presses Ctrl-C while the first block is written (the run's task is cancelled).
        var cancelWhileWriting = false
        /// The cable is pulled at the first transfer of the option-byte phase.
        var pullCableAtOptionBytes = false

        init(family: McuFamily = .g474) throws {
            (target, bystander, bus) = try FaultCampaignTests.bench(family, clock: clock)
            file = try FaultCampaignTests.image(family, 2).0
        }

        deinit { try? FileManager.default.removeItem(at: journal) }

        var options: UpgradeEngine.Options { FaultCampaignTests.options(bus, journal: journal) }

        func upgrade(_ options: UpgradeEngine.Options) async -> Result<UpgradeResult, UpgradeError> {
            let target = self.target
            let arm = armNeverReturnAtLeave
            let cancel = cancelWhileWriting
            let pull = pullCableAtOptionBytes
            armNeverReturnAtLeave = false
            cancelWhileWriting = false
            pullCableAtOptionBytes = false
            return await upgradeInOwnTask(file, source: "v2.hex", options: options, discovery: bus, clock: clock) { event in
                if arm, case .phaseStarted(.leave) = event { target.setFaults(FaultPlan(neverReturnAfterReset: true)) }
                if cancel, case .flash(.bytesWritten) = event { cancelCurrentRun() }
                if pull, case .phaseStarted(.optionBytes) = event {
                    target.setFaults(FaultPlan(disconnectAtTransfer: target.controlTransfers + 3))
                }
            }
        }
    }

    static let scenarios: [Scenario] = [
        Scenario(name: "downgrade") { bench in
            bench.file = try FaultCampaignTests.image(.g474, 0).0
            return bench.options
        },
        Scenario(name: "two units, none named") { bench in
            var options = bench.options
            options.unit = nil
            return options
        },
        Scenario(name: "a blank unit and no BOOT0 path") { bench in
            bench.target.eraseDirectly()
            bench.target.powerCycle()
            var options = bench.options
            options.boot0 = nil
            options.family = .g474
            return options
        },
        Scenario(name: "read protection level 1") { bench in
            bench.target.lock.withLock { bench.target.optionBytes[bench.target.family.optionBytes.readProtectionByteOffset] = 0x55 }
            return bench.options
        },
        Scenario(name: "journal directory unwritable") { bench in
            try Data().write(to: bench.journal)
            return bench.options
        },
        Scenario(name: "another process holds the unit") { bench in
            bench.lock = try JournalStore(directory: bench.journal).lock(Hex.string(bench.target.uid))
            return bench.options
        },
        Scenario(name: "power lost while programming") { bench in
            bench.target.setFaults(FaultPlan(powerLossAtFlashOperation: 3))
            return bench.options
        },
        Scenario(name: "the unit comes back on another port") { bench in
            bench.target.setFaults(FaultPlan(returnPort: "1-3"))
            return bench.options
        },
        Scenario(name: "the application does not come back after leaving DFU") { bench in
            var options = bench.options
            options.boot0 = nil
            bench.armNeverReturnAtLeave = true
            return options
        },
        Scenario(name: "cancelled by the operator while writing") { bench in
            bench.cancelWhileWriting = true
            return bench.options
        },
        Scenario(name: "an image linked for another address") { bench in
            let image = try DemoImage.make(family: .g474, version: FirmwareVersion(major: 2, minor: 0, patch: 0), size: 12 * 1024)
            let moved = image.segments.map { Segment(address: $0.address + 0x4000, bytes: $0.bytes) }
            bench.file = FirmwareImage(format: .binary, segments: moved)
            return bench.options
        },
        Scenario(name: "option bytes the product needs, without consent") { bench in
            let profile = try ProductProfile.load(
                contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
                    .appendingPathComponent("../../protocols/devices/example-g474-single-bank.json"))
            let image = try DemoImage.make(
                family: .g474, version: FirmwareVersion(major: 2, minor: 0, patch: 0), size: 12 * 1024,
                productID: 0x0DF1_0474)
            bench.file = FirmwareImage(format: .binary, segments: image.segments)
            bench.target.eraseDirectly()
            bench.target.powerCycle()
            var options = bench.options
            options.profiles = [profile]
            options.family = .g474
            return options
        },
        Scenario(name: "power lost while the option bytes are written") { bench in
            let profile = try ProductProfile.load(
                contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
                    .appendingPathComponent("../../protocols/devices/example-g474-single-bank.json"))
            let image = try DemoImage.make(
                family: .g474, version: FirmwareVersion(major: 2, minor: 0, patch: 0), size: 12 * 1024,
                productID: 0x0DF1_0474)
            bench.file = FirmwareImage(format: .binary, segments: image.segments)
            bench.pullCableAtOptionBytes = true
            bench.target.eraseDirectly()
            bench.target.powerCycle()
            var options = bench.options
            options.profiles = [profile]
            options.family = .g474
            options.writeOptionBytes = true
            return options
        },
        Scenario(name: "another product's image") { bench in
            let other = try DemoImage.make(
                family: .g474, version: FirmwareVersion(major: 2, minor: 0, patch: 0), size: 12 * 1024,
                productID: 0x1234_5678)
            bench.file = FirmwareImage(format: .binary, segments: other.segments)
            return bench.options
        }
    ]

    @Test("following the hint ends in success or a different, clear state", arguments: scenarios)
    func followTheHint(_ scenario: Scenario) async throws {
        let bench = try Bench()
        var options = try scenario.arm(bench)
        let first = await bench.run(options)
        guard case .failure(let error) = first else {
            Issue.record("\(scenario): the first run did not fail: \(first)")
            return
        }
        let hint = error.hint
        #expect(!hint.isEmpty, "\(scenario): a failure without a hint")
        let followed = try await Self.follow(hint, error: error, bench: bench, options: &options)
        guard followed else {
            // A final hint: it must not promise that running again helps.
            #expect(
                !hint.contains("run the same command again") && !hint.contains("run again"),
                "\(scenario): a hint that promises a rerun must be followable: \(hint)")
            return
        }
        let second = await bench.run(options)
        print("hint: \(scenario): \(error) → hint \"\(hint)\" → \((try? second.get()).map { "\($0.outcome)" } ?? "\(second)")")
        switch second {
        case .success(let result):
            #expect(result.outcome == .upgraded || result.outcome == .upToDate, "\(scenario): \(result.outcome)")
            #expect(bench.target.currentMode == .application, "\(scenario): the unit runs its application")
        case .failure(let again):
            #expect(
                again.description != error.description || again.hint != hint,
                "\(scenario): following \"\(hint)\" led to the same failure: \(again)")
        }
    }

    /// Does what the hint says on the bench; false when the hint asks for nothing a run can do (a
    /// different image, a firmware fix): a final state.
    static func follow(_ hint: String, error: UpgradeError, bench: Bench, options: inout UpgradeEngine.Options) async throws -> Bool {
        var acted = false
        switch error.kind {
        case .refused(.downgrade), .refused(.otherBuild):
            options.allowDowngrade = true
            acted = true
        case .refused(.optionBytesNeedConsent(_, _, _, allowed: false)):
            options.writeOptionBytes = true
            acted = true
        case .refused(.optionBytesNeedConsent(_, _, _, allowed: true)):
            options.boot0 = FaultCampaignTests.options(bench.bus, journal: bench.journal).boot0
            acted = true
        default: break
        }
        // The engine's hints name no flag (issue 23): the step is read from `nextStep`, as a front end does.
        #expect(!hint.contains("--"), "a library hint names a flag: \(hint)")
        if case .namePort(let port)? = error.nextStep {
            options.unit = port
            acted = true
        }
        if error.nextStep == .nameOneUnit(orAll: true) || error.nextStep == .nameOneUnit(orAll: false) {
            options.unit = bench.target.portPath
            acted = true
        }
        if error.nextStep == .plugInOrBoot0 || hint.contains("hold BOOT0") {
            options.boot0 = FaultCampaignTests.options(bench.bus, journal: bench.journal).boot0
            acted = true
        }
        if error.nextStep == .readUnprotect {
            try await readUnprotect(bench)
            options.boot0 = FaultCampaignTests.options(bench.bus, journal: bench.journal).boot0
            options.family = bench.target.family
            acted = true
        }
        if hint.contains("fix the journal directory") {
            try FileManager.default.removeItem(at: bench.journal)
            acted = true
        }
        if hint.contains("wait for it to finish") {
            bench.lock?.release()
            acted = true
        }
        if hint.contains("power-cycle the unit") {
            bench.target.setFaults(.none)
            bench.target.powerCycle()
            acted = true
        }
        if hint.contains("run the same command again") || hint.contains("run again") {
            bench.target.setFaults(.none)
            if bench.target.currentMode == .off { bench.target.powerCycle() }
            acted = true
        }
        return acted
    }

    /// `dfuhop enter-dfu`, then `dfuhop erase --read-unprotect`, on the bench.
    static func readUnprotect(_ bench: Bench) async throws {
        let engine = UpgradeEngine(discovery: bench.bus, clock: bench.clock)
        var options = UpgradeEngine.Options()
        options.unit = bench.target.portPath
        let (_, rom) = try await engine.enterDFU(options: options)
        let transport = try await bench.bus.openDFU(rom)
        let client = try DfuSeClient(transport: transport, clock: bench.clock, quirks: bench.target.family.quirks)
        _ = try await client.readUnprotect(.operatorRequestedFullWipe)
        await transport.close()
    }
}

extension HintTests.Bench {
    func run(_ options: UpgradeEngine.Options) async -> Result<UpgradeResult, UpgradeError> { await upgrade(options) }
}
