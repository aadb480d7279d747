import DeviceProfiles
import DfuSeWire
import Testing
import USBTransport

@testable import DfuSe

@Suite("DfuSe client: ROM quirks, chosen by family data")
struct QuirkTests {
    // MARK: F4 mass erase: the reported poll timeout lies

    @Test("F4: GETSTATUS failing during a mass erase is retried until the quirk's real duration")
    func f4MassEraseKeepsPolling() async throws {
        let bench = try Bench(quirks: McuFamily.f407.quirks)
        await bench.device.configure {
            $0.reportedPollMs[.massErase] = 100 // what the ROM says
            $0.actualDuration[.massErase] = .seconds(30) // what the flash takes
            $0.earlyPoll = .timeout // the ROM does not answer while erasing
        }
        try await bench.client.massErase(.operatorRequestedMassErase)
        #expect(bench.clock.now() >= .seconds(30))
        #expect(bench.clock.now() < .seconds(31))
        #expect(bench.events.events.contains { if case .quirk(.massEraseStillRunning) = $0 { true } else { false } })
        #expect(bench.events.events.contains(.massErased))
    }

    @Test("F4: past the quirk's duration the mass erase fails with the transport error")
    func f4MassEraseGivesUp() async throws {
        let bench = try Bench(quirks: McuFamily.f407.quirks)
        await bench.device.configure {
            $0.actualDuration[.massErase] = .seconds(50)
            $0.earlyPoll = .timeout
        }
        let error = await #expect(throws: DfuSeError.self) { try await bench.client.massErase(.operatorRequestedMassErase) }
        #expect(error?.transportError?.kind == .timeout)
        #expect(error?.operation == .massErase)
        #expect(bench.clock.now() >= .seconds(35))
    }

    @Test("without the F4 quirk the first failed GETSTATUS of a mass erase is an error")
    func massEraseWithoutQuirk() async throws {
        let bench = try Bench(quirks: McuFamily.g474.quirks)
        await bench.device.configure {
            $0.actualDuration[.massErase] = .seconds(30)
            $0.earlyPoll = .timeout
        }
        let error = await #expect(throws: DfuSeError.self) { try await bench.client.massErase(.operatorRequestedMassErase) }
        #expect(error?.transportError?.kind == .timeout)
        #expect(bench.clock.now() == .milliseconds(100))
    }

    @Test("F4: a mass erase that keeps answering dfuDNBUSY with a short timeout is simply polled on")
    func f4MassEraseBusyAnswers() async throws {
        let bench = try Bench(quirks: McuFamily.f407.quirks)
        await bench.device.configure { $0.actualDuration[.massErase] = .seconds(20) }
        try await bench.client.massErase(.operatorRequestedMassErase)
        #expect(bench.clock.now() == .seconds(20))
    }

    // MARK: L4: GETSTATUS stalls during erase

    @Test("L4: up to three GETSTATUS stalls during an erase are tolerated")
    func l4StallsTolerated() async throws {
        let bench = try Bench(layout: l476Layout, quirks: McuFamily.l476.quirks)
        await bench.device.configure { $0.stallsDuring[.erase] = 3 }
        try await bench.client.erase(sectorsAt: [0x0800_0800], in: layout(l476Layout))
        #expect(await bench.log == ["GETSTATUS", "DNLOAD 0 ERASE 0x8000800"] + Array(repeating: "GETSTATUS", count: 5))
        #expect(await bench.device.erasedSectorStarts == [0x0800_0800])
        let stalls = bench.events.events.compactMap { if case .quirk(.statusStalledDuringErase(let n, 3)) = $0 { n } else { nil } }
        #expect(stalls == [1, 2, 3])
        // The first poll waits the ROM's 25 ms; a stall proves that too short, so each retry waits the
        // quirk's 100 ms instead.
        #expect(bench.clock.now() == .milliseconds(25 + 3 * 100))
    }

    @Test("L4: a fourth stall in a row is an error naming the erase")
    func l4TooManyStalls() async throws {
        let bench = try Bench(layout: l476Layout, quirks: McuFamily.l476.quirks)
        await bench.device.configure { $0.stallsDuring[.erase] = 4 }
        await #expect(throws: DfuSeError.tooManyStalls(during: .eraseSector(0x0800_0800), stalls: 4)) {
            try await bench.client.erase(sectorsAt: [0x0800_0800], in: layout(l476Layout))
        }
    }

    @Test("without the L4 quirk a stall during erase is a transport error")
    func stallWithoutQuirk() async throws {
        let bench = try Bench(layout: l476Layout, quirks: McuFamily.f407.quirks)
        await bench.device.configure { $0.stallsDuring[.erase] = 1 }
        let error = await #expect(throws: DfuSeError.self) {
            try await bench.client.erase(sectorsAt: [0x0800_0800], in: layout(l476Layout))
        }
        #expect(error?.transportError?.kind == .stall)
    }

    @Test("stalls during a data block are never tolerated, even on L4")
    func stallsOnlyDuringErase() async throws {
        let bench = try Bench(layout: l476Layout, quirks: McuFamily.l476.quirks)
        await bench.device.configure { $0.stallsDuring[.data] = 1 }
        let error = await #expect(throws: DfuSeError.self) { try await bench.client.write(patternBytes(16), at: 0x0800_0000) }
        #expect(error?.transportError?.kind == .stall)
        #expect(error?.operation == .download(block: 2, address: 0x0800_0000, length: 16))
    }

    // MARK: H7: stuck in dfuDNBUSY

    @Test("H7: a data block stuck in dfuDNBUSY is recovered with two CLRSTATUS, checked, and written again")
    func h7StuckBlockNotWritten() async throws {
        let bench = try Bench(layout: h753Layout, transferSize: 1024, quirks: McuFamily.h753.quirks)
        await bench.device.configure { $0.stuck = (.data, 2, .notPerformed) }
        let bytes = patternBytes(2048)
        try await bench.client.write(bytes, at: 0x0800_0000)

        let log = await bench.log
        let expected =
            ["GETSTATUS"] + commandRequests(.setAddress(0x0800_0000))
            + ["DNLOAD 2 (1024 bytes)"] + Array(repeating: "GETSTATUS", count: 100)
            + ["CLRSTATUS", "CLRSTATUS", "GETSTATUS"] // recovery
            + commandRequests(.setAddress(0x0800_0000)) + ["ABORT", "GETSTATUS", "UPLOAD 2 (1024)"] // look first
            + ["ABORT", "GETSTATUS"] + commandRequests(.setAddress(0x0800_0000)) // erased: write it again
            + blockRequests(2, 1024) + blockRequests(3, 1024)
        #expect(log == expected)
        #expect(await bench.device.bytes(at: 0x0800_0000, count: 2048) == bytes)
        #expect(await bench.device.programCount.values.allSatisfy { $0 == 1 }, "no flash word written twice (seed 004)")
        #expect(bench.events.events.contains(.quirk(.recoveredStuckBusy(clearStatusCount: 2))))
    }

    @Test("H7: a stuck block that was in fact programmed is not written again")
    func h7StuckBlockAlreadyWritten() async throws {
        let bench = try Bench(layout: h753Layout, transferSize: 1024, quirks: McuFamily.h753.quirks)
        await bench.device.configure { $0.stuck = (.data, 2, .performed) }
        let bytes = patternBytes(2048)
        try await bench.client.write(bytes, at: 0x0800_0000)
        #expect(await bench.device.bytes(at: 0x0800_0000, count: 2048) == bytes)
        #expect(await bench.device.programCount.values.allSatisfy { $0 == 1 })
        // The second block starts a new run at its own address.
        #expect(
            await bench.log.filter { $0.hasPrefix("DNLOAD") }
                == [
                    "DNLOAD 0 SET_ADDRESS 0x8000000", "DNLOAD 2 (1024 bytes)", "DNLOAD 0 SET_ADDRESS 0x8000000",
                    "DNLOAD 0 SET_ADDRESS 0x8000400", "DNLOAD 2 (1024 bytes)"
                ])
    }

    @Test("H7: a stuck block left half written is a typed error, never a second write over it")
    func h7StuckBlockHalfWritten() async throws {
        let bench = try Bench(layout: h753Layout, transferSize: 1024, quirks: McuFamily.h753.quirks)
        await bench.device.configure { $0.stuck = (.data, 2, .halfWritten) }
        await #expect(throws: DfuSeError.blockLeftIncomplete(address: 0x0800_0000, length: 1024, sector: nil)) {
            try await bench.client.write(patternBytes(2048), at: 0x0800_0000)
        }
        #expect(await bench.device.programCount.values.allSatisfy { $0 == 1 })
    }

    @Test("H7: a stuck erase command is sent again after the recovery")
    func h7StuckErase() async throws {
        let bench = try Bench(layout: h753Layout, transferSize: 1024, quirks: McuFamily.h753.quirks)
        await bench.device.configure { $0.stuck = (.erase, 2, .notPerformed) }
        try await bench.client.erase(sectorsAt: [0x0802_0000], in: layout(h753Layout))
        #expect(await bench.log.filter { $0.hasPrefix("DNLOAD") } == ["DNLOAD 0 ERASE 0x8020000", "DNLOAD 0 ERASE 0x8020000"])
        #expect(await bench.device.erasedSectorStarts == [0x0802_0000])
    }

    @Test("without the H7 quirk a device stuck in dfuDNBUSY is a typed error after 100 zero polls")
    func stuckWithoutQuirk() async throws {
        let bench = try Bench(layout: h753Layout, transferSize: 1024, quirks: McuFamily.f407.quirks)
        await bench.device.configure { $0.stuck = (.data, 2, .notPerformed) }
        await #expect(
            throws: DfuSeError.stuckBusy(
                during: .download(block: 2, address: 0x0800_0000, length: 1024),
                polls: 100, elapsed: .zero)
        ) {
            try await bench.client.write(patternBytes(1024), at: 0x0800_0000)
        }
        #expect(!(await bench.log.contains("CLRSTATUS")))
    }

    // MARK: The generic rule

    @Test("any device answering dfuDNBUSY with poll timeout 0 a hundred times in a row is stuck")
    func genericStuckRule() async throws {
        let bench = try Bench()
        try await bench.client.abortToIdle()
        await bench.device.clearLog()
        await bench.device.configure { $0.hangForever = true }
        let error = await #expect(throws: DfuSeError.self) { try await bench.client.setAddress(0x0800_0000) }
        #expect(error == .stuckBusy(during: .setAddress(0x0800_0000), polls: 100, elapsed: .zero))
        #expect(await bench.log.count { $0 == "GETSTATUS" } == 100)
        #expect(error?.description.contains("dfuDNBUSY") == true)
    }

    @Test("a device busy with non-zero poll timeouts for longer than any flash operation takes is stuck")
    func busyTooLong() async throws {
        var options = DfuSeClient.Options()
        options.maxBusyTime = .seconds(2)
        let bench = try Bench(options: options)
        await bench.device.configure {
            $0.reportedPollMs[.erase] = 500
            $0.actualDuration[.erase] = .seconds(10)
        }
        let error = await #expect(throws: DfuSeError.self) {
            try await bench.client.erase(sectorsAt: [0x0800_0000], in: layout(f407Layout))
        }
        guard case .stuckBusy(.eraseSector(0x0800_0000), _, let elapsed) = error else {
            Issue.record("unexpected \(String(describing: error))")
            return
        }
        #expect(elapsed > .seconds(2) && elapsed < .seconds(3))
    }
}

@Suite("DfuSe client: a device found hung at the start of a session")
struct StuckAtStartTests {
    @Test("H7: a ROM found hung in dfuDNBUSY is cleared with two CLRSTATUS before anything else")
    func h7HungAtStart() async throws {
        let bench = try Bench(layout: h753Layout, transferSize: 1024, quirks: McuFamily.h753.quirks)
        // Leave the device hung in an erase the previous session started.
        await bench.device.configure { $0.stuck = (.erase, 2, .notPerformed) }
        try await bench.device.controlOut(
            .classOut(DFURequest.download.rawValue, value: 0, interface: 0),
            data: DfuSeCommand.erase(0x0800_0000).bytes, timeout: .seconds(1))
        _ = try await bench.device.controlIn(
            .classIn(DFURequest.getStatus.rawValue, value: 0, interface: 0),
            length: 6, timeout: .seconds(1))
        await bench.device.clearLog()

        #expect(try await bench.client.abortToIdle() == .downloadBusy)
        #expect(await bench.log == Array(repeating: "GETSTATUS", count: 100) + ["CLRSTATUS", "CLRSTATUS", "GETSTATUS"])
        #expect(await bench.device.state == .dfuIdle)
    }

    @Test("without the quirk a device found hung is a typed error, and no CLRSTATUS is sent")
    func hungAtStartWithoutQuirk() async throws {
        let bench = try Bench(quirks: McuFamily.f407.quirks)
        await bench.device.configure { $0.hangForever = true }
        try await bench.device.controlOut(
            .classOut(DFURequest.download.rawValue, value: 0, interface: 0),
            data: DfuSeCommand.erase(0x0800_0000).bytes, timeout: .seconds(1))
        _ = try await bench.device.controlIn(
            .classIn(DFURequest.getStatus.rawValue, value: 0, interface: 0),
            length: 6, timeout: .seconds(1))
        await #expect(throws: DfuSeError.stuckBusy(during: .returnToIdle, polls: 100, elapsed: .zero)) {
            try await bench.client.abortToIdle()
        }
        #expect(!(await bench.log.contains("CLRSTATUS")))
    }
}
