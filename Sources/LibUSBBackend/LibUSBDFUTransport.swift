import Foundation
import USBTransport

/// A DFU interface opened through libusb: `DFUTransport` for the DfuSe client. Each call runs on the
/// device's own worker queue and suspends the caller until libusb returns; libusb errors come out
/// as `TransportError` naming the device and the request.
public final class LibUSBDFUTransport: DFUTransport, @unchecked Sendable {
    // @unchecked: the channel is only touched on `worker`; `closed` is guarded by `lock`.
    public let identity: USBDeviceIdentity
    public let interfaceNumber: UInt8
    public let alternateSettings: [DFUAlternateSetting]
    public let functionalDescriptor: DFUFunctionalDescriptor

    private let channel: any USBControlChannel
    private let worker: BlockingWorker
    private let lock = NSLock()
    private var closed = false

    /// Wraps an opened channel whose DFU interface is already claimed (see `LibUSBBackend.openDFU`).
    public init(
        identity: USBDeviceIdentity, interfaceNumber: UInt8, alternateSettings: [DFUAlternateSetting],
        functionalDescriptor: DFUFunctionalDescriptor, channel: any USBControlChannel
    ) {
        self.identity = identity
        self.interfaceNumber = interfaceNumber
        self.alternateSettings = alternateSettings
        self.functionalDescriptor = functionalDescriptor
        self.channel = channel
        self.worker = BlockingWorker(label: "dfuhop usb \(identity.portPath)")
    }

    /// The device's worker: the DfuSe client's loops run there, so transfers need no thread hop.
    public var preferredExecutor: (any TaskExecutor)? { worker }

    public func selectAlternateSetting(_ number: UInt8) async throws(TransportError) {
        let operation = "SET_INTERFACE alternate setting \(number)"
        guard alternateSettings.contains(where: { $0.number == number }) else {
            throw TransportError(
                .notFound, device: identity.description,
                operation: operation + " (the interface has \(alternateSettings.map(\.number)))")
        }
        try await perform(operation) { [channel, interfaceNumber] () throws(LibUSBError) in
            try channel.setAlternateSetting(interface: interfaceNumber, alternateSetting: number)
        }
    }

    public func controlOut(_ request: ControlRequest, data: [UInt8], timeout: Duration) async throws(TransportError) {
        let operation = "control OUT \(request) with \(data.count) bytes"
        guard !request.isDeviceToHost else {
            throw TransportError(.other("controlOut needs a host-to-device request"), device: identity.description, operation: operation)
        }
        guard data.count <= Int(UInt16.max) else {
            throw TransportError(.badLength(expected: Int(UInt16.max), got: data.count), device: identity.description, operation: operation)
        }
        let milliseconds = Self.libusbTimeout(timeout)
        let sent = try await perform(operation) { [channel] () throws(LibUSBError) -> Int in
            try channel.controlTransferOut(request, data: data, timeoutMilliseconds: milliseconds)
        }
        guard sent == data.count else {
            throw TransportError(.badLength(expected: data.count, got: sent), device: identity.description, operation: operation)
        }
    }

    public func controlIn(_ request: ControlRequest, length: Int, timeout: Duration) async throws(TransportError) -> [UInt8] {
        let operation = "control IN \(request) for \(length) bytes"
        guard request.isDeviceToHost else {
            throw TransportError(.other("controlIn needs a device-to-host request"), device: identity.description, operation: operation)
        }
        guard (0...Int(UInt16.max)).contains(length) else {
            throw TransportError(.badLength(expected: Int(UInt16.max), got: length), device: identity.description, operation: operation)
        }
        let milliseconds = Self.libusbTimeout(timeout)
        return try await perform(operation) { [channel] () throws(LibUSBError) -> [UInt8] in
            try channel.controlTransferIn(request, length: length, timeoutMilliseconds: milliseconds)
        }
    }

    public func close() async {
        let wasOpen = lock.withLock {
            defer { closed = true }
            return !closed
        }
        guard wasOpen else { return }
        await worker.run { [channel, interfaceNumber] in
            // A device that already left cannot be released; closing the handle is all that is left to do.
            try? channel.releaseInterface(interfaceNumber)
            channel.close()
        }
    }

    deinit {
        // No call can be in flight here (each holds the transport); the handle is closed at most once.
        if !closed { channel.close() }
    }

    /// libusb timeouts are unsigned milliseconds where 0 means "wait forever": round up, never 0.
    public static func libusbTimeout(_ timeout: Duration) -> UInt32 {
        let (seconds, attoseconds) = timeout.components
        guard seconds >= 0, timeout > .zero else { return 1 }
        let milliseconds = Double(seconds) * 1000 + (Double(attoseconds) / 1e15).rounded(.up)
        return UInt32(min(max(milliseconds, 1), Double(UInt32.max)))
    }

    private func perform<T: Sendable>(
        _ operation: String,
        _ body: @escaping @Sendable () throws(LibUSBError) -> T
    ) async throws(TransportError) -> T {
        guard !lock.withLock({ closed }) else {
            throw TransportError(.other("the transport is closed"), device: identity.description, operation: operation)
        }
        do {
            return try await worker.run(body)
        } catch {
            throw error.transportError(device: identity.description, operation: operation)
        }
    }
}
