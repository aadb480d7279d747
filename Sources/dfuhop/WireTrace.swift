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
    private let pointer = AddressPointer()

    init(base: any DFUTransport, logger: Logger) {
        self.base = base
        self.logger = logger
    }

    func selectAlternateSetting(_ number: UInt8) async throws(TransportError) {
        try await traced("SET_INTERFACE alt \(number)") { () async throws(TransportError) in try await base.selectAlternateSetting(number) }
    }

    func controlOut(_ request: ControlRequest, data: [UInt8], timeout: Duration) async throws(TransportError) {
        let meaning = dfuSe(request, data: data, length: data.count)
        try await traced(Self.describe(request, length: data.count) + Self.preview(data) + meaning) { () async throws(TransportError) in
            try await base.controlOut(request, data: data, timeout: timeout)
        }
    }

    func controlIn(_ request: ControlRequest, length: Int, timeout: Duration) async throws(TransportError) -> [UInt8] {
        let meaning = dfuSe(request, data: [], length: length)
        let reply = try await traced(Self.describe(request, length: length) + meaning) { () async throws(TransportError) in
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

    /// What a DNLOAD or UPLOAD means to a DfuSe ROM, addresses in hex: a command on block 0 (AN3156 §6.1), or
    /// data on block n ≥ 2 at pointer + (n − 2) × wLength (AN3156 §6.2 and §6.3: the address formula).
    private func dfuSe(_ request: ControlRequest, data: [UInt8], length: Int) -> String {
        guard request.requestType & 0x60 == 0x20, let kind = DFURequest(rawValue: request.request), kind == .download || kind == .upload
        else { return "" }
        return pointer.lock.withLock {
            if kind == .download, request.value == 0, let command = DfuSeCommand(bytes: data) {
                if case .setAddress(let address) = command { pointer.value = address }
                return " = " + Self.describe(command)
            }
            guard request.value >= 2, let pointer = pointer.value else { return "" }
            let start = UInt64(pointer) + UInt64(request.value - 2) * UInt64(length)
            let range = "[\(Hex.word(UInt32(truncatingIfNeeded: start))), \(Hex.word(UInt32(truncatingIfNeeded: start + UInt64(length)))))"
            return " = \(kind == .download ? "write" : "read") block \(request.value) \(range), \(length) bytes"
        }
    }

    static func describe(_ command: DfuSeCommand) -> String {
        switch command {
        case .getCommands: "get commands"
        case .setAddress(let address): "set address pointer to \(Hex.word(address))"
        case .erase(let address): "erase the page at \(Hex.word(address))"
        case .massErase: "mass erase"
        case .readUnprotect: "read unprotect (wipes the flash)"
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

/// The last SET_ADDRESS a traced transport sent, from which DfuSe numbers the blocks of DNLOAD and UPLOAD.
final class AddressPointer: @unchecked Sendable {
    // Guarded by `lock`: a transport may be used from more than one task over its life.
    let lock = NSLock()
    var value: UInt32?
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
