import DeviceProfiles
import DfuSeWire
import FirmwareImage
import Testing
import USBTransport

@testable import DfuSe

/// A ROM's GETSTATUS replies are outside input: bwPollTimeout is 24 bits of milliseconds (DFU 1.1
/// §6.1.2), up to 4.6 hours. The client never waits past the busy budget of the operation in progress.
/// All times are on the virtual clock.
@Suite("DfuSe client: hostile status replies")
struct HostileStatusTests {
    static let longestPoll: UInt32 = 0xFF_FFFF

    @Test("a device that asks for a 4.6-hour poll and stays busy is stuck after the busy budget, not hours")
    func hugePollTimeoutWhileBusy() async throws {
        let bench = try Bench()
        await bench.device.configure {
            $0.reportedPollMs[.erase] = Self.longestPoll
            $0.actualDuration[.erase] = .seconds(3 * 3600)
        }
        let started = bench.clock.now()
        let error = await #expect(throws: DfuSeError.self) {
            try await bench.client.erase(sectorsAt: [0x0800_0000], in: layout(f407Layout))
        }
        guard case .stuckBusy(.eraseSector(0x0800_0000), _, let elapsed) = error else {
            Issue.record("unexpected \(String(describing: error))")
            return
        }
        let budget = DfuSeClient.Options().maxBusyTime
        #expect(elapsed > budget && elapsed <= budget + .milliseconds(2))
        #expect(bench.clock.now() - started <= budget + .seconds(1))
    }

    @Test("a device that asks for a 4.6-hour poll but finishes is polled again when the budget runs out")
    func hugePollTimeoutThatFinishes() async throws {
        let bench = try Bench()
        await bench.device.configure {
            $0.reportedPollMs[.erase] = Self.longestPoll
            $0.actualDuration[.erase] = .seconds(2)
        }
        let started = bench.clock.now()
        try await bench.client.erase(sectorsAt: [0x0800_0000], in: layout(f407Layout))
        #expect(bench.clock.now() - started <= DfuSeClient.Options().maxBusyTime + .seconds(1))
        #expect(await bench.device.erasedSectorStarts == [0x0800_0000])
    }

    @Test("a device found busy at the start with a 4.6-hour poll is stuck after the budget")
    func hugePollTimeoutAtStart() async throws {
        var options = DfuSeClient.Options()
        options.maxBusyTime = .seconds(5)
        let bench = try Bench(options: options)
        await bench.device.configure {
            $0.reportedPollMs[.erase] = Self.longestPoll
            $0.actualDuration[.erase] = .seconds(3 * 3600)
        }
        try await bench.device.controlOut(
            .classOut(DFURequest.download.rawValue, value: 0, interface: 0),
            data: DfuSeCommand.erase(0x0800_0000).bytes, timeout: .seconds(1))
        _ = try await bench.device.controlIn(
            .classIn(DFURequest.getStatus.rawValue, value: 0, interface: 0),
            length: 6, timeout: .seconds(1))
        let started = bench.clock.now()
        let error = await #expect(throws: DfuSeError.self) { try await bench.client.abortToIdle() }
        guard case .stuckBusy(.returnToIdle, _, _) = error else {
            Issue.record("unexpected \(String(describing: error))")
            return
        }
        #expect(bench.clock.now() - started <= .seconds(6))
    }

    @Test("every 6-byte GETSTATUS reply is decoded within its fields or refused")
    func statusRepliesDecodeOrAreRefused() {
        var state: UInt64 = 0x5EED
        for _ in 0..<50_000 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let length = Int(state >> 61) // 0...7 bytes
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: state >> (8 * UInt64($0))) }
            guard let report = DFUStatusReport(bytes: bytes) else { continue }
            #expect(bytes.count == 6)
            #expect(report.pollTimeoutMs <= Self.longestPoll)
            #expect(report.bytes == bytes)
        }
    }
}
