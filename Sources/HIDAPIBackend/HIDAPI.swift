import CHIDAPI
import Foundation

/// The seam between Swift and hidapi: hidapi's global calls, serialised (hid_init and hid_enumerate
/// are not thread-safe), with failures turned into `HIDAPIError` here and nowhere else.
enum HIDAPI {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var initialized = false

    /// hid_init, once per process.
    static func initialize() throws(HIDAPIError) {
        lock.lock()
        defer { lock.unlock() }
        guard !initialized else { return }
        guard hid_init() == 0 else { throw HIDAPIError(.initialize, path: "", message: globalError(), errorNumber: errno) }
        initialized = true
    }

    /// "0.13.1"
    static var version: String { hid_version_str().map { String(cString: $0) } ?? "unknown" }

    /// Every USB HID interface with `vendorID`/`productID` (0 matches any), as hid_enumerate lists them.
    static func enumerate(vendorID: UInt16, productID: UInt16) throws(HIDAPIError) -> [HIDAPIDeviceRecord] {
        try initialize()
        return lock.withLock {
            guard let first = hid_enumerate(vendorID, productID) else { return [] }
            defer { hid_free_enumeration(first) }
            var records: [HIDAPIDeviceRecord] = []
            var cursor: UnsafeMutablePointer<hid_device_info>? = first
            while let info = cursor {
                let i = info.pointee
                if i.bus_type == HID_API_BUS_USB, let path = i.path {
                    records.append(
                        HIDAPIDeviceRecord(
                            path: String(cString: path), vendorID: i.vendor_id, productID: i.product_id,
                            serialNumber: string(i.serial_number), manufacturer: string(i.manufacturer_string),
                            product: string(i.product_string), releaseNumber: i.release_number, usagePage: i.usage_page,
                            usage: i.usage, interfaceNumber: Int(i.interface_number)))
                }
                cursor = i.next
            }
            return records
        }
    }

    /// hid_open_path. Returns the opaque hid_device pointer.
    static func open(path: String) throws(HIDAPIError) -> OpaquePointer {
        try initialize()
        errno = 0
        guard let device = hid_open_path(path) else {
            let number = errno
            throw HIDAPIError(.open, path: path, message: globalError(), errorNumber: number)
        }
        return device
    }

    /// The text of hidapi's last library-wide error.
    static func globalError() -> String? { string(hid_error(nil)) }

    /// The text of hidapi's last error on `device`.
    static func deviceError(_ device: OpaquePointer) -> String? { string(hid_error(device)) }

    /// hidapi's strings are wchar_t (UTF-32 on Linux and macOS); invalid scalars become U+FFFD.
    static func string(_ wide: UnsafePointer<wchar_t>?) -> String? {
        guard let wide else { return nil }
        var scalars = String.UnicodeScalarView()
        var index = 0
        while wide[index] != 0, index < 4096 {
            scalars.append(Unicode.Scalar(UInt32(bitPattern: wide[index])) ?? "\u{FFFD}")
            index += 1
        }
        return String(scalars)
    }
}

/// One HID interface as hid_enumerate reports it.
public struct HIDAPIDeviceRecord: Sendable, Hashable {
    /// The hidraw node on Linux, e.g. "/dev/hidraw3".
    public var path: String
    public var vendorID: UInt16
    public var productID: UInt16
    public var serialNumber: String?
    public var manufacturer: String?
    public var product: String?
    /// bcdDevice.
    public var releaseNumber: UInt16
    public var usagePage: UInt16
    public var usage: UInt16
    public var interfaceNumber: Int

    public init(
        path: String, vendorID: UInt16, productID: UInt16, serialNumber: String? = nil, manufacturer: String? = nil,
        product: String? = nil, releaseNumber: UInt16 = 0, usagePage: UInt16, usage: UInt16, interfaceNumber: Int
    ) {
        self.path = path
        self.vendorID = vendorID
        self.productID = productID
        self.serialNumber = serialNumber
        self.manufacturer = manufacturer
        self.product = product
        self.releaseNumber = releaseNumber
        self.usagePage = usagePage
        self.usage = usage
        self.interfaceNumber = interfaceNumber
    }
}
