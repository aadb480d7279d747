/// GET_SECTOR_CRCS's question: `count` consecutive ranges of `size` bytes from `address` (§5.3).
public struct SectorQuery: Sendable, Hashable, CustomStringConvertible {
    public var address: UInt32
    public var size: UInt32
    public var count: UInt8

    public init(address: UInt32, size: UInt32, count: UInt8) {
        self.address = address
        self.size = size
        self.count = count
    }

    /// One past the last byte asked for (may exceed 32 bits for a hostile request).
    public var end: UInt64 { UInt64(address) + UInt64(size) * UInt64(count) }

    public var description: String {
        "\(count) × 0x\(String(size, radix: 16, uppercase: true)) bytes from 0x\(String(address, radix: 16, uppercase: true))"
    }
}

/// ENTER_BOOTLOADER's payload (§5.5): the magic, a nonce the answer echoes, and the unit it is meant for.
public struct BootloaderRequest: Sendable, Hashable {
    public var magic: UInt32
    public var nonce: UInt32
    public var uid: UniqueID

    public init(magic: UInt32 = AppLinkProtocol.bootloaderMagic, nonce: UInt32, uid: UniqueID) {
        self.magic = magic
        self.nonce = nonce
        self.uid = uid
    }
}

/// A request of protocol 1.0 as a typed value (§5).
public enum AppRequest: Sendable, Hashable, CustomStringConvertible {
    case getInfo
    /// `length` bytes of the image descriptor from `offset`.
    case getDescriptor(offset: UInt8, length: UInt8)
    case getSectorCRCs(SectorQuery)
    case checkImage
    case enterBootloader(BootloaderRequest)

    public var command: AppCommand {
        switch self {
        case .getInfo: .getInfo
        case .getDescriptor: .getDescriptor
        case .getSectorCRCs: .getSectorCRCs
        case .checkImage: .checkImage
        case .enterBootloader: .enterBootloader
        }
    }

    public var description: String {
        switch self {
        case .getInfo, .checkImage: command.description
        case .getDescriptor(let offset, let length): "\(command) \(length) bytes at \(offset)"
        case .getSectorCRCs(let query): "\(command) \(query)"
        case .enterBootloader(let request): "\(command) for unit \(request.uid)"
        }
    }

    var payload: [UInt8] {
        var bytes: [UInt8] = []
        switch self {
        case .getInfo, .checkImage:
            break
        case .getDescriptor(let offset, let length):
            bytes = [offset, length]
        case .getSectorCRCs(let query):
            bytes.appendLE32(query.address)
            bytes.appendLE32(query.size)
            bytes.append(query.count)
        case .enterBootloader(let request):
            bytes.appendLE32(request.magic)
            bytes.appendLE32(request.nonce)
            bytes += request.uid.bytes
        }
        return bytes
    }

    /// The output report, 64 bytes with the report id first (§3.1).
    public func report(sequence: UInt8) -> [UInt8] {
        let payload = payload
        var report: [UInt8] = [
            AppLinkProtocol.requestReportID, AppLinkProtocol.majorVersion, sequence, command.rawValue, UInt8(payload.count)
        ]
        report += payload
        report += [UInt8](repeating: 0, count: AppLinkProtocol.reportLength - report.count)
        return report
    }

    /// The device side (§3.3): what a device of protocol 1.0 does with an output report, checked in
    /// the spec's order. State checks (address range, descriptor, unit, busy) are the device's own.
    public static func decode(report: [UInt8]) -> DecodedRequest {
        guard report.count >= AppLinkProtocol.requestHeaderLength, report.count <= AppLinkProtocol.reportLength,
            report[0] == AppLinkProtocol.requestReportID
        else { return .ignore }
        let sequence = report[2]
        let code = report[3]
        func reject(_ status: AppStatus) -> DecodedRequest { .reject(sequence: sequence, command: code, status: status) }

        guard report[1] == AppLinkProtocol.majorVersion else { return reject(.unsupportedVersion) }
        let length = Int(report[4])
        guard length <= AppLinkProtocol.maxRequestPayload, AppLinkProtocol.requestHeaderLength + length <= report.count
        else { return reject(.badLength) }
        guard let command = AppCommand(rawValue: code) else { return reject(.unknownCommand) }
        guard length == command.requestPayloadLength else { return reject(.badLength) }
        let payload = Array(report[AppLinkProtocol.requestHeaderLength..<(AppLinkProtocol.requestHeaderLength + length)])

        let request: AppRequest
        switch command {
        case .getInfo:
            request = .getInfo
        case .checkImage:
            request = .checkImage
        case .getDescriptor:
            let offset = payload[0]
            let count = payload[1]
            guard count >= 1, Int(offset) + Int(count) <= AppLinkProtocol.descriptorLength else { return reject(.badArgument) }
            request = .getDescriptor(offset: offset, length: count)
        case .getSectorCRCs:
            let query = SectorQuery(address: readLE32(payload, at: 0), size: readLE32(payload, at: 4), count: payload[8])
            guard query.size >= 1, (1...AppLinkProtocol.maxSectorRanges).contains(Int(query.count)) else {
                return reject(.badArgument)
            }
            request = .getSectorCRCs(query)
        case .enterBootloader:
            let magic = readLE32(payload, at: 0)
            guard magic == AppLinkProtocol.bootloaderMagic else { return reject(.badMagic) }
            // The exact-length check above makes this 12 bytes.
            guard let uid = UniqueID(payload[8..<20]) else { return reject(.badLength) }
            request = .enterBootloader(BootloaderRequest(magic: magic, nonce: readLE32(payload, at: 4), uid: uid))
        }
        return .request(sequence: sequence, request)
    }
}

/// What a device makes of an output report (§3.3).
public enum DecodedRequest: Sendable, Hashable {
    /// A well-formed request; the device still checks it against its state.
    case request(sequence: UInt8, AppRequest)
    /// Answer with this status and an empty payload, echoing the sequence and command bytes.
    case reject(sequence: UInt8, command: UInt8, status: AppStatus)
    /// Not a request of this protocol (another report id, or too short to have a header): no answer.
    case ignore
}
