import HexFormat
import USBTransport

/// `--record FILE`: a `DeviceDiscovery` that passes every call to `base` and writes what it asked and what
/// came back, one JSON line each (docs/recordings.md): discovery snapshots, hotplug events as each
/// subscription saw them, opens, alternate settings, control transfers, HID reports, closes and errors,
/// with their time in the session's clock. The transports it opens are wrapped the same way.
public final class RecordingDiscovery: DeviceDiscovery, Sendable {
    public let base: any DeviceDiscovery
    let log: RecordingLog

    /// Creates the recording at `path` (a new file: an existing one is never overwritten) and writes `header`.
    public init(base: any DeviceDiscovery, clock: any DeviceClock, path: String, header: RecordingHeader) throws(RecordingError) {
        self.base = base
        log = try RecordingLog(path: path, clock: clock, header: header)
    }

    public var path: String { log.path }

    public func devices() async throws(TransportError) -> [DiscoveredDevice] {
        var record = Record(.devices)
        do {
            let found = try await base.devices()
            record.devices = found.map(DeviceRecord.init)
            log.append(record)
            return found
        } catch {
            let failure = TransportError.wrapping(error, device: "USB", operation: "list devices")
            record.error = ErrorRecord(failure)
            log.append(record)
            throw failure
        }
    }

    public func events() -> AsyncStream<DiscoveryEvent> {
        let number = log.nextSubscription()
        var subscribed = Record(.subscribe)
        subscribed.subscription = number
        log.append(subscribed)
        let events = base.events()
        let (stream, continuation) = AsyncStream<DiscoveryEvent>.makeStream(bufferingPolicy: .unbounded)
        // Each event is written before the subscriber can act on it.
        let pump = Task { [log] in
            for await event in events {
                var record = Record(.hotplug)
                record.subscription = number
                switch event {
                case .arrived(let device): (record.change, record.device) = ("arrived", DeviceRecord(device))
                case .left(let device): (record.change, record.device) = ("left", DeviceRecord(device))
                }
                record.port = record.device?.port
                log.append(record)
                continuation.yield(event)
            }
            continuation.finish()
        }
        continuation.onTermination = { _ in pump.cancel() }
        return stream
    }

    public func openDFU(_ identity: USBDeviceIdentity) async throws(TransportError) -> any DFUTransport {
        let handle = log.nextHandle()
        var record = Record(.openDFU, port: identity.portPath, handle: handle)
        record.device = DeviceRecord(identity, kind: "dfu")
        do {
            let transport = try await base.openDFU(identity)
            record.interface = DFUInterfaceRecord(
                interfaceNumber: Int(transport.interfaceNumber),
                device: DeviceRecord(.dfu(transport.identity, alternateSettings: transport.alternateSettings)),
                functionalDescriptor: Hex.string(transport.functionalDescriptor.bytes))
            log.append(record)
            return RecordingDFUTransport(base: transport, log: log, port: identity.portPath, handle: handle)
        } catch {
            let failure = TransportError.wrapping(error, device: identity.description, operation: "open DFU interface")
            record.error = ErrorRecord(failure)
            log.append(record)
            throw failure
        }
    }

    public func openHID(_ info: HIDDeviceInfo) async throws(TransportError) -> any HIDTransport {
        let handle = log.nextHandle()
        var record = Record(.openHID, port: info.usb.portPath, handle: handle)
        record.device = DeviceRecord(info)
        do {
            let transport = try await base.openHID(info)
            log.append(record)
            return RecordingHIDTransport(base: transport, log: log, port: info.usb.portPath, handle: handle)
        } catch {
            let failure = TransportError.wrapping(error, device: info.description, operation: "open HID interface")
            record.error = ErrorRecord(failure)
            log.append(record)
            throw failure
        }
    }

    /// A value the host chose that goes on the wire (ENTER_BOOTLOADER's nonce), so a replay sends it again.
    public func recordInput(name: String, port: String?, value: UInt32) {
        var record = Record(.input, port: port)
        (record.name, record.value) = (name, value)
        log.append(record)
    }

    /// How the command reaches BOOT0 (written once, before any request): a replay offers the same path.
    public func recordBoot0Path(description: String, arrivalTimeout: Duration) {
        var record = Record(.boot0Path)
        (record.name, record.timeoutMs) = (description, arrivalTimeout.recordedMilliseconds)
        log.append(record)
    }

    /// A BOOT0 request the host carried out (a hook, a prompt, the virtual jig), and how it ended.
    public func recordBoot0(action: String, port: String?, uid: String?, failure: String? = nil, exitCode: Int32? = nil) {
        var record = Record(.boot0, port: port)
        (record.action, record.uid, record.failure, record.exitCode) = (action, uid, failure, exitCode)
        log.append(record)
    }

    /// Writes the last line, `{"event":"result","exitCode":…,"result":…}` with the command's own result,
    /// and closes the file. Returns the first write failure of the whole recording, if there was one.
    public func finish<Result: Codable>(exitCode: Int32, result: Result) -> RecordingError? {
        log.finish { t in RecordingLog.line(ResultRecord(t: t, exitCode: exitCode, result: result)) }
    }
}

/// The closing line: the command's exit status and its result, in the command's own terms.
public struct ResultRecord<Result: Codable>: Codable {
    public var t: Int64
    public var event = Record.Event.result
    public var exitCode: Int32
    public var result: Result

    public init(t: Int64, exitCode: Int32, result: Result) {
        self.t = t
        self.exitCode = exitCode
        self.result = result
    }
}

extension ResultRecord: Sendable where Result: Sendable {}
