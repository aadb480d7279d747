import CLibUSB
import USBTransport

/// The one error type of the libusb wrapper: which libusb_error code, from which call, on which device.
/// No raw return code travels past `LibUSB.check` (the seam); everything above sees this value.
public struct LibUSBError: Error, Sendable, Hashable, CustomStringConvertible {
    /// libusb_error (libusb.h), by name.
    public enum Code: Int32, Sendable, CaseIterable, CustomStringConvertible {
        case io = -1
        case invalidParameter = -2
        case access = -3
        case noDevice = -4
        case notFound = -5
        case busy = -6
        case timeout = -7
        case overflow = -8
        case pipe = -9
        case interrupted = -10
        case noMemory = -11
        case notSupported = -12
        case other = -99

        /// The libusb constant, for people who grep libusb's documentation.
        public var constantName: String {
            switch self {
            case .io: "LIBUSB_ERROR_IO"
            case .invalidParameter: "LIBUSB_ERROR_INVALID_PARAM"
            case .access: "LIBUSB_ERROR_ACCESS"
            case .noDevice: "LIBUSB_ERROR_NO_DEVICE"
            case .notFound: "LIBUSB_ERROR_NOT_FOUND"
            case .busy: "LIBUSB_ERROR_BUSY"
            case .timeout: "LIBUSB_ERROR_TIMEOUT"
            case .overflow: "LIBUSB_ERROR_OVERFLOW"
            case .pipe: "LIBUSB_ERROR_PIPE"
            case .interrupted: "LIBUSB_ERROR_INTERRUPTED"
            case .noMemory: "LIBUSB_ERROR_NO_MEM"
            case .notSupported: "LIBUSB_ERROR_NOT_SUPPORTED"
            case .other: "LIBUSB_ERROR_OTHER"
            }
        }

        public var description: String {
            switch self {
            case .io: "input/output error"
            case .invalidParameter: "invalid parameter"
            case .access: "access denied (insufficient permissions)"
            case .noDevice: "no such device (it may have been disconnected)"
            case .notFound: "entity not found"
            case .busy: "resource busy (another program or driver holds the interface)"
            case .timeout: "operation timed out"
            case .overflow: "the device sent more data than asked for"
            case .pipe: "pipe error (the device stalled the request)"
            case .interrupted: "system call interrupted"
            case .noMemory: "insufficient memory"
            case .notSupported: "operation not supported on this platform"
            case .other: "other error"
            }
        }
    }

    public var code: Code
    /// The libusb call and what it was for, e.g. "libusb_claim_interface(0)".
    public var operation: String
    /// The raw value when libusb returned a code this wrapper does not know (then `code` is `.other`).
    public var unknownRawValue: Int32?

    public init(_ code: Code, operation: String) {
        self.code = code
        self.operation = operation
        self.unknownRawValue = nil
    }

    /// Converts a negative libusb return value; unknown values become `.other` and keep their number.
    public init(returnValue: Int32, operation: String) {
        self.operation = operation
        if let code = Code(rawValue: returnValue) {
            self.code = code
            self.unknownRawValue = nil
        } else {
            self.code = .other
            self.unknownRawValue = returnValue
        }
    }

    public var description: String {
        var text = "\(operation) failed: \(code) (\(code.constantName)"
        if let unknownRawValue { text += ", code \(unknownRawValue)" }
        return text + ")"
    }

    /// The transport layer's view of this error (`device` names the unit, `operation` the protocol step).
    public func transportError(device: String, operation: String) -> TransportError {
        let kind: TransportError.Kind
        switch code {
        case .noDevice: kind = .disconnected
        case .pipe: kind = .stall
        case .timeout: kind = .timeout
        case .access: kind = .accessDenied
        case .notFound: kind = .notFound
        case .busy: kind = .other("the device is busy: another program or kernel driver holds the interface (\(code.constantName))")
        case .overflow: kind = .other("the device sent more data than asked for (\(code.constantName))")
        case .io, .invalidParameter, .interrupted, .noMemory, .notSupported, .other:
            kind = .other("\(self)")
        }
        return TransportError(kind, device: device, operation: operation)
    }
}

/// The seam between Swift and libusb: every libusb call whose return value can be an error goes
/// through `check`, so negative codes become `LibUSBError` in exactly one place.
enum LibUSB {
    /// Returns the non-negative result of `call`, or throws the libusb error it returned.
    @discardableResult
    static func check(_ operation: @autoclosure () -> String, _ call: () -> Int32) throws(LibUSBError) -> Int32 {
        let result = call()
        guard result >= 0 else { throw LibUSBError(returnValue: result, operation: operation()) }
        return result
    }

    /// The libusb library's version, e.g. "1.0.26.11724".
    static var version: String {
        guard let version = libusb_get_version() else { return "unknown" }
        let numbers = "\(version.pointee.major).\(version.pointee.minor).\(version.pointee.micro).\(version.pointee.nano)"
        guard let rc = version.pointee.rc, rc.pointee != 0 else { return numbers }
        return numbers + String(cString: rc)
    }
}
