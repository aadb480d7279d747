import AppLink
// The entry point for applications that embed dfuhop: `import DfuHop` brings the engine, images, family
// data and both buses (real USB and the virtual STM32), and `DfuHop` opens them in one call each.
@_exported import DeviceProfiles
@_exported import FirmwareImage
import HIDAPIBackend
import USBDiscovery
@_exported import USBTransport
@_exported import UpgradeEngine
@_exported import VirtualDevice

/// Opens what an upgrade needs: a bus of units (real or virtual), its clock, an image, an engine.
///
///     let bus = try DfuHop.virtualBus("g474:programmed")
///     let engine = DfuHop.engine(on: bus) { event in print(event) }
///     let result = try await engine.upgrade(try DfuHop.readImage("app.hex"), source: "app.hex")
public enum DfuHop {
    /// Units to work on, and the clock their waits run on.
    public struct Bus: Sendable {
        public let discovery: any DeviceDiscovery
        public let clock: any DeviceClock
        /// The virtual units, when the bus is virtual (empty on real USB).
        public let virtualUnits: [VirtualUnit]
    }

    /// Real USB: the ROM through libusb, the application through hidapi (matched by its HID usage page).
    public static func usbBus() throws(TransportError) -> Bus {
        let clock = SystemClock()
        let discovery = try USBDeviceDiscovery(hidMatches: [HIDMatch(usagePage: AppLinkProtocol.usagePage)], clock: clock)
        return Bus(discovery: discovery, clock: clock, virtualUnits: [])
    }

    /// Virtual STM32s in virtual time (no USB, no waiting): `spec` is FAMILY[:STATE] as `dfuhop --simulate` takes
    /// it, e.g. "g474:programmed"; `units` identical units on ports 1-1, 1-2, ...
    public static func virtualBus(_ spec: String, units: Int = 1) throws(VirtualDeviceError) -> Bus {
        let clock = VirtualClock()
        let parsed = try SimulationSpec(parsing: spec)
        var made: [VirtualUnit] = []
        for index in 1...max(1, units) { made.append(try parsed.makeUnit(index: index, clock: clock)) }
        return Bus(discovery: VirtualBus(units: made), clock: clock, virtualUnits: made)
    }

    /// An image file in any format dfuhop reads (Intel HEX, S-record, ELF, DfuSe .dfu, raw binary with a base).
    public static func readImage(_ path: String) throws(ImageError) -> FirmwareImage { try ImageFile.read(path: path) }

    /// The engine on `bus`; `onEvent` receives every typed event (the library never prints).
    public static func engine(on bus: Bus, onEvent: @escaping @Sendable (UpgradeEvent) -> Void = { _ in }) -> UpgradeEngine {
        UpgradeEngine(discovery: bus.discovery, clock: bus.clock, onEvent: onEvent)
    }
}
