import FirmwareImage
import Testing

@testable import AppLink

/// The shared vectors (protocols/test-vectors/hid-app.txt), the same lines the reference firmware's
/// `make check` runs its C handler against: both sides must produce and accept exactly these bytes.
@Suite struct VectorTests {
    let file: VectorFile

    init() throws { file = try VectorFile.load() }

    @Test func theVectorFileCoversEveryKindOfLine() {
        #expect(file.of(.request).count >= 15)
        #expect(file.of(.deviceInput).count >= 10)
        #expect(file.of(.response).count >= 30)
        #expect(file.of(.reply).count >= 3)
        #expect(file.of(.badReply).count >= 15)
        let commands = Set(file.of(.request).compactMap { $0.fields["cmd"] })
        #expect(commands == Set(AppCommand.allCases.map(\.description)))
    }

    @Test func hostsEncodeEachRequestToTheVectorBytes() throws {
        for vector in file.of(.request) {
            let (sequence, request) = try typedRequest(vector)
            #expect(request.report(sequence: sequence) == vector.bytes, "\(vector)")
        }
    }

    @Test func devicesDecodeEachRequestIntoTheVectorFields() throws {
        for vector in file.of(.request) {
            let (sequence, request) = try typedRequest(vector)
            #expect(AppRequest.decode(report: vector.bytes ?? []) == .request(sequence: sequence, request), "\(vector)")
        }
    }

    @Test func devicesRejectOrIgnoreMalformedRequestsAsTheVectorsSay() throws {
        for vector in file.of(.deviceInput) {
            let bytes = vector.bytes ?? []
            let decoded = AppRequest.decode(report: bytes)
            if try vector.field("decodes") == "ignore" {
                #expect(decoded == .ignore, "\(vector)")
            } else {
                let status = try status(named: vector.field("decodes"), in: vector)
                #expect(decoded == .reject(sequence: bytes[2], command: bytes[3], status: status), "\(vector)")
            }
        }
    }

    @Test func devicesEncodeEachAnswerToTheVectorBytes() throws {
        for vector in file.of(.response) {
            let to = try file.named(vector.field("to"))
            guard let bytes = vector.bytes else {
                #expect(AppRequest.decode(report: to.bytes ?? []) == .ignore, "\(vector)")
                continue
            }
            let toBytes = try #require(to.bytes)
            let expected: AppResponse
            if to.kind == .request {
                let (_, request) = try typedRequest(to)
                expected = try typedResponse(vector, answering: request)
            } else {
                expected = .refused(try status(named: vector.field("status"), in: vector))
            }
            #expect(expected.report(sequence: toBytes[2], command: toBytes[3]) == bytes, "\(vector)")
        }
    }

    @Test func hostsDecodeEachAnswerIntoTheVectorFields() throws {
        let answers = try file.of(.response).filter { try $0.bytes != nil && file.named($0.field("to")).kind == .request }
        for vector in answers + file.of(.reply) {
            let (sequence, request) = try typedRequest(file.named(vector.field("to")))
            let decoded = try AppResponse.decode(vector.bytes ?? [], answering: request, sequence: sequence)
            #expect(decoded == (try typedResponse(vector, answering: request)), "\(vector)")
        }
    }

    @Test func hostsRejectEachBadReplyForTheVectorReason() throws {
        for vector in file.of(.badReply) {
            let (sequence, request) = try typedRequest(file.named(vector.field("to")))
            let expected = try vector.field("error")
            do {
                let decoded = try AppResponse.decode(vector.bytes ?? [], answering: request, sequence: sequence)
                Issue.record("\(vector): accepted as \(decoded), must be rejected with \(expected)")
            } catch {
                guard case .malformedReply(let malformation) = error.kind else {
                    Issue.record("\(vector): \(error)")
                    continue
                }
                #expect(malformation.code == expected, "\(vector): \(error)")
                #expect(error.report == (vector.bytes ?? []), "the error carries the reply's bytes")
            }
        }
    }

    // MARK: Fields to typed values

    private func status(named name: String, in vector: VectorFile.Vector) throws -> AppStatus {
        if name.hasPrefix("0x"), let code = UInt8(name.dropFirst(2), radix: 16) { return AppStatus(rawValue: code) }
        guard let status = AppStatus(name: name) else { throw VectorFile.VectorError("\(vector): unknown status \(name)") }
        return status
    }

    private func typedRequest(_ vector: VectorFile.Vector) throws -> (UInt8, AppRequest) {
        let sequence = UInt8(try vector.number("seq"))
        guard let command = AppCommand(name: try vector.field("cmd")) else {
            throw VectorFile.VectorError("\(vector): unknown command")
        }
        let request: AppRequest
        switch command {
        case .getInfo: request = .getInfo
        case .checkImage: request = .checkImage
        case .getDescriptor:
            request = .getDescriptor(offset: UInt8(try vector.number("offset")), length: UInt8(try vector.number("length")))
        case .getSectorCRCs:
            request = .getSectorCRCs(
                SectorQuery(
                    address: UInt32(try vector.number("address")), size: UInt32(try vector.number("size")),
                    count: UInt8(try vector.number("count"))))
        case .enterBootloader:
            let uid = try #require(UniqueID(try vector.hexBytes("uid")))
            request = .enterBootloader(
                BootloaderRequest(
                    magic: UInt32(try vector.number("magic")),
                    nonce: UInt32(try vector.number("nonce")), uid: uid))
        }
        return (sequence, request)
    }

    private func typedResponse(_ vector: VectorFile.Vector, answering request: AppRequest) throws -> AppResponse {
        let status = try status(named: vector.field("status"), in: vector)
        guard status == .ok else { return .refused(status) }
        func u32(_ key: String) throws -> UInt32 { UInt32(try vector.number(key)) }
        func u16(_ key: String) throws -> UInt16 { UInt16(try vector.number(key)) }
        switch request {
        case .getInfo:
            let protocolVersion = try vector.field("protocol").split(separator: ".")
            let state = try #require(DescriptorState.allCases.first { $0.description == (try? vector.field("descriptor")) })
            var image: RunningImage?
            if state == .valid {
                image = RunningImage(
                    productID: try u32("product"), version: try #require(FirmwareVersion(parsing: try vector.field("version"))),
                    imageSize: try u32("image-size"), imageCRC: try u32("image-crc"), flags: try u32("flags"))
            }
            return .info(
                DeviceInfo(
                    protocolMinor: try #require(UInt8(protocolVersion[1])),
                    capabilities: AppCapabilities(rawValue: try u16("capabilities")),
                    deviceID: try u16("dev-id"), revisionID: try u16("rev-id"),
                    uid: try #require(UniqueID(try vector.hexBytes("uid"))), imageBase: try u32("image-base"),
                    flashSizeKiB: try u16("flash-kib"), descriptorState: state, image: image))
        case .getDescriptor:
            return .descriptorBytes(try vector.hexBytes("bytes"))
        case .getSectorCRCs:
            let crcs = try vector.field("crcs").split(separator: ",").map { text in
                try #require(UInt32(text.dropFirst(2), radix: 16))
            }
            return .sectorCRCs(
                SectorCRCs(
                    query: SectorQuery(
                        address: try u32("address"), size: try u32("size"),
                        count: UInt8(try vector.number("count"))), crcs: crcs))
        case .checkImage:
            let result = try #require(ImageCheckResult.allCases.first { $0.description == (try? vector.field("result")) })
            return .imageCheck(
                ImageCheck(
                    result: result, storedCRC: try u32("stored-crc"), computedCRC: try u32("computed-crc"),
                    imageSize: try u32("image-size")))
        case .enterBootloader:
            return .bootloaderAck(BootloaderAck(nonce: try u32("nonce"), resetDelayMs: try u16("reset-delay-ms")))
        }
    }
}
