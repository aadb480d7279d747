import HexFormat

/// The DFU file suffix (DFU 1.1 Appendix B) and ST's DfuSe container (UM0391).
///
/// Suffix, the last 16 bytes: bcdDevice, idProduct, idVendor, bcdDFU (u16 LE each), "UFD", bLength (16),
/// dwCRC: CRC-32 (reflected, initial 0xFFFFFFFF, no final XOR) of every byte before dwCRC.
/// DfuSe prefix (11 bytes): "DfuSe", bVersion 1, DFUImageSize (u32), bTargets. Each target: "Target",
/// bAlternateSetting, bTargetNamed (u32), szTargetName (255 bytes), dwTargetSize (u32), dwNbElements (u32),
/// then elements: dwElementAddress, dwElementSize (u32 each) and the data.
enum DfuFile {
    static let suffixLength = 16
    static let prefixLength = 11
    static let targetPrefixLength = 274
    static let elementHeaderLength = 8
    static let targetNameLength = 255
    static let bcdDfuSe: UInt16 = 0x011A
    static let bcdPlain: UInt16 = 0x0100

    struct Suffix {
        var identity: DfuSuffixIdentity
        var bcdDFU: UInt16
        /// bLength: bytes the suffix takes at the end of the file.
        var length: Int
    }

    /// Whether `bytes` end in a DFU suffix with a correct CRC (used to recognise files by content).
    static func hasValidSuffix(_ bytes: [UInt8]) -> Bool {
        guard bytes.count >= suffixLength else { return false }
        let reader = ByteReader(bytes: bytes, file: "")
        let end = bytes.count
        guard reader.matches(end - 8, "UFD"), Int(reader.u8(end - 5)) >= suffixLength, Int(reader.u8(end - 5)) <= end else { return false }
        return CRC32.dfu(bytes[0..<end - 4]) == reader.u32(end - 4)
    }

    /// Parses and checks the suffix: signature, length and CRC.
    static func readSuffix(_ reader: ByteReader) throws(ImageError) -> Suffix {
        let file = reader.file
        let end = reader.bytes.count
        guard end >= suffixLength else {
            throw ImageError(file: file, at: .byteOffset(0), "\(end) bytes is too short for a DFU suffix (16 bytes)")
        }
        guard reader.matches(end - 8, "UFD") else {
            throw ImageError(file: file, at: .byteOffset(end - 8), "no DFU suffix: the signature \"UFD\" is not 8 bytes before the end")
        }
        let length = Int(reader.u8(end - 5))
        guard length >= suffixLength, length <= end else {
            throw ImageError(
                file: file, at: .byteOffset(end - 5), "suffix length bLength is \(length), must be at least 16 and fit the file")
        }
        let stated = reader.u32(end - 4)
        let actual = CRC32.dfu(reader.bytes[0..<end - 4])
        guard stated == actual else {
            throw ImageError(
                file: file, at: .byteOffset(end - 4),
                "suffix CRC is 0x\(Hex.digits(stated, width: 8)), the file's bytes give 0x\(Hex.digits(actual, width: 8)); the file is corrupted"
            )
        }
        let identity = DfuSuffixIdentity(vendorID: reader.u16(end - 12), productID: reader.u16(end - 14), bcdDevice: reader.u16(end - 16))
        return Suffix(identity: identity, bcdDFU: reader.u16(end - 10), length: length)
    }

    /// A plain DFU file: the payload, then a suffix with bcdDFU 0x0100. The payload goes at `address`.
    static func readPlain(_ bytes: [UInt8], file: String, address: UInt32) throws(ImageError) -> FirmwareImage {
        let reader = ByteReader(bytes: bytes, file: file)
        let suffix = try readSuffix(reader)
        let end = bytes.count
        guard suffix.bcdDFU == bcdPlain else {
            throw ImageError(
                file: file, at: .byteOffset(end - 10),
                suffix.bcdDFU == bcdDfuSe
                    ? "bcdDFU is 0x011A (DfuSe) but the file has no \"DfuSe\" prefix"
                    : "bcdDFU is 0x\(Hex.digits(suffix.bcdDFU, width: 4)); a DFU suffix has 0x0100 (DFU 1.0/1.1) or 0x011A (DfuSe)")
        }
        let payload = Array(bytes[0..<end - suffix.length])
        guard UInt64(address) + UInt64(payload.count) <= 0x1_0000_0000 else {
            throw ImageError(file: file, "\(payload.count) bytes at 0x\(Hex.digits(address, width: 8)) run past the 4 GiB address space")
        }
        return FirmwareImage(
            format: .dfuSuffixed, targets: [ImageTarget(segments: payload.isEmpty ? [] : [Segment(address: address, bytes: payload)])],
            suffixIdentity: suffix.identity)
    }

    static func readDfuSe(_ bytes: [UInt8], file: String) throws(ImageError) -> FirmwareImage {
        let reader = ByteReader(bytes: bytes, file: file)
        try reader.require(0, prefixLength, "the DfuSe prefix")
        guard reader.matches(0, "DfuSe") else {
            throw ImageError(file: file, at: .byteOffset(0), "no \"DfuSe\" prefix")
        }
        let suffix = try readSuffix(reader)
        let total = bytes.count
        guard suffix.bcdDFU == bcdDfuSe else {
            throw ImageError(
                file: file, at: .byteOffset(total - 10),
                "bcdDFU is 0x\(Hex.digits(suffix.bcdDFU, width: 4)); a DfuSe file has 0x011A")
        }
        let contentEnd = total - suffix.length
        guard reader.u8(5) == 1 else {
            throw ImageError(.unsupported, file: file, at: .byteOffset(5), "DfuSe format version \(reader.u8(5)); only version 1 exists")
        }
        // Writers disagree on whether DFUImageSize counts the suffix (UM0391 is ambiguous): accept both.
        let imageSize = Int(reader.u32(6))
        guard imageSize == contentEnd || imageSize == total else {
            throw ImageError(
                file: file, at: .byteOffset(6),
                "DFUImageSize is \(imageSize), the file holds \(contentEnd) bytes before the suffix (\(total) with it); truncated or corrupted"
            )
        }
        let targetCount = Int(reader.u8(10))
        guard targetCount > 0 else {
            throw ImageError(file: file, at: .byteOffset(10), "bTargets is 0: the file holds no image")
        }
        var targets: [ImageTarget] = []
        var offset = prefixLength
        for targetIndex in 0..<targetCount {
            let targetStart = offset
            try requireContent(offset, targetPrefixLength, contentEnd, file, "target \(targetIndex)'s prefix")
            guard reader.matches(offset, "Target") else {
                throw ImageError(file: file, at: .byteOffset(offset), "target \(targetIndex) does not start with \"Target\"")
            }
            let alternate = reader.u8(offset + 6)
            let named = reader.u32(offset + 7) != 0
            let nameBytes = bytes[offset + 11..<offset + 11 + targetNameLength]
            let name = named ? String(decoding: nameBytes.prefix { $0 != 0 }, as: UTF8.self) : nil
            let targetSize = Int(reader.u32(offset + 266))
            let elementCount = Int(reader.u32(offset + 270))
            offset += targetPrefixLength
            var segments: [Segment] = []
            for elementIndex in 0..<elementCount {
                let what = "target \(targetIndex) element \(elementIndex)"
                try requireContent(
                    offset, elementHeaderLength, contentEnd, file, "\(what)'s header (the file declares \(elementCount) elements)")
                let address = reader.u32(offset)
                let size = Int(reader.u32(offset + 4))
                try requireContent(offset + elementHeaderLength, size, contentEnd, file, "\(what)'s data (dwElementSize \(size))")
                guard UInt64(address) + UInt64(size) <= 0x1_0000_0000 else {
                    throw ImageError(
                        file: file, at: .byteOffset(offset),
                        "\(what) at 0x\(Hex.digits(address, width: 8)) with \(size) bytes runs past the 4 GiB address space")
                }
                let dataStart = offset + elementHeaderLength
                if size > 0 { segments.append(Segment(address: address, bytes: Array(bytes[dataStart..<dataStart + size]))) }
                offset = dataStart + size
            }
            let elementsSize = offset - targetStart - targetPrefixLength
            guard targetSize == elementsSize else {
                throw ImageError(
                    file: file, at: .byteOffset(targetStart + 266),
                    "target \(targetIndex): dwTargetSize is \(targetSize), its \(elementCount) elements take \(elementsSize) bytes")
            }
            targets.append(ImageTarget(alternateSetting: alternate, name: name, segments: segments))
        }
        guard offset == contentEnd else {
            throw ImageError(
                file: file, at: .byteOffset(offset),
                "\(contentEnd - offset) bytes after the last target, before the suffix; the file is corrupted")
        }
        return FirmwareImage(format: .dfuse, targets: targets, suffixIdentity: suffix.identity)
    }

    private static func requireContent(
        _ offset: Int, _ count: Int, _ contentEnd: Int, _ file: String,
        _ what: @autoclosure () -> String
    ) throws(ImageError) {
        guard UInt64(offset) + UInt64(count) <= UInt64(contentEnd) else {
            throw ImageError(
                file: file, at: .byteOffset(offset),
                "\(what()) needs \(count) bytes here, only \(max(0, contentEnd - offset)) remain before the suffix; truncated or corrupted")
        }
    }

    /// Writes a DfuSe file: DFUImageSize counts prefix and targets, not the suffix (as ST's DfuSe tools
    /// and dfu-util's dfuse-pack write it); the CRC covers everything before dwCRC.
    static func writeDfuSe(
        _ targets: [ImageTarget], identity: DfuSuffixIdentity, file: String,
        to output: inout ChunkedOutput
    ) throws(ImageError) {
        guard !targets.isEmpty, targets.count <= 255 else {
            throw ImageError(.unsupported, file: file, "a DfuSe file holds 1 to 255 targets, this image has \(targets.count)")
        }
        var contentSize = UInt64(prefixLength)
        var targetSizes: [UInt64] = []
        for target in targets {
            let size = target.segments.reduce(UInt64(0)) { $0 + UInt64(elementHeaderLength) + UInt64($1.bytes.count) }
            targetSizes.append(size)
            contentSize += UInt64(targetPrefixLength) + size
        }
        guard contentSize + UInt64(suffixLength) <= UInt64(UInt32.max) else {
            throw ImageError(.unsupported, file: file, "the image is too large for a DfuSe file (sizes are 32-bit)")
        }
        output.startCRC()
        var header = [UInt8]()
        header.append(contentsOf: Array("DfuSe".utf8))
        header.append(1)
        header.appendLE(UInt32(contentSize))
        header.append(UInt8(targets.count))
        try output.write(header)
        for (target, size) in zip(targets, targetSizes) {
            header.removeAll(keepingCapacity: true)
            header.append(contentsOf: Array("Target".utf8))
            header.append(target.alternateSetting)
            let name = Array((target.name ?? "").utf8.prefix(targetNameLength - 1))
            header.appendLE(UInt32(name.isEmpty ? 0 : 1))
            header.append(contentsOf: name)
            header.append(contentsOf: repeatElement(0, count: targetNameLength - name.count))
            header.appendLE(UInt32(size))
            header.appendLE(UInt32(target.segments.count))
            try output.write(header)
            for segment in target.segments {
                header.removeAll(keepingCapacity: true)
                header.appendLE(segment.address)
                header.appendLE(UInt32(segment.bytes.count))
                try output.write(header)
                try output.write(segment.bytes)
            }
        }
        var suffix = [UInt8]()
        suffix.appendLE(identity.bcdDevice)
        suffix.appendLE(identity.productID)
        suffix.appendLE(identity.vendorID)
        suffix.appendLE(bcdDfuSe)
        suffix.append(contentsOf: Array("UFD".utf8))
        suffix.append(UInt8(suffixLength))
        try output.write(suffix)
        var crc = [UInt8]()
        crc.appendLE(output.runningCRC.dfuValue)
        try output.write(crc)
    }
}
