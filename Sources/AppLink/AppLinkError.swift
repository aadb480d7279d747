import HexFormat
import USBTransport

/// The one error type of AppLink: what went wrong talking to an application over HID, with the
/// request, the device and, when a reply was at fault, the reply's bytes.
public struct AppLinkError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The HID transport failed: the device left, stalled, or access was denied.
        case transport(TransportError)
        /// No answer within the timeout.
        case noReply(timeout: Duration)
        /// The reply breaks the protocol; the bytes are in `report`.
        case malformedReply(Malformation)
        /// The device understood the request and refused it with this status (§4.1).
        case refused(AppStatus)
        /// The application acknowledged ENTER_BOOTLOADER but was still on the bus `waited` later.
        case stayedOnBus(waited: Duration)
    }

    /// How a reply breaks the protocol. `code` is the stable name the test vectors use.
    public enum Malformation: Sendable, Equatable {
        /// Fewer bytes than a response header (§3.2).
        case shortReport(length: Int)
        /// More bytes than a report can have.
        case longReport(length: Int)
        case wrongReportID(UInt8)
        /// The version byte is not the major version this host speaks.
        case wrongVersion(UInt8)
        /// The length byte exceeds the space a report has for a payload.
        case lengthOutOfRange(UInt8)
        /// The length byte promises more payload than the report carries.
        case truncatedPayload(declared: Int, available: Int)
        case wrongSequence(expected: UInt8, got: UInt8)
        case wrongCommand(expected: UInt8, got: UInt8)
        /// The payload is shorter than this command's answer in protocol 1.0.
        case shortPayload(expected: Int, got: Int)
        /// A field holds a value the protocol does not allow.
        case badField(name: String, value: UInt64)
        /// A field the device must echo differs from what was sent.
        case echoMismatch(field: String, sent: UInt64, got: UInt64)
        /// A legacy protocol's field lies outside the reply (the profile and the product disagree).
        case fieldOutsideReply(name: String, end: Int, length: Int)
        /// A legacy reply did not match what the profile says it looks like.
        case unexpectedLegacyReply(matched: Int, skipped: Int)

        public var code: String {
            switch self {
            case .shortReport: "short-report"
            case .longReport: "long-report"
            case .wrongReportID: "wrong-report-id"
            case .wrongVersion: "wrong-version"
            case .lengthOutOfRange: "length-out-of-range"
            case .truncatedPayload: "truncated-payload"
            case .wrongSequence: "wrong-sequence"
            case .wrongCommand: "wrong-command"
            case .shortPayload: "short-payload"
            case .badField: "bad-field"
            case .echoMismatch: "echo-mismatch"
            case .fieldOutsideReply: "field-outside-reply"
            case .unexpectedLegacyReply: "unexpected-legacy-reply"
            }
        }

        var explanation: String {
            switch self {
            case .shortReport(let length):
                "the reply has \(length) bytes, fewer than the \(AppLinkProtocol.responseHeaderLength)-byte header"
            case .longReport(let length):
                "the reply has \(length) bytes, more than a \(AppLinkProtocol.reportLength)-byte report"
            case .wrongReportID(let id):
                "the reply is report 0x\(Hex.digits(id, width: 2)), not the response report 0x\(Hex.digits(AppLinkProtocol.responseReportID, width: 2))"
            case .wrongVersion(let version):
                "the reply speaks protocol version \(version), this dfuhop speaks \(AppLinkProtocol.majorVersion)"
            case .lengthOutOfRange(let length):
                "the reply's length byte is \(length), more than the \(AppLinkProtocol.maxResponsePayload) a report can carry"
            case .truncatedPayload(let declared, let available):
                "the reply announces \(declared) payload bytes but carries \(available)"
            case .wrongSequence(let expected, let got):
                "the reply answers sequence 0x\(Hex.digits(got, width: 2)), not this request's 0x\(Hex.digits(expected, width: 2))"
            case .wrongCommand(let expected, let got):
                "the reply answers command 0x\(Hex.digits(got, width: 2)), not 0x\(Hex.digits(expected, width: 2))"
            case .shortPayload(let expected, let got):
                "the reply's payload has \(got) bytes, the protocol needs \(expected)"
            case .badField(let name, let value):
                "the reply's \(name) is \(value) (0x\(String(value, radix: 16, uppercase: true))), which the protocol does not allow"
            case .echoMismatch(let field, let sent, let got):
                "the reply echoes \(field) 0x\(String(got, radix: 16, uppercase: true)), the request sent 0x\(String(sent, radix: 16, uppercase: true))"
            case .fieldOutsideReply(let name, let end, let length):
                "the profile reads \(name) up to byte \(end), but the reply has \(length) bytes"
            case .unexpectedLegacyReply(let matched, let skipped):
                "\(skipped) report(s) came, \(matched) matched the reply the profile describes"
            }
        }
    }

    public var kind: Kind
    /// What was being done, e.g. "GET_INFO (seq 0x2A)".
    public var operation: String
    /// Which device, e.g. "1209:0001 at 1-2 usage page 0xFFDF (/dev/hidraw3)"; empty for a bare parse.
    public var device: String
    /// The reply's bytes when a reply is at fault, else empty.
    public var report: [UInt8]

    public init(_ kind: Kind, operation: String = "", device: String = "", report: [UInt8] = []) {
        self.kind = kind
        self.operation = operation
        self.device = device
        self.report = report
    }

    static func malformed(_ malformation: Malformation, report: [UInt8]) -> AppLinkError {
        AppLinkError(.malformedReply(malformation), report: report)
    }

    /// The task was cancelled while the transport waited: no failure of the device or the wire.
    public var isCancellation: Bool {
        if case .transport(let error) = kind { error.kind == .cancelled } else { false }
    }

    /// The same error, told where it happened.
    func at(operation: String, device: String) -> AppLinkError {
        var error = self
        if error.operation.isEmpty { error.operation = operation }
        if error.device.isEmpty { error.device = device }
        return error
    }

    public var description: String {
        var what: String
        switch kind {
        case .transport(let error):
            what = error.description
        case .noReply(let timeout):
            what = "no reply within \(timeout): the firmware may not speak dfuhop's HID protocol, or it is hung"
        case .malformedReply(let malformation):
            what = "malformed reply: \(malformation.explanation)"
        case .refused(let status):
            what = "the device answered \(status.name): \(status.meaning)"
        case .stayedOnBus(let waited):
            what =
                "the application acknowledged the bootloader request but was still connected \(waited) later: "
                + "its start-up check may be missing; use the BOOT0 path"
        }
        var text = operation.isEmpty ? what : "\(operation): \(what)"
        if !device.isEmpty { text += " [\(device)]" }
        if !report.isEmpty { text += " (reply: \(Hex.string(report.prefix(AppLinkProtocol.reportLength))))" }
        return text
    }
}
