import HexFormat
import USBTransport

/// The recording format's name and version (docs/recordings.md). A reader refuses another name, and a
/// version it does not know: the version changes when a field changes meaning or goes away.
public enum RecordingFormat {
    public static let name = "dfuhop-recording"
    public static let version = 1
}

/// The first line of a recording: what ran, where, and the files whose content decided what was sent.
public struct RecordingHeader: Codable, Sendable, Equatable {
    /// How much of the session the records cover.
    public enum Coverage: String, Codable, Sendable {
        /// Every discovery call, transfer, report and host input of the command.
        case full
        /// Only what a device listing shows (a recording made from a `dfu-util -l` capture): opening a device
        /// is outside it.
        case discovery
    }

    public var format = RecordingFormat.name
    public var version = RecordingFormat.version
    /// `dfuhop --version`'s first line, of the dfuhop that recorded.
    public var dfuhop: String
    /// The command line after the executable's name.
    public var command: [String]
    /// Wall-clock start, ISO 8601 UTC; absent in recordings made from a capture.
    public var started: String?
    /// The clock the `t` offsets are in: `system` (real time) or `virtual` (a simulated unit's time).
    public var clock: String
    public var coverage: Coverage
    /// `--simulate`'s spec, when the unit was simulated.
    public var simulated: String?
    /// The part line of the simulated unit: what the unit itself told dfuhop, which a replay tells it again.
    public var family: String?
    /// Where the facts of a recording made from a capture come from.
    public var origin: String?
    public var inputs: [RecordedInput]

    public init(
        dfuhop: String, command: [String], started: String?, clock: String, coverage: Coverage = .full,
        simulated: String? = nil, family: String? = nil, origin: String? = nil, inputs: [RecordedInput] = []
    ) {
        self.dfuhop = dfuhop
        self.command = command
        self.started = started
        self.clock = clock
        self.coverage = coverage
        self.simulated = simulated
        self.family = family
        self.origin = origin
        self.inputs = inputs
    }
}

/// A file the command read whose content decides what it sends (the image, product profiles, journal
/// entries), embedded so that a replay runs with exactly these bytes.
public struct RecordedInput: Codable, Sendable, Equatable {
    /// `image`, `profile` or `journal`.
    public var role: String
    /// The path as the command line gave it (for a file found in a directory: the directory).
    public var path: String
    /// The file's name.
    public var name: String
    /// SHA-256 of the content, lower-case hex.
    public var sha256: String
    /// The content, base64.
    public var base64: String

    public init(role: String, path: String, name: String, sha256: String, base64: String) {
        self.role = role
        self.path = path
        self.name = name
        self.sha256 = sha256
        self.base64 = base64
    }
}

/// One line after the header: something the host asked or the bus did, `t` microseconds after the
/// recording started (in the session's clock), stamped when the call returned. Only the fields of its
/// `event` are present (docs/recordings.md lists them per event).
public struct Record: Codable, Sendable, Hashable {
    public enum Event: String, Codable, Sendable, CaseIterable {
        case devices, subscribe, hotplug, openDFU, openHID, selectAlternate, controlOut, controlIn
        case hidWrite, hidRead, getFeatureReport, sendFeatureReport, close, input, boot0Path, boot0, result
    }

    public var t: Int64 = 0
    public var event: Event
    /// The port path of the device a request is for: requests replay in order per port.
    public var port: String?
    /// Which opened interface (numbered from 1 in the order they were opened).
    public var handle: Int?
    /// Which `events()` subscription a hotplug event was delivered to (numbered from 1).
    public var subscription: Int?
    public var devices: [DeviceRecord]?
    /// The device a hotplug event or an open is about.
    public var device: DeviceRecord?
    /// Hotplug: `arrived` or `left`.
    public var change: String?
    /// What an opened DFU interface shows.
    public var interface: DFUInterfaceRecord?
    public var alternate: Int?
    public var setup: SetupRecord?
    /// Bytes the host sent (OUT data stage, output or feature report), upper-case hex.
    public var data: String?
    /// Bytes the host received (IN data stage, input or feature report); absent when a read got none.
    public var reply: String?
    public var reportID: Int?
    public var length: Int?
    /// The host's timeout, for the record only: a replay does not compare it.
    public var timeoutMs: Int64?
    public var error: ErrorRecord?
    /// `input`: a value the host chose that goes on the wire (`nonce`: ENTER_BOOTLOADER's); `boot0Path`: how
    /// the command reaches BOOT0 (its description, and `timeoutMs` the wait for the unit after a request).
    public var name: String?
    public var value: UInt32?
    /// `boot0`: `enter-rom` or `start-application`, and the unit's UID the request named.
    public var action: String?
    public var uid: String?
    /// `result` (and a failed `boot0`): the exit status.
    public var exitCode: Int32?
    /// A failed `boot0` request's message.
    public var failure: String?

    public init(_ event: Event, port: String? = nil, handle: Int? = nil) {
        self.event = event
        self.port = port
        self.handle = handle
    }
}

/// A device on the bus as `devices()` or a hotplug event showed it.
public struct DeviceRecord: Codable, Sendable, Hashable {
    /// `dfu` or `hid`.
    public var kind: String
    /// `0483:df11`.
    public var vidPid: String
    /// `0x2200`.
    public var bcdDevice: String
    public var serial: String?
    public var manufacturer: String?
    public var product: String?
    public var port: String
    /// DFU: the alternate settings (for DfuSe their names are the memory layouts).
    public var alternates: [DFUAlternateSetting]?
    /// HID: the top-level collection, the interface and the backend's path.
    public var usagePage: String?
    public var usage: String?
    public var interfaceNumber: Int?
    public var path: String?
}

/// What an opened DFU interface reports about itself.
public struct DFUInterfaceRecord: Codable, Sendable, Hashable {
    public var interfaceNumber: Int
    public var device: DeviceRecord
    /// The 9-byte DFU functional descriptor, hex (DFU 1.1 §4.1.3).
    public var functionalDescriptor: String
}

/// A control request's setup stage (USB 2.0 §9.3).
public struct SetupRecord: Codable, Sendable, Hashable {
    public var bmRequestType: String
    public var bRequest: Int
    public var wValue: Int
    public var wIndex: Int
    public var wLength: Int

    public init(_ request: ControlRequest, length: Int) {
        bmRequestType = "0x" + Hex.digits(request.requestType, width: 2)
        bRequest = Int(request.request)
        wValue = Int(request.value)
        wIndex = Int(request.index)
        wLength = length
    }
}

/// A `TransportError`, as recorded: a replay throws the same error again.
public struct ErrorRecord: Codable, Sendable, Hashable {
    /// `stall`, `timeout`, `disconnected`, `accessDenied`, `notFound`, `badLength` or `other`.
    public var kind: String
    public var expected: Int?
    public var got: Int?
    public var message: String?
    public var device: String
    public var operation: String
}
