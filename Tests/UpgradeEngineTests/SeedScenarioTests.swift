import AppLink
import DeviceProfiles
import DfuSe
import FirmwareImage
import Foundation
import Testing
import USBTransport
import UpgradeEngine

@testable import VirtualDevice

/// The five forum threads dfuhop was born from (docs/seeds.md), each as an end-to-end upgrade on the
/// virtual device: the failure is made impossible, or obvious.
@Suite("Seeds, end to end")
struct SeedScenarioTests {
    static func jig(_ unit: VirtualUnit) -> Boot0Path {
        Boot0Path(description: "virtual jig", arrivalTimeout: .seconds(2)) { request in
            unit.setBoot0(request.action == .enterROM)
            unit.powerCycle()
            unit.setBoot0(false)
        }
    }

    static func file(_ image: NormalizedImage) -> FirmwareImage { FirmwareImage(format: .binary, segments: image.segments) }

    @Test("seed 000: the application is asked, writes the magic and resets into the ROM, which is proven to be the same unit")
    func seed000() async throws {
        let clock = VirtualClock()
        let unit = try SimulationSpec(family: .f407, state: .programmed).makeUnit(clock: clock)
        let result = try await UpgradeEngine(discovery: VirtualBus(units: [unit]), clock: clock)
            .upgrade(Self.file(try DemoImage.make(family: .f407, version: FirmwareVersion(major: 2, minor: 0, patch: 0))), source: "v2")
        #expect(result.outcome == .upgraded)
        #expect(result.before.dfuSerial == unit.romSerial, "the ROM serial predicted from the UID the application reported")
        #expect(unit.backupRegister(0) == 0, "start-up code cleared the magic, so the next reset boots the application")
    }

    @Test("seed 001: an H7 ROM jumps straight to the leave address, so dfuhop leaves to the reset handler")
    func seed001() async throws {
        let clock = VirtualClock()
        let unit = try SimulationSpec(family: .h753, state: .programmed).makeUnit(clock: clock)
        let image = try DemoImage.make(family: .h753, version: FirmwareVersion(major: 2, minor: 0, patch: 0))
        let result = try await UpgradeEngine(discovery: VirtualBus(units: [unit]), clock: clock).upgrade(Self.file(image), source: "v2")
        #expect(result.newVersion == FirmwareVersion(major: 2, minor: 0, patch: 0))
        let resetHandler = try #require(image.word(at: image.baseAddress! + 4))
        let leaveAddresses = unit.requestLog.compactMap { request -> UInt32? in
            if case .command(.setAddress(let address)) = request.kind { address } else { nil }
        }
        #expect(leaveAddresses.last == resetHandler)
    }

    @Test("seed 002: a firmware DfuSe whose layout marks its own sectors read-only gets a plan refusal naming the layout, nothing erased")
    func seed002() async throws {
        let clock = VirtualClock()
        let unit = VirtualUnit(
            family: .f407, uid: VirtualUnit.uid(index: 1), portPath: "1-1", clock: clock,
            firmwareLayout: "@Internal Flash  /0x08000000/03*016Ka,01*016Kg,01*064Kg,07*128Kg")
        unit.setBoot0(true)
        unit.powerCycle()
        var options = UpgradeEngine.Options()
        options.family = .f407
        do {
            _ = try await UpgradeEngine(discovery: VirtualBus(units: [unit]), clock: clock)
                .upgrade(
                    Self.file(try DemoImage.make(family: .f407, version: FirmwareVersion(major: 2, minor: 0, patch: 0))), source: "v2",
                    options: options)
            Issue.record("sectors the device marks read-only must not be planned")
        } catch let error as UpgradeError {
            #expect(error.phase == .plan)
            #expect(error.description.contains("0x08000000"))
        }
        #expect(unit.flashOperations == 0)
    }

    @Test("seed 003: a blank G474 that must run single-bank gets DBANK=0 (only with consent), resets, is re-entered by BOOT0 and flashed")
    func seed003() async throws {
        let profile = try ProductProfile.load(
            contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
                .appendingPathComponent("../../protocols/devices/example-g474-single-bank.json"))
        let clock = VirtualClock()
        let unit = try SimulationSpec(family: .g474, state: .blank).makeUnit(clock: clock)
        #expect(unit.flashMode.name == "dual bank", "factory DBANK=1")
        let image = try DemoImage.make(family: .g474, version: FirmwareVersion(major: 1, minor: 0, patch: 0), productID: 0x0DF1_0474)
        let engine = UpgradeEngine(discovery: VirtualBus(units: [unit]), clock: clock)
        var options = UpgradeEngine.Options()
        options.profiles = [profile]
        options.boot0 = Self.jig(unit)

        let refused = await #expect(throws: UpgradeError.self, "no option-byte write without the caller's consent") {
            _ = try await engine.upgrade(Self.file(image), source: "v1", options: options)
        }
        guard case .refused(.optionBytesNeedConsent(let held, _, _, allowed: false))? = refused?.kind else {
            throw FailClosedTests.Failure("expected the refusal that asks for consent, got \(String(describing: refused))")
        }
        #expect(held == ["DBANK=1"], "\(held)")
        #expect(unit.flashMode.name == "dual bank")
        #expect(unit.flashOperations == 0)

        options.writeOptionBytes = true
        let result = try await engine.upgrade(Self.file(image), source: "v1", options: options)
        #expect(result.outcome == .upgraded)
        #expect(result.before.classification == .blank)
        #expect(unit.flashMode.name == "single bank")
        #expect(result.plan?.layout.sectors.first?.size == 4096, "flashed with the single-bank layout the ROM then shows")
        #expect(unit.currentMode == .application)
    }

    @Test("seed 004: an L476 upgrade interrupted mid-programming is finished without writing any ECC word twice")
    func seed004() async throws {
        let clock = VirtualClock()
        let unit = try SimulationSpec(family: .l476, state: .programmed).makeUnit(clock: clock)
        unit.resetCounters()
        unit.setFaults(FaultPlan(powerLossAtFlashOperation: 20))
        let image = Self.file(try DemoImage.make(family: .l476, version: FirmwareVersion(major: 2, minor: 0, patch: 0)))
        let engine = UpgradeEngine(discovery: VirtualBus(units: [unit]), clock: clock)
        var options = UpgradeEngine.Options()
        options.boot0 = Self.jig(unit)
        // The journal tells the second run what the silent unit is (an L476, its serial and port).
        let journal = FileManager.default.temporaryDirectory.appendingPathComponent("dfuhop-seed004-\(UUID())")
        defer { try? FileManager.default.removeItem(at: journal) }
        options.journal = JournalStore(directory: journal)
        await #expect(throws: UpgradeError.self) { _ = try await engine.upgrade(image, source: "v2", options: options) }
        unit.setFaults(.none)
        unit.powerCycle()
        let result = try await engine.upgrade(image, source: "v2", options: options)
        #expect(result.newVersion == FirmwareVersion(major: 2, minor: 0, patch: 0))
        #expect(result.resumed?.step == .flashing)
        #expect(unit.corruptedWords.isEmpty)
    }
}
