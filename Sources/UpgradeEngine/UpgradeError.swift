import AppLink
import DfuSe
import FirmwareImage
import USBTransport

/// The one error type of the workflow: what stopped it, in which phase, and one sentence a technician
/// can act on. Errors of the layers below are carried, not flattened.
public struct UpgradeError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable {
        /// The image cannot be right for this unit; nothing was touched.
        case refused(String)
        case noUnit(String)
        case ambiguous(String)
        /// The unit needs a path this engine does not have yet (BOOT0, option bytes).
        case notBuilt(String)
        /// The unit did not come back as expected.
        case notConfirmed(String)
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
        case .refused(let text), .noUnit(let text), .ambiguous(let text), .notBuilt(let text), .notConfirmed(let text): text
        case .image(let error): error.description
        case .flash(let error): error.description
        case .application(let error): error.description
        case .transport(let error): error.description
        }
        return "\(phase): \(what)"
    }

    /// Wraps whatever a layer threw during `phase`.
    static func wrap(_ error: any Error, phase: UpgradePhase) -> UpgradeError {
        switch error {
        case let error as UpgradeError: return error
        case let error as DfuSeError:
            return UpgradeError(.flash(error), phase: phase, hint: phase == .flash
                ? "the unit is in DFU mode and recoverable: run the same command again to finish"
                : "run the same command again")
        case let error as AppLinkError:
            return UpgradeError(.application(error), phase: phase, hint: "check the cable and run the same command again")
        case let error as TransportError:
            return UpgradeError(.transport(error), phase: phase, hint: "check the cable and run the same command again")
        case let error as ImageError:
            return UpgradeError(.image(error), phase: phase, hint: "nothing was touched; check the image file")
        default:
            return UpgradeError(.refused("\(error)"), phase: phase, hint: "nothing was touched")
        }
    }
}
