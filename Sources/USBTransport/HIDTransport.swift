import HexFormat

/// What identifies a HID interface: its USB identity plus the HID top-level collection.
public struct HIDDeviceInfo: Sendable, Hashable, Codable, CustomStringConvertible {
    public var usb: USBDeviceIdentity
    public var usagePage: UInt16
    public var usage: UInt16
    public var interfaceNumber: Int
    /// The backend's path for opening it (hidraw node, virtual id).
    public var path: String

    public init(usb: USBDeviceIdentity, usagePage: UInt16, usage: UInt16, interfaceNumber: Int, path: String) {
        self.usb = usb
        self.usagePage = usagePage
        self.usage = usage
        self.interfaceNumber = interfaceNumber
        self.path = path
    }

    public var description: String {
        "\(usb) usage page 0x\(Hex.digits(usagePage, width: 4)) (\(path))"
    }
}

/// A HID interface opened for reports. Reports carry their report id as the first byte
/// (0 when the device uses no report ids), as hidapi does.
public protocol HIDTransport: AnyObject, Sendable {
    var info: HIDDeviceInfo { get }
    /// Sends an output report (interrupt OUT or SET_REPORT).
    func write(_ report: [UInt8]) async throws(TransportError)
    /// Waits up to `timeout` for the next input report; nil when none came.
    func read(timeout: Duration) async throws(TransportError) -> [UInt8]?
    /// GET_REPORT(Feature); `length` includes the report id byte.
    func getFeatureReport(id: UInt8, length: Int) async throws(TransportError) -> [UInt8]
    /// SET_REPORT(Feature); the first byte is the report id.
    func sendFeatureReport(_ report: [UInt8]) async throws(TransportError)
    func close() async
}
