import Foundation
import USBTransport

/// The strings a device's descriptors name, read once per enumeration of the device.
public struct USBDeviceStrings: Sendable, Hashable {
    public var manufacturer: String?
    public var product: String?
    public var serialNumber: String?
    /// iInterface strings of the DFU interface's alternate settings, by bAlternateSetting.
    public var settingNames: [UInt8: String]

    public init(
        manufacturer: String? = nil, product: String? = nil, serialNumber: String? = nil,
        settingNames: [UInt8: String] = [:]
    ) {
        self.manufacturer = manufacturer
        self.product = product
        self.serialNumber = serialNumber
        self.settingNames = settingNames
    }
}

/// What a scan learned about one device: where it is, its descriptors, its DFU interfaces, its
/// strings, and why something could not be read (for `dfuhop doctor`).
public struct LibUSBDeviceRecord: Sendable, Hashable {
    public var portPath: USBPortPath
    public var address: UInt8
    public var descriptor: USBDeviceDescriptor
    /// DFU interfaces of the first configuration (DFU mode and run-time).
    public var dfuInterfaces: [DFUInterfaceDescription]
    /// Why the configuration could not be used, when it could not.
    public var descriptorProblem: String?
    /// Read only for devices with a DFU interface; nil when the device could not be opened.
    public var strings: USBDeviceStrings?
    /// Why the device could not be opened or its strings read (permissions, busy, gone).
    public var openError: LibUSBError?
    public var stringProblem: String?

    public var devicePath: String { LibUSBDevice.devicePath(bus: portPath.bus, address: address) }

    public var identity: USBDeviceIdentity {
        USBDeviceIdentity(
            vendorID: descriptor.vendorID, productID: descriptor.productID, bcdDevice: descriptor.bcdDevice,
            serialNumber: strings?.serialNumber, manufacturer: strings?.manufacturer,
            product: strings?.product, portPath: portPath.description)
    }

    /// The DFU-mode interface, if the device is in DFU mode.
    public var dfuModeInterface: DFUInterfaceDescription? { dfuInterfaces.first { $0.isDFUMode } }

    /// The device as discovery reports it, when it is in DFU mode.
    public var discovered: DiscoveredDevice? {
        guard let interface = dfuModeInterface else { return nil }
        let settings = interface.settings.map {
            DFUAlternateSetting(number: $0.alternateSetting, name: strings?.settingNames[$0.alternateSetting] ?? "")
        }
        return .dfu(identity, alternateSettings: settings)
    }
}

/// The libusb backend: scans the bus, reads descriptors and strings, opens DFU interfaces.
/// Scans and opens run on the backend's own worker, never on the cooperative pool.
public final class LibUSBBackend: @unchecked Sendable {
    // @unchecked: `stringCache` is guarded by `lock`; the rest is immutable.
    public let context: LibUSBContext
    private let worker = BlockingWorker(label: "dfuhop libusb scan")
    private let lock = NSLock()
    /// Strings per enumerated device (bus, address, vid:pid): a device is opened for them once.
    private var stringCache: [StringCacheKey: USBDeviceStrings] = [:]
    /// Timeout of each string descriptor request during a scan.
    public var stringTimeoutMilliseconds: UInt32 = 1000

    private struct StringCacheKey: Hashable {
        var bus: UInt8
        var address: UInt8
        var vendorID: UInt16
        var productID: UInt16
    }

    public init(context: LibUSBContext) {
        self.context = context
    }

    public convenience init() throws(LibUSBError) {
        try self.init(context: LibUSBContext())
    }

    /// Every device on the bus, with DFU interfaces decoded and, for DFU devices, their strings.
    public func scan() async throws(LibUSBError) -> [LibUSBDeviceRecord] {
        try await worker.run { () throws(LibUSBError) in try self.scanNow(openingDevices: true) }
    }

    /// What libusb knows right now without talking to any device: descriptors from the OS cache,
    /// strings only from earlier scans. Cheap and non-blocking, for callers that must not wait.
    public func cachedScan() throws(LibUSBError) -> [LibUSBDeviceRecord] {
        try scanNow(openingDevices: false)
    }

    /// The devices in DFU mode now.
    public func dfuDevices() async throws(LibUSBError) -> [LibUSBDeviceRecord] {
        try await scan().filter { $0.dfuModeInterface != nil }
    }

    /// Opens the DFU-mode interface of the unit `identity` names: same port path and VID:PID, and the
    /// same serial when the identity has one. A unit that re-enumerated (new address, same port) is
    /// found again this way. Detaches a kernel driver if one holds the interface, then claims it.
    public func openDFU(_ identity: USBDeviceIdentity) async throws(TransportError) -> LibUSBDFUTransport {
        let records: [LibUSBDeviceRecord]
        do { records = try await dfuDevices() } catch {
            throw error.transportError(device: identity.description, operation: "scan for the DFU device")
        }
        let record = try Self.select(identity, from: records)
        return try await worker.run { () throws(TransportError) in try self.openNow(record) }
    }

    /// Picks the record `identity` names; refuses to guess between two.
    static func select(_ identity: USBDeviceIdentity, from records: [LibUSBDeviceRecord]) throws(TransportError) -> LibUSBDeviceRecord {
        let sameKind = records.filter {
            $0.descriptor.vendorID == identity.vendorID && $0.descriptor.productID == identity.productID
        }
        let onPort = identity.portPath.isEmpty ? sameKind : sameKind.filter { $0.portPath.description == identity.portPath }
        let matching = identity.serialNumber.map { serial in onPort.filter { $0.strings?.serialNumber == serial } } ?? onPort
        switch matching.count {
        case 1:
            return matching[0]
        case 0:
            var why = "no \(identity.vidPid) DFU device"
            if !identity.portPath.isEmpty { why += " at \(identity.portPath)" }
            if let serial = identity.serialNumber { why += " with serial \(serial)" }
            if let other = onPort.first {
                why +=
                    other.strings == nil
                    ? "; the device there could not be opened to read its serial (\(other.openError.map { "\($0)" } ?? "unknown reason"))"
                    : "; the device there has serial \(other.strings?.serialNumber ?? "none")"
            }
            throw TransportError(.notFound, device: identity.description, operation: "open DFU interface: \(why)")
        default:
            throw TransportError(
                .other("\(matching.count) devices match (\(matching.map(\.portPath.description).joined(separator: ", "))); name the port"),
                device: identity.description, operation: "open DFU interface")
        }
    }

    private func scanNow(openingDevices: Bool) throws(LibUSBError) -> [LibUSBDeviceRecord] {
        let devices = try context.devices()
        var records: [LibUSBDeviceRecord] = []
        var liveKeys = Set<StringCacheKey>()
        for device in devices {
            guard let descriptor = try? device.deviceDescriptor() else { continue }
            var record = LibUSBDeviceRecord(
                portPath: device.portPath, address: device.address, descriptor: descriptor,
                dfuInterfaces: [])
            if descriptor.configurationCount > 0 {
                do {
                    let configuration = try device.configuration(index: 0)
                    record.dfuInterfaces = try DFUInterfaceDescription.find(in: configuration)
                } catch {
                    record.descriptorProblem = "\(error)"
                }
            }
            if !record.dfuInterfaces.isEmpty {
                let key = StringCacheKey(
                    bus: device.bus, address: device.address, vendorID: descriptor.vendorID,
                    productID: descriptor.productID)
                liveKeys.insert(key)
                if let cached = lock.withLock({ stringCache[key] }) {
                    record.strings = cached
                } else if openingDevices {
                    readStrings(of: device, into: &record)
                    if let strings = record.strings, record.stringProblem == nil {
                        lock.withLock { stringCache[key] = strings }
                    }
                }
            }
            records.append(record)
        }
        if openingDevices { lock.withLock { stringCache = stringCache.filter { liveKeys.contains($0.key) } } }
        return records.sorted { $0.portPath < $1.portPath }
    }

    private func readStrings(of device: LibUSBDevice, into record: inout LibUSBDeviceRecord) {
        let handle: LibUSBDeviceHandle
        do { handle = try device.open() } catch {
            record.openError = error
            return
        }
        defer { handle.close() }
        var strings = USBDeviceStrings()
        var problems: [String] = []
        let indices =
            [record.descriptor.manufacturerIndex, record.descriptor.productIndex, record.descriptor.serialNumberIndex]
            + record.dfuInterfaces.flatMap { $0.settings.map(\.nameIndex) }
        var language = USBStringDescriptor.englishUS
        if indices.contains(where: { $0 != 0 }) { // string descriptor 0 exists only when strings do (USB 2.0 §9.6.7)
            do { language = try handle.firstLanguage(timeoutMilliseconds: stringTimeoutMilliseconds) } catch {
                problems.append("string languages: \(error)")
            }
        }
        func read(_ index: UInt8, _ what: String) -> String? {
            do { return try handle.string(index: index, language: language, timeoutMilliseconds: stringTimeoutMilliseconds) } catch {
                problems.append("\(what): \(error)")
                return nil
            }
        }
        strings.manufacturer = read(record.descriptor.manufacturerIndex, "manufacturer string")
        strings.product = read(record.descriptor.productIndex, "product string")
        strings.serialNumber = read(record.descriptor.serialNumberIndex, "serial number string")
        for interface in record.dfuInterfaces {
            for setting in interface.settings {
                strings.settingNames[setting.alternateSetting] = read(
                    setting.nameIndex, "name of alternate setting \(setting.alternateSetting)")
            }
        }
        record.strings = strings
        record.stringProblem = problems.isEmpty ? nil : problems.joined(separator: "; ")
    }

    /// Whether a kernel driver holds `interface`; platforms without the notion (macOS) answer no.
    private static func kernelDriverActive(_ handle: LibUSBDeviceHandle, interface: UInt8) throws(LibUSBError) -> Bool {
        do { return try handle.kernelDriverActive(interface: interface) } catch  where error.code == .notSupported {
            return false
        }
    }

    private func openNow(_ record: LibUSBDeviceRecord) throws(TransportError) -> LibUSBDFUTransport {
        let identity = record.identity
        guard let interface = record.dfuModeInterface else {
            throw TransportError(.notFound, device: identity.description, operation: "open DFU interface: the device is not in DFU mode")
        }
        let current: [LibUSBDevice]
        do { current = try context.devices() } catch {
            throw error.transportError(device: identity.description, operation: "scan for the DFU device")
        }
        guard let device = current.first(where: { $0.bus == record.portPath.bus && $0.address == record.address }) else {
            throw TransportError(.disconnected, device: identity.description, operation: "open DFU interface")
        }
        var step = "libusb_open"
        do throws(LibUSBError) {
            let handle = try device.open()
            do {
                step = "check for a kernel driver on interface \(interface.interfaceNumber)"
                if try Self.kernelDriverActive(handle, interface: interface.interfaceNumber) {
                    step = "detach the kernel driver from interface \(interface.interfaceNumber)"
                    try handle.detachKernelDriver(interface: interface.interfaceNumber)
                }
                step = "claim interface \(interface.interfaceNumber)"
                try handle.claimInterface(interface.interfaceNumber)
            } catch {
                handle.close()
                throw error
            }
            let settings = interface.settings.map {
                DFUAlternateSetting(number: $0.alternateSetting, name: record.strings?.settingNames[$0.alternateSetting] ?? "")
            }
            return LibUSBDFUTransport(
                identity: identity, interfaceNumber: interface.interfaceNumber, alternateSettings: settings,
                functionalDescriptor: interface.functionalDescriptor, channel: handle)
        } catch {
            throw error.transportError(device: identity.description, operation: step)
        }
    }
}
