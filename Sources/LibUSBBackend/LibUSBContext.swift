import CLibUSB
import Foundation
import HexFormat
import USBTransport

/// A device arriving on or leaving the bus, as libusb's hotplug reports it. Carries only what libusb
/// knows without talking to the device (the descriptor is cached by the OS).
public struct LibUSBHotplugEvent: Sendable, Hashable, CustomStringConvertible {
    public enum Kind: String, Sendable, Hashable {
        case arrived
        case left
    }

    public var kind: Kind
    public var portPath: USBPortPath
    public var address: UInt8
    public var vendorID: UInt16
    public var productID: UInt16

    public var description: String {
        "\(kind) \(Hex.digits(vendorID, width: 4).lowercased()):\(Hex.digits(productID, width: 4).lowercased()) at \(portPath) address \(address)"
    }
}

/// One libusb context (libusb_init … libusb_exit). Owns the event thread that runs libusb's event
/// handling for hotplug; libusb's hotplug callback only records what happened, and the event thread
/// hands it to subscribers after the callback has returned (libusb forbids I/O inside the callback).
public final class LibUSBContext: @unchecked Sendable {
    // @unchecked: `pointer` is immutable and libusb contexts are thread-safe; the mutable state is
    // guarded by `lock`.
    let pointer: OpaquePointer
    private let lock = NSLock()
    private var subscribers: [Int: AsyncStream<LibUSBHotplugEvent>.Continuation] = [:]
    private var nextSubscriber = 0
    private var pendingEvents: [LibUSBHotplugEvent] = []
    private var hotplugHandle: libusb_hotplug_callback_handle?
    private var eventThread: EventThread?

    public init() throws(LibUSBError) {
        var context: OpaquePointer?
        try LibUSB.check("libusb_init") { libusb_init(&context) }
        guard let context else { throw LibUSBError(.other, operation: "libusb_init returned no context") }
        pointer = context
    }

    deinit {
        stopHotplug()
        libusb_exit(pointer)
    }

    /// The libusb library's version, e.g. "1.0.26.11724".
    public static var libraryVersion: String { LibUSB.version }

    /// Whether this platform's libusb reports arrivals and departures (Linux, macOS: yes).
    public var supportsHotplug: Bool {
        libusb_has_capability(UInt32(LIBUSB_CAP_HAS_HOTPLUG.rawValue)) != 0
    }

    /// The devices on the bus now (libusb_get_device_list); each holds its own reference.
    public func devices() throws(LibUSBError) -> [LibUSBDevice] {
        var list: UnsafeMutablePointer<OpaquePointer?>?
        let count = try LibUSB.check("libusb_get_device_list") { Int32(truncatingIfNeeded: libusb_get_device_list(pointer, &list)) }
        guard let list else { return [] }
        defer { libusb_free_device_list(list, 1) }
        return (0..<Int(count)).compactMap { index in list[index].map { LibUSBDevice(context: self, pointer: $0) } }
    }

    /// Arrivals and departures from now on. Starts libusb hotplug and the event thread on first use;
    /// they stop when the last stream ends. Throws when this platform's libusb has no hotplug.
    public func hotplugEvents() throws(LibUSBError) -> AsyncStream<LibUSBHotplugEvent> {
        guard supportsHotplug else {
            throw LibUSBError(.notSupported, operation: "libusb hotplug (LIBUSB_CAP_HAS_HOTPLUG)")
        }
        let (stream, continuation) = AsyncStream<LibUSBHotplugEvent>.makeStream(bufferingPolicy: .unbounded)
        let id: Int = lock.withLock {
            nextSubscriber += 1
            subscribers[nextSubscriber] = continuation
            return nextSubscriber
        }
        do {
            try startHotplugIfNeeded()
        } catch {
            _ = lock.withLock { subscribers.removeValue(forKey: id) }
            continuation.finish()
            throw error
        }
        continuation.onTermination = { [weak self] _ in self?.removeSubscriber(id) }
        return stream
    }

    private func removeSubscriber(_ id: Int) {
        let last: Bool = lock.withLock {
            subscribers.removeValue(forKey: id)
            return subscribers.isEmpty
        }
        if last { stopHotplug() }
    }

    private func startHotplugIfNeeded() throws(LibUSBError) {
        lock.lock()
        defer { lock.unlock() }
        guard hotplugHandle == nil else { return }
        var handle: libusb_hotplug_callback_handle = 0
        let events = Int32(LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED.rawValue | LIBUSB_HOTPLUG_EVENT_DEVICE_LEFT.rawValue)
        let userData = Unmanaged.passUnretained(self).toOpaque()
        try LibUSB.check("libusb_hotplug_register_callback") {
            libusb_hotplug_register_callback(
                pointer, events, 0,
                LIBUSB_HOTPLUG_MATCH_ANY, LIBUSB_HOTPLUG_MATCH_ANY, LIBUSB_HOTPLUG_MATCH_ANY,
                hotplugCallback, userData, &handle)
        }
        hotplugHandle = handle
        let thread = EventThread(context: pointer) { [weak self] in self?.deliverPendingEvents() }
        eventThread = thread
        thread.start()
    }

    private func stopHotplug() {
        let (thread, handle): (EventThread?, libusb_hotplug_callback_handle?) = lock.withLock {
            defer {
                eventThread = nil
                hotplugHandle = nil
            }
            return (eventThread, hotplugHandle)
        }
        if let handle { libusb_hotplug_deregister_callback(pointer, handle) }
        thread?.stopAndWait()
        let remaining = lock.withLock {
            defer { subscribers = [:] }
            return Array(subscribers.values)
        }
        for continuation in remaining { continuation.finish() }
    }

    /// Called by libusb inside its event handling: record only, no I/O, no locks held long.
    fileprivate func record(_ event: LibUSBHotplugEvent) {
        lock.withLock { pendingEvents.append(event) }
    }

    /// Called on the event thread after libusb's event handling returned.
    private func deliverPendingEvents() {
        let (events, targets) = lock.withLock {
            defer { pendingEvents = [] }
            return (pendingEvents, Array(subscribers.values))
        }
        for event in events {
            for continuation in targets { continuation.yield(event) }
        }
    }
}

/// libusb's hotplug callback (libusb.h: libusb_hotplug_callback_fn). Reads only cached data.
private let hotplugCallback: libusb_hotplug_callback_fn = { _, device, event, userData in
    guard let device, let userData else { return 0 }
    let context = Unmanaged<LibUSBContext>.fromOpaque(userData).takeUnretainedValue()
    var descriptor = libusb_device_descriptor()
    guard libusb_get_device_descriptor(device, &descriptor) == 0 else { return 0 }
    let kind: LibUSBHotplugEvent.Kind = event == LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED ? .arrived : .left
    context.record(
        LibUSBHotplugEvent(
            kind: kind, portPath: LibUSBDevice.portPath(of: device),
            address: libusb_get_device_address(device),
            vendorID: descriptor.idVendor, productID: descriptor.idProduct))
    return 0 // stay registered
}

/// The thread that runs libusb's event handling while hotplug is wanted.
private final class EventThread: @unchecked Sendable {
    // @unchecked: `stopping` is guarded by `lock`; the rest is immutable.
    private let context: OpaquePointer
    private let afterEvents: @Sendable () -> Void
    private let lock = NSLock()
    private var stopping = false
    private let finished = DispatchSemaphore(value: 0)

    init(context: OpaquePointer, afterEvents: @escaping @Sendable () -> Void) {
        self.context = context
        self.afterEvents = afterEvents
    }

    func start() {
        let thread = Thread { [self] in run() }
        thread.name = "dfuhop libusb events"
        thread.start()
    }

    private func run() {
        while !lock.withLock({ stopping }) {
            // Wake up at least every 100 ms to notice a stop request even if the interrupt was missed.
            var timeout = timeval(tv_sec: 0, tv_usec: 100_000)
            _ = libusb_handle_events_timeout_completed(context, &timeout, nil)
            afterEvents()
        }
        finished.signal()
    }

    func stopAndWait() {
        lock.withLock { stopping = true }
        libusb_interrupt_event_handler(context)
        finished.wait()
    }
}
