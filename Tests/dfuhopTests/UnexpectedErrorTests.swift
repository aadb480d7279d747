import Testing
import USBTransport

@testable import UpgradeEngine
@testable import dfuhop

/// Exit 70 cannot come from a simulated run (every layer's error is typed and mapped); what makes it is
/// an error no layer describes. It must be called a bug, with the phase, and never a refusal.
@Suite("70: an error no layer describes")
struct UnexpectedErrorTests {
    struct Undescribed: Error {}

    @Test(arguments: [UpgradePhase.plan, .flash, .confirm])
    func anUndescribedErrorIsABugWithItsPhaseAndExit70(phase: UpgradePhase) {
        let error = UpgradeError.wrap(Undescribed(), phase: phase)
        guard case .unexpected = error.kind else {
            Issue.record("\(error.kind) is not .unexpected")
            return
        }
        #expect(error.phase == phase)
        #expect(error.hint.contains("bug"), "\(error.hint)")
        let failure = Failure.from(error)
        #expect(failure.status == .internalError && failure.status.rawValue == 70)
        #expect(Failure.from(Undescribed()).status.rawValue == 70)
    }

    /// 77 needs a device node the OS refuses; as root (CI) no node is refused. What is checked here is the
    /// mapping the real backends feed: libusb's LIBUSB_ERROR_ACCESS becomes `.accessDenied` (LibUSBBackendTests),
    /// and that is exit 77 with `dfuhop doctor` as the hint.
    @Test func accessDeniedIsExit77AndPointsToDoctor() {
        let failure = Failure.from(TransportError(.accessDenied, device: "0483:df11 at 1-3.2", operation: "open"))
        #expect(failure.status.rawValue == 77)
        #expect((failure.hint ?? "").contains("doctor"), "\(failure.hint ?? "")")
    }
}
