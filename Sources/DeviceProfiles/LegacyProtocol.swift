/// A product's own HID protocol, described as data (a product profile's `legacyProtocol`), for products
/// that will never speak dfuhop's: which report asks for the version and unique ID, where they sit in
/// the reply, and which report sends the application into its bootloader.
/// Offsets count from the report id byte, as `HIDTransport` delivers reports.
/// Data only: AppLink's `LegacyClient` runs it (so profiles do not depend on a protocol client).
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
    }

    /// `bytes` at `offset` of a reply.
    public struct ByteMatch: Sendable, Hashable {
        public var offset: Int
        public var bytes: [UInt8]

        public init(offset: Int, bytes: [UInt8]) {
            self.offset = offset
            self.bytes = bytes
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
