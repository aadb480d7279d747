import HexFormat

/// The DFU functional descriptor (DFU 1.1 §4.1.3, bDescriptorType 0x21).
public struct DFUFunctionalDescriptor: Sendable, Hashable, Codable {
    /// bmAttributes: bit 0 canDownload, 1 canUpload, 2 manifestationTolerant, 3 willDetach.
    public var attributes: UInt8
    public var detachTimeoutMs: UInt16
    /// wTransferSize: the largest DNLOAD/UPLOAD block the device accepts.
    public var transferSize: UInt16
    /// bcdDFUVersion: 0x011A for ST's DfuSe ROMs, 0x0110 for plain DFU 1.1.
    public var dfuVersion: UInt16

    public init(attributes: UInt8, detachTimeoutMs: UInt16, transferSize: UInt16, dfuVersion: UInt16) {
        self.attributes = attributes
        self.detachTimeoutMs = detachTimeoutMs
        self.transferSize = transferSize
        self.dfuVersion = dfuVersion
    }

    public var canDownload: Bool { attributes & 0x01 != 0 }
    public var canUpload: Bool { attributes & 0x02 != 0 }
    public var manifestationTolerant: Bool { attributes & 0x04 != 0 }
    public var willDetach: Bool { attributes & 0x08 != 0 }
    public var isDfuSe: Bool { dfuVersion == 0x011A }

    /// Parses the 9-byte descriptor (bLength 9, bDescriptorType 0x21).
    public static func parse(_ bytes: [UInt8]) -> DFUFunctionalDescriptor? {
        guard bytes.count >= 9, bytes[0] >= 9, bytes[1] == 0x21 else { return nil }
        return DFUFunctionalDescriptor(
            attributes: bytes[2],
            detachTimeoutMs: UInt16(bytes[3]) | UInt16(bytes[4]) << 8,
            transferSize: UInt16(bytes[5]) | UInt16(bytes[6]) << 8,
            dfuVersion: UInt16(bytes[7]) | UInt16(bytes[8]) << 8)
    }

    public var bytes: [UInt8] {
        [
            9, 0x21, attributes, UInt8(detachTimeoutMs & 0xFF), UInt8(detachTimeoutMs >> 8),
            UInt8(transferSize & 0xFF), UInt8(transferSize >> 8), UInt8(dfuVersion & 0xFF), UInt8(dfuVersion >> 8)
        ]
    }
}

/// One alternate setting of the DFU interface; for DfuSe its name is the memory layout string.
public struct DFUAlternateSetting: Sendable, Hashable, Codable {
    public var number: UInt8
    /// The iInterface string, e.g. "@Internal Flash  /0x08000000/04*016Kg,01*064Kg,07*128Kg".
    public var name: String

    public init(number: UInt8, name: String) {
        self.number = number
        self.name = name
    }
}

/// What identifies a USB device and where it sits.
public struct USBDeviceIdentity: Sendable, Hashable, Codable, CustomStringConvertible {
    public var vendorID: UInt16
    public var productID: UInt16
    public var bcdDevice: UInt16
    public var serialNumber: String?
    public var manufacturer: String?
    public var product: String?
    /// Bus and port chain, e.g. "1-2.3"; stable across re-enumeration on the same port.
    public var portPath: String

    public init(
        vendorID: UInt16, productID: UInt16, bcdDevice: UInt16 = 0, serialNumber: String? = nil,
        manufacturer: String? = nil, product: String? = nil, portPath: String
    ) {
        self.vendorID = vendorID
        self.productID = productID
        self.bcdDevice = bcdDevice
        self.serialNumber = serialNumber
        self.manufacturer = manufacturer
        self.product = product
        self.portPath = portPath
    }

    public var vidPid: String { "\(Hex.digits(vendorID, width: 4).lowercased()):\(Hex.digits(productID, width: 4).lowercased())" }

    public var description: String {
        var text = "\(vidPid) at \(portPath)"
        if let serialNumber { text += " serial \(serialNumber)" }
        return text
    }
}

/// Everything the DfuSe client may know about a device in DFU mode: descriptors and control transfers.
/// Implemented by the libusb backend and by the virtual device.
public protocol DFUTransport: AnyObject, Sendable {
    var identity: USBDeviceIdentity { get }
    /// bInterfaceNumber of the DFU interface (wIndex of every DFU request).
    var interfaceNumber: UInt8 { get }
    var alternateSettings: [DFUAlternateSetting] { get }
    var functionalDescriptor: DFUFunctionalDescriptor { get }

    /// SET_INTERFACE to the given alternate setting of the DFU interface.
    func selectAlternateSetting(_ number: UInt8) async throws(TransportError)
    /// Host-to-device control transfer with a data stage of `data.count` bytes (may be 0).
    func controlOut(_ request: ControlRequest, data: [UInt8], timeout: Duration) async throws(TransportError)
    /// Device-to-host control transfer of at most `length` bytes; returns what the device sent.
    func controlIn(_ request: ControlRequest, length: Int, timeout: Duration) async throws(TransportError) -> [UInt8]
    /// Releases the interface and the device handle. Never throws: a vanished device is closed too.
    func close() async
    /// Where a client should run loops of many transfers (SE-0417 task executor preference): a backend
    /// whose calls block on a thread of its own offers that thread, so each transfer runs in place
    /// instead of hopping threads. nil (the default): anywhere.
    var preferredExecutor: (any TaskExecutor)? { get }
}

extension DFUTransport {
    public var preferredExecutor: (any TaskExecutor)? { nil }
}

/// A DFU transport that wraps another to watch its calls (the `-vv` trace, `--record`): the interface it
/// describes, and where its transfers should run, are the wrapped transport's.
public protocol DFUTransportWrapper: DFUTransport {
    var base: any DFUTransport { get }
}

extension DFUTransportWrapper {
    public var identity: USBDeviceIdentity { base.identity }
    public var interfaceNumber: UInt8 { base.interfaceNumber }
    public var alternateSettings: [DFUAlternateSetting] { base.alternateSettings }
    public var functionalDescriptor: DFUFunctionalDescriptor { base.functionalDescriptor }
    public var preferredExecutor: (any TaskExecutor)? { base.preferredExecutor }
}
