import DeviceProfiles
import DfuSe
import DfuSeWire
import FirmwareImage
import Foundation
import USBTransport

@testable import VirtualDevice

/// A plausible application image for `family`: vector table (SP at the end of the first RAM region,
/// Thumb reset handler inside the image) followed by `size - 8` bytes of pattern.
func applicationImage(for family: McuFamily, size: Int, seed: UInt8 = 1) -> NormalizedImage {
    let base = family.flashBase
    let sp = UInt32(truncatingIfNeeded: family.ramRegions[0].end)
    let reset = base + 0x101
    var bytes = le(sp) + le(reset)
    bytes += (0..<(size - 8)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ Int(seed)) }
    let padded = (bytes.count + family.writeGranularity - 1) / family.writeGranularity * family.writeGranularity
    bytes += [UInt8](repeating: 0xFF, count: padded - bytes.count)
    return NormalizedImage(
        uncheckedSegments: [Segment(address: base, bytes: bytes)], granularity: family.writeGranularity, entryPoint: reset)
}

func le(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }

/// A unit sitting in the ROM's DFU mode, on a virtual clock.
func unitInDFU(
    _ family: McuFamily, clock: VirtualClock = VirtualClock(), faults: FaultPlan = .none,
    firmwareLayout: String? = nil
) -> VirtualUnit {
    let unit = VirtualUnit(
        family: family, uid: VirtualUnit.uid(index: 1), portPath: "1-1", clock: clock, faults: faults,
        firmwareLayout: firmwareLayout)
    unit.setBoot0(true)
    unit.powerCycle()
    unit.setBoot0(false)
    return unit
}

/// The DfuSe client on a fresh handle of `unit`.
func client(_ unit: VirtualUnit) throws -> DfuSeClient {
    try DfuSeClient(transport: VirtualDFUTransport(unit: unit), clock: unit.clock, quirks: unit.family.quirks)
}

/// Plans and flashes `image` with verification; returns the report.
@discardableResult
func flash(_ image: NormalizedImage, to unit: VirtualUnit) async throws -> FlashReport {
    let dfu = try client(unit)
    let layout = try await dfu.prepare()
    let plan = try FlashPlan(image: image, layout: layout, family: unit.family, transferSize: dfu.transferSize)
    return try await dfu.execute(plan, image: image)
}

/// Raw DFU requests, for tests that speak the protocol without the client.
struct RawDFU {
    let transport: VirtualDFUTransport

    init(_ unit: VirtualUnit) throws { transport = try VirtualDFUTransport(unit: unit) }

    func download(block: UInt16, _ data: [UInt8]) async throws {
        try await transport.controlOut(
            .classOut(DFURequest.download.rawValue, value: block, interface: 0), data: data, timeout: .seconds(5))
    }

    func command(_ command: DfuSeCommand) async throws { try await download(block: 0, command.bytes) }

    func status() async throws -> DFUStatusReport {
        let bytes = try await transport.controlIn(
            .classIn(DFURequest.getStatus.rawValue, value: 0, interface: 0), length: 6, timeout: .seconds(5))
        guard let report = DFUStatusReport(bytes: bytes) else {
            throw TransportError(.badLength(expected: 6, got: bytes.count), device: "test", operation: "GETSTATUS")
        }
        return report
    }

    func upload(block: UInt16, length: Int) async throws -> [UInt8] {
        try await transport.controlIn(
            .classIn(DFURequest.upload.rawValue, value: block, interface: 0), length: length, timeout: .seconds(5))
    }

    func abort() async throws {
        try await transport.controlOut(.classOut(DFURequest.abort.rawValue, value: 0, interface: 0), data: [], timeout: .seconds(5))
    }

    func clearStatus() async throws {
        try await transport.controlOut(.classOut(DFURequest.clearStatus.rawValue, value: 0, interface: 0), data: [], timeout: .seconds(5))
    }

    /// GETSTATUS until the operation ends, waiting the poll timeouts on the unit's clock.
    func settle(clock: any DeviceClock) async throws -> DFUStatusReport {
        var report = try await status()
        while report.state == .downloadBusy {
            try await clock.sleep(for: report.pollTimeout)
            report = try await status()
        }
        return report
    }
}
