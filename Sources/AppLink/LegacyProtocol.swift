import DeviceProfiles
import FirmwareImage
import USBTransport

// Running a profile's `legacyProtocol` (Sources/DeviceProfiles/LegacyProtocol.swift describes it).

extension LegacyProtocol.Reply {
    func matches(_ report: [UInt8]) -> Bool {
        guard report.first == reportID else { return false }
        return match.allSatisfy { $0.matches(report) }
    }
}

extension LegacyProtocol.ByteMatch {
    func matches(_ report: [UInt8]) -> Bool {
        offset >= 0 && offset <= report.count - bytes.count && report[offset..<(offset + bytes.count)].elementsEqual(bytes)
    }
}

extension LegacyProtocol.VersionFormat {
    /// The version the bytes spell, or nil.
    func parse(_ bytes: [UInt8]) -> FirmwareVersion? {
        var components: [UInt16]
        switch self {
        case .bytes:
            components = bytes.map(UInt16.init)
        case .littleEndian16(let count):
            components = (0..<count).map { readLE16(bytes, at: 2 * $0) }
        case .bcd16:
            guard let major = bcd(bytes[1]), let minor = bcd(bytes[0]) else { return nil }
            components = [major, minor]
        case .ascii:
            let text = bytes.prefix { $0 != 0 }
            guard text.allSatisfy({ $0 < 0x80 }) else { return nil }
            return FirmwareVersion(parsing: String(decoding: text, as: UTF8.self))
        }
        while components.count < 4 { components.append(0) }
        return FirmwareVersion(major: components[0], minor: components[1], patch: components[2], build: components[3])
    }

    private func bcd(_ byte: UInt8) -> UInt16? {
        guard byte >> 4 < 10, byte & 0x0F < 10 else { return nil }
        return UInt16(byte >> 4) * 10 + UInt16(byte & 0x0F)
    }
}

/// What a legacy product says about itself.
public struct LegacyIdentity: Sendable, Hashable {
    public var version: FirmwareVersion
    public var uid: UniqueID?
    public var productID: UInt32?
    /// The whole reply, for the log.
    public var report: [UInt8]
}

extension LegacyProtocol.Identify {
    /// Reads the fields out of a reply that matched; fields outside the reply are the profile's error.
    public func parse(_ report: [UInt8]) throws(AppLinkError) -> LegacyIdentity {
        func slice(_ name: String, _ offset: Int, _ width: Int) throws(AppLinkError) -> [UInt8] {
            guard offset >= 0, width >= 0, width <= report.count, offset <= report.count - width else {
                throw .malformed(
                    .fieldOutsideReply(
                        name: name, end: offset.addingReportingOverflow(width).partialValue,
                        length: report.count), report: report)
            }
            return Array(report[offset..<(offset + width)])
        }
        let versionBytes = try slice("version", version.offset, version.format.width)
        guard let parsed = version.format.parse(versionBytes) else {
            throw .malformed(
                .badField(name: "version", value: readLE(versionBytes, at: 0, width: min(versionBytes.count, 8))),
                report: report)
        }
        var identity = LegacyIdentity(version: parsed, uid: nil, productID: nil, report: report)
        if let uidOffset {
            identity.uid = UniqueID(try slice("unique ID", uidOffset, UniqueID.byteCount))
        }
        if let productID {
            guard [1, 2, 4].contains(productID.width) else {
                throw .malformed(.badField(name: "product id width", value: UInt64(max(productID.width, 0))), report: report)
            }
            let bytes = try slice("product id", productID.offset, productID.width)
            identity.productID = UInt32(readLE(bytes, at: 0, width: productID.width))
        }
        return identity
    }
}
