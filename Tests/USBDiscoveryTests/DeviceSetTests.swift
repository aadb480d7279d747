import Foundation
import SeededRandom
import Testing
import USBDiscovery
import USBTransport

@Suite("Discovery: changes between scans")
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

    /// Random scans of a bus where units come, go and re-enumerate: replaying the changes from one scan to
    /// the next on the first gives the second, each departure and arrival once, departures first, each in
    /// scan order. DFUHOP_SEED=N replays a run.
    @Test func changesReplayedOnTheFirstScanGiveTheSecond() throws {
        let seed = ProcessInfo.processInfo.environment["DFUHOP_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 0...UInt64.max)
        print("changesReplayedOnTheFirstScanGiveTheSecond seed \(seed) (DFUHOP_SEED=\(seed) replays it)")
        var random = SplitMix64(seed: seed)
        for _ in 0..<500 {
            let before = Self.randomScan(&random)
            let after = Self.randomScan(&random)
            var present = before.entries
            var departed: [Int] = []
            var arrived: [Int] = []
            for change in before.changes(to: after) {
                switch change {
                case .left(let device):
                    #expect(arrived.isEmpty, "a departure after an arrival (seed \(seed))")
                    let index = try #require(present.firstIndex { $0.device == device }, "seed \(seed)")
                    departed.append(try #require(before.entries.firstIndex { $0.device == device }))
                    present.remove(at: index)
                case .arrived(let device):
                    let index = try #require(after.entries.firstIndex { $0.device == device }, "seed \(seed)")
                    arrived.append(index)
                    present.append(after.entries[index])
                }
            }
            #expect(present.map(\.key).sorted() == after.entries.map(\.key).sorted(), "seed \(seed)")
            #expect(departed == departed.sorted() && arrived == arrived.sorted(), "scan order (seed \(seed))")
        }
    }

    /// Six ports, each empty, with an application's HID interface, or with a ROM at one of two addresses.
    static func randomScan(_ random: inout SplitMix64) -> DeviceSet {
        let entries = (1...6).compactMap { port -> DeviceSet.Entry? in
            switch Int.random(in: 0..<4, using: &random) {
            case 0: nil
            case 1: hid("/dev/hidraw\(port)", port: "1-\(port)")
            default: dfu("1-\(port)", address: UInt8(port * 10 + Int.random(in: 0..<2, using: &random)))
            }
        }
        return DeviceSet(entries: entries.shuffled(using: &random))
    }
}
