import CLibUSB
import Foundation
import USBTransport

/// What the DFU transport needs from an opened device. `LibUSBDeviceHandle` is the real one; tests
/// put a scripted one in its place. Calls block; the transport makes them on its device's worker.
public protocol USBControlChannel: AnyObject, Sendable {
    func kernelDriverActive(interface: UInt8) throws(LibUSBError) -> Bool
    func detachKernelDriver(interface: UInt8) throws(LibUSBError)
    func claimInterface(_ interface: UInt8) throws(LibUSBError)
    func releaseInterface(_ interface: UInt8) throws(LibUSBError)
    func setAlternateSetting(interface: UInt8, alternateSetting: UInt8) throws(LibUSBError)
    /// Host-to-device control transfer; returns the number of bytes the device took.
    func controlTransferOut(_ request: ControlRequest, data: [UInt8], timeoutMilliseconds: UInt32) throws(LibUSBError) -> Int
    /// Device-to-host control transfer of at most `length` bytes.
    func controlTransferIn(_ request: ControlRequest, length: Int, timeoutMilliseconds: UInt32) throws(LibUSBError) -> [UInt8]
    /// Reads a raw string descriptor (GET_DESCRIPTOR, USB 2.0 §9.4.3).
    func stringDescriptor(index: UInt8, language: UInt16, timeoutMilliseconds: UInt32) throws(LibUSBError) -> [UInt8]
    func close()
}

/// An opened device (libusb_device_handle). Every method blocks; none may run on the cooperative pool.
public final class LibUSBDeviceHandle: USBControlChannel, @unchecked Sendable {
    // @unchecked: the handle is used from one worker queue at a time; `pointer` is guarded by `lock`
    // only so that `close` is idempotent.
    public let device: LibUSBDevice
    private let lock = NSLock()
    private var pointer: OpaquePointer?

    init(device: LibUSBDevice) throws(LibUSBError) {
        self.device = device
        var handle: OpaquePointer?
        try LibUSB.check("libusb_open(\(device.devicePath))") { libusb_open(device.pointer, &handle) }
        pointer = handle
    }

    deinit { close() }

    private func open(_ operation: @autoclosure () -> String) throws(LibUSBError) -> OpaquePointer {
        guard let handle = lock.withLock({ pointer }) else { throw LibUSBError(.noDevice, operation: operation() + " after close") }
        return handle
    }

    public func kernelDriverActive(interface: UInt8) throws(LibUSBError) -> Bool {
        let handle = try open("libusb_kernel_driver_active(\(interface))")
        return try LibUSB.check("libusb_kernel_driver_active(\(interface))") {
            libusb_kernel_driver_active(handle, Int32(interface))
        } == 1
    }

    public func detachKernelDriver(interface: UInt8) throws(LibUSBError) {
        let handle = try open("libusb_detach_kernel_driver(\(interface))")
        try LibUSB.check("libusb_detach_kernel_driver(\(interface))") { libusb_detach_kernel_driver(handle, Int32(interface)) }
    }

    public func claimInterface(_ interface: UInt8) throws(LibUSBError) {
        let handle = try open("libusb_claim_interface(\(interface))")
        try LibUSB.check("libusb_claim_interface(\(interface))") { libusb_claim_interface(handle, Int32(interface)) }
    }

    public func releaseInterface(_ interface: UInt8) throws(LibUSBError) {
        let handle = try open("libusb_release_interface(\(interface))")
        try LibUSB.check("libusb_release_interface(\(interface))") { libusb_release_interface(handle, Int32(interface)) }
    }

    public func setAlternateSetting(interface: UInt8, alternateSetting: UInt8) throws(LibUSBError) {
        let operation = "libusb_set_interface_alt_setting(\(interface), \(alternateSetting))"
        let handle = try open(operation)
        try LibUSB.check(operation) { libusb_set_interface_alt_setting(handle, Int32(interface), Int32(alternateSetting)) }
    }

    public func controlTransferOut(_ request: ControlRequest, data: [UInt8], timeoutMilliseconds: UInt32) throws(LibUSBError) -> Int {
        let operation = "libusb_control_transfer(\(request), \(data.count) bytes out)"
        guard !request.isDeviceToHost, data.count <= Int(UInt16.max) else { throw LibUSBError(.invalidParameter, operation: operation) }
        let handle = try open(operation)
        var buffer = data
        let sent = try LibUSB.check(operation) {
            buffer.withUnsafeMutableBufferPointer {
                libusb_control_transfer(
                    handle, request.requestType, request.request, request.value, request.index,
                    $0.baseAddress, UInt16(data.count), timeoutMilliseconds)
            }
        }
        return Int(sent)
    }

    public func controlTransferIn(_ request: ControlRequest, length: Int, timeoutMilliseconds: UInt32) throws(LibUSBError) -> [UInt8] {
        let operation = "libusb_control_transfer(\(request), \(length) bytes in)"
        guard request.isDeviceToHost, (0...Int(UInt16.max)).contains(length) else {
            throw LibUSBError(.invalidParameter, operation: operation)
        }
        let handle = try open(operation)
        var buffer = [UInt8](repeating: 0, count: max(length, 1))
        let received = try LibUSB.check(operation) {
            buffer.withUnsafeMutableBufferPointer {
                libusb_control_transfer(
                    handle, request.requestType, request.request, request.value, request.index,
                    $0.baseAddress, UInt16(length), timeoutMilliseconds)
            }
        }
        return Array(buffer.prefix(min(Int(received), length)))
    }

    public func stringDescriptor(index: UInt8, language: UInt16, timeoutMilliseconds: UInt32) throws(LibUSBError) -> [UInt8] {
        // GET_DESCRIPTOR(STRING): bmRequestType 0x80, bRequest 6, wValue type << 8 | index, wIndex language.
        let request = ControlRequest(
            requestType: 0x80, request: 0x06,
            value: UInt16(DescriptorType.string) << 8 | UInt16(index), index: language)
        return try controlTransferIn(request, length: 255, timeoutMilliseconds: timeoutMilliseconds)
    }

    public func close() {
        let handle: OpaquePointer? = lock.withLock {
            defer { pointer = nil }
            return pointer
        }
        if let handle { libusb_close(handle) }
    }
}

extension USBControlChannel {
    /// The device's first string language (string descriptor 0), US English when it lists none.
    public func firstLanguage(timeoutMilliseconds: UInt32 = 1000) throws -> UInt16 {
        let languages = try USBStringDescriptor.languages(
            stringDescriptor(index: 0, language: 0, timeoutMilliseconds: timeoutMilliseconds))
        return languages.first ?? USBStringDescriptor.englishUS
    }

    /// Reads and decodes string `index` in `language`; nil for index 0 (no string).
    public func string(index: UInt8, language: UInt16, timeoutMilliseconds: UInt32 = 1000) throws -> String? {
        guard index != 0 else { return nil }
        return try USBStringDescriptor.decode(
            stringDescriptor(index: index, language: language, timeoutMilliseconds: timeoutMilliseconds), index: index)
    }
}
