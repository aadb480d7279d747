import HIDAPIBackend
import LibUSBBackend
import USBTransport

/// Real USB discovery: DFU-mode devices through libusb, the products' HID interfaces through hidapi,
/// arrivals and departures through libusb hotplug. Implements `DeviceDiscovery` for the engine.
public final class USBDeviceDiscovery: DeviceDiscovery {
    public let libusb: LibUSBBackend
    public let hidapi: HIDAPIBackend
    /// The HID interfaces that belong to products (from their profiles). Empty: no HID interfaces are
    /// reported at all (never every keyboard and mouse on the host).
    public let hidMatches: [HIDMatch]
    private let clock: any DeviceClock
    /// After a USB arrival the kernel binds usbhid and creates the hidraw node a little later; the
    /// bus is scanned again after each of these delays so that the HID interface is not missed.
    public let hidSettleDelays: [Duration]
    /// How often to scan when this platform's libusb has no hotplug.
    public let pollInterval: Duration

    public init(
        libusb: LibUSBBackend, hidapi: HIDAPIBackend, hidMatches: [HIDMatch], clock: any DeviceClock = SystemClock(),
        hidSettleDelays: [Duration] = [.milliseconds(50), .milliseconds(250), .seconds(1)],
        pollInterval: Duration = .milliseconds(500)
    ) {
        self.libusb = libusb
        self.hidapi = hidapi
        self.hidMatches = hidMatches
        self.clock = clock
        self.hidSettleDelays = hidSettleDelays
        self.pollInterval = pollInterval
    }

    /// Opens libusb and hidapi. Errors name the library that failed.
    public convenience init(hidMatches: [HIDMatch], clock: any DeviceClock = SystemClock()) throws(TransportError) {
        let libusb: LibUSBBackend
        let hidapi: HIDAPIBackend
        do { libusb = try LibUSBBackend() } catch {
            throw error.transportError(device: "USB", operation: "start libusb")
        }
        do { hidapi = try HIDAPIBackend() } catch {
            throw error.transportError(device: "USB", operation: "start hidapi")
        }
        self.init(libusb: libusb, hidapi: hidapi, hidMatches: hidMatches, clock: clock)
    }

    public func devices() async throws(TransportError) -> [DiscoveredDevice] {
        try await snapshot().entries.map(\.device)
    }

    public func openDFU(_ identity: USBDeviceIdentity) async throws(TransportError) -> any DFUTransport {
        try await libusb.openDFU(identity)
    }

    public func openHID(_ info: HIDDeviceInfo) async throws(TransportError) -> any HIDTransport {
        try await hidapi.open(info)
    }

    /// Arrivals and departures from the moment of this call. Hotplug is subscribed first, then the
    /// DFU devices present are noted at once from libusb's cache (no I/O, strings from earlier scans),
    /// so a unit that leaves or arrives while the first full scan runs is still reported. HID
    /// interfaces count as present when their USB port had a device at that moment.
    public func events() -> AsyncStream<DiscoveryEvent> {
        let hotplug = try? libusb.context.hotplugEvents()
        let atSubscription = (try? libusb.cachedScan()) ?? []
        let presentPorts = Set(atSubscription.map(\.portPath.description))
        let initialDFU = Self.dfuEntries(atSubscription)
        let (stream, continuation) = AsyncStream<DiscoveryEvent>.makeStream(bufferingPolicy: .unbounded)
        let task = Task { [self] in
            let initialHID = (try? await hidEntries())?.filter { presentPorts.contains($0.device.identity.portPath) } ?? []
            var known = DeviceSet(entries: initialDFU + initialHID)
            await rescan(&known, continuation)
            if let hotplug {
                for await _ in hotplug {
                    await rescan(&known, continuation)
                    for delay in hidSettleDelays {
                        guard (try? await clock.sleep(for: delay)) != nil else { break }
                        await rescan(&known, continuation)
                    }
                }
            } else {
                while (try? await clock.sleep(for: pollInterval)) != nil {
                    await rescan(&known, continuation)
                }
            }
            continuation.finish()
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    private func rescan(_ known: inout DeviceSet, _ continuation: AsyncStream<DiscoveryEvent>.Continuation) async {
        guard !Task.isCancelled, let current = try? await snapshot() else { return }
        for event in known.changes(to: current) { continuation.yield(event) }
        known = current
    }

    private func snapshot() async throws(TransportError) -> DeviceSet {
        let records: [LibUSBDeviceRecord]
        do { records = try await libusb.dfuDevices() } catch {
            throw error.transportError(device: "USB", operation: "scan for DFU devices")
        }
        return DeviceSet(entries: Self.dfuEntries(records) + (try await hidEntries()))
    }

    private static func dfuEntries(_ records: [LibUSBDeviceRecord]) -> [DeviceSet.Entry] {
        records.compactMap { record in
            record.discovered.map { DeviceSet.Entry(key: "dfu \(record.portPath.bus)-\(record.address)", device: $0) }
        }
    }

    private func hidEntries() async throws(TransportError) -> [DeviceSet.Entry] {
        guard !hidMatches.isEmpty else { return [] }
        do {
            return try await hidapi.devices(matching: hidMatches).map { DeviceSet.Entry(key: "hid \($0.path)", device: .hid($0)) }
        } catch {
            throw error.transportError(device: "USB", operation: "scan for HID devices")
        }
    }
}

/// The devices seen by one scan, keyed so that a re-enumerated unit (same port, new address) counts
/// as one departure and one arrival.
public struct DeviceSet: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        /// "dfu BUS-ADDRESS" or "hid /dev/hidrawN": unique while the device stays connected.
        public var key: String
        public var device: DiscoveredDevice

        public init(key: String, device: DiscoveredDevice) {
            self.key = key
            self.device = device
        }
    }

    public var entries: [Entry]

    public init(entries: [Entry]) {
        self.entries = entries
    }

    /// What happened between this scan and `current`: departures first, then arrivals, each in scan order.
    public func changes(to current: DeviceSet) -> [DiscoveryEvent] {
        let before = Set(entries.map(\.key))
        let after = Set(current.entries.map(\.key))
        return entries.filter { !after.contains($0.key) }.map { DiscoveryEvent.left($0.device) }
            + current.entries.filter { !before.contains($0.key) }.map { DiscoveryEvent.arrived($0.device) }
    }
}
