import CHIDAPI
import Foundation
import USBTransport

/// Which HID interfaces a product profile owns: any field left nil matches everything.
public struct HIDMatch: Sendable, Hashable {
    public var vendorID: UInt16?
    public var productID: UInt16?
    public var usagePage: UInt16?

    public init(vendorID: UInt16? = nil, productID: UInt16? = nil, usagePage: UInt16? = nil) {
        self.vendorID = vendorID
        self.productID = productID
        self.usagePage = usagePage
    }

    public func matches(_ record: HIDAPIDeviceRecord) -> Bool {
        (vendorID.map { $0 == record.vendorID } ?? true)
            && (productID.map { $0 == record.productID } ?? true)
            && (usagePage.map { $0 == record.usagePage } ?? true)
    }
}

/// The hidapi backend (hidraw on Linux): enumerates HID interfaces, places them on their USB port,
/// and opens them by path.
public final class HIDAPIBackend: Sendable {
    private let queue = DispatchQueue(label: "dfuhop hidapi enumerate", qos: .userInitiated)

    public init() throws(HIDAPIError) {
        try HIDAPI.initialize()
    }

    /// hidapi's version, e.g. "0.13.1".
    public static var libraryVersion: String { HIDAPI.version }

    /// USB HID interfaces matching any of `matches` (all of them when `matches` is empty), with the
    /// USB port each sits on (empty when sysfs cannot tell).
    public func devices(matching matches: [HIDMatch] = []) async throws(HIDAPIError) -> [HIDDeviceInfo] {
        let records: Result<[HIDAPIDeviceRecord], HIDAPIError> = await withCheckedContinuation { continuation in
            queue.async {
                continuation.resume(returning: Result { () throws(HIDAPIError) in try HIDAPI.enumerate(vendorID: 0, productID: 0) })
            }
        }
        return try records.get()
            .filter { record in matches.isEmpty || matches.contains { $0.matches(record) } }
            .map(Self.info)
    }

    static func info(_ record: HIDAPIDeviceRecord) -> HIDDeviceInfo {
        let location = HIDRawSysfs.usbLocation(ofNode: record.path)
        let usb = USBDeviceIdentity(
            vendorID: record.vendorID, productID: record.productID, bcdDevice: record.releaseNumber,
            serialNumber: record.serialNumber, manufacturer: record.manufacturer,
            product: record.product, portPath: location?.portPath ?? "")
        return HIDDeviceInfo(
            usb: usb, usagePage: record.usagePage, usage: record.usage,
            interfaceNumber: record.interfaceNumber >= 0 ? record.interfaceNumber : (location?.interfaceNumber ?? -1),
            path: record.path)
    }

    /// Opens the interface at `info.path`. Whether reports are numbered comes from the report
    /// descriptor in sysfs; without one, reports are taken as numbered (hidapi's own convention).
    public func open(_ info: HIDDeviceInfo) async throws(TransportError) -> HIDAPITransport {
        let numbered: Bool
        if let bytes = HIDRawSysfs.reportDescriptor(ofNode: info.path) {
            do { numbered = try HIDReportDescriptor(parsing: bytes).usesReportIDs } catch {
                throw TransportError(.other("its \(error)"), device: info.description, operation: "read the report descriptor")
            }
        } else {
            numbered = true
        }
        let path = info.path
        let opened: Result<OpaquePointer, HIDAPIError> = await withCheckedContinuation { continuation in
            queue.async { continuation.resume(returning: Result { () throws(HIDAPIError) in try HIDAPI.open(path: path) }) }
        }
        switch opened {
        case .success(let device): return HIDAPITransport(info: info, device: device, numberedReports: numbered)
        case .failure(let error): throw error.transportError(device: info.description, operation: "open \(path)")
        }
    }
}
