import CLibUSB
import USBTransport

/// A device libusb knows about (libusb_device), not yet opened. Reading it does no I/O: the OS caches
/// the device and configuration descriptors.
public final class LibUSBDevice: @unchecked Sendable {
    // @unchecked: libusb_device is reference counted and immutable once enumerated.
    let context: LibUSBContext
    let pointer: OpaquePointer

    init(context: LibUSBContext, pointer: OpaquePointer) {
        self.context = context
        self.pointer = pointer
        libusb_ref_device(pointer)
    }

    deinit { libusb_unref_device(pointer) }

    public var bus: UInt8 { libusb_get_bus_number(pointer) }
    public var address: UInt8 { libusb_get_device_address(pointer) }
    public var portPath: USBPortPath { Self.portPath(of: pointer) }

    /// The usbfs node libusb opens on Linux.
    public var devicePath: String { Self.devicePath(bus: bus, address: address) }

    public static func devicePath(bus: UInt8, address: UInt8) -> String {
        "/dev/bus/usb/\(decimal(bus, 3))/\(decimal(address, 3))"
    }

    static func portPath(of device: OpaquePointer) -> USBPortPath {
        var ports = [UInt8](repeating: 0, count: USBPortPath.maxDepth)
        let count = libusb_get_port_numbers(device, &ports, Int32(ports.count))
        return USBPortPath(bus: libusb_get_bus_number(device), ports: count > 0 ? Array(ports.prefix(Int(count))) : [])
    }

    public func deviceDescriptor() throws(LibUSBError) -> USBDeviceDescriptor {
        var raw = libusb_device_descriptor()
        try LibUSB.check("libusb_get_device_descriptor") { libusb_get_device_descriptor(pointer, &raw) }
        return USBDeviceDescriptor(
            usbVersion: raw.bcdUSB, deviceClass: raw.bDeviceClass, deviceSubclass: raw.bDeviceSubClass,
            deviceProtocol: raw.bDeviceProtocol, maxPacketSize0: raw.bMaxPacketSize0, vendorID: raw.idVendor,
            productID: raw.idProduct, bcdDevice: raw.bcdDevice, manufacturerIndex: raw.iManufacturer,
            productIndex: raw.iProduct, serialNumberIndex: raw.iSerialNumber, configurationCount: raw.bNumConfigurations)
    }

    /// The configuration at `index` (0-based), from libusb's parse of the cached descriptors.
    /// The class-specific bytes (`extra`) are copied untouched for this package's own parsers.
    public func configuration(index: UInt8) throws(LibUSBError) -> USBConfiguration {
        var config: UnsafeMutablePointer<libusb_config_descriptor>?
        try LibUSB.check("libusb_get_config_descriptor(\(index))") { libusb_get_config_descriptor(pointer, index, &config) }
        guard let config else { throw LibUSBError(.other, operation: "libusb_get_config_descriptor(\(index)) returned nothing") }
        defer { libusb_free_config_descriptor(config) }
        let c = config.pointee
        var settings: [USBInterfaceSetting] = []
        for i in 0..<Int(c.bNumInterfaces) {
            guard let interfaces = c.interface else { break }
            let interface = interfaces[i]
            for a in 0..<Int(max(0, interface.num_altsetting)) {
                guard let altsettings = interface.altsetting else { break }
                let s = altsettings[a]
                settings.append(
                    USBInterfaceSetting(
                        interfaceNumber: s.bInterfaceNumber, alternateSetting: s.bAlternateSetting,
                        interfaceClass: s.bInterfaceClass, interfaceSubclass: s.bInterfaceSubClass,
                        interfaceProtocol: s.bInterfaceProtocol, nameIndex: s.iInterface, endpointCount: s.bNumEndpoints,
                        extra: Self.bytes(s.extra, Int(s.extra_length))))
            }
        }
        return USBConfiguration(
            value: c.bConfigurationValue, nameIndex: c.iConfiguration, attributes: c.bmAttributes,
            maxPower: c.MaxPower, settings: settings, extra: Self.bytes(c.extra, Int(c.extra_length)))
    }

    /// Opens the device (libusb_open). Blocking: call it on a worker.
    public func open() throws(LibUSBError) -> LibUSBDeviceHandle {
        try LibUSBDeviceHandle(device: self)
    }

    private static func bytes(_ pointer: UnsafePointer<UInt8>?, _ count: Int) -> [UInt8] {
        guard let pointer, count > 0 else { return [] }
        return Array(UnsafeBufferPointer(start: pointer, count: count))
    }
}

/// `value` in decimal, zero-padded to `width` digits.
func decimal<T: BinaryInteger>(_ value: T, _ width: Int) -> String {
    let digits = String(value)
    return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
}
