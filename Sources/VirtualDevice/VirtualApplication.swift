import Foundation
import USBTransport
import DeviceProfiles
import FirmwareImage
import AppLink

/// How the product's application shows itself on USB (a product profile's `application` section).
public struct ApplicationIdentity: Sendable, Hashable {
    public var vendorID: UInt16
    public var productID: UInt16
    public var usagePage: UInt16
    public var usage: UInt16
    public var product: String

    public init(vendorID: UInt16, productID: UInt16, usagePage: UInt16 = AppLinkProtocol.usagePage,
                usage: UInt16 = AppLinkProtocol.usage, product: String) {
        self.vendorID = vendorID
        self.productID = productID
        self.usagePage = usagePage
        self.usage = usage
        self.product = product
    }

    /// The demo products of protocols/devices/dfuhop-demo-*.json (pid.codes test VID 0x1209).
    public static func demo(for family: McuFamily) -> ApplicationIdentity {
        let productID: UInt16 = switch family.id {
        case "g474": 0x0001
        case "f407": 0x0002
        default: 0x0003
        }
        return ApplicationIdentity(vendorID: 0x1209, productID: productID, product: "dfuhop demo (\(family.name))")
    }

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
           memory.word(at: pointer) == ImageDescriptor.magic {
            return .refuses
        }
        return .answers(status)
    }

    var hidInfo: HIDDeviceInfo {
        let usb = USBDeviceIdentity(vendorID: application.vendorID, productID: application.productID, bcdDevice: 0x0100,
                                    serialNumber: uid.map { hex($0, 2) }.joined(), manufacturer: "dfuhop",
                                    product: application.product, portPath: portPath)
        return HIDDeviceInfo(usb: usb, usagePage: application.usagePage, usage: application.usage, interfaceNumber: 0,
                             path: "virtual:\(portPath):hid")
    }

    /// The answer of the running application to one request (hid-app-protocol.md §5), and whether the
    /// request was ENTER_BOOTLOADER accepted (the caller then resets the unit into the ROM).
    func answerLocked(_ report: [UInt8]) -> (reply: [UInt8]?, enterBootloader: Duration?) {
        switch AppRequest.decode(report: report) {
        case .ignore:
            return (nil, nil)
        case .reject(let sequence, let command, let status):
            return (ResponseFrame(sequence: sequence, command: command, status: status).report, nil)
        case .request(let sequence, let request):
            let command = request.command.rawValue
            let (response, reset) = respondLocked(request)
            return (response.report(sequence: sequence, command: command), reset)
        }
    }

    private func respondLocked(_ request: AppRequest) -> (AppResponse, Duration?) {
        let memory = FlatMemory(base: family.flashBase, bytes: flash)
        let status = ImageDescriptor.inspect(memory, base: family.flashBase, source: "flash")
        switch request {
        case .getInfo:
            let image = status.descriptor.map {
                RunningImage(productID: $0.productID,
                             version: FirmwareVersion($0.version.major, $0.version.minor, $0.version.patch, $0.version.build),
                             imageSize: $0.imageSize, imageCRC: $0.crc, flags: $0.flags)
            }
            let state: DescriptorState = status.descriptor == nil ? .absent : .valid
            let info = DeviceInfo(capabilities: [.descriptorRead, .sectorCRCs, .imageCheck], deviceID: family.deviceID,
                                  revisionID: 0x1001, uid: UniqueID(uid)!, imageBase: family.flashBase,
                                  flashSizeKiB: UInt16(flash.count / 1024), descriptorState: state, image: image)
            return (.info(info), nil)
        case .getDescriptor(let offset, let length):
            guard let address = status.address, let bytes = memory.read(address, count: ImageDescriptor.size),
                  status.descriptor != nil else { return (.refused(.noDescriptor), nil) }
            guard Int(offset) + Int(length) <= bytes.count else { return (.refused(.badArgument), nil) }
            return (.descriptorBytes(Array(bytes[Int(offset)..<Int(offset) + Int(length)])), nil)
        case .getSectorCRCs(let query):
            var crcs: [UInt32] = []
            for index in 0..<Int(query.count) {
                let start = UInt64(query.address) + UInt64(index) * UInt64(query.size)
                guard start + UInt64(query.size) <= UInt64(family.flashBase) + UInt64(flash.count), start >= family.flashBase,
                      let bytes = memory.read(UInt32(start), count: Int(query.size)) else {
                    return (.refused(.badAddress), nil)
                }
                crcs.append(CRC32.zlib(bytes))
            }
            return (.sectorCRCs(SectorCRCs(query: query, crcs: crcs)), nil)
        case .checkImage:
            guard let descriptor = status.descriptor, let address = status.address else { return (.refused(.noDescriptor), nil) }
            guard let computed = ImageDescriptor.crc32(of: memory, base: family.flashBase, size: descriptor.imageSize,
                                                       crcField: address + 0x18) else {
                return (.imageCheck(ImageCheck(result: .outOfRange, storedCRC: descriptor.crc, computedCRC: 0,
                                               imageSize: descriptor.imageSize)), nil)
            }
            return (.imageCheck(ImageCheck(result: computed == descriptor.crc ? .intact : .mismatch, storedCRC: descriptor.crc,
                                           computedCRC: computed, imageSize: descriptor.imageSize)), nil)
        case .enterBootloader(let sent):
            guard sent.magic == AppLinkProtocol.bootloaderMagic else { return (.refused(.badMagic), nil) }
            guard sent.uid.bytes == uid else { return (.refused(.wrongUnit), nil) }
            let delay: UInt16 = 50
            return (.bootloaderAck(BootloaderAck(nonce: sent.nonce, resetDelayMs: delay)), .milliseconds(Int(delay)))
        }
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
    public init(unit: VirtualUnit) throws {
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

    private func alive(_ operation: String) throws {
        let live = unit.lock.withLock { unit.enumeration == enumeration && unit.mode == .application }
        guard live else { throw TransportError(.disconnected, device: info.description, operation: operation) }
    }

    public func write(_ report: [UInt8]) async throws {
        try alive("write report")
        try await unit.clock.sleep(for: Self.reportTime)
        let (reply, enterBootloader) = try unit.lock.withLock { () throws -> ([UInt8]?, Duration?) in
            guard unit.enumeration == enumeration, unit.mode == .application else {
                throw TransportError(.disconnected, device: info.description, operation: "write report")
            }
            unit.log.append(LoggedRequest(kind: .hidReport(report.count > 3 ? report[3] : 0), enumeration: unit.enumeration))
            return unit.answerLocked(report)
        }
        if let reply { lock.withLock { inputReports.append(reply) } }
        if let delay = enterBootloader {
            try await unit.clock.sleep(for: delay)
            unit.applicationRequestsBootloader()
        }
    }

    public func read(timeout: Duration) async throws -> [UInt8]? {
        if let report = lock.withLock({ inputReports.isEmpty ? nil : inputReports.removeFirst() }) { return report }
        try alive("read report")
        try await unit.clock.sleep(for: timeout)
        try alive("read report")
        return nil
    }

    public func getFeatureReport(id: UInt8, length: Int) async throws -> [UInt8] {
        try alive("get feature report \(id)")
        throw TransportError(.stall, device: info.description, operation: "get feature report \(id)")
    }

    public func sendFeatureReport(_ report: [UInt8]) async throws {
        try alive("send feature report")
        throw TransportError(.stall, device: info.description, operation: "send feature report")
    }

    public func close() async {}
}

/// Builds a stamped application image like the demo firmware's, for virtual units that start
/// programmed: vector table (SP at the top of the first RAM region, Thumb reset handler), descriptor at
/// 0x40, then code-like filler up to `size`.
public enum DemoImage {
    public static func make(family: McuFamily, version: ImageVersion, size: Int = 24 * 1024,
                            productID: UInt32? = nil) throws(ImageError) -> NormalizedImage {
        let base = family.flashBase
        func le(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }
        let sp = UInt32(truncatingIfNeeded: family.ramRegions[0].end)
        var bytes = le(sp) + le(base + 0x101)
        for _ in 2..<8 { bytes += le(base + 0x181) }
        bytes += le(base + 0x40)  // word 8: the descriptor
        for _ in 9..<16 { bytes += le(base + 0x181) }
        bytes += [UInt8](repeating: 0xFF, count: 64)  // the reserved descriptor area
        var state: UInt32 = 0x1234_5678 ^ UInt32(version.major) << 16 ^ UInt32(version.minor) << 8 ^ UInt32(version.patch)
        while bytes.count < size {
            state = state &* 1_664_525 &+ 1_013_904_223
            bytes.append(UInt8(truncatingIfNeeded: state >> 24))
        }
        let image = FirmwareImage(format: .binary, segments: [Segment(address: base, bytes: bytes)])
        let stamped = try image.stamped(productID: productID ?? ApplicationIdentity.demoImageProductID(for: family),
                                        version: version, name: "dfuhop-demo-\(family.id)", file: "demo image")
        do { return try stamped.normalized(granularity: family.writeGranularity) } catch {
            throw ImageError(file: "demo image", "\(error)")
        }
    }
}
