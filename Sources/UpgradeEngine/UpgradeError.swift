import AppLink
import DfuSe
import FirmwareImage
import USBTransport

/// The one error type of the workflow: what stopped it, in which phase, and one sentence a technician
/// can act on. Errors of the layers below are carried, not flattened.
public struct UpgradeError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable {
        /// The image or request cannot be right for this unit.
        case refused(String)
        case noUnit(String)
        case ambiguous(String)
        /// Another process holds the unit's lock.
        case busy(String)
        /// The unit needs the BOOT0 path, and none is configured (or it failed).
        case needsBoot0(String)
        /// The unit did not come back as expected.
        case notConfirmed(String)
        case journal(JournalError)
        case image(ImageError)
        case flash(DfuSeError)
        case application(AppLinkError)
        case transport(TransportError)
    }

    public var kind: Kind
    public var phase: UpgradePhase
    public var hint: String

    public init(_ kind: Kind, phase: UpgradePhase, hint: String) {
        self.kind = kind
        self.phase = phase
        self.hint = hint
    }

    public var description: String {
        let what: String = switch kind {
        case .refused(let text), .noUnit(let text), .ambiguous(let text), .busy(let text), .needsBoot0(let text),
             .notConfirmed(let text): text
        case .journal(let error): error.description
        case .image(let error): error.description
        case .flash(let error): error.description
        case .application(let error): error.description
        case .transport(let error): error.description
        }
        return "\(phase): \(what)"
    }

    /// Wraps whatever a layer threw during `phase`; the hint says what state the unit is in.
    static func wrap(_ error: any Error, phase: UpgradePhase) -> UpgradeError {
        let untouched = phase <= .plan
        switch error {
        case let error as UpgradeError: return error
        case let error as DfuSeError:
            return UpgradeError(.flash(error), phase: phase, hint: phase >= .optionBytes
                ? "the unit is recoverable through its ROM: run the same command again to finish"
                : "run the same command again")
        case let error as AppLinkError:
            return UpgradeError(.application(error), phase: phase, hint: untouched
                ? "nothing was written; check the cable and run the same command again"
                : "check the cable and run the same command again")
        case let error as TransportError:
            return UpgradeError(.transport(error), phase: phase, hint: untouched
                ? "nothing was written; check the cable and run the same command again"
                : "check the cable and run the same command again: the unit is recoverable through its ROM")
        case let error as ImageError:
            return UpgradeError(.image(error), phase: phase, hint: "nothing was touched; check the image file")
        case let error as JournalError:
            return UpgradeError(.journal(error), phase: phase, hint: untouched
                ? "nothing was touched; fix the journal directory (--state-dir) and run again"
                : "fix the journal directory (--state-dir) and run the same command again")
        case is CancellationError:
            return UpgradeError(.notConfirmed("cancelled"), phase: phase, hint: untouched
                ? "nothing was touched" : "run the same command again to finish")
        default:
            return UpgradeError(.refused("\(error)"), phase: phase, hint: untouched ? "nothing was touched" : "run the same command again")
        }
    }
}

extension UpgradePhase: Comparable {
    public static func < (a: UpgradePhase, b: UpgradePhase) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }
}
