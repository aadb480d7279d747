import HexFormat
import USBTransport

/// A DFU interface answered from the recording (see `ReplayDiscovery`).
final class ReplayDFUTransport: DFUTransport {
    let replay: ReplayDiscovery
    let port: String
    let handle: Int
    let identity: USBDeviceIdentity
    let interfaceNumber: UInt8
    let alternateSettings: [DFUAlternateSetting]
    let functionalDescriptor: DFUFunctionalDescriptor

    init(
        replay: ReplayDiscovery, port: String, handle: Int, identity: USBDeviceIdentity, interfaceNumber: UInt8,
        alternateSettings: [DFUAlternateSetting], functionalDescriptor: DFUFunctionalDescriptor
    ) {
        self.replay = replay
        self.port = port
        self.handle = handle
        self.identity = identity
        self.interfaceNumber = interfaceNumber
        self.alternateSettings = alternateSettings
        self.functionalDescriptor = functionalDescriptor
    }

    func selectAlternateSetting(_ number: UInt8) async throws(TransportError) {
        var request = Record(.selectAlternate, port: port, handle: handle)
        request.alternate = Int(number)
        _ = try replay.answer(request)
    }

    func controlOut(_ request: ControlRequest, data: [UInt8], timeout: Duration) async throws(TransportError) {
        var record = Record(.controlOut, port: port, handle: handle)
        (record.setup, record.data) = (SetupRecord(request, length: data.count), Hex.string(data))
        _ = try replay.answer(record)
    }

    func controlIn(_ request: ControlRequest, length: Int, timeout: Duration) async throws(TransportError) -> [UInt8] {
        var record = Record(.controlIn, port: port, handle: handle)
        record.setup = SetupRecord(request, length: length)
        let line = try replay.answer(record)
        guard let reply = line.record.reply.flatMap({ Hex.bytes(fromHex: $0) }) else { throw replay.malformed("reply", line: line) }
        return reply
    }

    func close() async {
        // A close that differs is kept as the divergence; there is nothing to throw it to.
        _ = try? replay.answer(Record(.close, port: port, handle: handle))
    }
}

/// A HID interface answered from the recording (see `ReplayDiscovery`).
final class ReplayHIDTransport: HIDTransport {
    let replay: ReplayDiscovery
    let port: String
    let handle: Int
    let info: HIDDeviceInfo

    init(replay: ReplayDiscovery, port: String, handle: Int, info: HIDDeviceInfo) {
        self.replay = replay
        self.port = port
        self.handle = handle
        self.info = info
    }

    func write(_ report: [UInt8]) async throws(TransportError) {
        var record = Record(.hidWrite, port: port, handle: handle)
        record.data = Hex.string(report)
        _ = try replay.answer(record)
    }

    func read(timeout: Duration) async throws(TransportError) -> [UInt8]? {
        let line = try replay.answer(Record(.hidRead, port: port, handle: handle))
        guard let reply = line.record.reply else { return nil }
        guard let report = Hex.bytes(fromHex: reply) else { throw replay.malformed("input report", line: line) }
        return report
    }

    func getFeatureReport(id: UInt8, length: Int) async throws(TransportError) -> [UInt8] {
        var record = Record(.getFeatureReport, port: port, handle: handle)
        (record.reportID, record.length) = (Int(id), length)
        let line = try replay.answer(record)
        guard let report = line.record.reply.flatMap({ Hex.bytes(fromHex: $0) }) else {
            throw replay.malformed("feature report", line: line)
        }
        return report
    }

    func sendFeatureReport(_ report: [UInt8]) async throws(TransportError) {
        var record = Record(.sendFeatureReport, port: port, handle: handle)
        record.data = Hex.string(report)
        _ = try replay.answer(record)
    }

    func close() async {
        _ = try? replay.answer(Record(.close, port: port, handle: handle))
    }
}
