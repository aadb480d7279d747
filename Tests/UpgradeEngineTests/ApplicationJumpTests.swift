import DeviceProfiles
import FirmwareImage
import Testing
import UpgradeEngine

@testable import VirtualDevice

/// F04x/F070x6 and L0: a jump from the application to the ROM goes back to user flash (AN2606), so ENTER
/// cannot ask the application; it takes the BOOT0 path, or refuses before anything is sent.
@Suite("Entry where the application cannot jump", .timeLimit(.minutes(10)))
struct ApplicationJumpTests {
    static let lines = McuFamily.all.filter { !$0.applicationCanJumpToROM }

    @Test("without a BOOT0 path: needsBoot0 naming AN2606, and no ENTER_BOOTLOADER sent", arguments: lines)
    func refused(family: McuFamily) async throws {
        let (unit, bus, clock) = try UpgradeEngineTests.programmed(family)
        let engine = UpgradeEngine(discovery: bus, clock: clock)
        do {
            _ = try await engine.upgrade(try UpgradeEngineTests.image(family, 2), source: "v2")
            Issue.record("the upgrade went ahead")
        } catch let error as UpgradeError {
            guard case .needsBoot0(let text) = error.kind else {
                Issue.record("expected needsBoot0, got \(error)")
                return
            }
            #expect(text.contains("AN2606") && text.contains("cannot jump"))
        }
        #expect(!unit.requestLog.contains { if case .hidReport(0x10) = $0.kind { true } else { false } })
        #expect(unit.currentMode == .application)
    }

    @Test("with a BOOT0 path: upgraded through it, no ENTER_BOOTLOADER sent", arguments: lines)
    func upgradedByBoot0(family: McuFamily) async throws {
        let (unit, bus, clock) = try UpgradeEngineTests.programmed(family)
        var options = UpgradeEngine.Options()
        options.boot0 = Boot0Path(description: "virtual jig", arrivalTimeout: .seconds(5)) { request in
            unit.setBoot0(request.action == .enterROM)
            unit.powerCycle()
            unit.setBoot0(false)
        }
        let result = try await UpgradeEngine(discovery: bus, clock: clock).upgrade(
            try UpgradeEngineTests.image(family, 2), source: "v2", options: options)
        #expect(result.outcome == .upgraded)
        #expect(!unit.requestLog.contains { if case .hidReport(0x10) = $0.kind { true } else { false } })
        #expect(unit.currentMode == .application)
    }
}
