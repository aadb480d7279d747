import FirmwareImage
import Testing
import USBTransport

@testable import AppLink

/// A device of protocol 1.0 built from AppLink's own device side, answering like the fixture.
private struct FakeApplication {
    var info = DeviceInfo(
        capabilities: [.descriptorRead, .sectorCRCs, .imageCheck], deviceID: 0x469, revisionID: 0x2001,
        uid: UniqueID(hex: "3A0027001251303233363938")!, imageBase: 0x0800_0000, flashSizeKiB: 512,
        descriptorState: .valid,
        image: RunningImage(
            productID: 0x0DF0_0474, version: FirmwareVersion(major: 1, minor: 0, patch: 0), imageSize: 0xB40, imageCRC: 0xA3B7_3459,
            flags: 0))
    var descriptor: [UInt8] = Array(0..<64)
    var resetDelayMs: UInt16 = 50

    /// The answer to one output report, by the spec's rules; CRCs are the range index, for tests.
    func answer(_ report: [UInt8]) -> [UInt8]? {
        switch AppRequest.decode(report: report) {
        case .ignore: return nil
        case .reject(let sequence, let command, let status): return AppResponse.refused(status).report(sequence: sequence, command: command)
        case .request(let sequence, let request):
            let response: AppResponse
            switch request {
            case .getInfo: response = .info(info)
            case .getDescriptor(let offset, let length): response = .descriptorBytes(Array(descriptor[Int(offset)..<Int(offset + length)]))
            case .getSectorCRCs(let query):
                response = .sectorCRCs(SectorCRCs(query: query, crcs: (0..<UInt32(query.count)).map { query.address &+ $0 * query.size }))
            case .checkImage:
                response = .imageCheck(ImageCheck(result: .intact, storedCRC: 1, computedCRC: 1, imageSize: 0xB40))
            case .enterBootloader(let sent):
                response =
                    sent.uid == info.uid
                    ? .bootloaderAck(BootloaderAck(nonce: sent.nonce, resetDelayMs: resetDelayMs))
                    : .refused(.wrongUnit)
            }
            return response.report(sequence: sequence, command: request.command.rawValue)
        }
    }
}

private func makeClient(
    _ application: FakeApplication = FakeApplication(),
    extra: @escaping @Sendable ([UInt8]) -> [ScriptedHIDTransport.Reaction] = { _ in [] }
)
    -> (AppLinkClient, ScriptedHIDTransport, VirtualClock)
{
    let clock = VirtualClock()
    let transport = ScriptedHIDTransport(clock: clock) { report in
        (application.answer(report).map { [.reply($0)] } ?? []) + extra(report)
    }
    return (AppLinkClient(transport: transport, clock: clock), transport, clock)
}

private func expectError(
    _ kind: (AppLinkError.Kind) -> Bool, _ body: () async throws -> Void,
    sourceLocation: SourceLocation = #_sourceLocation
) async {
    do {
        try await body()
        Issue.record("no error was thrown", sourceLocation: sourceLocation)
    } catch let error as AppLinkError {
        #expect(kind(error.kind), "\(error)", sourceLocation: sourceLocation)
        #expect(!error.description.isEmpty)
    } catch {
        Issue.record("not an AppLinkError: \(error)", sourceLocation: sourceLocation)
    }
}

@Suite struct AppLinkClientTests {
    @Test func infoReturnsWhatTheApplicationReports() async throws {
        let (client, transport, _) = makeClient()
        let info = try await client.info()
        #expect(info == FakeApplication().info)
        #expect(transport.writtenReports.count == 1)
        #expect(transport.writtenReports[0].count == AppLinkProtocol.reportLength)
    }

    @Test func eachRequestCarriesTheNextSequenceNumber() async throws {
        let (client, transport, _) = makeClient()
        _ = try await client.info()
        _ = try await client.checkImage()
        _ = try await client.info()
        #expect(transport.writtenReports.map { $0[2] } == [1, 2, 3])
    }

    @Test func theDescriptorIsReadInTwoHalves() async throws {
        let (client, transport, _) = makeClient()
        #expect(try await client.descriptor() == Array(0..<64))
        #expect(transport.writtenReports.map { Array($0[5...6]) } == [[0, 32], [32, 32]])
    }

    @Test func sectorCRCsAreAskedInBatchesOfTwelveRanges() async throws {
        let (client, transport, _) = makeClient()
        let crcs = try await client.sectorCRCs(address: 0x0800_0000, size: 0x800, count: 30)
        #expect(crcs == (0..<30).map { 0x0800_0000 + UInt32($0) * 0x800 }, "the fake answers each range's address")
        let queries = transport.writtenReports.map { report in
            (readLE32(report, at: 5), report[13])
        }
        #expect(queries.map(\.0) == [0x0800_0000, 0x0800_6000, 0x0800_C000])
        #expect(queries.map(\.1) == [12, 12, 6])
    }

    @Test func aReportLeftFromAnEarlierRequestIsDroppedBeforeSending() async throws {
        let (client, transport, _) = makeClient()
        // A late answer to a request that timed out, waiting in the queue.
        transport.queue(AppResponse.refused(.busy).report(sequence: 0x7F, command: AppCommand.getInfo.rawValue))
        #expect(try await client.info() == FakeApplication().info)
    }

    @Test func silenceIsANoReplyErrorAfterTheTimeoutOnTheClock() async throws {
        let clock = VirtualClock()
        let transport = ScriptedHIDTransport(clock: clock)
        let client = AppLinkClient(transport: transport, clock: clock)
        await expectError({ $0 == .noReply(timeout: .seconds(1)) }, { _ = try await client.info() })
        #expect(clock.now() == .seconds(1))
    }

    @Test func flashCommandsWaitLonger() async throws {
        let clock = VirtualClock()
        let transport = ScriptedHIDTransport(clock: clock)
        let client = AppLinkClient(transport: transport, clock: clock)
        await expectError({ $0 == .noReply(timeout: .seconds(5)) }, { _ = try await client.checkImage() })
        #expect(clock.now() == .seconds(5))
    }

    @Test func aRefusalIsAnErrorNamingTheStatus() async throws {
        let clock = VirtualClock()
        let transport = ScriptedHIDTransport(clock: clock) { report in
            [.reply(AppResponse.refused(.noDescriptor).report(sequence: report[2], command: report[3]))]
        }
        let client = AppLinkClient(transport: transport, clock: clock)
        await expectError({ $0 == .refused(.noDescriptor) }, { _ = try await client.descriptor() })
    }

    @Test func anAnswerToAnotherSequenceIsRejected() async throws {
        let clock = VirtualClock()
        let transport = ScriptedHIDTransport(clock: clock) { report in
            var answer = FakeApplication().answer(report) ?? []
            answer[2] &+= 1
            return [.reply(answer)]
        }
        let client = AppLinkClient(transport: transport, clock: clock)
        await expectError({ $0 == .malformedReply(.wrongSequence(expected: 1, got: 2)) }, { _ = try await client.info() })
    }

    @Test func aDeviceGoneBeforeTheRequestIsATransportError() async throws {
        let clock = VirtualClock()
        let transport = ScriptedHIDTransport(clock: clock) { _ in [.leave(after: .zero)] }
        let client = AppLinkClient(transport: transport, clock: clock)
        _ = try? await client.info()
        await expectError(
            {
                if case .transport(let error) = $0 { return error.kind == .disconnected }
                return false
            }, { _ = try await client.info() })
    }

    // MARK: ENTER_BOOTLOADER

    private let uid = UniqueID(hex: "3A0027001251303233363938")!

    @Test func enteringTheBootloaderWaitsForTheAcknowledgementAndTheDeparture() async throws {
        let (client, transport, clock) = makeClient { report in
            report[3] == AppCommand.enterBootloader.rawValue ? [.leave(after: .milliseconds(80))] : []
        }
        let entry = try await client.enterBootloader(uid: uid, nonce: 0x5EED_1234)
        #expect(entry == .acknowledged(leftAfter: .milliseconds(80)))
        #expect(clock.now() == .milliseconds(80))
        let sent = try #require(transport.writtenReports.last)
        #expect(readLE32(sent, at: 5) == AppLinkProtocol.bootloaderMagic)
        #expect(Array(sent[13..<25]) == uid.bytes)
    }

    @Test func aDisconnectBeforeTheAcknowledgementIsTheExpectedOutcome() async throws {
        let clock = VirtualClock()
        let transport = ScriptedHIDTransport(clock: clock) { _ in [.leave(after: .milliseconds(3))] }
        let client = AppLinkClient(transport: transport, clock: clock)
        let entry = try await client.enterBootloader(uid: uid, nonce: 7)
        #expect(entry == .leftWithoutAcknowledging(leftAfter: .milliseconds(3)))
    }

    @Test func anAcknowledgedRequestWhoseApplicationStaysIsAnError() async throws {
        let (client, _, clock) = makeClient()
        await expectError({ $0 == .stayedOnBus(waited: .milliseconds(3050)) }, { _ = try await client.enterBootloader(uid: uid, nonce: 7) })
        #expect(clock.now() == .milliseconds(3050), "the announced 50 ms reset delay plus the 3 s departure allowance")
    }

    @Test func anotherUnitRefusesTheBootloaderRequest() async throws {
        let (client, _, _) = makeClient()
        let other = UniqueID(hex: "3A0027001251303233363939")!
        await expectError({ $0 == .refused(.wrongUnit) }, { _ = try await client.enterBootloader(uid: other, nonce: 7) })
    }

    @Test func aLostAcknowledgementStillCountsWhenTheApplicationLeaves() async throws {
        let clock = VirtualClock()
        let transport = ScriptedHIDTransport(clock: clock) { _ in [.leave(after: .milliseconds(1500))] }
        let client = AppLinkClient(transport: transport, clock: clock)
        #expect(try await client.enterBootloader(uid: uid, nonce: 7) == .leftWithoutAcknowledging(leftAfter: .milliseconds(1500)))
    }

    @Test func anEchoOfAnotherNonceIsRejected() async throws {
        let clock = VirtualClock()
        let transport = ScriptedHIDTransport(clock: clock) { report in
            [.reply(AppResponse.bootloaderAck(BootloaderAck(nonce: 1, resetDelayMs: 50)).report(sequence: report[2], command: report[3]))]
        }
        let client = AppLinkClient(transport: transport, clock: clock)
        await expectError(
            { $0 == .malformedReply(.echoMismatch(field: "nonce", sent: 2, got: 1)) },
            { _ = try await client.enterBootloader(uid: uid, nonce: 2) })
    }

    @Test func anErrorTellsTheRequestTheDeviceAndWhatTheStatusMeans() async throws {
        let (client, _, _) = makeClient()
        let other = UniqueID(hex: "3A0027001251303233363939")!
        do {
            _ = try await client.enterBootloader(uid: other, nonce: 7)
            Issue.record("another unit's request was accepted")
        } catch {
            #expect(error.description.contains("ENTER_BOOTLOADER for unit 3A0027001251303233363939 (seq 0x01)"), "\(error)")
            #expect(error.description.contains("1209:0001 at 1-2"), "\(error)")
            #expect(error.description.contains("WRONG_UNIT: the unit's unique ID is not the one the request names"), "\(error)")
        }
    }
}
