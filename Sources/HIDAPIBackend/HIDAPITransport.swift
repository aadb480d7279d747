import CHIDAPI
import Dispatch
import Foundation
import HexFormat
import USBTransport

/// An opened HID interface: `HIDTransport` over hidapi. Every hidapi call runs on the device's own
/// serial queue (hidapi is not thread-safe per device, and hid_read_timeout blocks), never on the
/// cooperative pool; calls run in the order they were made, so a read that waits delays a write
/// queued after it.
public final class HIDAPITransport: HIDTransport, @unchecked Sendable {
    // @unchecked: `device` is used only on `queue`; `closed` is guarded by `lock`.
    public let info: HIDDeviceInfo
    /// Whether the device numbers its reports. When it does not, hidraw delivers input reports
    /// without an id byte and this transport puts the 0 in front, as `HIDTransport` promises.
    public let numberedReports: Bool
    /// Longest input report accepted (hidraw hands over one report per read).
    public static let maxReportLength = 4096

    private let device: DeviceHandle
    private let queue: DispatchQueue
    private let lock = NSLock()
    private var closed = false

    /// hid_device*, only ever used on `queue`.
    private struct DeviceHandle: @unchecked Sendable {
        let pointer: OpaquePointer
    }

    init(info: HIDDeviceInfo, device: OpaquePointer, numberedReports: Bool) {
        self.info = info
        self.device = DeviceHandle(pointer: device)
        self.numberedReports = numberedReports
        self.queue = DispatchQueue(label: "dfuhop hid \(info.path)", qos: .userInitiated)
    }

    deinit {
        if !closed { hid_close(device.pointer) }
    }

    public func write(_ report: [UInt8]) async throws(TransportError) {
        let operation = "write report 0x\(Hex.digits(report.first ?? 0, width: 2)) (\(report.count) bytes)"
        guard !report.isEmpty else {
            throw TransportError(.badLength(expected: 1, got: 0), device: info.description, operation: operation)
        }
        let written = try await call(.write, operation) { device in
            report.withUnsafeBufferPointer { hid_write(device, $0.baseAddress, $0.count) }
        }
        guard written == report.count else {
            throw TransportError(.badLength(expected: report.count, got: Int(written)), device: info.description, operation: operation)
        }
    }

    public func read(timeout: Duration) async throws(TransportError) -> [UInt8]? {
        let milliseconds = Self.hidapiTimeout(timeout)
        let (count, bytes) = try await callReturning(.read, "read input report") { device -> (Int32, [UInt8]) in
            var buffer = [UInt8](repeating: 0, count: Self.maxReportLength)
            let count = buffer.withUnsafeMutableBufferPointer { hid_read_timeout(device, $0.baseAddress, $0.count, milliseconds) }
            return (count, buffer)
        }
        guard count > 0 else { return nil } // 0: no report within the timeout
        let report = Array(bytes.prefix(Int(count)))
        return numberedReports ? report : [0] + report
    }

    public func getFeatureReport(id: UInt8, length: Int) async throws(TransportError) -> [UInt8] {
        let operation = "get feature report 0x\(Hex.digits(id, width: 2))"
        guard length >= 1 else {
            throw TransportError(.badLength(expected: 1, got: length), device: info.description, operation: operation)
        }
        let (count, bytes) = try await callReturning(.getFeatureReport, operation) { device -> (Int32, [UInt8]) in
            var buffer = [UInt8](repeating: 0, count: length)
            buffer[0] = id
            let count = buffer.withUnsafeMutableBufferPointer { hid_get_feature_report(device, $0.baseAddress, $0.count) }
            return (count, buffer)
        }
        return Array(bytes.prefix(Int(count)))
    }

    public func sendFeatureReport(_ report: [UInt8]) async throws(TransportError) {
        let operation = "send feature report 0x\(Hex.digits(report.first ?? 0, width: 2)) (\(report.count) bytes)"
        guard !report.isEmpty else {
            throw TransportError(.badLength(expected: 1, got: 0), device: info.description, operation: operation)
        }
        let sent = try await call(.sendFeatureReport, operation) { device in
            report.withUnsafeBufferPointer { hid_send_feature_report(device, $0.baseAddress, $0.count) }
        }
        guard sent == report.count else {
            throw TransportError(.badLength(expected: report.count, got: Int(sent)), device: info.description, operation: operation)
        }
    }

    public func close() async {
        let wasOpen = lock.withLock {
            defer { closed = true }
            return !closed
        }
        guard wasOpen else { return }
        let device = self.device
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            queue.async {
                hid_close(device.pointer)
                continuation.resume()
            }
        }
    }

    /// hidapi timeouts are milliseconds, -1 meaning "forever" and 0 "do not wait": round up, clamp.
    public static func hidapiTimeout(_ timeout: Duration) -> Int32 {
        guard timeout > .zero else { return 0 }
        let (seconds, attoseconds) = timeout.components
        let milliseconds = Double(seconds) * 1000 + (Double(attoseconds) / 1e15).rounded(.up)
        return Int32(min(milliseconds, Double(Int32.max)))
    }

    private func call(
        _ what: HIDAPIError.Operation, _ operation: String,
        _ body: @escaping @Sendable (OpaquePointer) -> Int32
    ) async throws(TransportError) -> Int32 {
        try await callReturning(what, operation) { device in (body(device), []) }.0
    }

    /// Runs `body` on the device queue; a negative count becomes a TransportError with hidapi's words.
    private func callReturning(
        _ what: HIDAPIError.Operation, _ operation: String,
        _ body: @escaping @Sendable (OpaquePointer) -> (Int32, [UInt8])
    ) async throws(TransportError) -> (Int32, [UInt8]) {
        guard !lock.withLock({ closed }) else {
            throw HIDAPIError(.useAfterClose, path: info.path).transportError(device: info.description, operation: operation)
        }
        let device = self.device
        let path = info.path
        let result: Result<(Int32, [UInt8]), HIDAPIError> = await withCheckedContinuation { continuation in
            queue.async {
                errno = 0
                let (count, bytes) = body(device.pointer)
                if count < 0 {
                    let number = errno
                    continuation.resume(
                        returning: .failure(
                            HIDAPIError(
                                what, path: path, message: HIDAPI.deviceError(device.pointer),
                                errorNumber: number)))
                } else {
                    continuation.resume(returning: .success((count, bytes)))
                }
            }
        }
        switch result {
        case .success(let value): return value
        case .failure(let error): throw error.transportError(device: info.description, operation: operation)
        }
    }
}
