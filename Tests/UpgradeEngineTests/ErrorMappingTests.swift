import AppLink
import DeviceProfiles
import DfuSe
import FirmwareImage
import Foundation
import Testing
import USBTransport

@testable import UpgradeEngine
@testable import VirtualDevice

/// `UpgradeError.wrap`: each layer's error keeps its meaning. A cancellation is a cancellation (exit 85)
/// whichever layer saw it, and an error no layer describes is a bug (exit 70), never a refusal.
@Suite("Errors of the layers, mapped by phase")
struct ErrorMappingTests {
    struct Unknown: Error {}

    static let cancelledOnTheWire = TransportError(.cancelled, device: "virtual g474", operation: "read report")

    static func isCancelled(_ error: UpgradeError) -> Bool {
        if case .cancelled = error.kind { true } else { false }
    }

    @Test("a transport cancelled while it waited is a cancellation, in every phase", arguments: UpgradePhase.allCases)
    func transportCancellation(phase: UpgradePhase) {
        let error = UpgradeError.wrap(Self.cancelledOnTheWire, phase: phase)
        #expect(Self.isCancelled(error))
        #expect(error.phase == phase)
    }

    @Test("an application exchange cut by cancellation is a cancellation, not a cable fault")
    func applicationCancellation() {
        let error = UpgradeError.wrap(AppLinkError(.transport(Self.cancelledOnTheWire), operation: "GET_INFO"), phase: .find)
        #expect(Self.isCancelled(error))
        #expect(error.hint == "nothing was touched")
    }

    @Test("other transport failures stay transport failures")
    func transportFailure() {
        let error = UpgradeError.wrap(TransportError(.stall, device: "d", operation: "o"), phase: .flash)
        guard case .transport(let inner) = error.kind else {
            Issue.record("expected a transport error, got \(error)")
            return
        }
        #expect(inner.kind == .stall)
    }

    @Test("an error no layer describes is reported as a bug with its phase, never as a refusal", arguments: [UpgradePhase.plan, .flash])
    func unknownError(phase: UpgradePhase) {
        let error = UpgradeError.wrap(Unknown(), phase: phase)
        guard case .unexpected(let text) = error.kind else {
            Issue.record("expected .unexpected, got \(error)")
            return
        }
        #expect(text.contains("Unknown"))
        #expect(error.phase == phase)
        #expect(error.hint.contains("bug"))
        #expect(!error.hint.contains("nothing was written"))
    }

    @Test("cancelling while ENTER_BOOTLOADER waits on the HID transport ends the upgrade as cancelled in the enter phase")
    func cancelledWhileEntering() async throws {
        let clock = VirtualClock()
        let (target, _, bus) = try FaultCampaignTests.bench(.g474, clock: clock)
        let file = try FaultCampaignTests.image(.g474, 2).0
        let journal = FileManager.default.temporaryDirectory.appendingPathComponent("dfuhop-cancel-\(UUID())")
        defer { try? FileManager.default.removeItem(at: journal) }
        let engine = UpgradeEngine(discovery: bus, clock: clock) { event in
            if case .phaseStarted(.enter) = event { withUnsafeCurrentTask { $0?.cancel() } }
        }
        let options = FaultCampaignTests.options(bus, journal: journal)
        let outcome = await Task { () -> UpgradeError? in
            do throws(UpgradeError) {
                _ = try await engine.upgrade(file, source: "v2.hex", options: options)
                return nil
            } catch {
                return error
            }
        }.value
        let error = try #require(outcome)
        #expect(Self.isCancelled(error), "\(error)")
        #expect(error.phase == .enter)
        #expect(target.mode == .application, "the unit never left its application")
    }
}
