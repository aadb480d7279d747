import DeviceProfiles
import Testing

@testable import UpgradeEngine

/// `UpgradeEngine.leaveAddress`: the one wrapper of the family's leave rule (seed 001) that the upgrade's
/// plan, `flash --leave` and `leave` use, and its refusal.
@Suite("The leave rule, refused in one place")
struct LeaveRuleTests {
    @Test("a vector-table ROM is given the table; a direct-jump ROM the Thumb reset handler")
    func addresses() throws {
        let g474 = try UpgradeEngine.leaveAddress(family: .g474, vectorTable: 0x0800_4000, resetHandler: nil, of: "app.hex", phase: .plan)
        #expect(g474 == 0x0800_4000)
        let h753 = try UpgradeEngine.leaveAddress(
            family: .h753, vectorTable: 0x0800_0000, resetHandler: 0x0800_0201, of: "app.hex", phase: .plan)
        #expect(h753 == 0x0800_0201)
    }

    @Test(
        "a direct-jump ROM and no Thumb reset handler: refused, naming the image, with the hint of the phase",
        arguments: [(UpgradePhase.plan, "nothing was touched"), (.leave, "nothing was sent to leave DFU")])
    func refusal(phase: UpgradePhase, hint: String) {
        for reset: UInt32? in [nil, 0x0800_0200, 0xFFFF_FFFF] {
            do {
                _ = try UpgradeEngine.leaveAddress(
                    family: .h753, vectorTable: 0x0800_0000, resetHandler: reset, of: "app.hex", phase: phase)
                Issue.record("reset handler \(String(describing: reset)) was accepted")
            } catch {
                guard case .refused(let reason) = error.kind else {
                    Issue.record("expected a refusal, got \(error)")
                    continue
                }
                #expect(reason == .noResetHandler(owner: "app.hex", family: McuFamily.h753.name))
                #expect(reason.description.hasPrefix("app.hex has no Thumb reset handler"))
                #expect(error.phase == phase)
                #expect(error.hint.hasPrefix(hint))
            }
        }
    }
}
