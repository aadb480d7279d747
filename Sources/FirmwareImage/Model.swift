import HexFormat

/// A run of bytes at an absolute address. The model is sparse: gaps between segments are never allocated.
public struct Segment: Sendable, Hashable, CustomStringConvertible {
    public var address: UInt32
    public var bytes: [UInt8]

    public init(address: UInt32, bytes: [UInt8]) {
        self.address = address
        self.bytes = bytes
    }

    /// One past the last byte; 64-bit so a segment ending at 4 GiB is representable.
    public var end: UInt64 { UInt64(address) + UInt64(bytes.count) }
    public var range: Swift.Range<UInt64> { UInt64(address)..<end }

    public var description: String {
        "[0x\(Hex.digits(address, width: 8)), 0x\(Hex.digits(min(end, 1 << 32), width: 8))) \(bytes.count) bytes"
    }
}

/// The file formats dfuhop reads and writes.
public enum ImageFormat: String, Sendable, Hashable, CaseIterable, Codable {
    case binary = "bin"
    case intelHex = "hex"
    case srec
    case elf
    case dfuse = "dfu"
    /// A raw image with a plain DFU 1.0 suffix (no DfuSe prefix).
    case dfuSuffixed = "dfu-suffix"

    public var displayName: String {
        switch self {
        case .binary: "raw binary"
        case .intelHex: "Intel HEX"
        case .srec: "Motorola S-record"
        case .elf: "ELF32 ARM"
        case .dfuse: "DfuSe (.dfu)"
        case .dfuSuffixed: "binary with DFU suffix"
        }
    }
}

/// One DfuSe target: the memory behind one alternate setting. Formats other than .dfu have one
/// target, alternate setting 0 (the internal flash).
public struct ImageTarget: Sendable, Hashable {
    public var alternateSetting: UInt8
    public var name: String?
    public var segments: [Segment]

    public init(alternateSetting: UInt8 = 0, name: String? = nil, segments: [Segment]) {
        self.alternateSetting = alternateSetting
        self.name = name
        self.segments = segments
    }
}

/// The USB identity a .dfu suffix names (UM0391 §"DFU suffix"); 0xFFFF means "any".
public struct DfuSuffixIdentity: Sendable, Hashable {
    public var vendorID: UInt16
    public var productID: UInt16
    public var bcdDevice: UInt16

    public init(vendorID: UInt16 = 0xFFFF, productID: UInt16 = 0xFFFF, bcdDevice: UInt16 = 0xFFFF) {
        self.vendorID = vendorID
        self.productID = productID
        self.bcdDevice = bcdDevice
    }
}

/// A firmware image as read from a file: targets of segments, as the file had them (unsorted,
/// possibly adjacent or overlapping until `normalized` checks them).
public struct FirmwareImage: Sendable, Hashable {
    public var format: ImageFormat
    public var targets: [ImageTarget]
    /// Start address from the file (HEX record 03/05, S7–S9, ELF e_entry), if it names one.
    public var entryPoint: UInt32?
    /// The USB identity of a .dfu suffix, if the file had one.
    public var suffixIdentity: DfuSuffixIdentity?

    public init(
        format: ImageFormat, targets: [ImageTarget], entryPoint: UInt32? = nil,
        suffixIdentity: DfuSuffixIdentity? = nil
    ) {
        self.format = format
        self.targets = targets
        self.entryPoint = entryPoint
        self.suffixIdentity = suffixIdentity
    }

    public init(format: ImageFormat, segments: [Segment], entryPoint: UInt32? = nil) {
        self.init(format: format, targets: [ImageTarget(segments: segments)], entryPoint: entryPoint)
    }

    /// The segments of the internal-flash target (alternate setting 0, or the first target).
    public var segments: [Segment] {
        (targets.first { $0.alternateSetting == 0 } ?? targets.first)?.segments ?? []
    }

    /// Bytes of payload, not counting gaps.
    public var payloadSize: Int { targets.reduce(0) { $0 + $1.segments.reduce(0) { $0 + $1.bytes.count } } }
}
