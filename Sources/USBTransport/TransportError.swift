/// The one error type of the transport layer: what went wrong on the wire, and with which device.
public struct TransportError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The device answered the request with a STALL handshake.
        case stall
        /// No answer within the timeout.
        case timeout
        /// The device left the bus (unplugged, reset, re-enumerating).
        case disconnected
        /// The OS refused access (permissions, another driver or process holds it).
        case accessDenied
        /// The device or interface is not there (any more).
        case notFound
        /// The device returned more or fewer bytes than the protocol allows.
        case badLength(expected: Int, got: Int)
        /// The task was cancelled while the transport waited (a clock sleep): nothing failed on the wire.
        case cancelled
        /// Anything else the backend reports; its own words.
        case other(String)

        /// The kind's name without its details, as recordings and the emulated-USB probe write it.
        public var name: String {
            switch self {
            case .stall: "stall"
            case .timeout: "timeout"
            case .disconnected: "disconnected"
            case .accessDenied: "accessDenied"
            case .notFound: "notFound"
            case .badLength: "badLength"
            case .cancelled: "cancelled"
            case .other: "other"
            }
        }
    }

    public var kind: Kind
    /// Which device, e.g. "0483:df11 serial 2061336E5056" or "virtual f407#1".
    public var device: String
    /// What was being done, e.g. "GETSTATUS" or "write report 0x01".
    public var operation: String

    public init(_ kind: Kind, device: String, operation: String) {
        self.kind = kind
        self.device = device
        self.operation = operation
    }

    public var description: String {
        let what: String
        switch kind {
        case .stall: what = "the device stalled"
        case .timeout: what = "the device did not answer in time"
        case .disconnected: what = "the device left the bus"
        case .accessDenied: what = "access to the device was denied"
        case .notFound: what = "the device is not there"
        case .badLength(let expected, let got): what = "expected \(expected) bytes, got \(got)"
        case .cancelled: what = "cancelled"
        case .other(let message): what = message
        }
        return "\(operation) on \(device): \(what)"
    }
}
