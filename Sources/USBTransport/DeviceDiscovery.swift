/// A USB function the host can see right now: a ROM in DFU mode or an application's HID interface.
public enum DiscoveredDevice: Sendable, Hashable, CustomStringConvertible {
    /// A DFU-mode interface (the ROM bootloader, or a firmware DfuSe).
    case dfu(USBDeviceIdentity, alternateSettings: [DFUAlternateSetting])
    /// An application's HID interface.
    case hid(HIDDeviceInfo)

    public var identity: USBDeviceIdentity {
        switch self {
        case .dfu(let identity, _): identity
        case .hid(let info): info.usb
        }
    }

    public var description: String {
        switch self {
        case .dfu(let identity, _): "DFU \(identity)"
        case .hid(let info): "HID \(info)"
        }
    }
}

/// Arrivals and departures on the bus (hotplug), in the order the host saw them.
public enum DiscoveryEvent: Sendable, Hashable {
    case arrived(DiscoveredDevice)
    case left(DiscoveredDevice)
}

/// How the engine finds and opens devices: real USB (libusb + hidapi), the in-process virtual
/// device, or the emulated-USB test tier all implement this.
public protocol DeviceDiscovery: Sendable {
    /// What is on the bus now.
    func devices() async throws(TransportError) -> [DiscoveredDevice]
    /// Arrivals and departures from now on. Each call gets its own stream.
    func events() -> AsyncStream<DiscoveryEvent>
    func openDFU(_ identity: USBDeviceIdentity) async throws(TransportError) -> any DFUTransport
    func openHID(_ info: HIDDeviceInfo) async throws(TransportError) -> any HIDTransport
}

extension DeviceDiscovery {
    /// A DFU device listed with alternate settings but none of their names was not read: its string descriptors
    /// could not be fetched, so its part line cannot be known. Opening it says why (most often the OS refusing
    /// the device node: `accessDenied`) instead of a guess about an unknown part line; returns when it opens.
    public func explainUnreadDFU(_ identity: USBDeviceIdentity, alternates: [DFUAlternateSetting]) async throws(TransportError) {
        guard !alternates.isEmpty, alternates.allSatisfy({ $0.name.isEmpty }) else { return }
        let transport = try await openDFU(identity)
        await transport.close()
    }
}
