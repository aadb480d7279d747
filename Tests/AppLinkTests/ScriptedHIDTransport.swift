import AppLink
import Foundation
import USBTransport

/// A HID interface played by the test: every report the client writes goes to `respond`, which
/// queues answers or makes the device leave the bus. Time is a `VirtualClock`: a `read` that finds
/// nothing advances the clock by its whole timeout, as a real blocking read would take it.
final class ScriptedHIDTransport: HIDTransport, @unchecked Sendable {
    enum Reaction {
        /// An input report (or, for feature exchanges, the next feature report).
        case reply([UInt8])
        /// The device leaves the bus after this much clock time, once queued replies are read.
        case leave(after: Duration)
    }

    let info = HIDDeviceInfo(
        usb: USBDeviceIdentity(vendorID: 0x1209, productID: 0x0001, serialNumber: "TEST", portPath: "1-2"),
        usagePage: AppLinkProtocol.usagePage, usage: 1, interfaceNumber: 0, path: "scripted")
    let clock: VirtualClock
    private let lock = NSLock()
    private var inbox: [[UInt8]] = []
    private var leavesAt: Duration?
    private var respond: @Sendable ([UInt8]) -> [Reaction]
    private(set) var written: [[UInt8]] = []
    private(set) var featureReads: [(id: UInt8, length: Int)] = []

    init(clock: VirtualClock, respond: @escaping @Sendable ([UInt8]) -> [Reaction] = { _ in [] }) {
        self.clock = clock
        self.respond = respond
    }

    /// Reports waiting before the client sends anything (e.g. a late answer to an earlier request).
    func queue(_ report: [UInt8]) { lock.withLock { inbox.append(report) } }

    var writtenReports: [[UInt8]] { lock.withLock { written } }

    private func gone(_ operation: String) -> TransportError {
        TransportError(.disconnected, device: "scripted", operation: operation)
    }

    private func deliver(_ report: [UInt8], operation: String) throws(TransportError) {
        let departed = lock.withLock {
            if let leavesAt, clock.now() >= leavesAt { return true }
            written.append(report)
            return false
        }
        if departed { throw gone(operation) }
        let reactions = respond(report)
        lock.withLock {
            for reaction in reactions {
                switch reaction {
                case .reply(let bytes): inbox.append(bytes)
                case .leave(let after): leavesAt = clock.now() + after
                }
            }
        }
    }

    func write(_ report: [UInt8]) async throws(TransportError) { try deliver(report, operation: "write") }

    func read(timeout: Duration) async throws(TransportError) -> [UInt8]? {
        let (report, departure): ([UInt8]?, Duration?) = lock.withLock {
            inbox.isEmpty ? (nil, leavesAt) : (inbox.removeFirst(), nil)
        }
        if let report { return report }
        if let departure, clock.now() + timeout >= departure {
            clock.advance(by: departure - clock.now())
            throw gone("read")
        }
        clock.advance(by: timeout)
        return nil
    }

    func getFeatureReport(id: UInt8, length: Int) async throws(TransportError) -> [UInt8] {
        let report = lock.withLock {
            featureReads.append((id, length))
            return inbox.isEmpty ? nil : inbox.removeFirst()
        }
        guard let report else { throw TransportError(.timeout, device: "scripted", operation: "get feature") }
        return report
    }

    func sendFeatureReport(_ report: [UInt8]) async throws(TransportError) { try deliver(report, operation: "send feature") }

    func close() async {}
}
