import Foundation
import USBTransport

/// The one error type of the hidapi wrapper: which hidapi call failed, on which device, with hidapi's
/// own message and the errno the OS gave (hidapi reports errors as -1 or NULL plus a string).
public struct HIDAPIError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Operation: String, Sendable, Hashable {
        case initialize = "hid_init"
        case enumerate = "hid_enumerate"
        case open = "hid_open_path"
        case write = "hid_write"
        case read = "hid_read_timeout"
        case getFeatureReport = "hid_get_feature_report"
        case sendFeatureReport = "hid_send_feature_report"
        /// A call on a device this process already closed.
        case useAfterClose = "use after hid_close"
    }

    public var operation: Operation
    /// The hidraw node, e.g. "/dev/hidraw3"; empty for library-wide calls.
    public var path: String
    /// hidapi's hid_error() text, when it gave one.
    public var message: String?
    /// errno right after the call (0 when the OS reported nothing).
    public var errorNumber: Int32

    public init(_ operation: Operation, path: String, message: String? = nil, errorNumber: Int32 = 0) {
        self.operation = operation
        self.path = path
        self.message = message
        self.errorNumber = errorNumber
    }

    public var description: String {
        var text = operation.rawValue
        if !path.isEmpty { text += "(\(path))" }
        text += " failed"
        if let message, !message.isEmpty { text += ": \(message)" }
        if errorNumber != 0 { text += " [errno \(errorNumber): \(String(cString: strerror(errorNumber)))]" }
        return text
    }

    /// The transport layer's view: errno decides the kind; hidapi's words are kept for the rest.
    public func transportError(device: String, operation step: String) -> TransportError {
        let kind: TransportError.Kind
        switch errorNumber {
        case EACCES, EPERM: kind = .accessDenied
        case ENOENT, ENXIO: kind = .notFound
        case ENODEV, ESHUTDOWN, EIO: kind = .disconnected
        case EPIPE: kind = .stall
        case ETIMEDOUT: kind = .timeout
        default:
            // hidapi's hidraw backend reports a vanished device through poll() without an errno.
            kind = (message ?? "").localizedCaseInsensitiveContains("disconnected") ? .disconnected : .other("\(self)")
        }
        return TransportError(kind, device: device, operation: step)
    }
}
