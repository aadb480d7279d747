import FirmwareImage
import USBTransport

/// A product's own HID protocol, described as data (a product profile's `legacyProtocol`), for products
/// that will never speak dfuhop's: which report asks for the version and unique ID, where they sit in
/// the reply, and which report sends the application into its bootloader.
/// Offsets count from the report id byte, as `HIDTransport` delivers reports.
public struct LegacyProtocol: Sendable, Hashable {
    public enum Reports: String, Sendable, Hashable, CaseIterable {
        /// Output reports out, input reports back.
        case interrupt
        /// SET_REPORT(Feature) out, GET_REPORT(Feature) back.
        case feature
    }

    /// What a reply must look like to count as the answer.
    public struct Reply: Sendable, Hashable {
        public var reportID: UInt8
        public var match: [ByteMatch]

        public init(reportID: UInt8, match: [ByteMatch] = []) {
            self.reportID = reportID
            self.match = match
        }

        func matches(_ report: [UInt8]) -> Bool {
            guard report.first == reportID else { return false }
            return match.allSatisfy { $0.matches(report) }
        }
    }

    /// `bytes` at `offset` of a reply.
    public struct ByteMatch: Sendable, Hashable {
        public var offset: Int
        public var bytes: [UInt8]

        public init(offset: Int, bytes: [UInt8]) {
            self.offset = offset
            self.bytes = bytes
        }

        func matches(_ report: [UInt8]) -> Bool {
            offset >= 0 && offset <= report.count - bytes.count && report[offset..<(offset + bytes.count)].elementsEqual(bytes)
        }
    }

    /// How a version is written in a reply.
    public enum VersionFormat: Sendable, Hashable {
        /// `count` (2–4) bytes, one per component: "u8.u8.u8".
        case bytes(count: Int)
        /// `count` (2–4) little-endian 16-bit components: "u16.u16".
        case littleEndian16(count: Int)
        /// One little-endian 16-bit BCD word, major in the high byte (0x0123 is 1.23): "bcd16".
        case bcd16
        /// Up to `length` ASCII bytes "A.B[.C[.D]]", NUL-padded: "ascii:N".
        case ascii(length: Int)

        /// Bytes the field occupies.
        public var width: Int {
            switch self {
            case .bytes(let count): count
            case .littleEndian16(let count): 2 * count
            case .bcd16: 2
            case .ascii(let length): length
            }
        }

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

    /// A version at `offset` of the reply.
    public struct VersionField: Sendable, Hashable {
        public var offset: Int
        public var format: VersionFormat

        public init(offset: Int, format: VersionFormat) {
            self.offset = offset
            self.format = format
        }
    }

    /// A little-endian unsigned integer of `width` (1, 2 or 4) bytes at `offset`.
    public struct IntegerField: Sendable, Hashable {
        public var offset: Int
        public var width: Int

        public init(offset: Int, width: Int) {
            self.offset = offset
            self.width = width
        }
    }

    /// The request that identifies the running firmware, and where the answer sits.
    public struct Identify: Sendable, Hashable {
        /// The report to send, report id first; padded with zeros to `reportLength`.
        public var request: [UInt8]
        public var reply: Reply
        public var version: VersionField
        /// Offset of the 12-byte unique ID, when the product reports it.
        public var uidOffset: Int?
        public var productID: IntegerField?

        public init(request: [UInt8], reply: Reply, version: VersionField, uidOffset: Int? = nil, productID: IntegerField? = nil) {
            self.request = request
            self.reply = reply
            self.version = version
            self.uidOffset = uidOffset
            self.productID = productID
        }
    }

    /// The request that sends the application into the ROM bootloader.
    public struct EnterBootloader: Sendable, Hashable {
        public var request: [UInt8]
        /// Nil when the product resets without answering.
        public var reply: Reply?

        public init(request: [UInt8], reply: Reply?) {
            self.request = request
            self.reply = reply
        }
    }

    public var reports: Reports
    /// Bytes of every report including the report id byte (65 for 64 data bytes and an id).
    public var reportLength: Int
    public var identify: Identify
    public var enterBootloader: EnterBootloader

    public init(reports: Reports, reportLength: Int, identify: Identify, enterBootloader: EnterBootloader) {
        self.reports = reports
        self.reportLength = reportLength
        self.identify = identify
        self.enterBootloader = enterBootloader
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
