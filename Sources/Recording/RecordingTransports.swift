import HexFormat
import USBTransport

extension RecordingLog {
    /// Runs one call of an opened interface and writes `record` once it returned: with what `reply` makes of
    /// the value, or the error.
    func call<T>(
        _ record: Record, device: String, operation: String, _ body: () async throws -> T, reply: (T) -> String? = { _ in nil }
    ) async throws(TransportError) -> T {
        var record = record
        do {
            let value = try await body()
            record.reply = reply(value)
            append(record)
            return value
        } catch {
            let failure = TransportError.wrapping(error, device: device, operation: operation)
            record.error = ErrorRecord(failure)
            append(record)
            throw failure
        }
    }
}

/// A DFU interface whose every call goes into the recording (see `RecordingDiscovery`).
final class RecordingDFUTransport: DFUTransportWrapper {
    let base: any DFUTransport
    let log: RecordingLog
    let port: String
    let handle: Int

    init(base: any DFUTransport, log: RecordingLog, port: String, handle: Int) {
        self.base = base
        self.log = log
        self.port = port
        self.handle = handle
    }

    func selectAlternateSetting(_ number: UInt8) async throws(TransportError) {
        var record = Record(.selectAlternate, port: port, handle: handle)
        record.alternate = Int(number)
        try await log.call(record, device: identity.description, operation: "SET_INTERFACE alt \(number)") {
            try await base.selectAlternateSetting(number)
        }
    }

    func controlOut(_ request: ControlRequest, data: [UInt8], timeout: Duration) async throws(TransportError) {
        var record = Record(.controlOut, port: port, handle: handle)
        (record.setup, record.data, record.timeoutMs) = (
            SetupRecord(request, length: data.count), Hex.string(data), timeout.recordedMilliseconds
        )
        try await log.call(record, device: identity.description, operation: "control OUT \(request)") {
            try await base.controlOut(request, data: data, timeout: timeout)
        }
    }

    func controlIn(_ request: ControlRequest, length: Int, timeout: Duration) async throws(TransportError) -> [UInt8] {
        var record = Record(.controlIn, port: port, handle: handle)
        (record.setup, record.timeoutMs) = (SetupRecord(request, length: length), timeout.recordedMilliseconds)
        return try await log.call(record, device: identity.description, operation: "control IN \(request)") {
            try await base.controlIn(request, length: length, timeout: timeout)
        } reply: {
            Hex.string($0)
        }
    }

    func close() async {
        await base.close()
        log.append(Record(.close, port: port, handle: handle))
    }
}

/// A HID interface whose every call goes into the recording (see `RecordingDiscovery`).
final class RecordingHIDTransport: HIDTransport {
    let base: any HIDTransport
    let log: RecordingLog
    let port: String
    let handle: Int

    init(base: any HIDTransport, log: RecordingLog, port: String, handle: Int) {
        self.base = base
        self.log = log
        self.port = port
        self.handle = handle
    }

    var info: HIDDeviceInfo { base.info }

    func write(_ report: [UInt8]) async throws(TransportError) {
        var record = Record(.hidWrite, port: port, handle: handle)
        record.data = Hex.string(report)
        try await log.call(record, device: info.description, operation: "write report") { try await base.write(report) }
    }

    func read(timeout: Duration) async throws(TransportError) -> [UInt8]? {
        var record = Record(.hidRead, port: port, handle: handle)
        record.timeoutMs = timeout.recordedMilliseconds
        return try await log.call(record, device: info.description, operation: "read report") {
            try await base.read(timeout: timeout)
        } reply: {
            $0.map { Hex.string($0) }
        }
    }

    func getFeatureReport(id: UInt8, length: Int) async throws(TransportError) -> [UInt8] {
        var record = Record(.getFeatureReport, port: port, handle: handle)
        (record.reportID, record.length) = (Int(id), length)
        return try await log.call(record, device: info.description, operation: "get feature report \(id)") {
            try await base.getFeatureReport(id: id, length: length)
        } reply: {
            Hex.string($0)
        }
    }

    func sendFeatureReport(_ report: [UInt8]) async throws(TransportError) {
        var record = Record(.sendFeatureReport, port: port, handle: handle)
        record.data = Hex.string(report)
        try await log.call(record, device: info.description, operation: "send feature report") {
            try await base.sendFeatureReport(report)
        }
    }

    func close() async {
        await base.close()
        log.append(Record(.close, port: port, handle: handle))
    }
}

extension Duration {
    /// Whole milliseconds (a recorded timeout).
    var recordedMilliseconds: Int64 { recordedMicroseconds / 1000 }
}
