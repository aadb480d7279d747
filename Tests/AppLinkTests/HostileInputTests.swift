import DeviceProfiles
import SeededRandom
import Testing

@testable import AppLink

/// Every parser of device bytes answers hostile input with an error value, never a trap
/// (the libFuzzer harness in Fuzz/applink runs the same entry points far longer).
@Suite struct HostileInputTests {

    static let requests: [AppRequest] = [
        .getInfo, .getDescriptor(offset: 0, length: 32), .getDescriptor(offset: 32, length: 32),
        .getSectorCRCs(SectorQuery(address: 0x0800_0000, size: 0x800, count: 12)), .checkImage,
        .enterBootloader(BootloaderRequest(nonce: 9, uid: UniqueID(hex: "000102030405060708090A0B")!))
    ]

    /// Random reports, most of them with a plausible header so the payload checks are reached.
    static func reports(count: Int, seed: UInt64) -> [[UInt8]] {
        var generator = SplitMix64(seed: seed)
        return (0..<count).map { index in
            let length = Int.random(in: 0...70, using: &generator)
            var report = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            if length >= 6, index % 4 != 0 {
                report[0] = AppLinkProtocol.responseReportID
                report[1] = AppLinkProtocol.majorVersion
                report[2] = 1
                report[4] = index % 8 == 1 ? 0x42 : 0
                report[5] %= UInt8(AppLinkProtocol.maxResponsePayload + 2)
            }
            return report
        }
    }

    @Test func randomRepliesAreDecodedOrRejectedAsMalformed() {
        var accepted = 0
        for (index, report) in Self.reports(count: 60_000, seed: 1).enumerated() {
            let request = Self.requests[index % Self.requests.count]
            var framed = report
            if framed.count >= 6 { framed[3] = request.command.rawValue }
            do {
                _ = try AppResponse.decode(framed, answering: request, sequence: 1)
                accepted += 1
            } catch {
                guard case .malformedReply = error.kind else {
                    Issue.record("a parse error of another kind: \(error)")
                    return
                }
            }
        }
        #expect(accepted > 0, "some random replies must get past the framing, or the sweep tests nothing")
    }

    @Test func randomOutputReportsAreAnsweredOrIgnoredByTheDeviceDecoder() {
        var generator = SplitMix64(seed: 2)
        var outcomes: Set<String> = []
        for index in 0..<60_000 {
            let length = Int.random(in: 0...70, using: &generator)
            var report = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            if length >= 5, index % 4 != 0 {
                report[0] = AppLinkProtocol.requestReportID
                report[1] = AppLinkProtocol.majorVersion
                report[3] = [0x01, 0x02, 0x03, 0x04, 0x10, 0x7F][index % 6]
                report[4] %= UInt8(AppLinkProtocol.maxRequestPayload + 2)
            }
            switch AppRequest.decode(report: report) {
            case .ignore: outcomes.insert("ignore")
            case .reject(_, _, let status): outcomes.insert(status.name)
            case .request(_, let request): outcomes.insert(request.command.description)
            }
        }
        #expect(outcomes.isSuperset(of: ["ignore", "BAD_LENGTH", "UNKNOWN_COMMAND", "BAD_ARGUMENT", "GET_INFO"]))
    }

    @Test func legacyFieldsAtHostileOffsetsAreErrors() {
        var generator = SplitMix64(seed: 3)
        for _ in 0..<20_000 {
            let identify = LegacyProtocol.Identify(
                request: [1], reply: .init(reportID: 1),
                version: .init(
                    offset: Int.random(in: -4...80, using: &generator),
                    format: [.bytes(count: 3), .littleEndian16(count: 4), .bcd16, .ascii(length: 9)][
                        Int.random(in: 0...3, using: &generator)]),
                uidOffset: Bool.random(using: &generator) ? Int.random(in: Int.min...Int.max, using: &generator) : nil,
                productID: .init(offset: Int.random(in: -2...70, using: &generator), width: Int.random(in: -1...5, using: &generator)))
            let report = (0..<Int.random(in: 0...64, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            do {
                _ = try identify.parse(report)
            } catch {
                guard case .malformedReply = error.kind else {
                    Issue.record("a parse error of another kind: \(error)")
                    return
                }
            }
        }
    }
}
