import FirmwareImage

/// The device side of protocol 1.0 in Swift, rule for rule what protocols/reference-firmware's C
/// handler does (§3.3, §5, §6): the virtual device answers with it, and the tests run it against the
/// same fixture vectors as the C code. Flash and CRC-32 come from the caller (the virtual device's
/// flash model and FirmwareImage's CRC32), so this module stays free of both.
public struct AppLinkDevice: Sendable {
    /// What the device knows about itself.
    public struct State: Sendable, Hashable {
        public var flashAddress: UInt32
        public var flashSize: UInt32
        /// The running image's vector table (VTOR).
        public var imageBase: UInt32
        public var uid: UniqueID
        public var deviceID: UInt16
        public var revisionID: UInt16
        public var resetDelayMs: UInt16
        /// ENTER_BOOTLOADER answers BUSY while set.
        public var bootloaderBlocked: Bool

        public init(
            flashAddress: UInt32, flashSize: UInt32, imageBase: UInt32, uid: UniqueID, deviceID: UInt16,
            revisionID: UInt16, resetDelayMs: UInt16 = 50, bootloaderBlocked: Bool = false
        ) {
            self.flashAddress = flashAddress
            self.flashSize = flashSize
            self.imageBase = imageBase
            self.uid = uid
            self.deviceID = deviceID
            self.revisionID = revisionID
            self.resetDelayMs = resetDelayMs
            self.bootloaderBlocked = bootloaderBlocked
        }
    }

    public enum Outcome: Sendable, Hashable {
        /// Not a request of this protocol: send nothing.
        case ignore
        case reply([UInt8])
        /// Send the reply; once it has left, wait the reset delay, set the backup-register magic, reset (§7).
        case replyThenEnterBootloader([UInt8])
    }

    public var state: State
    /// `count` bytes of flash at `address`; only called for ranges inside the state's flash.
    public var readFlash: @Sendable (_ address: UInt32, _ count: Int) -> [UInt8]
    /// CRC-32 as zlib computes it.
    public var crc32: @Sendable ([UInt8]) -> UInt32

    public init(state: State, readFlash: @escaping @Sendable (UInt32, Int) -> [UInt8], crc32: @escaping @Sendable ([UInt8]) -> UInt32) {
        self.state = state
        self.readFlash = readFlash
        self.crc32 = crc32
    }

    public static let capabilities: AppCapabilities = [.descriptorRead, .sectorCRCs, .imageCheck]

    /// The answer to one output report.
    public func handle(_ report: [UInt8]) -> Outcome {
        switch AppRequest.decode(report: report) {
        case .ignore:
            return .ignore
        case .reject(let sequence, let command, let status):
            return .reply(AppResponse.refused(status).report(sequence: sequence, command: command))
        case .request(let sequence, let request):
            let response = answer(request)
            let bytes = response.report(sequence: sequence, command: request.command.rawValue)
            if case .bootloaderAck = response { return .replyThenEnterBootloader(bytes) }
            return .reply(bytes)
        }
    }

    func answer(_ request: AppRequest) -> AppResponse {
        switch request {
        case .getInfo:
            let found = findDescriptor()
            let image = found.bytes.map { bytes in
                RunningImage(
                    productID: readLE32(bytes, at: 8),
                    version: FirmwareVersion(
                        major: readLE16(bytes, at: 12), minor: readLE16(bytes, at: 14), patch: readLE16(bytes, at: 16),
                        build: readLE16(bytes, at: 18)),
                    imageSize: readLE32(bytes, at: 20), imageCRC: readLE32(bytes, at: 24), flags: readLE32(bytes, at: 28))
            }
            return .info(
                DeviceInfo(
                    capabilities: Self.capabilities, deviceID: state.deviceID, revisionID: state.revisionID,
                    uid: state.uid, imageBase: state.imageBase, flashSizeKiB: UInt16(truncatingIfNeeded: state.flashSize / 1024),
                    descriptorState: found.state, image: image))
        case .getDescriptor(let offset, let length):
            guard let descriptor = findDescriptor().bytes else { return .refused(.noDescriptor) }
            return .descriptorBytes(Array(descriptor[Int(offset)..<(Int(offset) + Int(length))]))
        case .getSectorCRCs(let query):
            guard inFlash(UInt64(query.address), UInt64(query.size) * UInt64(query.count)) else { return .refused(.badAddress) }
            let crcs = (0..<UInt32(query.count)).map { index in
                crc32(readFlash(query.address + index * query.size, Int(query.size)))
            }
            return .sectorCRCs(SectorCRCs(query: query, crcs: crcs))
        case .checkImage:
            return checkImage()
        case .enterBootloader(let sent):
            if sent.uid != state.uid { return .refused(.wrongUnit) }
            if state.bootloaderBlocked { return .refused(.busy) }
            return .bootloaderAck(BootloaderAck(nonce: sent.nonce, resetDelayMs: min(state.resetDelayMs, AppLinkProtocol.maxResetDelayMs)))
        }
    }

    private func inFlash(_ address: UInt64, _ length: UInt64) -> Bool {
        address >= state.flashAddress && address + length <= UInt64(state.flashAddress) + UInt64(state.flashSize)
    }

    private struct FoundDescriptor {
        var state: DescriptorState
        /// The 64 bytes, when `state` is valid.
        var bytes: [UInt8]?
        var address: UInt32
    }

    /// Word 8 of the vector table → a 4-byte aligned, 64-byte descriptor in flash (§6).
    private func findDescriptor() -> FoundDescriptor {
        let absent = FoundDescriptor(state: .absent, bytes: nil, address: 0)
        let pointer = UInt64(state.imageBase) + 0x20
        guard inFlash(pointer, 4) else { return absent }
        let address = readLE32(readFlash(UInt32(pointer), 4), at: 0)
        let length = AppLinkProtocol.descriptorLength
        guard address % 4 == 0, inFlash(UInt64(address), UInt64(length)) else { return absent }
        let bytes = readFlash(address, length)
        guard readLE32(bytes, at: 0) == ImageDescriptorLayout.magic else { return absent }
        guard readLE16(bytes, at: 4) == ImageDescriptorLayout.format, Int(readLE16(bytes, at: 6)) == length else {
            return FoundDescriptor(state: .unsupported, bytes: nil, address: address)
        }
        return FoundDescriptor(state: .valid, bytes: bytes, address: address)
    }

    private func checkImage() -> AppResponse {
        let found = findDescriptor()
        guard let descriptor = found.bytes else { return .refused(.noDescriptor) }
        let imageSize = readLE32(descriptor, at: 20)
        let stored = readLE32(descriptor, at: 24)
        guard inFlash(UInt64(state.imageBase), UInt64(imageSize)) else {
            return .imageCheck(ImageCheck(result: .outOfRange, storedCRC: stored, computedCRC: 0, imageSize: imageSize))
        }
        var image = readFlash(state.imageBase, Int(imageSize))
        // The CRC covers the image with the descriptor's own CRC field read as zero (§6).
        let field = Int64(found.address) + 24 - Int64(state.imageBase)
        if field >= 0, field + 4 <= Int64(imageSize) {
            for index in Int(field)..<Int(field + 4) { image[index] = 0 }
        }
        let computed = crc32(image)
        return .imageCheck(
            ImageCheck(
                result: computed == stored ? .intact : .mismatch, storedCRC: stored, computedCRC: computed,
                imageSize: imageSize))
    }
}

/// The image descriptor's fixed fields (§6).
public enum ImageDescriptorLayout {
    /// "DFHP" as a little-endian word.
    public static let magic: UInt32 = 0x5048_4644
    public static let format: UInt16 = 1
}
