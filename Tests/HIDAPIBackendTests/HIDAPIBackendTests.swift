import Foundation
import Testing
import USBTransport

@testable import HIDAPIBackend

@Suite("HID report descriptor")
struct HIDReportDescriptorTests {
    /// dfuhop's application interface (protocols/hid-app-protocol.md §2.1): vendor page 0xFFDF,
    /// output report 1 and input report 2, 63 bytes each.
    static let appLink: [UInt8] = [
        0x06, 0xDF, 0xFF, 0x09, 0x01, 0xA1, 0x01, 0x15, 0x00, 0x26, 0xFF, 0x00, 0x75, 0x08, 0x95, 0x3F,
        0x85, 0x01, 0x09, 0x02, 0x91, 0x02, 0x85, 0x02, 0x09, 0x03, 0x81, 0x02, 0xC0
    ]

    @Test func readsReportIDsAndTheTopLevelUsage() throws {
        let descriptor = try HIDReportDescriptor(parsing: Self.appLink)
        #expect(descriptor.reportIDs == [1, 2])
        #expect(descriptor.usesReportIDs)
        #expect(descriptor.usagePage == 0xFFDF)
        #expect(descriptor.usage == 0x0001)
    }

    @Test func aDescriptorWithoutReportIDsUsesUnnumberedReports() throws {
        let unnumbered = Self.appLink.enumerated().filter { ![16, 17, 22, 23].contains($0.offset) }.map(\.element)
        #expect(try HIDReportDescriptor(parsing: unnumbered).usesReportIDs == false)
        #expect(try HIDReportDescriptor(parsing: []).usesReportIDs == false)
    }

    @Test func skipsLongItems() throws {
        let long: [UInt8] = [0xFE, 2, 0xF0, 0xAA, 0xBB, 0x85, 0x07]
        #expect(try HIDReportDescriptor(parsing: long).reportIDs == [7])
    }

    @Test(arguments: [
        [UInt8]([0x26, 0xFF]), // two data bytes announced, one present
        [0x85], // Report ID without its byte
        [0x85, 0x00], // Report ID 0 is reserved (HID 1.11 §6.2.2.7)
        [0x86, 0x01, 0x00], // Report ID with two bytes
        [0xFE, 5, 0x01, 0x00], // long item past the end
        [0xFE, 1] // long item header cut short
    ])
    func rejectsBrokenDescriptors(bytes: [UInt8]) {
        #expect(throws: HIDReportDescriptorError.self) { try HIDReportDescriptor(parsing: bytes) }
    }

    @Test func survivesEveryTruncationAndByteFlip() {
        for cut in 0...Self.appLink.count { _ = try? HIDReportDescriptor(parsing: Array(Self.appLink.prefix(cut))) }
        for index in Self.appLink.indices {
            for value: UInt8 in [0x00, 0x03, 0x85, 0xFE, 0xFF] {
                var corrupted = Self.appLink
                corrupted[index] = value
                _ = try? HIDReportDescriptor(parsing: corrupted)
            }
        }
    }
}

@Suite("hidraw in sysfs")
struct HIDRawSysfsTests {
    @Test func findsThePortAndInterfaceOfAHidrawNode() throws {
        let path = "/sys/devices/pci0000:00/0000:00:14.0/usb1/1-2/1-2.3/1-2.3:1.0/0003:1209:0001.0004/hidraw/hidraw3"
        let location = try #require(HIDRawSysfs.usbLocation(inSysfsPath: path))
        #expect(location.portPath == "1-2.3")
        #expect(location.interfaceNumber == 0)
    }

    @Test func takesTheDeepestUSBInterface() throws {
        let path = "/sys/devices/usb3/3-1/3-1:1.2/3-1.4/3-1.4:1.1/0003:0483:5750.0009/hidraw/hidraw0"
        let location = try #require(HIDRawSysfs.usbLocation(inSysfsPath: path))
        #expect(location.portPath == "3-1.4")
        #expect(location.interfaceNumber == 1)
    }

    @Test(arguments: [
        "/sys/devices/virtual/misc/uhid/0003:1209:0001.0001/hidraw/hidraw0", // uhid: not on USB
        "/sys/devices/platform/i2c/i2c-1/1-0015/0018:04F3:3057.0001/hidraw/hidraw1", // I2C: "1-0015" has no ':c.i'
        "/sys/devices/usb1/1-0:1.0/x", // port 0 does not exist
        ""
    ])
    func findsNoUSBLocationWhereThereIsNone(path: String) {
        #expect(HIDRawSysfs.usbLocation(inSysfsPath: path) == nil)
    }

    @Test func acceptsOnlyHidrawNodes() {
        #expect(HIDRawSysfs.nodeName("/dev/hidraw12") == "hidraw12")
        #expect(HIDRawSysfs.nodeName("/dev/hidraw") == nil)
        #expect(HIDRawSysfs.nodeName("/dev/hidrawX") == nil)
        #expect(HIDRawSysfs.nodeName("/tmp/hidraw1") == nil)
    }
}

@Suite("hidapi errors and conversions")
struct HIDAPIErrorTests {
    @Test(arguments: [
        (EACCES, TransportError.Kind.accessDenied),
        (EPERM, .accessDenied),
        (ENOENT, .notFound),
        (ENODEV, .disconnected),
        (EIO, .disconnected),
        (EPIPE, .stall),
        (ETIMEDOUT, .timeout)
    ])
    func mapsErrnoToTheTransportErrorKind(number: Int32, kind: TransportError.Kind) {
        let error = HIDAPIError(.open, path: "/dev/hidraw3", message: "Failed to open", errorNumber: number)
        let transport = error.transportError(device: "1209:0001 at 1-2", operation: "open /dev/hidraw3")
        #expect(transport.kind == kind)
        #expect(transport.device == "1209:0001 at 1-2")
    }

    @Test func aPollHangupWithoutErrnoIsADisconnect() {
        let error = HIDAPIError(.read, path: "/dev/hidraw3", message: "hid_read_timeout: unexpected poll error (device disconnected)")
        #expect(error.transportError(device: "d", operation: "read").kind == .disconnected)
    }

    @Test func keepsHidapisWordsForTheRest() {
        let error = HIDAPIError(.write, path: "/dev/hidraw3", message: "Broken", errorNumber: EBUSY)
        guard case .other(let message) = error.transportError(device: "d", operation: "write").kind else {
            Issue.record("EBUSY should stay an 'other' error")
            return
        }
        #expect(message.contains("hid_write(/dev/hidraw3) failed: Broken"))
        #expect(message.contains("errno \(EBUSY)"))
    }

    @Test func hidapiTimeoutsRoundUpAndZeroMeansDoNotWait() {
        #expect(HIDAPITransport.hidapiTimeout(.zero) == 0)
        #expect(HIDAPITransport.hidapiTimeout(.milliseconds(-3)) == 0)
        #expect(HIDAPITransport.hidapiTimeout(.microseconds(10)) == 1)
        #expect(HIDAPITransport.hidapiTimeout(.milliseconds(250)) == 250)
        #expect(HIDAPITransport.hidapiTimeout(.seconds(100_000_000)) == Int32.max)
    }

    @Test func convertsWideStrings() {
        let text: [wchar_t] = Array("Grüße 🚀".unicodeScalars.map { wchar_t(bitPattern: $0.value) }) + [0]
        #expect(text.withUnsafeBufferPointer { HIDAPI.string($0.baseAddress) } == "Grüße 🚀")
        let invalid: [wchar_t] = [0x41, 0xD800, 0x110000, 0]
        #expect(invalid.withUnsafeBufferPointer { HIDAPI.string($0.baseAddress) } == "A\u{FFFD}\u{FFFD}")
        #expect(HIDAPI.string(nil) == nil)
    }

    @Test func matchesByVendorProductAndUsagePage() {
        let record = HIDAPIDeviceRecord(
            path: "/dev/hidraw1", vendorID: 0x1209, productID: 0x0001, usagePage: 0xFFDF, usage: 1,
            interfaceNumber: 0)
        #expect(HIDMatch(vendorID: 0x1209, usagePage: 0xFFDF).matches(record))
        #expect(HIDMatch().matches(record))
        #expect(!HIDMatch(vendorID: 0x1209, productID: 0x0002).matches(record))
        #expect(!HIDMatch(usagePage: 0xFF00).matches(record))
    }

    @Test func enumeratesWithoutErrorAndReportsTheLibraryVersion() async throws {
        #expect(HIDAPIBackend.libraryVersion.hasPrefix("0."))
        let backend = try HIDAPIBackend()
        // Whatever HID devices this machine has: each must be a USB interface with a hidraw path.
        for device in try await backend.devices() {
            #expect(device.path.hasPrefix("/dev/hidraw"))
        }
    }

    @Test func opensNothingThatIsNotThere() async throws {
        let backend = try HIDAPIBackend()
        let info = HIDDeviceInfo(
            usb: USBDeviceIdentity(vendorID: 0x1209, productID: 1, portPath: ""), usagePage: 0xFFDF, usage: 1,
            interfaceNumber: 0, path: "/dev/hidraw-not-there")
        let error = try await #require(throws: TransportError.self) { _ = try await backend.open(info) }
        #expect(error.kind == .notFound)
    }
}
