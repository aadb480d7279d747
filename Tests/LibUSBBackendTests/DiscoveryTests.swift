import Testing
import USBDiscovery
import USBTransport

@Suite("Discovery: changes between scans", .timeLimit(.minutes(10)))
struct DeviceSetTests {
    static func dfu(_ port: String, address: UInt8, serial: String = "AAA") -> DeviceSet.Entry {
        let identity = USBDeviceIdentity(vendorID: 0x0483, productID: 0xDF11, serialNumber: serial, portPath: port)
        return DeviceSet.Entry(key: "dfu 1-\(address)", device: .dfu(identity, alternateSettings: []))
    }

    static func hid(_ path: String, port: String) -> DeviceSet.Entry {
        let info = HIDDeviceInfo(
            usb: USBDeviceIdentity(vendorID: 0x1209, productID: 1, portPath: port), usagePage: 0xFFDF,
            usage: 1, interfaceNumber: 0, path: path)
        return DeviceSet.Entry(key: "hid \(path)", device: .hid(info))
    }

    @Test func aReEnumerationOnTheSamePortIsADepartureThenAnArrival() {
        let before = DeviceSet(entries: [Self.dfu("1-2", address: 5)])
        let after = DeviceSet(entries: [Self.dfu("1-2", address: 6)])
        #expect(before.changes(to: after) == [.left(Self.dfu("1-2", address: 5).device), .arrived(Self.dfu("1-2", address: 6).device)])
    }

    @Test func nothingChangesWhenTheSameDevicesAreThere() {
        let set = DeviceSet(entries: [Self.dfu("1-2", address: 5), Self.hid("/dev/hidraw1", port: "1-3")])
        #expect(set.changes(to: set).isEmpty)
    }

    @Test func anApplicationLeavingForTheROMIsHIDLeftThenDFUArrived() {
        let before = DeviceSet(entries: [Self.hid("/dev/hidraw1", port: "1-2")])
        let after = DeviceSet(entries: [Self.dfu("1-2", address: 9)])
        #expect(
            before.changes(to: after) == [
                .left(Self.hid("/dev/hidraw1", port: "1-2").device),
                .arrived(Self.dfu("1-2", address: 9).device)
            ])
    }
}
