import HexFormat
import USBTransport

/// A descriptor that cannot be right. Descriptors are outside input: a broken or hostile device
/// gets this error, never a crash or an endless loop.
public struct DescriptorError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Which descriptor was being read, e.g. "configuration descriptor" or "string descriptor 3".
    public var descriptor: String
    /// Byte offset of the problem inside the bytes that were given.
    public var offset: Int
    public var problem: String

    public init(_ descriptor: String, offset: Int, _ problem: String) {
        self.descriptor = descriptor
        self.offset = offset
        self.problem = problem
    }

    public var description: String { "\(descriptor), byte \(offset): \(problem)" }
}

/// USB 2.0 §9.4: descriptor type codes used here.
public enum DescriptorType {
    public static let device: UInt8 = 0x01
    public static let configuration: UInt8 = 0x02
    public static let string: UInt8 = 0x03
    public static let interface: UInt8 = 0x04
    public static let endpoint: UInt8 = 0x05
    /// DFU 1.1 §4.1.3 (and §4.2.4): the DFU functional descriptor.
    public static let dfuFunctional: UInt8 = 0x21
}

/// One descriptor inside a list of concatenated descriptors (a configuration, or libusb's `extra` bytes).
public struct RawDescriptor: Sendable, Hashable {
    public var type: UInt8
    /// The whole descriptor, bLength and bDescriptorType included.
    public var bytes: [UInt8]
    /// Where it starts in the list.
    public var offset: Int
}

/// Splits concatenated descriptors (USB 2.0 §9.5). Every bLength is checked: a 0 or 1 would make a
/// naive walker loop forever, a length past the end would read out of bounds; both are errors.
public func splitDescriptors(_ bytes: [UInt8], context: String) throws(DescriptorError) -> [RawDescriptor] {
    var result: [RawDescriptor] = []
    var offset = 0
    while offset < bytes.count {
        guard bytes.count - offset >= 2 else {
            throw DescriptorError(context, offset: offset, "1 stray byte after the last descriptor")
        }
        let length = Int(bytes[offset])
        guard length >= 2 else {
            throw DescriptorError(context, offset: offset, "bLength \(length) is shorter than a descriptor header (2)")
        }
        guard offset + length <= bytes.count else {
            throw DescriptorError(
                context, offset: offset,
                "bLength \(length) runs past the end (\(bytes.count - offset) bytes left)")
        }
        result.append(RawDescriptor(type: bytes[offset + 1], bytes: Array(bytes[offset..<offset + length]), offset: offset))
        offset += length
    }
    return result
}

@inline(__always)
private func le16(_ bytes: [UInt8], _ index: Int) -> UInt16 {
    UInt16(bytes[index]) | UInt16(bytes[index + 1]) << 8
}

/// The standard device descriptor (USB 2.0 §9.6.1).
public struct USBDeviceDescriptor: Sendable, Hashable {
    public var usbVersion: UInt16
    public var deviceClass: UInt8
    public var deviceSubclass: UInt8
    public var deviceProtocol: UInt8
    public var maxPacketSize0: UInt8
    public var vendorID: UInt16
    public var productID: UInt16
    public var bcdDevice: UInt16
    public var manufacturerIndex: UInt8
    public var productIndex: UInt8
    public var serialNumberIndex: UInt8
    public var configurationCount: UInt8

    public init(
        usbVersion: UInt16, deviceClass: UInt8, deviceSubclass: UInt8, deviceProtocol: UInt8,
        maxPacketSize0: UInt8, vendorID: UInt16, productID: UInt16, bcdDevice: UInt16,
        manufacturerIndex: UInt8, productIndex: UInt8, serialNumberIndex: UInt8, configurationCount: UInt8
    ) {
        self.usbVersion = usbVersion
        self.deviceClass = deviceClass
        self.deviceSubclass = deviceSubclass
        self.deviceProtocol = deviceProtocol
        self.maxPacketSize0 = maxPacketSize0
        self.vendorID = vendorID
        self.productID = productID
        self.bcdDevice = bcdDevice
        self.manufacturerIndex = manufacturerIndex
        self.productIndex = productIndex
        self.serialNumberIndex = serialNumberIndex
        self.configurationCount = configurationCount
    }

    /// Parses the 18-byte descriptor at the start of `bytes`.
    public init(parsing bytes: [UInt8]) throws(DescriptorError) {
        let context = "device descriptor"
        guard bytes.count >= 18 else { throw DescriptorError(context, offset: 0, "\(bytes.count) bytes, need 18") }
        guard bytes[0] >= 18 else { throw DescriptorError(context, offset: 0, "bLength \(bytes[0]), need 18") }
        guard bytes[1] == DescriptorType.device else {
            throw DescriptorError(context, offset: 1, "bDescriptorType 0x\(Hex.digits(bytes[1], width: 2)), expected 0x01")
        }
        self.init(
            usbVersion: le16(bytes, 2), deviceClass: bytes[4], deviceSubclass: bytes[5], deviceProtocol: bytes[6],
            maxPacketSize0: bytes[7], vendorID: le16(bytes, 8), productID: le16(bytes, 10), bcdDevice: le16(bytes, 12),
            manufacturerIndex: bytes[14], productIndex: bytes[15], serialNumberIndex: bytes[16],
            configurationCount: bytes[17])
    }
}

/// One alternate setting of one interface (USB 2.0 §9.6.5) and the class-specific descriptors after it.
public struct USBInterfaceSetting: Sendable, Hashable {
    public var interfaceNumber: UInt8
    public var alternateSetting: UInt8
    public var interfaceClass: UInt8
    public var interfaceSubclass: UInt8
    public var interfaceProtocol: UInt8
    /// iInterface; 0 when the setting has no name.
    public var nameIndex: UInt8
    public var endpointCount: UInt8
    /// Descriptors between this interface descriptor and the next one, endpoints excluded (libusb's `extra`).
    public var extra: [UInt8]

    public init(
        interfaceNumber: UInt8, alternateSetting: UInt8, interfaceClass: UInt8, interfaceSubclass: UInt8,
        interfaceProtocol: UInt8, nameIndex: UInt8, endpointCount: UInt8, extra: [UInt8]
    ) {
        self.interfaceNumber = interfaceNumber
        self.alternateSetting = alternateSetting
        self.interfaceClass = interfaceClass
        self.interfaceSubclass = interfaceSubclass
        self.interfaceProtocol = interfaceProtocol
        self.nameIndex = nameIndex
        self.endpointCount = endpointCount
        self.extra = extra
    }
}

/// A configuration (USB 2.0 §9.6.3) with its interfaces' alternate settings in descriptor order.
public struct USBConfiguration: Sendable, Hashable {
    public var value: UInt8
    public var nameIndex: UInt8
    public var attributes: UInt8
    /// bMaxPower in 2 mA units (USB 2.0).
    public var maxPower: UInt8
    public var settings: [USBInterfaceSetting]
    /// Class-specific descriptors between the configuration descriptor and the first interface.
    public var extra: [UInt8]

    public init(
        value: UInt8, nameIndex: UInt8, attributes: UInt8, maxPower: UInt8, settings: [USBInterfaceSetting],
        extra: [UInt8] = []
    ) {
        self.value = value
        self.nameIndex = nameIndex
        self.attributes = attributes
        self.maxPower = maxPower
        self.settings = settings
        self.extra = extra
    }

    /// Parses a whole configuration (wTotalLength bytes: configuration, interface, endpoint and
    /// class descriptors). Bytes after wTotalLength are ignored, as the host does; a bNumInterfaces
    /// that disagrees with the interfaces present is tolerated (the descriptors that are there count).
    public init(parsing bytes: [UInt8]) throws(DescriptorError) {
        let context = "configuration descriptor"
        guard bytes.count >= 9 else { throw DescriptorError(context, offset: 0, "\(bytes.count) bytes, need at least 9") }
        guard bytes[0] >= 9 else { throw DescriptorError(context, offset: 0, "bLength \(bytes[0]), need 9") }
        guard bytes[1] == DescriptorType.configuration else {
            throw DescriptorError(context, offset: 1, "bDescriptorType 0x\(Hex.digits(bytes[1], width: 2)), expected 0x02")
        }
        let totalLength = Int(le16(bytes, 2))
        guard totalLength >= Int(bytes[0]) else {
            throw DescriptorError(context, offset: 2, "wTotalLength \(totalLength) is shorter than bLength \(bytes[0])")
        }
        guard totalLength <= bytes.count else {
            throw DescriptorError(context, offset: 2, "wTotalLength \(totalLength) but only \(bytes.count) bytes")
        }
        let descriptors = try splitDescriptors(Array(bytes[0..<totalLength]), context: context)

        var settings: [USBInterfaceSetting] = []
        var configurationExtra: [UInt8] = []
        var seenSettings = Set<[UInt8]>()
        for descriptor in descriptors.dropFirst() {
            switch descriptor.type {
            case DescriptorType.interface:
                guard descriptor.bytes.count >= 9 else {
                    throw DescriptorError(
                        context, offset: descriptor.offset,
                        "interface descriptor with bLength \(descriptor.bytes.count), need 9")
                }
                let b = descriptor.bytes
                guard seenSettings.insert([b[2], b[3]]).inserted else {
                    throw DescriptorError(
                        context, offset: descriptor.offset,
                        "interface \(b[2]) alternate setting \(b[3]) appears twice")
                }
                settings.append(
                    USBInterfaceSetting(
                        interfaceNumber: b[2], alternateSetting: b[3], interfaceClass: b[5], interfaceSubclass: b[6],
                        interfaceProtocol: b[7], nameIndex: b[8], endpointCount: b[4], extra: []))
            case DescriptorType.endpoint:
                guard !settings.isEmpty else {
                    throw DescriptorError(context, offset: descriptor.offset, "endpoint descriptor before any interface")
                }
                guard descriptor.bytes.count >= 7 else {
                    throw DescriptorError(
                        context, offset: descriptor.offset,
                        "endpoint descriptor with bLength \(descriptor.bytes.count), need 7")
                }
            case DescriptorType.configuration, DescriptorType.device:
                throw DescriptorError(
                    context, offset: descriptor.offset,
                    "a second device or configuration descriptor inside the configuration")
            default:
                if settings.isEmpty {
                    configurationExtra += descriptor.bytes
                } else {
                    settings[settings.count - 1].extra += descriptor.bytes
                }
            }
        }
        self.init(
            value: bytes[5], nameIndex: bytes[6], attributes: bytes[7], maxPower: bytes[8], settings: settings,
            extra: configurationExtra)
    }
}

/// String descriptors (USB 2.0 §9.6.7): UTF-16LE text, or at index 0 the supported language ids.
public enum USBStringDescriptor {
    /// US English, the language nearly every device offers first.
    public static let englishUS: UInt16 = 0x0409

    /// Decodes a string descriptor. An odd bLength drops its last byte; unpaired surrogates become U+FFFD;
    /// trailing NULs (some firmware pads with them) are removed.
    public static func decode(_ bytes: [UInt8], index: UInt8) throws(DescriptorError) -> String {
        let context = "string descriptor \(index)"
        let length = try checkedLength(bytes, context: context)
        var units: [UInt16] = []
        units.reserveCapacity(length / 2)
        var offset = 2
        while offset + 1 < length {
            units.append(le16(bytes, offset))
            offset += 2
        }
        while units.last == 0 { units.removeLast() }
        return String(decoding: units, as: UTF16.self)
    }

    /// The language ids of string descriptor 0, in the device's order.
    public static func languages(_ bytes: [UInt8]) throws(DescriptorError) -> [UInt16] {
        let length = try checkedLength(bytes, context: "string descriptor 0 (languages)")
        return stride(from: 2, to: length - 1, by: 2).map { le16(bytes, $0) }
    }

    private static func checkedLength(_ bytes: [UInt8], context: String) throws(DescriptorError) -> Int {
        guard bytes.count >= 2 else { throw DescriptorError(context, offset: 0, "\(bytes.count) bytes, need at least 2") }
        guard bytes[1] == DescriptorType.string else {
            throw DescriptorError(context, offset: 1, "bDescriptorType 0x\(Hex.digits(bytes[1], width: 2)), expected 0x03")
        }
        let length = Int(bytes[0])
        guard length >= 2 else { throw DescriptorError(context, offset: 0, "bLength \(length), need at least 2") }
        guard length <= bytes.count else {
            throw DescriptorError(context, offset: 0, "bLength \(length) but only \(bytes.count) bytes arrived")
        }
        return length
    }
}
