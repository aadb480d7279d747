import DeviceProfiles
import FirmwareImage
import Testing
import USBTransport

@testable import AppLink

/// A product with its own protocol: report 0x3F asks "0x01 = identify", the answer is report 0x3F
/// with 0x81 at byte 1, version bytes at 2..4 and the UID at 8..19; "0x0B" enters the bootloader.
private let meter = LegacyProtocol(
    reports: .interrupt, reportLength: 64,
    identify: .init(
        request: [0x3F, 0x01], reply: .init(reportID: 0x3F, match: [.init(offset: 1, bytes: [0x81])]),
        version: .init(offset: 2, format: .bytes(count: 3)), uidOffset: 8,
        productID: .init(offset: 20, width: 2)),
    enterBootloader: .init(request: [0x3F, 0x0B, 0x42, 0x4F, 0x4F, 0x54], reply: nil))

private let uidBytes: [UInt8] = [0x3A, 0x00, 0x27, 0x00, 0x12, 0x51, 0x30, 0x32, 0x33, 0x36, 0x39, 0x38]

private func identifyReply() -> [UInt8] {
    var report = [UInt8](repeating: 0, count: 64)
    report[0] = 0x3F
    report[1] = 0x81
    report[2...4] = [3, 1, 4]
    report[8..<20] = uidBytes[...]
    report[20] = 0x34
    report[21] = 0x12
    return report
}

@Suite struct LegacyClientTests {
    @Test func identifyReadsTheFieldsTheProfileNames() async throws {
        let clock = VirtualClock()
        let transport = ScriptedHIDTransport(clock: clock) { _ in [.reply(identifyReply())] }
        let identity = try await LegacyClient(transport: transport, protocol: meter, clock: clock).identify()
        #expect(identity.version == FirmwareVersion(major: 3, minor: 1, patch: 4))
        #expect(identity.uid?.bytes == uidBytes)
        #expect(identity.productID == 0x1234)
        #expect(transport.writtenReports == [[0x3F, 0x01] + [UInt8](repeating: 0, count: 62)], "padded to the report length")
    }

    @Test func reportsThatDoNotMatchTheReplyAreSkipped() async throws {
        let clock = VirtualClock()
        let measurement: [UInt8] = [0x3F, 0x55] + [UInt8](repeating: 7, count: 62)
        let transport = ScriptedHIDTransport(clock: clock) { _ in [.reply(measurement), .reply([0x10, 0x81]), .reply(identifyReply())] }
        let identity = try await LegacyClient(transport: transport, protocol: meter, clock: clock).identify()
        #expect(identity.version == FirmwareVersion(major: 3, minor: 1, patch: 4))
    }

    @Test func onlyNonMatchingReportsIsAnUnexpectedReplyError() async throws {
        let clock = VirtualClock()
        let transport = ScriptedHIDTransport(clock: clock) { _ in [.reply([0x3F, 0x55]), .reply([0x3F, 0x56])] }
        do {
            _ = try await LegacyClient(transport: transport, protocol: meter, clock: clock).identify()
            Issue.record("accepted replies that do not match")
        } catch {
            #expect(error.kind == .malformedReply(.unexpectedLegacyReply(matched: 0, skipped: 2)))
        }
        #expect(clock.now() == .seconds(1))
    }

    @Test func aFieldBeyondTheReplyIsAnErrorNotACrash() async throws {
        var short = meter
        short.identify.uidOffset = 60
        let clock = VirtualClock()
        let transport = ScriptedHIDTransport(clock: clock) { _ in [.reply(identifyReply())] }
        do {
            _ = try await LegacyClient(transport: transport, protocol: short, clock: clock).identify()
            Issue.record("read a UID past the end of the reply")
        } catch {
            #expect(error.kind == .malformedReply(.fieldOutsideReply(name: "unique ID", end: 72, length: 64)))
        }
    }

    @Test func featureReportProductsAreAskedWithFeatureReports() async throws {
        var feature = meter
        feature.reports = .feature
        feature.reportLength = 33
        let clock = VirtualClock()
        let transport = ScriptedHIDTransport(clock: clock) { _ in [.reply(identifyReply())] }
        let identity = try await LegacyClient(transport: transport, protocol: feature, clock: clock).identify()
        #expect(identity.version == FirmwareVersion(major: 3, minor: 1, patch: 4))
        #expect(transport.featureReads.map(\.id) == [0x3F])
        #expect(transport.featureReads.map(\.length) == [33])
        #expect(transport.writtenReports.first?.count == 33)
    }

    @Test func enteringTheBootloaderWithoutAReplyWaitsForTheDeparture() async throws {
        let clock = VirtualClock()
        let transport = ScriptedHIDTransport(clock: clock) { _ in [.leave(after: .milliseconds(200))] }
        let entry = try await LegacyClient(transport: transport, protocol: meter, clock: clock).enterBootloader()
        #expect(entry == .leftWithoutAcknowledging(leftAfter: .milliseconds(200)))
    }

    @Test func enteringTheBootloaderWithADescribedReplyCountsAsAcknowledged() async throws {
        var acknowledging = meter
        acknowledging.enterBootloader.reply = .init(reportID: 0x3F, match: [.init(offset: 1, bytes: [0x8B])])
        let clock = VirtualClock()
        let transport = ScriptedHIDTransport(clock: clock) { _ in [.reply([0x3F, 0x8B]), .leave(after: .milliseconds(20))] }
        let entry = try await LegacyClient(transport: transport, protocol: acknowledging, clock: clock).enterBootloader()
        #expect(entry == .acknowledged(leftAfter: .milliseconds(20)))
    }

    @Test func aProductThatStaysIsAnError() async throws {
        let clock = VirtualClock()
        let transport = ScriptedHIDTransport(clock: clock)
        do {
            _ = try await LegacyClient(transport: transport, protocol: meter, clock: clock).enterBootloader()
            Issue.record("a product that never left counted as entered")
        } catch {
            #expect(error.kind == .stayedOnBus(waited: .seconds(4)))
        }
    }

    @Test(arguments: [
        (LegacyProtocol.VersionFormat.bytes(count: 2), [1, 2] as [UInt8], FirmwareVersion(major: 1, minor: 2, patch: 0)),
        (.littleEndian16(count: 3), [0x0A, 0x00, 0x02, 0x01, 0xFF, 0xFF], FirmwareVersion(major: 10, minor: 0x0102, patch: 0xFFFF)),
        (.bcd16, [0x23, 0x01], FirmwareVersion(major: 1, minor: 23, patch: 0)),
        (.ascii(length: 8), Array("2.4.1".utf8) + [0, 0, 0], FirmwareVersion(major: 2, minor: 4, patch: 1))
    ])
    func versionFormatsReadTheirBytes(format: LegacyProtocol.VersionFormat, bytes: [UInt8], version: FirmwareVersion) {
        #expect(format.parse(bytes) == version)
    }

    @Test(arguments: [
        (LegacyProtocol.VersionFormat.bcd16, [0x2A, 0x01] as [UInt8]),
        (.ascii(length: 4), Array("1.x".utf8) + [0]),
        (.ascii(length: 4), [0xC3, 0xA9, 0x2E, 0x31])
    ])
    func versionBytesThatSpellNoVersionAreRejected(format: LegacyProtocol.VersionFormat, bytes: [UInt8]) {
        #expect(format.parse(bytes) == nil)
    }
}
