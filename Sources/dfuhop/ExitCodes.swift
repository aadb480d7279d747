/// dfuhop's exit codes: fixed, one table that `dfuhop exit-codes` prints and the README repeats
/// (StationOutputTests compares them, and checks docs/guarantees.md promises something for each code).
/// The low ones follow sysexits(3) so shell scripts can read them as they read other tools'.
enum ExitStatus: Int32, CaseIterable, Sendable {
    case success = 0
    /// A flag or argument is wrong (swift-argument-parser also exits with 64).
    case usage = 64
    /// An input file is malformed: the message names the file and the line or byte offset.
    case badInput = 65
    /// An input file cannot be opened.
    case noInput = 66
    /// The unit asked for is not connected (or no unit is).
    case noDevice = 69
    /// A bug in dfuhop.
    case internalError = 70
    /// An output file cannot be written.
    case cannotWrite = 73
    /// A USB transfer failed or the device left unexpectedly.
    case usbError = 74
    /// Another process holds the unit.
    case busy = 75
    /// The OS denied access to the device, or `dfuhop doctor` found something that needs attention.
    case permission = 77
    /// A profile or state file is invalid.
    case configuration = 78
    /// The image cannot be right for this unit, or the plan cannot work (nothing was written).
    case refused = 80
    /// The device reported a DFU error status.
    case deviceError = 81
    /// Read-back differs from the image.
    case verifyFailed = 82
    /// The unit did not come back after leaving DFU, or reported the wrong firmware.
    case notConfirmed = 83
    /// More than one unit matches; dfuhop will not guess.
    case ambiguous = 84
    /// The operator cancelled.
    case cancelled = 85
    /// The unit can only be reached through BOOT0, and no BOOT0 path is set up (or it did not work).
    case needsBoot0 = 86
    /// An update package or image is not trusted: signature, hash, contents or the profile's signing policy.
    case untrustedPackage = 87
    /// A replay did not do what its recording shows (`dfuhop replay`).
    case replayDiverged = 88

    var meaning: String {
        switch self {
        case .success: "success"
        case .usage: "a flag or argument is wrong"
        case .badInput: "an input file is malformed (the message says where)"
        case .noInput: "an input file cannot be opened"
        case .noDevice: "no unit matches, or none is connected"
        case .internalError: "internal error (a bug in dfuhop: please report it)"
        case .cannotWrite: "an output file cannot be written"
        case .usbError: "a USB transfer failed or the device left unexpectedly"
        case .busy: "another process is using the unit"
        case .permission: "the OS denied access to the device, or `dfuhop doctor` found something to fix"
        case .configuration: "a profile or state file is invalid"
        case .refused: "the image or request cannot be right for this unit; nothing was written"
        case .deviceError: "the device reported a DFU error"
        case .verifyFailed: "read-back does not match the image"
        case .notConfirmed: "the unit did not come back with the new firmware"
        case .ambiguous: "more than one unit matches; name one"
        case .cancelled: "cancelled by the operator"
        case .needsBoot0: "the unit needs the BOOT0 path (hold BOOT0 and replug, or --boot0-command)"
        case .untrustedPackage:
            "the update package or image failed verification (signature, hash, contents or signing policy); nothing was touched"
        case .replayDiverged: "the replay did not do what its recording shows (dfuhop replay)"
        }
    }
}
