import FirmwareImage
import ReasonSamples
import Testing
import UpgradeEngine

@testable import dfuhop

/// Issue 23: the engine gives reasons as data and words them neutrally; dfuhop's Failure words them for the
/// command line, naming the flag that is the way out, and keeps each kind's exit status.
@Suite("Failure: the engine's reasons in dfuhop's words")
struct FailureRenderingTests {
    /// The flag (or command) dfuhop names for `reason`, nil where no flag is the way out and the engine's
    /// words stand. The switch has no default: a new reason does not compile until its rendering is decided.
    static func expectedWords(_ reason: Refusal) -> String? {
        switch reason {
        case .downgrade, .otherBuild: "--allow-downgrade"
        case .otherThanAssumedProduct, .assumedProductContradicted, .unknownProduct: "--assume-product"
        case .familyMismatch, .needsFamily: "--family"
        case .unknownFamily: "--profile"
        case .optionBytesNeedConsent(_, _, _, let allowed): allowed ? "--boot0-command" : "--write-option-bytes"
        case .otherTargets: "--write-option-bytes"
        case .noApplication: "dfuhop flash IMAGE --leave"
        case .alreadyInROM: "dfuhop flash"
        case .otherProduct, .belowMinimumVersion, .otherUnit, .imageForOtherFamily, .emptyImage, .otherApplicationBase,
            .imageCheckFailed, .romLayoutUnreadable, .noFlashAlternate, .addressInNoSector, .boot0PinIgnored, .noUniqueID,
            .romOfOtherFamily, .uncheckableOptionByte, .noOptionByteMemory, .noResetHandler:
            nil
        }
    }

    @Test func everyReasonIsSampled() {
        #expect(Set(ReasonSamples.samples.map(ReasonSamples.caseIndex)) == Set(0..<ReasonSamples.caseCount))
    }

    @Test("a refusal is exit 80, its flag named where one is the way out, else the engine's words", arguments: ReasonSamples.samples)
    func refusal(_ reason: Refusal) {
        let failure = Failure.from(UpgradeError(.refused(reason), phase: .plan, hint: reason.hint))
        #expect(failure.status == .refused && failure.status.rawValue == 80)
        let hint = failure.hint ?? ""
        #expect(hint.hasPrefix("nothing"), "\(hint)")
        if let words = Self.expectedWords(reason) {
            #expect((failure.message + " " + hint).contains(words), "\(reason): \(failure.message) / \(hint)")
        } else {
            #expect(failure.message == "plan: \(reason.description)")
            #expect(hint == reason.hint)
        }
    }

    @Test("a next step the engine names neutrally is dfuhop's flag or command in the hint")
    func nextSteps() {
        let steps: [(NextStep, String)] = [
            (.nameOneUnit(orAll: true), "--all"), (.nameOneUnit(orAll: false), "--unit"), (.nameAListedUnit, "dfuhop list"),
            (.connect(inROM: true), "dfuhop enter-dfu"), (.connect(inROM: false), "dfuhop list"), (.plugInOrBoot0, "--boot0-command"),
            (.readUnprotect, "--read-unprotect"), (.stateProduct, "--assume-product"), (.namePort("1-3"), "--unit 1-3"),
            (.checkDeviceAccess, "dfuhop doctor")
        ]
        for (step, words) in steps {
            let error = UpgradeError(.noUnit(.any), phase: .find, hint: "nothing was touched; \(step.clause)", next: step)
            let hint = Failure.from(error).hint ?? ""
            #expect(hint.contains(words), "\(step): \(hint)")
            #expect(hint != error.hint, "\(step): the engine's words stayed: \(hint)")
        }
    }

    /// The exit status each typed kind keeps (docs/guarantees.md). No default: a new kind does not compile
    /// until its status is decided here.
    static func expectedStatus(_ kind: UpgradeError.Kind) -> Int32? {
        switch kind {
        case .refused, .readProtected: 80
        case .invalidRequest: 64
        case .noUnit: 69
        case .ambiguous: 84
        case .busy: 75
        case .needsBoot0: 86
        case .notConfirmed: 83
        case .untrusted: 87
        case .cancelled, .unexpected, .journal, .image, .flash, .application, .transport: nil
        }
    }

    @Test("each typed kind keeps its exit status, and its sentence is the engine's")
    func exitStatuses() {
        for kind in ReasonSamples.kinds {
            let failure = Failure.from(UpgradeError(kind, phase: .find, hint: "nothing was touched"))
            #expect(failure.status.rawValue == Self.expectedStatus(kind), "\(kind): \(failure.status)")
            #expect(failure.message == UpgradeError(kind, phase: .find, hint: "").description)
        }
    }
}
