import AppLink
import DfuSe
import FirmwareImage
import USBTransport

/// The one error type of the workflow: what stopped it, in which phase, and one sentence a technician
/// can act on. Errors of the layers below are carried, not flattened.
public struct UpgradeError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable {
        /// The image or request cannot be right for this unit: why, as data.
        case refused(Refusal)
        /// The request itself is malformed (an empty unit name): nothing was looked at.
        case invalidRequest(InvalidRequest)
        /// Nothing matching what was looked for shows.
        case noUnit(UnitSought)
        /// Several units match: which.
        case ambiguous([UnitMatch])
        /// Another process holds the lock of the unit (its journal key: UID, or port).
        case busy(unit: String)
        /// The unit needs the BOOT0 path, and none is configured (or it failed): why.
        case needsBoot0(Boot0Need)
        /// The unit did not come back as expected: what it did or answered instead.
        case notConfirmed(Unconfirmed)
        /// The image is not signed as the product's profile or the station's policy requires, or it reads as
        /// two different images (docs/packages.md).
        case untrusted(Distrust)
        /// The unit's flash is read-protected (RDP level 1 or 2): nothing can be written through the ROM.
        case readProtected(ReadProtectionStop)
        /// The operator (SIGINT/SIGTERM) or the caller cancelled; the engine stopped at a safe point.
        case cancelled
        /// A failure no layer's error type describes: a bug in dfuhop, never reported as a refusal.
        case unexpected(String)
        case journal(JournalError)
        case image(ImageError)
        case flash(DfuSeError)
        case application(AppLinkError)
        case transport(TransportError)
    }

    public var kind: Kind
    public var phase: UpgradePhase
    public var hint: String
    /// The unit had been taken into its ROM and was sent back to its application before this error.
    public var unitReturned = false
    /// The step `hint` describes, where a front end names it its own way (a flag or a command).
    public var nextStep: NextStep?

    public init(_ kind: Kind, phase: UpgradePhase, hint: String, next: NextStep? = nil) {
        self.kind = kind
        self.phase = phase
        self.hint = hint
        self.nextStep = next
    }

    public var description: String {
        let what: String =
            switch kind {
            case .refused(let reason): reason.description
            case .noUnit(let sought): sought.description
            case .ambiguous(let matches): "\(matches.count) units match: \(matches.map(\.description).joined(separator: ", "))"
            case .needsBoot0(let need): need.description
            case .notConfirmed(let what): what.description
            case .invalidRequest(let request): request.description
            case .busy(let unit): "another dfuhop process is working on unit \(unit)"
            case .readProtected(let stop): stop.description
            case .untrusted(let distrust): distrust.description
            case .unexpected(let text): text
            case .cancelled: "cancelled"
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
        case let error as TransportError where error.kind == .cancelled:
            return wrap(CancellationError(), phase: phase)
        case let error as AppLinkError where error.isCancellation:
            return wrap(CancellationError(), phase: phase)
        case let error as DfuSeError where error.category == .cancelled:
            return UpgradeError(.cancelled, phase: phase, hint: "run the same command again to finish the upgrade")
        case let error as DfuSeError where error.isOptionBytesAddressRefusal:
            // Nothing was written: the unit is in its ROM as it was (DfuSeClient.writeOptionBytes).
            return UpgradeError(
                .flash(error), phase: phase,
                hint: "nothing was written; the ROM refuses this part line's option-byte address: is the family right?")
        case let error as DfuSeError where error.category == .verifyFailed:
            // Flash.swift rewrote every sector once more before this stands: the flash does not keep what is written.
            return UpgradeError(
                .flash(error), phase: phase,
                hint: "the flash does not keep what is written there even after a full rewrite (worn or damaged flash): "
                    + "the unit stays in its ROM bootloader; running again will fail the same way; repair or replace the unit")
        case let error as DfuSeError:
            return UpgradeError(
                .flash(error), phase: phase,
                hint: phase >= .optionBytes
                    ? "the unit is recoverable through its ROM: run the same command again to finish"
                    : "run the same command again")
        case let error as AppLinkError:
            return UpgradeError(
                .application(error), phase: phase,
                hint: untouched
                    ? "nothing was written; check the cable and run the same command again"
                    : "check the cable and run the same command again")
        case let error as TransportError where error.kind == .accessDenied:
            // Not the cable: the same run fails the same way until the OS grants the device node.
            return UpgradeError(
                .transport(error), phase: phase,
                hint: (untouched ? "nothing was written; " : "the unit is recoverable through its ROM; ")
                    + "the OS refused the device: \(NextStep.checkDeviceAccess.clause), then run again", next: .checkDeviceAccess)
        case let error as TransportError:
            return UpgradeError(
                .transport(error), phase: phase,
                hint: untouched
                    ? "nothing was written; check the cable and run the same command again"
                    : "check the cable and run the same command again: the unit is recoverable through its ROM")
        case let error as ImageError:
            return UpgradeError(.image(error), phase: phase, hint: "nothing was touched; check the image file")
        case let error as JournalError:
            return UpgradeError(
                .journal(error), phase: phase,
                hint: untouched
                    ? "nothing was touched; \(error.hint), then run again"
                    : "\(error.hint), then run the same command again")
        case is CancellationError:
            return UpgradeError(
                .cancelled, phase: phase,
                hint: untouched
                    ? "nothing was touched" : "run the same command again to finish the upgrade")
        default:
            // Not a refusal: a failure the layers do not describe is a bug, and says so (exit 70).
            return UpgradeError(
                .unexpected("\(error)"), phase: phase,
                hint: untouched
                    ? "nothing was touched; this is a bug in dfuhop, please report it"
                    : "run the same command again to finish; this is a bug in dfuhop, please report it")
        }
    }

    /// Whether the failure left the unit as it was: before the ROM was entered, or returned from it.
    public var unitUntouched: Bool { phase <= .plan || unitReturned }
}

extension DfuSeError {
    var isOptionBytesAddressRefusal: Bool {
        if case .optionBytesAddressRefused = self { true } else { false }
    }
}

extension UpgradePhase: Comparable {
    public static func < (a: UpgradePhase, b: UpgradePhase) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }
}
