import Foundation
import USBTransport

/// A USB bus with virtual units on it: the `DeviceDiscovery` the engine and the CLI use with `--simulate`.
/// Arrivals and departures follow the units' resets, jumps and (un)plugging.
public final class VirtualBus: DeviceDiscovery, @unchecked Sendable {
    public let units: [VirtualUnit]
    private let lock = NSLock()
    private var subscribers: [UUID: AsyncStream<DiscoveryEvent>.Continuation] = [:]

    public init(units: [VirtualUnit]) {
        self.units = units
        for unit in units {
            unit.lock.withLock {
                unit.announced = unit.presenceLocked
                unit.announcedEnumeration = unit.enumeration
                unit.presenceObserver = { [weak self] old, new in self?.publish(old: old, new: new) }
            }
        }
    }

    public func devices() async throws(TransportError) -> [DiscoveredDevice] {
        units.compactMap(\.presence)
    }

    public func events() -> AsyncStream<DiscoveryEvent> {
        let (stream, continuation) = AsyncStream<DiscoveryEvent>.makeStream()
        let id = UUID()
        lock.withLock { subscribers[id] = continuation }
        continuation.onTermination = { [weak self] _ in
            guard let self else { return }
            _ = self.lock.withLock { self.subscribers.removeValue(forKey: id) }
        }
        return stream
    }

    public func openDFU(_ identity: USBDeviceIdentity) async throws(TransportError) -> any DFUTransport {
        let showingDFU = units.first { if case .dfu = $0.presence { $0.portPath == identity.portPath } else { false } }
        guard let unit = showingDFU ?? unit(at: identity.portPath) else {
            throw TransportError(.notFound, device: identity.description, operation: "open DFU interface")
        }
        return try VirtualDFUTransport(unit: unit)
    }

    public func openHID(_ info: HIDDeviceInfo) async throws(TransportError) -> any HIDTransport {
        let showingHID = units.first { if case .hid = $0.presence { $0.portPath == info.usb.portPath } else { false } }
        guard let unit = showingHID ?? unit(at: info.usb.portPath) else {
            throw TransportError(.notFound, device: info.description, operation: "open HID interface")
        }
        return try VirtualHIDTransport(unit: unit)
    }

    /// The unit at `portPath` (the first listed, where a test swaps units on one port; opening an interface
    /// picks the unit that shows it).
    public func unit(at portPath: String) -> VirtualUnit? { units.first { $0.portPath == portPath } }

    func publish(old: DiscoveredDevice?, new: DiscoveredDevice?) {
        let continuations = lock.withLock { Array(subscribers.values) }
        for continuation in continuations {
            if let old { continuation.yield(.left(old)) }
            if let new { continuation.yield(.arrived(new)) }
        }
    }
}
