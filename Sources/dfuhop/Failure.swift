import AppLink
import ArgumentParser
import DeviceProfiles
import DfuSe
import FirmwareImage
import Foundation
import HexFormat
import USBTransport
import UpdatePackage
import UpgradeEngine
import VirtualDevice

/// What a command failed with, ready for a person: one sentence, what to do, and the exit status.
/// Each layer's error type is mapped here, once (docs/architecture.md, rule 3).
struct Failure: Error, CustomStringConvertible {
    var status: ExitStatus
    var message: String
    /// One sentence a technician can act on, when there is something to do.
    var hint: String?

    init(_ status: ExitStatus, _ message: String, hint: String? = nil) {
        self.status = status
        self.message = message
        self.hint = hint
    }

    var description: String { message }

    /// Maps any error a layer throws to a `Failure`.
    static func from(_ error: any Error) -> Failure {
        switch error {
        case let failure as Failure:
            return failure
        case let error as ImageError:
            return image(error)
        case let error as NormalizationError:
            return Failure(.badInput, "the image cannot be normalised: \(error)")
        case let error as FlashLayoutError:
            return Failure(.badInput, error.description)
        case let error as TransportError:
            return transport(error)
        case let error as DfuSeError:
            return dfuSe(error)
        case let error as AppLinkError:
            return appLink(error)
        case let error as UpgradeError:
            return upgrade(error)
        case is CancellationError:
            return Failure(.cancelled, "cancelled", hint: "run the same command again to finish")
        case let error as VirtualDeviceError:
            return Failure(.configuration, error.description)
        case let error as ProductProfileError:
            return Failure(.configuration, error.description)
        case let error as JournalError:
            return Failure(.configuration, error.description, hint: journalHint(error))
        case let error as PackageError:
            return package(error)
        default:
            return Failure(
                .internalError, "unexpected error: \(error)",
                hint: "this is a bug in dfuhop; please report it with the command you ran")
        }
    }

    static func dfuSe(_ error: DfuSeError) -> Failure {
        switch error.category {
        case .refused:
            return Failure(.refused, error.description, hint: "nothing was written to the unit")
        case .deviceError:
            return Failure(
                .deviceError, error.description,
                hint: "the unit is still in DFU mode: run the same command again")
        case .verifyFailed:
            return Failure(
                .verifyFailed, error.description,
                hint: "the unit is still in DFU mode: flash again before leaving DFU")
        case .cancelled:
            return Failure(.cancelled, error.description)
        case .transport:
            if let transportError = error.transportError {
                var failure = transport(transportError)
                failure.message = error.description
                return failure
            }
            return Failure(.usbError, error.description)
        }
    }

    static func appLink(_ error: AppLinkError) -> Failure {
        switch error.kind {
        case .transport(let transportError):
            var failure = transport(transportError)
            failure.message = error.description
            return failure
        case .refused(.busy):
            return Failure(.busy, error.description, hint: "the product is busy; try again when it is idle")
        case .refused:
            return Failure(.refused, error.description, hint: "the application refused; nothing was changed on the unit")
        case .noReply, .malformedReply:
            return Failure(
                .usbError, error.description,
                hint: "the application does not speak dfuhop's protocol as expected; check the product profile")
        case .stayedOnBus:
            return Failure(
                .notConfirmed, error.description,
                hint: "the unit did not reset into its bootloader; use the BOOT0 path (hold BOOT0 and replug)")
        }
    }

    static func upgrade(_ error: UpgradeError) -> Failure {
        var failure: Failure
        switch error.kind {
        case .refused: failure = Failure(.refused, error.description)
        case .invalidRequest: failure = Failure(.usage, error.description)
        case .noUnit: failure = Failure(.noDevice, error.description)
        case .ambiguous: failure = Failure(.ambiguous, error.description)
        case .busy: failure = Failure(.busy, error.description)
        case .needsBoot0: failure = Failure(.needsBoot0, error.description)
        case .journal(let journalError):
            failure = Failure(journalError.unreadableKey == nil ? .cannotWrite : .configuration, error.description)
            failure.hint = error.hint.replacingOccurrences(of: journalError.hint, with: journalHint(journalError))
        case .notConfirmed: failure = Failure(.notConfirmed, error.description)
        case .readProtected: failure = Failure(.refused, error.description)
        case .untrusted: failure = Failure(.untrustedPackage, error.description)
        case .cancelled: failure = Failure(.cancelled, error.description)
        case .unexpected: failure = Failure(.internalError, error.description)
        case .image(let inner): failure = image(inner)
        case .flash(let inner): failure = dfuSe(inner)
        case .application(let inner): failure = appLink(inner)
        case .transport(let inner): failure = transport(inner)
        }
        // 69 promises an untouched unit: a unit that vanished once its ROM was entered (option bytes written,
        // say) is a USB failure, recoverable by running again (74), whichever layer saw it leave.
        if failure.status == .noDevice, !error.unitUntouched { failure.status = .usbError }
        failure.message = error.description
        if case .journal = error.kind {} else { failure.hint = error.hint }
        if let step = error.nextStep { failure.hint = failure.hint?.replacingOccurrences(of: step.clause, with: clause(step)) }
        if case .refused(let reason) = error.kind, let (message, hint) = refusal(reason) {
            failure.message = "\(error.phase): \(message)"
            failure.hint = hint
        }
        return failure
    }

    /// A next step in dfuhop's words: its flags and commands.
    static func clause(_ step: NextStep) -> String {
        switch step {
        case .nameOneUnit(let orAll): "name one with --unit PORT, --unit SERIAL or its unique ID" + (orAll ? ", or use --all" : "")
        case .nameAListedUnit: "`dfuhop list` shows the units and their ports: name one by its port"
        case .connect(inROM: true): "put the unit in DFU mode (dfuhop enter-dfu, or hold BOOT0 while plugging it in), then run this again"
        case .connect(inROM: false): "is the unit plugged in and running its application? (`dfuhop list` shows what is connected)"
        case .plugInOrBoot0: "give --boot0-command"
        case .readUnprotect: "`dfuhop enter-dfu`, then `dfuhop erase --read-unprotect`"
        case .stateProduct: "with --assume-product naming the product the unit is, which reads no flash"
        case .namePort(let port): "with --unit \(port)"
        case .checkDeviceAccess: "run `dfuhop doctor` to check the udev rules and permissions"
        }
    }

    /// What to do about a journal error, naming dfuhop's commands and flags.
    static func journalHint(_ error: JournalError) -> String {
        guard let key = error.unreadableKey else { return "fix the journal directory (--state-dir)" }
        return
            "if no upgrade of unit \(key) is in progress elsewhere, drop the entry with `dfuhop journal forget \(key)` (same --state-dir)"
    }

    /// A refusal the engine gives as data, in dfuhop's words: the sentence and the hint name dfuhop's flags.
    /// nil: the engine's words are dfuhop's (no flag is the way out), and the hint is the one the engine gave.
    static func refusal(_ reason: Refusal) -> (message: String, hint: String)? {
        func product(_ id: UInt32) -> String { "0x\(Hex.digits(id, width: 8))" }
        switch reason {
        case .downgrade: return (reason.description, "nothing was written; pass --allow-downgrade if you mean it")
        case .otherBuild: return (reason.description, "nothing was written; pass --allow-downgrade to replace it with this build")
        case .otherThanAssumedProduct(let source, let image, let assumed):
            return ("\(source) is for product \(product(image)); --assume-product says the unit is \(product(assumed))", reason.hint)
        case .unknownFamily: return (reason.description, "nothing was touched; give --family or --profile")
        case .optionBytesNeedConsent(_, _, _, let allowed):
            let next =
                allowed
                ? "the write resets the unit, and only the BOOT0 path can bring it back: give --boot0-command or run on a terminal"
                : "run again with --write-option-bytes (the write resets the unit; dfuhop reaches it again)"
            return (reason.description, "nothing was written; " + next)
        case .otherTargets(let source, let targets):
            return (
                "\(source) also holds \(targets.joined(separator: ", ")), which `upgrade` does not write",
                "nothing was touched; put option bytes the product needs in its profile "
                    + "(\"requiredOptionBytes\", written with --write-option-bytes), and give `upgrade` the flash image only"
            )
        case .noApplication: return (reason.description, "nothing was sent; flash an application first (`dfuhop flash IMAGE --leave`)")
        case .alreadyInROM: return (reason.description, "nothing to do: it is ready for `dfuhop flash`")
        case .otherProduct, .belowMinimumVersion, .otherUnit, .imageForOtherFamily, .emptyImage, .otherApplicationBase,
            .imageCheckFailed, .romLayoutUnreadable, .noFlashAlternate, .addressInNoSector, .boot0PinIgnored, .noUniqueID,
            .romOfOtherFamily, .uncheckableOptionByte, .noOptionByteMemory, .noResetHandler:
            return nil
        case .assumedProductContradicted(let assumed, let unit, let seenIn):
            return (
                "--assume-product says the unit is \(product(assumed)); it holds product \(product(unit)) (\(seenIn))",
                "nothing was written; drop --assume-product: the unit tells its product"
            )
        case .unknownProduct(let image):
            return (
                reason.description,
                "nothing was written; if you know the unit is a \(product(image)) unit, run again with --assume-product \(product(image))"
            )
        case .familyMismatch(let named, let unit, let port):
            return (
                "--family \(named) does not match the unit\(port.map { " at \($0)" } ?? ""), which is \(unit.joined(separator: " or "))",
                "nothing was touched; drop --family (dfuhop can tell this unit's MCU)"
            )
        case .needsFamily(_, let candidates, _):
            return (
                reason.description,
                "nothing was touched; give --family (\((candidates.isEmpty ? McuFamily.all : candidates).map(\.id).joined(separator: ", ")))"
            )
        }
    }

    static func package(_ error: PackageError) -> Failure {
        switch error.kind {
        case .cannotRead: Failure(.noInput, error.description)
        case .cannotWrite: Failure(.cannotWrite, error.description)
        case .image(let inner): image(inner)
        case .refused: Failure(.badInput, error.description, hint: "no package was written")
        case .malformed, .untrusted: Failure(.untrustedPackage, error.description, hint: "nothing was touched")
        }
    }

    static func image(_ error: ImageError) -> Failure {
        switch error.kind {
        case .malformed, .unsupported: Failure(.badInput, error.description)
        case .cannotRead: Failure(.noInput, error.description)
        case .cannotWrite: Failure(.cannotWrite, error.description)
        }
    }

    static func transport(_ error: TransportError) -> Failure {
        switch error.kind {
        case .accessDenied:
            Failure(.permission, error.description, hint: "run `dfuhop doctor` to check the udev rules and permissions")
        case .notFound:
            Failure(.noDevice, error.description, hint: "check the cable and that the unit is powered")
        case .cancelled:
            Failure(.cancelled, error.description, hint: "run the same command again to finish")
        default:
            Failure(
                .usbError, error.description,
                hint: "the unit is still recoverable: run the same command again; if it persists, replug the unit")
        }
    }
}

extension Failure {
    /// The `"type":"result"` line for this failure (docs/json.md).
    func result(command: String) -> ResultLine {
        var line = ResultLine(command: command, outcome: "failed", exitCode: status.rawValue)
        line.error = message
        line.hint = hint
        return line
    }
}

/// The elements of one array of a `--json` result, written in place of that (empty) array as they are made:
/// the body sets it when a result would be too large to encode at once (`Output.emit(_:streaming:into:)`).
final class StreamedResultArray: @unchecked Sendable {
    // Guarded by `lock`: set once by the command's body, read after it ends.
    private let lock = NSLock()
    private var stream: (key: String, elements: AnySequence<String>)?

    func set(key: String, elements: some Sequence<String>) { lock.withLock { stream = (key, AnySequence(elements)) } }
    var current: (key: String, elements: AnySequence<String>)? { lock.withLock { stream } }
}

/// Runs a command body and turns whatever it throws into the fixed exit status and a readable message.
/// The body returns its result; with `--json` it is printed as the last line, and its `exitCode` is the
/// process's exit status in every case (docs/json.md).
func runCommand(
    _ command: String, json: Bool = false, streaming: StreamedResultArray? = nil,
    _ body: sending @escaping () async throws -> ResultLine
) async throws {
    let capture = CommandCapture()
    var result: ResultLine
    do {
        result = try await capture.run(body)
        result.command = command
    } catch let error as CleanExit {
        throw error
    } catch let error as ValidationError {
        let line = Failure(.usage, error.message).result(command: command)
        capture.close(line)
        if json { Output.emit(line) }
        throw error
    } catch {
        let failure = Failure.from(error)
        capture.close(failure.result(command: command))
        Output.failure(failure, command: command, json: json)
        throw ExitCode(failure.status.rawValue)
    }
    capture.close(result)
    if json, let stream = streaming?.current {
        Output.emit(result, streaming: stream.elements, into: stream.key)
    } else if json {
        Output.emit(result)
    }
    if result.exitCode != 0 { throw ExitCode(result.exitCode) }
}
