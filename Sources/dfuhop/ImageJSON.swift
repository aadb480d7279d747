import DeviceProfiles
import FirmwareImage
import HexFormat

extension ImageInfoJSON {
    /// `image info --json`: what `printInfo` shows, as the contract's types (docs/json.md).
    init(file: String, image: FirmwareImage, normalized: NormalizedImage, report: ImageReport, digests: Digests, family: McuFamily?) {
        self.file = file
        format = image.format.rawValue
        self.family = family?.id
        segments = [] // streamed by `image info` (SegmentJSON.line)
        payloadSize = normalized.payloadSize
        span = normalized.baseAddress.map { Int(normalized.end - UInt64($0)) } ?? 0
        crc32 = Hex.word(digests.crc32)
        sha256 = digests.sha256
        startAddress = image.entryPoint.map(Hex.word)
        dfuSuffix = image.suffixIdentity.map {
            SuffixJSON(
                vendorID: "0x" + Hex.digits($0.vendorID, width: 4), productID: "0x" + Hex.digits($0.productID, width: 4),
                bcdDevice: "0x" + Hex.digits($0.bcdDevice, width: 4))
        }
        targets = image.targets.map {
            TargetJSON(altSetting: Int($0.alternateSetting), size: $0.segments.reduce(0) { $0 + $1.bytes.count }, name: $0.name)
        }
        vectorTable = report.vectorTable.map {
            VectorTableJSON(
                address: Hex.word($0.address), initialStackPointer: Hex.word($0.initialStackPointer),
                resetHandler: Hex.word($0.resetHandler))
        }
        descriptor = report.descriptor.map(DescriptorJSON.init)
        findings = report.findings.map {
            FindingJSON(severity: $0.severity.rawValue, message: $0.message, address: $0.address.map(Hex.word))
        }
        errors = report.errors.count
        warnings = report.warnings.count
    }
}

extension ImageInfoJSON.SegmentJSON {
    /// One segment as the encoder writes it (sorted keys; hex strings need no escaping), made one at a time.
    @Sendable static func line(_ segment: Segment) -> String {
        "{\"end\":\"\(Hex.word(UInt32(segment.end - 1)))\",\"size\":\(segment.bytes.count),\"start\":\"\(Hex.word(segment.address))\"}"
    }
}

extension ImageInfoJSON.DescriptorJSON {
    init(_ check: DescriptorStatus) {
        switch check {
        case .valid(let descriptor, let address), .unstamped(let descriptor, let address):
            self.init(
                state: descriptor.isUnstamped ? "unstamped" : "valid", address: Hex.word(address),
                productID: Hex.word(descriptor.productID),
                version: descriptor.version.description, name: descriptor.name, imageSize: Int(descriptor.imageSize),
                crc32: Hex.word(descriptor.crc))
        case .reserved(let address): self.init(state: "reserved", address: Hex.word(address))
        case .absent: self.init(state: "absent")
        case .invalid(let error): self.init(state: "invalid", problem: error.problem)
        }
    }
}

extension FlashWordJSON {
    init(_ padding: FlashWordPadding, from: String) {
        self.init(
            size: padding.rule.wordSize, part: padding.rule.partName, from: from, paddedBytes: padding.paddedBytes,
            segmentsBefore: padding.segmentsBefore, elementsAfter: padding.segmentsAfter, warnings: padding.warnings)
    }
}
