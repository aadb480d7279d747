import ReasonSamples
import Testing
import USBTransport

@testable import UpgradeEngine

/// Issue 23: the engine's reasons are data, and its text names no command-line flag or command, since an
/// embedder of the library has neither. The property holds over every case of every reason type.
@Suite("Refusal: library text names no flag")
struct RefusalTextTests {
    /// A command-line flag or a dfuhop command named in `text`, if any.
    static func cliWords(in text: String) -> String? {
        if let range = text.range(of: #"--[a-z]"#, options: .regularExpression) { return String(text[range.lowerBound...]) }
        if let range = text.range(of: "`dfuhop") { return String(text[range.lowerBound...]) }
        return nil
    }

    @Test func everyCaseIsSampled() {
        #expect(Set(ReasonSamples.samples.map(ReasonSamples.caseIndex)) == Set(0..<ReasonSamples.caseCount))
    }

    @Test(
        "a refusal's sentence and hint name no flag or command, and the hint says what was left untouched",
        arguments: ReasonSamples.samples)
    func refusalText(_ reason: Refusal) {
        for text in [reason.description, reason.hint] {
            #expect(!text.isEmpty)
            #expect(Self.cliWords(in: text) == nil, "\(reason): \(text)")
        }
        #expect(reason.hint.hasPrefix("nothing"), "\(reason.hint)")
        let error = UpgradeError(.refused(reason), phase: .plan, hint: reason.hint)
        #expect(error.description == "plan: \(reason.description)")
    }

    @Test("a next step's clause names no flag or command", arguments: ReasonSamples.steps)
    func nextStepText(_ step: NextStep) {
        #expect(!step.clause.isEmpty)
        #expect(Self.cliWords(in: step.clause) == nil, "\(step): \(step.clause)")
    }

    @Test("the other typed kinds: their sentence names no flag or command")
    func kindText() {
        for kind in ReasonSamples.kinds {
            let text = UpgradeError(kind, phase: .find, hint: "").description
            #expect(text.count > "find: ".count)
            #expect(Self.cliWords(in: text) == nil, "\(text)")
        }
    }

    @Test("option-byte values are shown in name order, whatever the dictionary's order")
    func optionBytesInNameOrder() {
        let text = Unconfirmed.optionBytes(read: ["nSWBOOT0": 1, "nBOOT0": 1], wanted: ["nSWBOOT0": 0, "nBOOT0": 1]).description
        #expect(text == "the option bytes read nBOOT0=1, nSWBOOT0=1 after the write, not nBOOT0=1, nSWBOOT0=0")
    }

    @Test("the OS refusing the device: the engine's hint names the step, not dfuhop's doctor command")
    func accessDeniedHint() {
        let error = UpgradeError.wrap(TransportError(.accessDenied, device: "0483:df11 at 1-3", operation: "open"), phase: .find)
        #expect(error.nextStep == .checkDeviceAccess)
        #expect(error.hint.contains(NextStep.checkDeviceAccess.clause))
        #expect(Self.cliWords(in: error.hint) == nil, "\(error.hint)")
    }
}
