import Foundation
import Testing
import USBTransport

@testable import LibUSBBackend

@Suite("Port paths")
struct PortPathTests {
    @Test func formatsLikeSysfsAndDfuUtil() {
        #expect(USBPortPath(bus: 1, ports: [2]).description == "1-2")
        #expect(USBPortPath(bus: 3, ports: [1, 4, 2]).description == "3-1.4.2")
        #expect(USBPortPath(bus: 2, ports: []).description == "usb2")
    }

    @Test(arguments: ["1-2", "3-1.4.2", "usb2", "12-7.7.7.7.7.7.7"])
    func parsesWhatItFormats(text: String) throws {
        #expect(try #require(USBPortPath(text)).description == text)
    }

    @Test(arguments: ["", "1", "1-", "-2", "1-2.", "1-0", "1-2..3", "a-2", "1-2-3", "1-1.1.1.1.1.1.1.1", "1-256", "usb", "usbX", " 1-2"])
    func rejectsWhatIsNotAPortPath(text: String) {
        #expect(USBPortPath(text) == nil)
    }

    @Test func ordersByBusThenPorts() {
        let sorted = ["2-1", "1-3", "1-2.4", "1-2", "usb1"].compactMap(USBPortPath.init).sorted().map(\.description)
        #expect(sorted == ["usb1", "1-2", "1-2.4", "1-3", "2-1"])
    }

    @Test func namesTheUsbfsNode() {
        #expect(LibUSBDevice.devicePath(bus: 1, address: 7) == "/dev/bus/usb/001/007")
        #expect(LibUSBDevice.devicePath(bus: 12, address: 127) == "/dev/bus/usb/012/127")
    }
}

@Suite("libusb errors")
struct LibUSBErrorTests {
    @Test(arguments: [
        (LibUSBError.Code.noDevice, TransportError.Kind.disconnected),
        (.pipe, .stall),
        (.timeout, .timeout),
        (.access, .accessDenied),
        (.notFound, .notFound)
    ])
    func mapsToTheTransportErrorKind(code: LibUSBError.Code, kind: TransportError.Kind) {
        let error = LibUSBError(code, operation: "libusb_control_transfer").transportError(
            device: "0483:df11 at 1-2", operation: "GETSTATUS")
        #expect(error.kind == kind)
        #expect(error.device == "0483:df11 at 1-2")
        #expect(error.operation == "GETSTATUS")
    }

    @Test func keepsTheLibusbWordsForTheRest() {
        for code in [LibUSBError.Code.io, .busy, .overflow, .interrupted, .noMemory, .notSupported, .other, .invalidParameter] {
            let error = LibUSBError(code, operation: "libusb_claim_interface(0)").transportError(device: "d", operation: "claim")
            guard case .other(let message) = error.kind else {
                Issue.record("\(code) mapped to \(error.kind)")
                continue
            }
            #expect(message.contains(code.constantName))
        }
    }

    @Test func convertsEveryKnownReturnCodeAndKeepsUnknownOnes() {
        for code in LibUSBError.Code.allCases {
            #expect(LibUSBError(returnValue: code.rawValue, operation: "x").code == code)
        }
        let unknown = LibUSBError(returnValue: -42, operation: "libusb_open")
        #expect(unknown.code == .other)
        #expect(unknown.unknownRawValue == -42)
        #expect(unknown.description == "libusb_open failed: other error (LIBUSB_ERROR_OTHER, code -42)")
    }

    @Test func theSeamPassesResultsAndThrowsNegativeCodes() throws {
        #expect(try LibUSB.check("ok") { 7 } == 7)
        let error = try #require(throws: LibUSBError.self) { try LibUSB.check("libusb_claim_interface(0)") { -6 } }
        #expect(error.code == .busy)
        #expect(error.operation == "libusb_claim_interface(0)")
    }

    @Test func reportsTheLibraryVersion() {
        #expect(LibUSBContext.libraryVersion.hasPrefix("1."))
    }
}

/// A scripted device: answers control transfers from a closure, records what it was asked.
final class ScriptedChannel: USBControlChannel, @unchecked Sendable {
    private let lock = NSLock()
    private var calls: [String] = []
    private let answer: @Sendable (ControlRequest, [UInt8]?, Int) throws(LibUSBError) -> [UInt8]

    init(answer: @escaping @Sendable (ControlRequest, [UInt8]?, Int) throws(LibUSBError) -> [UInt8]) {
        self.answer = answer
    }

    var recorded: [String] { lock.withLock { calls } }
    private func record(_ call: String) { lock.withLock { calls.append(call) } }

    func kernelDriverActive(interface: UInt8) throws(LibUSBError) -> Bool { false }
    func detachKernelDriver(interface: UInt8) throws(LibUSBError) { record("detach \(interface)") }
    func claimInterface(_ interface: UInt8) throws(LibUSBError) { record("claim \(interface)") }
    func releaseInterface(_ interface: UInt8) throws(LibUSBError) { record("release \(interface)") }
    func setAlternateSetting(interface: UInt8, alternateSetting: UInt8) throws(LibUSBError) {
        record("alt \(interface) \(alternateSetting)")
    }
    func controlTransferOut(_ request: ControlRequest, data: [UInt8], timeoutMilliseconds: UInt32) throws(LibUSBError) -> Int {
        record("out \(request.request) \(data.count) \(timeoutMilliseconds)ms")
        return try answer(request, data, data.count).count
    }
    func controlTransferIn(_ request: ControlRequest, length: Int, timeoutMilliseconds: UInt32) throws(LibUSBError) -> [UInt8] {
        record("in \(request.request) \(length) \(timeoutMilliseconds)ms")
        return try answer(request, nil, length)
    }
    func stringDescriptor(index: UInt8, language: UInt16, timeoutMilliseconds: UInt32) throws(LibUSBError) -> [UInt8] {
        throw LibUSBError(.pipe, operation: "string")
    }
    func close() { record("close") }
}

@Suite("libusb DFU transport")
struct LibUSBDFUTransportTests {
    static let identity = USBDeviceIdentity(vendorID: 0x0483, productID: 0xDF11, serialNumber: "2061336E5056", portPath: "1-2")

    func transport(_ channel: ScriptedChannel) -> LibUSBDFUTransport {
        LibUSBDFUTransport(
            identity: Self.identity, interfaceNumber: 0,
            alternateSettings: [
                DFUAlternateSetting(number: 0, name: "@Internal Flash"),
                DFUAlternateSetting(number: 1, name: "@Option Bytes")
            ],
            functionalDescriptor: DFUFunctionalDescriptor(
                attributes: 0x0B, detachTimeoutMs: 255,
                transferSize: 2048, dfuVersion: 0x011A),
            channel: channel)
    }

    @Test func passesRequestsAndTimeoutsThrough() async throws {
        let channel = ScriptedChannel { request, _, length in
            request.request == 3 ? [0, 5, 0, 0, 2, 0] : Array(repeating: 0xAB, count: length)
        }
        let dfu = transport(channel)
        let status = try await dfu.controlIn(.classIn(3, value: 0, interface: 0), length: 6, timeout: .milliseconds(500))
        #expect(status == [0, 5, 0, 0, 2, 0])
        try await dfu.controlOut(.classOut(1, value: 2, interface: 0), data: [1, 2, 3], timeout: .seconds(5))
        try await dfu.selectAlternateSetting(1)
        await dfu.close()
        await dfu.close()
        #expect(channel.recorded == ["in 3 6 500ms", "out 1 3 5000ms", "alt 0 1", "release 0", "close"])
    }

    @Test func aStallBecomesATransportStallNamingDeviceAndRequest() async throws {
        let channel = ScriptedChannel { _, _, _ throws(LibUSBError) in throw LibUSBError(.pipe, operation: "libusb_control_transfer") }
        let error = try await #require(throws: TransportError.self) {
            try await transport(channel).controlOut(.classOut(1, value: 0, interface: 0), data: [0x41], timeout: .seconds(1))
        }
        #expect(error.kind == .stall)
        #expect(error.device.contains("2061336E5056"))
        #expect(error.operation.contains("bRequest=1"))
    }

    @Test func aVanishedDeviceIsDisconnected() async throws {
        let channel = ScriptedChannel { _, _, _ throws(LibUSBError) in throw LibUSBError(.noDevice, operation: "libusb_control_transfer") }
        let error = try await #require(throws: TransportError.self) {
            _ = try await transport(channel).controlIn(.classIn(3, value: 0, interface: 0), length: 6, timeout: .seconds(1))
        }
        #expect(error.kind == .disconnected)
    }

    @Test func aShortWriteIsABadLength() async throws {
        let channel = ScriptedChannel { _, data, _ in Array((data ?? []).prefix(1)) }
        let error = try await #require(throws: TransportError.self) {
            try await transport(channel).controlOut(.classOut(1, value: 2, interface: 0), data: [1, 2, 3], timeout: .seconds(1))
        }
        #expect(error.kind == .badLength(expected: 3, got: 1))
    }

    @Test func refusesAnUnknownAlternateSettingWithoutTouchingTheDevice() async throws {
        let channel = ScriptedChannel { _, _, _ in [] }
        let dfu = transport(channel)
        await #expect(throws: TransportError.self) { try await dfu.selectAlternateSetting(7) }
        #expect(channel.recorded.isEmpty)
        await dfu.close()
    }

    @Test func refusesTheWrongDirectionAndUseAfterClose() async throws {
        let channel = ScriptedChannel { _, _, _ in [] }
        let dfu = transport(channel)
        await #expect(throws: TransportError.self) {
            try await dfu.controlOut(.classIn(3, value: 0, interface: 0), data: [], timeout: .seconds(1))
        }
        await #expect(throws: TransportError.self) {
            _ = try await dfu.controlIn(.classOut(1, value: 0, interface: 0), length: 1, timeout: .seconds(1))
        }
        await dfu.close()
        await #expect(throws: TransportError.self) {
            _ = try await dfu.controlIn(.classIn(3, value: 0, interface: 0), length: 6, timeout: .seconds(1))
        }
        #expect(channel.recorded == ["release 0", "close"])
    }

    @Test func libusbTimeoutsRoundUpAndAreNeverZero() {
        #expect(LibUSBDFUTransport.libusbTimeout(.zero) == 1)
        #expect(LibUSBDFUTransport.libusbTimeout(.milliseconds(-5)) == 1)
        #expect(LibUSBDFUTransport.libusbTimeout(.microseconds(1)) == 1)
        #expect(LibUSBDFUTransport.libusbTimeout(.microseconds(1500)) == 2)
        #expect(LibUSBDFUTransport.libusbTimeout(.seconds(35)) == 35_000)
        #expect(LibUSBDFUTransport.libusbTimeout(.seconds(10_000_000)) == UInt32.max)
    }

    @Test func blockingCallsRunOnTheDevicesOwnQueueNotTheCooperativePool() async throws {
        let lock = NSLock()
        nonisolated(unsafe) var labels: [String] = []
        let channel = ScriptedChannel { _, _, _ in
            let label = BlockingWorker.currentLabel ?? "not on a worker"
            lock.withLock { labels.append(label) }
            return [0]
        }
        let dfu = transport(channel)
        _ = try await dfu.controlIn(.classIn(5, value: 0, interface: 0), length: 1, timeout: .seconds(1))
        _ = try await dfu.controlIn(.classIn(5, value: 0, interface: 0), length: 1, timeout: .seconds(1))
        #expect(lock.withLock { labels } == ["dfuhop usb 1-2", "dfuhop usb 1-2"])
        #expect(BlockingWorker.currentLabel == nil)
    }
}

@Suite("Choosing the unit to open")
struct SelectTests {
    static func record(port: String, address: UInt8, serial: String?, opened: Bool = true) -> LibUSBDeviceRecord {
        var record = LibUSBDeviceRecord(
            portPath: USBPortPath(port)!, address: address,
            descriptor: try! USBDeviceDescriptor(parsing: ROMDescriptors.device), dfuInterfaces: [])
        if opened {
            record.strings = USBDeviceStrings(serialNumber: serial)
        } else {
            record.openError = LibUSBError(.access, operation: "libusb_open(/dev/bus/usb/001/00\(address))")
        }
        return record
    }

    @Test func findsTheUnitAgainOnItsPortAfterReEnumeration() throws {
        let identity = USBDeviceIdentity(vendorID: 0x0483, productID: 0xDF11, serialNumber: "AAA", portPath: "1-2")
        let chosen = try LibUSBBackend.select(
            identity,
            from: [
                Self.record(port: "1-3", address: 4, serial: "BBB"),
                Self.record(port: "1-2", address: 9, serial: "AAA")
            ])
        #expect(chosen.address == 9)
    }

    @Test func refusesAnotherUnitOnTheSamePort() throws {
        let identity = USBDeviceIdentity(vendorID: 0x0483, productID: 0xDF11, serialNumber: "AAA", portPath: "1-2")
        let error = try #require(throws: TransportError.self) {
            try LibUSBBackend.select(identity, from: [Self.record(port: "1-2", address: 9, serial: "CCC")])
        }
        #expect(error.kind == .notFound)
        #expect(error.operation.contains("has serial CCC"))
    }

    @Test func saysWhenTheSerialCouldNotBeRead() throws {
        let identity = USBDeviceIdentity(vendorID: 0x0483, productID: 0xDF11, serialNumber: "AAA", portPath: "1-2")
        let error = try #require(throws: TransportError.self) {
            try LibUSBBackend.select(identity, from: [Self.record(port: "1-2", address: 9, serial: nil, opened: false)])
        }
        #expect(error.operation.contains("LIBUSB_ERROR_ACCESS"))
    }

    @Test func refusesToGuessBetweenTwoUnits() throws {
        let identity = USBDeviceIdentity(vendorID: 0x0483, productID: 0xDF11, portPath: "")
        let error = try #require(throws: TransportError.self) {
            try LibUSBBackend.select(
                identity,
                from: [
                    Self.record(port: "1-2", address: 9, serial: "A"),
                    Self.record(port: "1-3", address: 10, serial: "B")
                ])
        }
        #expect(error.description.contains("2 devices match"))
    }
}
