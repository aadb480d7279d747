import FirmwareImage

/// The image descriptor's identity of the running firmware, as GET_INFO reports it (§5.1, §6).
public struct RunningImage: Sendable, Hashable {
    public var productID: UInt32
    public var version: FirmwareVersion
    /// Bytes from the vector table the descriptor's CRC covers.
    public var imageSize: UInt32
    /// The descriptor's CRC-32 (zlib) of the image, computed with its own four bytes as zero.
    public var imageCRC: UInt32
    public var flags: UInt32

    public init(productID: UInt32, version: FirmwareVersion, imageSize: UInt32, imageCRC: UInt32, flags: UInt32) {
        self.productID = productID
        self.version = version
        self.imageSize = imageSize
        self.imageCRC = imageCRC
        self.flags = flags
    }
}

/// GET_INFO's answer (§5.1): who the device is, which unit, and which firmware runs.
public struct DeviceInfo: Sendable, Hashable {
    public static let payloadLength = 52

    public var protocolMinor: UInt8
    public var capabilities: AppCapabilities
    /// DBGMCU_IDCODE DEV_ID (e.g. 0x469 for G474) and REV_ID.
    public var deviceID: UInt16
    public var revisionID: UInt16
    public var uid: UniqueID
    /// Where the running image's vector table is.
    public var imageBase: UInt32
    /// The flash size register (F_SIZE), in KiB.
    public var flashSizeKiB: UInt16
    public var descriptorState: DescriptorState
    /// Present when `descriptorState` is `.valid`.
    public var image: RunningImage?

    public init(
        protocolMinor: UInt8 = AppLinkProtocol.minorVersion, capabilities: AppCapabilities, deviceID: UInt16,
        revisionID: UInt16, uid: UniqueID, imageBase: UInt32, flashSizeKiB: UInt16,
        descriptorState: DescriptorState, image: RunningImage?
    ) {
        self.protocolMinor = protocolMinor
        self.capabilities = capabilities
        self.deviceID = deviceID
        self.revisionID = revisionID
        self.uid = uid
        self.imageBase = imageBase
        self.flashSizeKiB = flashSizeKiB
        self.descriptorState = descriptorState
        self.image = descriptorState == .valid ? image : nil
    }

    var payload: [UInt8] {
        var bytes: [UInt8] = [AppLinkProtocol.majorVersion, protocolMinor]
        bytes.appendLE16(capabilities.rawValue)
        bytes.appendLE16(deviceID)
        bytes.appendLE16(revisionID)
        bytes += uid.bytes
        bytes.appendLE32(imageBase)
        bytes.appendLE16(flashSizeKiB)
        bytes += [descriptorState.rawValue, 0]
        let image =
            image ?? RunningImage(productID: 0, version: FirmwareVersion(major: 0, minor: 0, patch: 0), imageSize: 0, imageCRC: 0, flags: 0)
        bytes.appendLE32(image.productID)
        for component in image.version.components { bytes.appendLE16(component) }
        bytes.appendLE32(image.imageSize)
        bytes.appendLE32(image.imageCRC)
        bytes.appendLE32(image.flags)
        return bytes
    }

    init(payload: [UInt8], report: [UInt8]) throws(AppLinkError) {
        try requireLength(payload, Self.payloadLength, report: report)
        guard payload[0] == AppLinkProtocol.majorVersion else {
            throw .malformed(.badField(name: "protocol major version", value: UInt64(payload[0])), report: report)
        }
        guard let state = DescriptorState(rawValue: payload[26]) else {
            throw .malformed(.badField(name: "descriptor state", value: UInt64(payload[26])), report: report)
        }
        // 12 bytes by the length check above.
        guard let uid = UniqueID(payload[8..<20]) else { throw .malformed(.shortPayload(expected: 20, got: payload.count), report: report) }
        let image = RunningImage(
            productID: readLE32(payload, at: 28),
            version: FirmwareVersion(
                major: readLE16(payload, at: 32), minor: readLE16(payload, at: 34), patch: readLE16(payload, at: 36),
                build: readLE16(payload, at: 38)),
            imageSize: readLE32(payload, at: 40), imageCRC: readLE32(payload, at: 44), flags: readLE32(payload, at: 48))
        self.init(
            protocolMinor: payload[1], capabilities: AppCapabilities(rawValue: readLE16(payload, at: 2)),
            deviceID: readLE16(payload, at: 4), revisionID: readLE16(payload, at: 6), uid: uid,
            imageBase: readLE32(payload, at: 20), flashSizeKiB: readLE16(payload, at: 24),
            descriptorState: state, image: image)
    }
}

/// GET_SECTOR_CRCS's answer (§5.3): the query echoed and one CRC-32 (zlib) per range.
public struct SectorCRCs: Sendable, Hashable {
    public var query: SectorQuery
    public var crcs: [UInt32]

    public init(query: SectorQuery, crcs: [UInt32]) {
        self.query = query
        self.crcs = crcs
    }

    var payload: [UInt8] {
        var bytes: [UInt8] = []
        bytes.appendLE32(query.address)
        bytes.appendLE32(query.size)
        bytes.append(query.count)
        for crc in crcs { bytes.appendLE32(crc) }
        return bytes
    }

    init(payload: [UInt8], answering sent: SectorQuery, report: [UInt8]) throws(AppLinkError) {
        try requireLength(payload, 9, report: report)
        let echoed = SectorQuery(address: readLE32(payload, at: 0), size: readLE32(payload, at: 4), count: payload[8])
        for (field, mine, theirs) in [
            ("address", sent.address, echoed.address), ("range size", sent.size, echoed.size),
            ("range count", UInt32(sent.count), UInt32(echoed.count))
        ] where mine != theirs {
            throw .malformed(.echoMismatch(field: field, sent: UInt64(mine), got: UInt64(theirs)), report: report)
        }
        try requireLength(payload, 9 + 4 * Int(echoed.count), report: report)
        self.init(query: echoed, crcs: (0..<Int(echoed.count)).map { readLE32(payload, at: 9 + 4 * $0) })
    }
}

/// CHECK_IMAGE's verdict (§5.4).
public enum ImageCheckResult: UInt8, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// The CRC the device computed over its image equals the descriptor's.
    case intact = 0
    case mismatch = 1
    /// The descriptor's image size runs past the end of flash; nothing was computed.
    case outOfRange = 2

    public var description: String {
        switch self {
        case .intact: "intact"
        case .mismatch: "mismatch"
        case .outOfRange: "out-of-range"
        }
    }
}

/// CHECK_IMAGE's answer (§5.4): the running image checked against its own descriptor.
public struct ImageCheck: Sendable, Hashable {
    public static let payloadLength = 16

    public var result: ImageCheckResult
    public var storedCRC: UInt32
    /// Zero when `result` is `.outOfRange`.
    public var computedCRC: UInt32
    public var imageSize: UInt32

    public init(result: ImageCheckResult, storedCRC: UInt32, computedCRC: UInt32, imageSize: UInt32) {
        self.result = result
        self.storedCRC = storedCRC
        self.computedCRC = computedCRC
        self.imageSize = imageSize
    }

    var payload: [UInt8] {
        var bytes: [UInt8] = [result.rawValue, 0, 0, 0]
        bytes.appendLE32(storedCRC)
        bytes.appendLE32(computedCRC)
        bytes.appendLE32(imageSize)
        return bytes
    }

    init(payload: [UInt8], report: [UInt8]) throws(AppLinkError) {
        try requireLength(payload, Self.payloadLength, report: report)
        guard let result = ImageCheckResult(rawValue: payload[0]) else {
            throw .malformed(.badField(name: "check result", value: UInt64(payload[0])), report: report)
        }
        self.init(
            result: result, storedCRC: readLE32(payload, at: 4), computedCRC: readLE32(payload, at: 8),
            imageSize: readLE32(payload, at: 12))
        // A verdict that contradicts its own CRCs is not to be trusted either way.
        let equal = storedCRC == computedCRC
        if (result == .intact && !equal) || (result == .mismatch && equal) {
            throw .malformed(.badField(name: "check result", value: UInt64(result.rawValue)), report: report)
        }
    }
}

/// ENTER_BOOTLOADER's answer (§5.5): the nonce echoed, and how long until the device resets.
public struct BootloaderAck: Sendable, Hashable {
    public static let payloadLength = 6

    public var nonce: UInt32
    public var resetDelayMs: UInt16

    public init(nonce: UInt32, resetDelayMs: UInt16) {
        self.nonce = nonce
        self.resetDelayMs = resetDelayMs
    }

    public var resetDelay: Duration { .milliseconds(Int(resetDelayMs)) }

    var payload: [UInt8] {
        var bytes: [UInt8] = []
        bytes.appendLE32(nonce)
        bytes.appendLE16(resetDelayMs)
        return bytes
    }

    init(payload: [UInt8], answering sent: BootloaderRequest, report: [UInt8]) throws(AppLinkError) {
        try requireLength(payload, Self.payloadLength, report: report)
        self.init(nonce: readLE32(payload, at: 0), resetDelayMs: readLE16(payload, at: 4))
        guard nonce == sent.nonce else {
            throw .malformed(.echoMismatch(field: "nonce", sent: UInt64(sent.nonce), got: UInt64(nonce)), report: report)
        }
        guard resetDelayMs <= AppLinkProtocol.maxResetDelayMs else {
            throw .malformed(.badField(name: "reset delay (ms)", value: UInt64(resetDelayMs)), report: report)
        }
    }
}

/// A response report's header and payload (§3.2), before the payload is given a meaning.
public struct ResponseFrame: Sendable, Hashable {
    public var sequence: UInt8
    public var command: UInt8
    public var status: AppStatus
    public var payload: [UInt8]

    public init(sequence: UInt8, command: UInt8, status: AppStatus, payload: [UInt8] = []) {
        precondition(payload.count <= AppLinkProtocol.maxResponsePayload, "a response payload has at most 58 bytes")
        self.sequence = sequence
        self.command = command
        self.status = status
        self.payload = payload
    }

    /// The input report, 64 bytes with the report id first.
    public var report: [UInt8] {
        var report: [UInt8] = [
            AppLinkProtocol.responseReportID, AppLinkProtocol.majorVersion, sequence, command, status.rawValue, UInt8(payload.count)
        ]
        report += payload
        report += [UInt8](repeating: 0, count: AppLinkProtocol.reportLength - report.count)
        return report
    }

    /// Checks the framing of an input report (§3.2, §8.2 steps 1–5). Bytes after the payload are ignored.
    public static func parse(_ report: [UInt8]) throws(AppLinkError) -> ResponseFrame {
        guard report.count >= AppLinkProtocol.responseHeaderLength else {
            throw .malformed(.shortReport(length: report.count), report: report)
        }
        guard report.count <= AppLinkProtocol.reportLength else { throw .malformed(.longReport(length: report.count), report: report) }
        guard report[0] == AppLinkProtocol.responseReportID else { throw .malformed(.wrongReportID(report[0]), report: report) }
        guard report[1] == AppLinkProtocol.majorVersion else { throw .malformed(.wrongVersion(report[1]), report: report) }
        let length = Int(report[5])
        guard length <= AppLinkProtocol.maxResponsePayload else {
            throw .malformed(.lengthOutOfRange(report[5]), report: report)
        }
        let available = report.count - AppLinkProtocol.responseHeaderLength
        guard length <= available else {
            throw .malformed(.truncatedPayload(declared: length, available: available), report: report)
        }
        let start = AppLinkProtocol.responseHeaderLength
        return ResponseFrame(
            sequence: report[2], command: report[3], status: AppStatus(rawValue: report[4]),
            payload: Array(report[start..<(start + length)]))
    }
}

/// A response of protocol 1.0 as a typed value (§5).
public enum AppResponse: Sendable, Hashable {
    case info(DeviceInfo)
    case descriptorBytes([UInt8])
    case sectorCRCs(SectorCRCs)
    case imageCheck(ImageCheck)
    case bootloaderAck(BootloaderAck)
    /// Any status but OK; the payload of an error response is empty (§4.1).
    case refused(AppStatus)

    /// The device side: the input report answering a request with this sequence number and command.
    public func report(sequence: UInt8, command: UInt8) -> [UInt8] {
        switch self {
        case .refused(let status): ResponseFrame(sequence: sequence, command: command, status: status).report
        case .info(let info): ResponseFrame(sequence: sequence, command: command, status: .ok, payload: info.payload).report
        case .descriptorBytes(let bytes): ResponseFrame(sequence: sequence, command: command, status: .ok, payload: bytes).report
        case .sectorCRCs(let crcs): ResponseFrame(sequence: sequence, command: command, status: .ok, payload: crcs.payload).report
        case .imageCheck(let check): ResponseFrame(sequence: sequence, command: command, status: .ok, payload: check.payload).report
        case .bootloaderAck(let ack): ResponseFrame(sequence: sequence, command: command, status: .ok, payload: ack.payload).report
        }
    }

    /// The host side: the reply to `request` sent with `sequence`, checked field by field (§8.2).
    /// Payload bytes beyond what protocol 1.0 defines are ignored (a newer minor version appends fields).
    public static func decode(_ report: [UInt8], answering request: AppRequest, sequence: UInt8) throws(AppLinkError) -> AppResponse {
        let frame = try ResponseFrame.parse(report, answering: request.command, sequence: sequence)
        guard frame.status == .ok else { return .refused(frame.status) }
        return try decodePayload(frame.payload, answering: request, report: report)
    }

    /// The payload of an OK answer to `request`.
    static func decodePayload(_ payload: [UInt8], answering request: AppRequest, report: [UInt8]) throws(AppLinkError) -> AppResponse {
        switch request {
        case .getInfo:
            return .info(try DeviceInfo(payload: payload, report: report))
        case .getDescriptor(_, let length):
            return .descriptorBytes(try descriptorChunk(payload, length: length, report: report))
        case .getSectorCRCs(let query):
            return .sectorCRCs(try SectorCRCs(payload: payload, answering: query, report: report))
        case .checkImage:
            return .imageCheck(try ImageCheck(payload: payload, report: report))
        case .enterBootloader(let sent):
            return .bootloaderAck(try BootloaderAck(payload: payload, answering: sent, report: report))
        }
    }
}

extension ResponseFrame {
    /// `parse`, and the reply must answer this command with this sequence number (§8.2 steps 6–7).
    public static func parse(_ report: [UInt8], answering command: AppCommand, sequence: UInt8) throws(AppLinkError) -> ResponseFrame {
        let frame = try parse(report)
        guard frame.sequence == sequence else {
            throw .malformed(.wrongSequence(expected: sequence, got: frame.sequence), report: report)
        }
        guard frame.command == command.rawValue else {
            throw .malformed(.wrongCommand(expected: command.rawValue, got: frame.command), report: report)
        }
        return frame
    }
}

/// GET_DESCRIPTOR's answer: the `length` bytes asked for (§5.2).
func descriptorChunk(_ payload: [UInt8], length: UInt8, report: [UInt8]) throws(AppLinkError) -> [UInt8] {
    try requireLength(payload, Int(length), report: report)
    return Array(payload.prefix(Int(length)))
}

private func requireLength(_ payload: [UInt8], _ length: Int, report: [UInt8]) throws(AppLinkError) {
    guard payload.count >= length else { throw .malformed(.shortPayload(expected: length, got: payload.count), report: report) }
}
