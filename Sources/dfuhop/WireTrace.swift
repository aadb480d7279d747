import DfuSe
import DfuSeWire
import Foundation
import HexFormat
import Logging
import USBTransport

/// `-vv`: every USB control request and HID report, logged at trace level through swift-log. The
/// libraries stay untouched: these wrappers decorate the transports the discovery opens.
struct TracingDiscovery: DeviceDiscovery {
    let base: any DeviceDiscovery
    let logger: Logger

    func devices() async throws(TransportError) -> [DiscoveredDevice] { try await base.devices() }
    func events() -> AsyncStream<DiscoveryEvent> { base.events() }

    func openDFU(_ identity: USBDeviceIdentity) async throws(TransportError) -> any DFUTransport {
        logger.trace("open DFU \(identity.vidPid) serial \(identity.serialNumber ?? "-") at \(identity.portPath)")
        return TracingDFUTransport(base: try await base.openDFU(identity), logger: logger)
    }

    func openHID(_ info: HIDDeviceInfo) async throws(TransportError) -> any HIDTransport {
        logger.trace("open HID \(info.usb.vidPid) at \(info.usb.portPath)")
        return TracingHIDTransport(base: try await base.openHID(info), logger: logger)
    }
}

final class TracingDFUTransport: DFUTransportWrapper {
    let base: any DFUTransport
    let logger: Logger

    init(base: any DFUTransport, logger: Logger) {
        self.base = base
        self.logger = logger
    }

    func selectAlternateSetting(_ number: UInt8) async throws(TransportError) {
        try await traced("SET_INTERFACE alt \(number)") { () async throws(TransportError) in try await base.selectAlternateSetting(number) }
    }

    func controlOut(_ request: ControlRequest, data: [UInt8], timeout: Duration) async throws(TransportError) {
        try await traced(Self.describe(request, length: data.count) + Self.preview(data)) { () async throws(TransportError) in
            try await base.controlOut(request, data: data, timeout: timeout)
        }
    }

    func controlIn(_ request: ControlRequest, length: Int, timeout: Duration) async throws(TransportError) -> [UInt8] {
        let reply = try await traced(Self.describe(request, length: length)) { () async throws(TransportError) in
            try await base.controlIn(request, length: length, timeout: timeout)
        }
        logger.trace("  <- \(reply.count) byte(s)\(Self.preview(reply))\(Self.status(request, reply))")
        return reply
    }

    func close() async {
        logger.trace("close DFU \(base.identity.portPath)")
        await base.close()
    }

    private func traced<T>(_ text: String, _ body: () async throws(TransportError) -> T) async throws(TransportError) -> T {
        do {
            let value = try await body()
            logger.trace("-> \(text): ok")
            return value
        } catch {
            logger.trace("-> \(text): failed: \(error)")
            throw error
        }
    }

    /// `DNLOAD wValue=2 wLength=2048`: the DFU request's name (DFU 1.1 Table 3.2) when it is one.
    static func describe(_ request: ControlRequest, length: Int) -> String {
        let name = request.requestType & 0x60 == 0x20 ? DFURequest(rawValue: request.request)?.description : nil
        return "\(name ?? "request \(request.request) (bmRequestType 0x\(Hex.digits(request.requestType, width: 2)))") "
            + "wValue=\(request.value) wLength=\(length)"
    }

    /// A GETSTATUS reply decoded: bStatus and bState (DFU 1.1 §6.1.2).
    static func status(_ request: ControlRequest, _ reply: [UInt8]) -> String {
        guard request.request == DFURequest.getStatus.rawValue, reply.count >= 5 else { return "" }
        let status = DFUStatus(rawValue: reply[0]).map(\.description) ?? "status \(reply[0])"
        let state = DFUState(rawValue: reply[4]).map(\.description) ?? "state \(reply[4])"
        let poll = Int(reply[1]) | Int(reply[2]) << 8 | Int(reply[3]) << 16
        return " (\(status), \(state), poll \(poll) ms)"
    }

    static func preview(_ bytes: [UInt8]) -> String {
        bytes.isEmpty ? "" : " [" + Hex.string(bytes.prefix(16)) + (bytes.count > 16 ? "…" : "") + "]"
    }
}

final class TracingHIDTransport: HIDTransport {
    let base: any HIDTransport
    let logger: Logger

    init(base: any HIDTransport, logger: Logger) {
        self.base = base
        self.logger = logger
    }

    var info: HIDDeviceInfo { base.info }

    func write(_ report: [UInt8]) async throws(TransportError) {
        logger.trace("HID out report \(report.count) byte(s)\(TracingDFUTransport.preview(report))")
        try await base.write(report)
    }

    func read(timeout: Duration) async throws(TransportError) -> [UInt8]? {
        let report = try await base.read(timeout: timeout)
        let text = report.map { "HID in report \($0.count) byte(s)\(TracingDFUTransport.preview($0))" }
        logger.trace("\(text ?? "HID in: nothing within \(timeout)")")
        return report
    }

    func getFeatureReport(id: UInt8, length: Int) async throws(TransportError) -> [UInt8] {
        let report = try await base.getFeatureReport(id: id, length: length)
        logger.trace("HID get feature report \(id): \(report.count) byte(s)\(TracingDFUTransport.preview(report))")
        return report
    }

    func sendFeatureReport(_ report: [UInt8]) async throws(TransportError) {
        logger.trace("HID send feature report \(report.count) byte(s)\(TracingDFUTransport.preview(report))")
        try await base.sendFeatureReport(report)
    }

    func close() async {
        logger.trace("close HID \(base.info.usb.portPath)")
        await base.close()
    }
}
