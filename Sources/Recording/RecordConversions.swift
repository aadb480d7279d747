import HexFormat
import USBTransport

extension DeviceRecord {
    public init(_ identity: USBDeviceIdentity, kind: String) {
        self.kind = kind
        vidPid = identity.vidPid
        bcdDevice = "0x" + Hex.digits(identity.bcdDevice, width: 4)
        serial = identity.serialNumber
        manufacturer = identity.manufacturer
        product = identity.product
        port = identity.portPath
    }

    public init(_ device: DiscoveredDevice) {
        switch device {
        case .dfu(let identity, let alternates):
            self.init(identity, kind: "dfu")
            self.alternates = alternates
        case .hid(let info):
            self.init(info)
        }
    }

    public init(_ info: HIDDeviceInfo) {
        self.init(info.usb, kind: "hid")
        usagePage = "0x" + Hex.digits(info.usagePage, width: 4)
        usage = "0x" + Hex.digits(info.usage, width: 4)
        interfaceNumber = info.interfaceNumber
        path = info.path
    }

    /// The USB identity this record describes; nil when a field is not what the format allows.
    public var identity: USBDeviceIdentity? {
        let ids = vidPid.split(separator: ":")
        guard ids.count == 2, let vendor = UInt16(ids[0], radix: 16), let product = UInt16(ids[1], radix: 16),
            let bcd = Self.number(bcdDevice)
        else { return nil }
        return USBDeviceIdentity(
            vendorID: vendor, productID: product, bcdDevice: bcd, serialNumber: serial, manufacturer: manufacturer,
            product: self.product, portPath: port)
    }

    /// The HID interface this record describes, when it is one.
    public var hidInfo: HIDDeviceInfo? {
        guard kind == "hid", let usb = identity, let page = usagePage.flatMap(Self.number), let usage = usage.flatMap(Self.number)
        else { return nil }
        return HIDDeviceInfo(usb: usb, usagePage: page, usage: usage, interfaceNumber: interfaceNumber ?? 0, path: path ?? "")
    }

    /// The device this record describes; nil when a field is not what the format allows.
    public var discovered: DiscoveredDevice? {
        switch kind {
        case "dfu": identity.map { .dfu($0, alternateSettings: alternates ?? []) }
        case "hid": hidInfo.map { .hid($0) }
        default: nil
        }
    }

    static func number(_ text: String) -> UInt16? {
        text.hasPrefix("0x") ? UInt16(text.dropFirst(2), radix: 16) : nil
    }
}

extension ErrorRecord {
    public init(_ error: TransportError) {
        kind = error.kind.name
        switch error.kind {
        case .badLength(let expected, let got): (self.expected, self.got) = (expected, got)
        case .other(let message): self.message = message
        default: break
        }
        device = error.device
        operation = error.operation
    }

    /// The error as the backend threw it; an unknown kind is `other` with the record's words.
    public var transportError: TransportError {
        let errorKind: TransportError.Kind
        switch kind {
        case "stall": errorKind = .stall
        case "timeout": errorKind = .timeout
        case "disconnected": errorKind = .disconnected
        case "accessDenied": errorKind = .accessDenied
        case "notFound": errorKind = .notFound
        case "cancelled": errorKind = .cancelled
        case "badLength": errorKind = .badLength(expected: expected ?? 0, got: got ?? 0)
        default: errorKind = .other(message ?? kind)
        }
        return TransportError(errorKind, device: device, operation: operation)
    }
}

extension TransportError {
    /// Any error a backend throws, as the transport layer's one error type (backends throw only
    /// `TransportError`; anything else, such as a cancelled sleep, keeps its words).
    static func wrapping(_ error: any Error, device: String, operation: String) -> TransportError {
        if let error = error as? TransportError { return error }
        // A cancelled task stays a cancellation (exit 85), not a USB failure.
        if error is CancellationError { return TransportError(.cancelled, device: device, operation: operation) }
        return TransportError(.other("\(error)"), device: device, operation: operation)
    }
}

extension Duration {
    /// Whole microseconds (a recording's `t`).
    var recordedMicroseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000 + attoseconds / 1_000_000_000_000
    }
}
