import AppLink
import DeviceProfiles
import FirmwareImage
import Foundation
import HexFormat
import USBTransport

/// How the product's application shows itself on USB (a product profile's `application` section).
public struct ApplicationIdentity: Sendable, Hashable {
    public var vendorID: UInt16
    public var productID: UInt16
    public var usagePage: UInt16
    public var usage: UInt16
    public var product: String

    public init(
        vendorID: UInt16, productID: UInt16, usagePage: UInt16 = AppLinkProtocol.usagePage,
        usage: UInt16 = AppLinkProtocol.usage, product: String
    ) {
        self.vendorID = vendorID
        self.productID = productID
        self.usagePage = usagePage
        self.usage = usage
        self.product = product
    }

    /// The demo products of protocols/devices/dfuhop-demo-*.json (pid.codes test VID 0x1209).
    public static func demo(for family: McuFamily) -> ApplicationIdentity {
        ApplicationIdentity(vendorID: 0x1209, productID: demoProductIDs[family.id] ?? 0x0003, product: "dfuhop demo (\(family.name))")
    }

    /// The USB product ids of the demo profiles in protocols/devices/ (other part lines share 0x0003).
    static let demoProductIDs: [String: UInt16] = ["g474": 0x0001, "f407": 0x0002]

    /// The image product id the demo firmware stamps: 0x0DF0 followed by the part number digits.
    public static func demoImageProductID(for family: McuFamily) -> UInt32 {
        0x0DF0_0000 | (UInt32(family.id.dropFirst(), radix: 16) ?? 0)
    }
}

/// What the application finds in its own flash at start-up (reference firmware, hid-app-protocol.md §6–7).
enum ApplicationStart {
    /// The image descriptor checks out, or the image has none: the application runs and answers.
    case answers(DescriptorStatus)
    /// The descriptor's CRC (or size) does not match the flash: the start-up check stops it (corrupted).
    case refuses
}

extension VirtualUnit {
    /// The application's own start-up check of its image.
    func applicationStartLocked() -> ApplicationStart {
        let memory = FlatMemory(base: family.flashBase, bytes: flash)
        let status = ImageDescriptor.inspect(memory, base: family.flashBase, source: "flash")
        // Only firmware that carries a descriptor runs the check; an image without one just runs.
        if case .invalid = status, let pointer = memory.word(at: family.flashBase + ImageDescriptor.pointerOffset),
            memory.word(at: pointer) == ImageDescriptor.magic
        {
            return .refuses
        }
        return .answers(status)
    }

    var hidInfo: HIDDeviceInfo {
        let usb = USBDeviceIdentity(
            vendorID: application.vendorID, productID: application.productID, bcdDevice: 0x0100,
            serialNumber: Hex.string(uid), manufacturer: "dfuhop",
            product: application.product, portPath: portPath)
        return HIDDeviceInfo(
            usb: usb, usagePage: application.usagePage, usage: application.usage, interfaceNumber: 0,
            path: "virtual:\(portPath):hid")
    }

    /// The running application's answer to one output report, by AppLink's device side (the same rules
    /// as the reference firmware's C handler), and whether it accepted ENTER_BOOTLOADER (the caller then
    /// waits the returned reset delay and resets the unit into the ROM).
    func answerLocked(_ report: [UInt8]) -> (reply: [UInt8]?, enterBootloader: Duration?) {
        let flash = self.flash
        let base = family.flashBase
        let device = AppLinkDevice(
            state: AppLinkDevice.State(
                flashAddress: base, flashSize: UInt32(flash.count), imageBase: base,
                uid: UniqueID(uid)!, deviceID: family.deviceID, revisionID: 0x1001,
                bootloaderBlocked: faults.applicationBusy == true),
            readFlash: { address, count in
                let offset = Int(address - base)
                return Array(flash[offset..<offset + count])
            },
            crc32: { CRC32.zlib($0) })
        switch device.handle(report) {
        case .ignore: return (nil, nil)
        case .reply(let bytes): return (reportedVersionLie(bytes, answering: report) ?? bytes, nil)
        case .replyThenEnterBootloader(let bytes): return (bytes, .milliseconds(Int(device.state.resetDelayMs)))
        }
    }
}

extension VirtualUnit {
    /// GET_INFO's answer with `FaultPlan.reportedVersion` in place of the descriptor's version, or nil.
    func reportedVersionLie(_ reply: [UInt8], answering report: [UInt8]) -> [UInt8]? {
        guard let version = faults.reportedVersion, case .request(let sequence, .getInfo) = AppRequest.decode(report: report),
            case .info(var info) = try? AppResponse.decode(reply, answering: .getInfo, sequence: sequence),
            info.image != nil
        else { return nil }
        info.image?.version = version
        return AppResponse.info(info).report(sequence: sequence, command: AppCommand.getInfo.rawValue)
    }
}

/// A handle on a virtual unit's application HID interface, valid for one enumeration. Reports the
/// application sent before a reset can still be read; after that, calls fail with `.disconnected`.
public final class VirtualHIDTransport: HIDTransport, @unchecked Sendable {
    public let unit: VirtualUnit
    public let info: HIDDeviceInfo
    let enumeration: Int
    private let lock = NSLock()
    private var inputReports: [[UInt8]] = []
    /// One interrupt transfer per full-speed frame (bInterval 1 ms).
    static let reportTime = Duration.milliseconds(1)

    /// Opens the application's HID interface; `.notFound` unless the application runs and answers.
    public init(unit: VirtualUnit) throws(TransportError) {
        let opened = unit.lock.withLock { () -> Int? in
            guard case .hid = unit.presenceLocked else { return nil }
            return unit.enumeration
        }
        guard let opened else {
            throw TransportError(.notFound, device: "virtual \(unit.family.id) at \(unit.portPath)", operation: "open HID interface")
        }
        self.unit = unit
        self.enumeration = opened
        self.info = unit.hidInfo
    }

    private func alive(_ operation: String) throws(TransportError) {
        let live = unit.lock.withLock { unit.enumeration == enumeration && unit.mode == .application }
        guard live else { throw TransportError(.disconnected, device: info.description, operation: operation) }
    }

    public func write(_ report: [UInt8]) async throws(TransportError) {
        let operation = "write report"
        try alive(operation)
        try await unit.clock.sleep(for: Self.reportTime, device: info.description, operation: operation)
        let answer = unit.lock.withLock { () -> ([UInt8]?, Duration?)? in
            guard unit.enumeration == enumeration, unit.mode == .application else { return nil }
            unit.log.append(LoggedRequest(kind: .hidReport(report.count > 3 ? report[3] : 0), enumeration: unit.enumeration))
            return unit.answerLocked(report)
        }
        guard let (reply, enterBootloader) = answer else {
            throw TransportError(.disconnected, device: info.description, operation: operation)
        }
        if let reply { lock.withLock { inputReports.append(reply) } }
        if let delay = enterBootloader {
            try await unit.clock.sleep(for: delay, device: info.description, operation: operation)
            unit.applicationRequestsBootloader()
        }
    }

    public func read(timeout: Duration) async throws(TransportError) -> [UInt8]? {
        if let report = lock.withLock({ inputReports.isEmpty ? nil : inputReports.removeFirst() }) { return report }
        try alive("read report")
        try await unit.clock.sleep(for: timeout, device: info.description, operation: "read report")
        try alive("read report")
        return nil
    }

    public func getFeatureReport(id: UInt8, length: Int) async throws(TransportError) -> [UInt8] {
        try alive("get feature report \(id)")
        throw TransportError(.stall, device: info.description, operation: "get feature report \(id)")
    }

    public func sendFeatureReport(_ report: [UInt8]) async throws(TransportError) {
        try alive("send feature report")
        throw TransportError(.stall, device: info.description, operation: "send feature report")
    }

    public func close() async {}
}

/// Builds a stamped application image like the demo firmware's, for virtual units that start
/// programmed: vector table (SP at the top of the first RAM region, Thumb reset handler), descriptor at
/// 0x40, then code-like filler up to `size`.
public enum DemoImage {
    public static func make(
        family: McuFamily, version: FirmwareVersion, size: Int = 24 * 1024,
        productID: UInt32? = nil
    ) throws(ImageError) -> NormalizedImage {
        let base = family.flashBase
        func le(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }
        let sp = UInt32(truncatingIfNeeded: family.ramRegions[0].end)
        var bytes = le(sp) + le(base + 0x101)
        for _ in 2..<8 { bytes += le(base + 0x181) }
        bytes += le(base + 0x40) // word 8: the descriptor
        for _ in 9..<16 { bytes += le(base + 0x181) }
        bytes += [UInt8](repeating: 0xFF, count: 64) // the reserved descriptor area
        var state: UInt32 = 0x1234_5678 ^ UInt32(version.major) << 16 ^ UInt32(version.minor) << 8 ^ UInt32(version.patch)
        while bytes.count < size {
            state = state &* 1_664_525 &+ 1_013_904_223
            bytes.append(UInt8(truncatingIfNeeded: state >> 24))
        }
        let image = FirmwareImage(format: .binary, segments: [Segment(address: base, bytes: bytes)])
        let stamped = try image.stamped(
            productID: productID ?? ApplicationIdentity.demoImageProductID(for: family),
            version: version, name: "dfuhop-demo-\(family.id)", file: "demo image")
        do { return try stamped.normalized(granularity: family.writeGranularity) } catch {
            throw ImageError(file: "demo image", "\(error)")
        }
    }
}
