import Foundation
import HexFormat
import USBTransport

/// `dfuhop replay`: a `DeviceDiscovery` that serves a recording. Every request the run makes must equal the
/// next one recorded on the same port (its kind, interface, setup stage and OUT data; timeouts are not
/// compared); it then gets the recorded answer, or the recorded error. The first request that differs is
/// kept as the `divergence`, and it and every later request fail with a `TransportError` naming it. Time is
/// `clock` (`ReplayClock`): virtual, moved to each answered request's recorded time; nothing sleeps.
public final class ReplayDiscovery: DeviceDiscovery, @unchecked Sendable {
    public let recording: Recording
    /// The replay's time; `clock` is what the run is given.
    let time = VirtualClock()
    // Guarded by `lock`.
    private let lock = NSLock()
    private var state: ReplayState
    private var subscriptions: [ReplaySubscription] = []
    /// How many `events()` streams the run has opened (the recording numbers its subscriptions so).
    private var opened = 0
    private var beyond = 0

    public init(recording: Recording) {
        self.recording = recording
        state = ReplayState(lines: recording.lines)
    }

    /// The clock to run the replayed command on.
    public var clock: ReplayClock { ReplayClock(replay: self) }

    /// The first divergence so far.
    public var divergence: Divergence? { lock.withLock { state.divergence } }
    /// Control transfers and HID reports replayed as recorded.
    public var transfers: Int { lock.withLock { state.transfers } }
    /// Opens refused because the recording covers discovery only.
    public var requestsBeyondCoverage: Int { lock.withLock { beyond } }

    /// Once the run is over: the divergence, or the first recorded request the run never made.
    public func finish() -> Divergence? { lock.withLock { state.finish() } }

    public func devices() async throws(TransportError) -> [DiscoveredDevice] {
        let snapshot = lock.withLock { state.snapshot }
        if let error = snapshot.error { throw error.transportError }
        var found: [DiscoveredDevice] = []
        for record in snapshot.devices {
            guard let device = record.discovered else {
                throw TransportError(
                    .other("the recording \(recording.path) lists a device it does not describe fully"), device: "replay",
                    operation: "list devices")
            }
            found.append(device)
        }
        return found
    }

    /// Arrivals and departures that become due from now on (see `ReplayState`).
    public func events() -> AsyncStream<DiscoveryEvent> {
        let subscription = ReplaySubscription { [lines = recording.lines] index in
            ReplayState.discoveryEvent(lines[Int(index)].record)
        }
        lock.withLock {
            subscriptions.append(subscription)
            opened += 1
            // What became due before this stream opened but was recorded as seen by it.
            for index in state.held(for: opened) { subscription.deliverLocked(index) }
        }
        return AsyncStream(unfolding: { [lock] in await subscription.next(lock: lock) })
    }

    public func openDFU(_ identity: USBDeviceIdentity) async throws(TransportError) -> any DFUTransport {
        try beyondCoverage(identity.description, "open DFU interface")
        var request = Record(.openDFU, port: identity.portPath, handle: nil)
        request.device = DeviceRecord(identity, kind: "dfu")
        let line = try take(request, matchingHandle: true)
        let recorded = line.record
        guard let interface = recorded.interface, let device = interface.device.identity,
            let functional = Hex.bytes(fromHex: interface.functionalDescriptor).flatMap(DFUFunctionalDescriptor.parse)
        else { throw malformed("the opened DFU interface", line: line) }
        return ReplayDFUTransport(
            replay: self, port: identity.portPath, handle: recorded.handle ?? 0, identity: device,
            interfaceNumber: UInt8(truncatingIfNeeded: interface.interfaceNumber),
            alternateSettings: interface.device.alternates ?? [], functionalDescriptor: functional)
    }

    public func openHID(_ info: HIDDeviceInfo) async throws(TransportError) -> any HIDTransport {
        try beyondCoverage(info.description, "open HID interface")
        var request = Record(.openHID, port: info.usb.portPath, handle: nil)
        request.device = DeviceRecord(info)
        let recorded = try take(request, matchingHandle: true).record
        return ReplayHIDTransport(replay: self, port: info.usb.portPath, handle: recorded.handle ?? 0, info: info)
    }

    /// The value the recorded run chose for `name` (see `RecordingDiscovery.recordInput`).
    public func input(name: String, port: String?) throws(TransportError) -> UInt32 {
        var request = Record(.input, port: port)
        request.name = name
        let line = try take(request)
        guard let value = line.record.value else { throw malformed("the input's value", line: line) }
        return value
    }

    /// How the recorded command reached BOOT0: its description and wait; nil when it had no BOOT0 path.
    public var boot0Path: (description: String, arrivalTimeout: Duration)? {
        guard let record = recording.lines.first(.boot0Path)?.record else { return nil }
        return (record.name ?? "recorded BOOT0 path", .milliseconds(record.timeoutMs ?? 0))
    }

    /// The recorded BOOT0 request matching this one, with how it ended (`failure`, `exitCode`).
    public func boot0(action: String, port: String?, uid: String?) throws(TransportError) -> Record {
        var request = Record(.boot0, port: port)
        (request.action, request.uid) = (action, uid)
        return try take(request).record
    }

    /// Matches a request and returns the recorded answer; a recorded error is thrown as it was.
    func answer(_ request: Record) throws(TransportError) -> Recording.Line {
        let line = try take(request)
        if let error = line.record.error { throw error.transportError }
        return line
    }

    /// Matches a request, moves the clock to its recorded time and delivers hotplug events now due.
    /// An open's handle is the recorded one, so it is taken from the record, not compared.
    func take(_ request: Record, matchingHandle: Bool = false) throws(TransportError) -> Recording.Line {
        let result = lock.withLock { () -> Result<Recording.Line, Divergence> in
            guard matchingHandle else { return state.take(request) }
            // Opens are compared without the handle: the recorded one is adopted.
            var probe = request
            probe.handle = state.nextHandle(on: ReplayState.stream(request))
            return state.take(probe)
        }
        switch result {
        case .failure(let divergence):
            throw TransportError(
                .other("the run diverged from the recording \(recording.path) at \(divergence)"), device: "replay",
                operation: request.summary)
        case .success(let line):
            let ahead = Duration.microseconds(line.record.t) - time.now()
            if ahead > .zero { time.advance(by: ahead) }
            deliverDueHotplug()
            if matchingHandle, let error = line.record.error { throw error.transportError }
            return line
        }
    }

    private func deliverDueHotplug() {
        lock.withLock {
            let due = state.dueHotplug(subscriptions: opened)
            subscriptions.removeAll { $0.finished }
            for index in due {
                for subscription in subscriptions { subscription.deliverLocked(index) }
            }
        }
    }

    /// How long a sleep waits for a subscriber to take an event that just became due (real time).
    static let grace = Duration.milliseconds(200)

    /// Before a sleep ends: lets subscribers take the events that became due, as the recorded run's
    /// subscribers had them before a wait ran out. At most `grace` per event, and not at all once cancelled.
    func settle() async {
        while !Task.isCancelled {
            let busy = lock.withLock { subscriptions.contains { $0.busyLocked(grace: Self.grace) } }
            guard busy else { return }
            try? await Task.sleep(for: .milliseconds(1))
        }
    }

    private func beyondCoverage(_ device: String, _ operation: String) throws(TransportError) {
        guard recording.header.coverage == .discovery else { return }
        lock.withLock { beyond += 1 }
        throw TransportError(
            .other("not in the recording, which covers device discovery only"), device: device, operation: operation)
    }

    func malformed(_ what: String, line: Recording.Line) -> TransportError {
        TransportError(
            .other("line \(line.number) of the recording \(recording.path) holds no valid \(what)"), device: "replay",
            operation: line.record.summary)
    }
}
