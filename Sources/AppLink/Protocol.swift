import HexFormat
@_exported import USBTransport // clients of AppLink hand it a HIDTransport and a DeviceClock

/// dfuhop's HID application protocol, version 1.0: the constants of protocols/hid-app-protocol.md.
/// Everything multi-byte on the wire is little-endian (§3).
public enum AppLinkProtocol {
    /// Vendor-defined usage page and usage of the top-level collection (§2).
    public static let usagePage: UInt16 = 0xFFDF
    public static let usage: UInt16 = 0x0001

    /// Host → device: output report 0x01. Device → host: input report 0x02 (§2).
    public static let requestReportID: UInt8 = 0x01
    public static let responseReportID: UInt8 = 0x02
    /// A report as hidapi sees it: the report id byte and 63 data bytes, one full-speed packet (§2).
    public static let reportLength = 64

    public static let majorVersion: UInt8 = 1
    public static let minorVersion: UInt8 = 0

    /// Report id, version, sequence, command, length (§3.1).
    public static let requestHeaderLength = 5
    /// Report id, version, sequence, command, status, length (§3.2).
    public static let responseHeaderLength = 6
    public static let maxRequestPayload = reportLength - requestHeaderLength
    public static let maxResponsePayload = reportLength - responseHeaderLength

    /// ENTER_BOOTLOADER carries it, and the application leaves it in the backup register for the
    /// start-up check (§5.5, §7). The value seed 000 uses, so products that already use it keep working.
    public static let bootloaderMagic: UInt32 = 0xB007_104D
    /// GET_SECTOR_CRCS answers at most this many ranges: 9 + 4 × 12 bytes fit a response (§5.3).
    public static let maxSectorRanges = 12
    /// The image descriptor word 8 of the vector table points at (§6).
    public static let descriptorLength = 64
    /// The longest reset delay a device may announce in its ENTER_BOOTLOADER answer (§5.5).
    public static let maxResetDelayMs: UInt16 = 1000

    /// The HID report descriptor of the interface (§2.1, HID 1.11 §6.2.2).
    public static let reportDescriptor: [UInt8] = [
        0x06, 0xDF, 0xFF, // Usage Page (0xFFDF, vendor-defined)
        0x09, 0x01, // Usage (0x01)
        0xA1, 0x01, // Collection (Application)
        0x15, 0x00, //   Logical Minimum (0)
        0x26, 0xFF, 0x00, //   Logical Maximum (255)
        0x75, 0x08, //   Report Size (8)
        0x95, 0x3F, //   Report Count (63)
        0x85, 0x01, //   Report ID (1)
        0x09, 0x02, //   Usage (0x02)
        0x91, 0x02, //   Output (Data, Variable, Absolute): requests
        0x85, 0x02, //   Report ID (2)
        0x09, 0x03, //   Usage (0x03)
        0x81, 0x02, //   Input (Data, Variable, Absolute): responses
        0xC0 // End Collection
    ]
}

/// Command codes (§4).
public enum AppCommand: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case getInfo = 0x01
    case getDescriptor = 0x02
    case getSectorCRCs = 0x03
    case checkImage = 0x04
    case enterBootloader = 0x10

    public var description: String {
        switch self {
        case .getInfo: "GET_INFO"
        case .getDescriptor: "GET_DESCRIPTOR"
        case .getSectorCRCs: "GET_SECTOR_CRCS"
        case .checkImage: "CHECK_IMAGE"
        case .enterBootloader: "ENTER_BOOTLOADER"
        }
    }

    /// The name as the spec and the test vectors write it.
    public init?(name: String) {
        guard let command = Self.allCases.first(where: { $0.description == name }) else { return nil }
        self = command
    }

    /// The payload length a request of this command has in protocol 1.0 (§5).
    var requestPayloadLength: Int {
        switch self {
        case .getInfo, .checkImage: 0
        case .getDescriptor: 2
        case .getSectorCRCs: 9
        case .enterBootloader: 20
        }
    }
}

/// A response's status byte (§4.1). A struct, not an enum: a newer device may send a code this host
/// does not know, and that is still an answer to report, not a crash.
public struct AppStatus: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let ok = AppStatus(rawValue: 0x00)
    public static let unknownCommand = AppStatus(rawValue: 0x01)
    public static let badLength = AppStatus(rawValue: 0x02)
    public static let badArgument = AppStatus(rawValue: 0x03)
    public static let badAddress = AppStatus(rawValue: 0x04)
    public static let badMagic = AppStatus(rawValue: 0x05)
    public static let wrongUnit = AppStatus(rawValue: 0x06)
    public static let unsupportedVersion = AppStatus(rawValue: 0x07)
    public static let noDescriptor = AppStatus(rawValue: 0x08)
    public static let busy = AppStatus(rawValue: 0x09)

    public static let known: [AppStatus] = [
        .ok, .unknownCommand, .badLength, .badArgument, .badAddress, .badMagic, .wrongUnit,
        .unsupportedVersion, .noDescriptor, .busy
    ]

    /// The name as the spec and the test vectors write it; "0xNN" for a code this host does not know.
    public var name: String {
        switch self {
        case .ok: "OK"
        case .unknownCommand: "UNKNOWN_COMMAND"
        case .badLength: "BAD_LENGTH"
        case .badArgument: "BAD_ARGUMENT"
        case .badAddress: "BAD_ADDRESS"
        case .badMagic: "BAD_MAGIC"
        case .wrongUnit: "WRONG_UNIT"
        case .unsupportedVersion: "UNSUPPORTED_VERSION"
        case .noDescriptor: "NO_DESCRIPTOR"
        case .busy: "BUSY"
        default: "0x\(Hex.digits(rawValue, width: 2))"
        }
    }

    public init?(name: String) {
        guard let status = Self.known.first(where: { $0.name == name }) else { return nil }
        self = status
    }

    /// What the status means for the person running the upgrade.
    public var meaning: String {
        switch self {
        case .ok: "success"
        case .unknownCommand: "the firmware does not implement this command"
        case .badLength: "the firmware rejected the request's length (a protocol mismatch)"
        case .badArgument: "the firmware rejected an argument of the request"
        case .badAddress: "the requested range is outside the device's flash"
        case .badMagic: "the firmware rejected the bootloader magic (a protocol mismatch)"
        case .wrongUnit: "the unit's unique ID is not the one the request names: a different unit answered"
        case .unsupportedVersion: "the firmware speaks another major version of the protocol"
        case .noDescriptor: "the running firmware has no valid image descriptor"
        case .busy: "the firmware cannot do this right now; let the product finish its work and try again"
        default: "the firmware answered with a status this dfuhop does not know"
        }
    }

    public var description: String { name }
}

/// GET_INFO's capability bits: the optional commands a device implements (§5.1).
public struct AppCapabilities: OptionSet, Sendable, Hashable {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let descriptorRead = AppCapabilities(rawValue: 1 << 0)
    public static let sectorCRCs = AppCapabilities(rawValue: 1 << 1)
    public static let imageCheck = AppCapabilities(rawValue: 1 << 2)
}
