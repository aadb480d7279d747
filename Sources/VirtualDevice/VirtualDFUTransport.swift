import DfuSeWire
import USBTransport

/// A handle on a virtual unit's ROM DFU interface, valid for one enumeration: once the unit resets,
/// jumps or is unplugged, every call fails with `.disconnected`, as a libusb handle would.
public final class VirtualDFUTransport: DFUTransport {
    public let unit: VirtualUnit
    public let identity: USBDeviceIdentity
    public let interfaceNumber: UInt8 = 0
    public let alternateSettings: [DFUAlternateSetting]
    public let functionalDescriptor: DFUFunctionalDescriptor
    let enumeration: Int

    /// Opens the unit's DFU interface; `.notFound` when the ROM is not running.
    public init(unit: VirtualUnit) throws(TransportError) {
        let opened = unit.lock.withLock { () -> (Int, [DFUAlternateSetting])? in
            unit.mode == .rom ? (unit.enumeration, unit.alternateSettingsLocked) : nil
        }
        guard let (enumeration, alternates) = opened else {
            throw TransportError(.notFound, device: "virtual \(unit.family.id) at \(unit.portPath)", operation: "open DFU interface")
        }
        self.unit = unit
        self.enumeration = enumeration
        self.identity = unit.dfuIdentity
        self.alternateSettings = alternates
        self.deviceName = "virtual \(unit.family.id) \(unit.dfuIdentity)"
        // ST ROMs: bmAttributes 0x0B (download, upload, will detach), wDetachTimeOut 255, bcdDFU 0x011A.
        self.functionalDescriptor = DFUFunctionalDescriptor(
            attributes: 0x0B, detachTimeoutMs: 255,
            transferSize: unit.family.rom.transferSize, dfuVersion: 0x011A)
    }

    /// What errors name the device as (built once: every transfer passes it).
    let deviceName: String

    public func selectAlternateSetting(_ number: UInt8) async throws(TransportError) {
        guard unit.selectAlternateSetting(number, enumeration: enumeration) else {
            let gone = unit.currentEnumeration != enumeration
            throw TransportError(gone ? .disconnected : .stall, device: deviceName, operation: "SET_INTERFACE alt \(number)")
        }
    }

    public func controlOut(_ request: ControlRequest, data: [UInt8], timeout: Duration) async throws(TransportError) {
        _ = try await unit.control(
            request, data: data, length: data.count, timeout: timeout, enumeration: enumeration,
            device: deviceName)
    }

    public func controlIn(_ request: ControlRequest, length: Int, timeout: Duration) async throws(TransportError) -> [UInt8] {
        try await unit.control(request, data: nil, length: length, timeout: timeout, enumeration: enumeration, device: deviceName)
    }

    public func close() async {}

    /// A virtual unit's transfers are sleeps on its clock: the client's loops run where those sleeps end.
    public var preferredExecutor: (any TaskExecutor)? { unit.clock.preferredExecutor }
}
