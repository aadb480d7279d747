import DeviceProfiles
import DfuSeWire
import Testing
import USBTransport

@testable import DfuSe

@Suite("DfuSe client: requests on the wire")
struct ClientProtocolTests {
    @Test("a 5 KiB write: set-address, blocks 2 and 3, then the short tail as block 2 after its own set-address")
    func fiveKiBWrite() async throws {
        let bench = try Bench()
        let bytes = patternBytes(5 * 1024)
        try await bench.client.write(bytes, at: 0x0800_0000)

        // A ROM may place block n at pointer + (n − 2) × that request's wLength (AN2662 §4.4.1): a 1 KiB block 4 would
        // land at 0x08000800, over block 3.
        let expected =
            ["GETSTATUS"] // the unknown start state is checked first
            + commandRequests(.setAddress(0x0800_0000))
            + blockRequests(2, 2048) + blockRequests(3, 2048)
            + commandRequests(.setAddress(0x0800_1000)) + blockRequests(2, 1024)
        #expect(await bench.log == expected)
        #expect(await bench.device.bytes(at: 0x0800_0000, count: bytes.count) == bytes)
        #expect(await bench.client.controlTransferCount == expected.count)
        #expect(await bench.client.statistics.count(.download) == 5)
    }

    @Test("block addresses follow (wBlockNum − 2) × wLength + pointer: full blocks of the descriptor's size, a short tail apart")
    func blockAddressesUseTheDescriptorsTransferSize() async throws {
        let bench = try Bench(layout: h753Layout, transferSize: 1024)
        let bytes = patternBytes(3000)
        try await bench.client.write(bytes, at: 0x0802_0000)
        #expect(
            await bench.log.filter { $0.hasPrefix("DNLOAD") }
                == [
                    "DNLOAD 0 SET_ADDRESS 0x8020000", "DNLOAD 2 (1024 bytes)", "DNLOAD 3 (1024 bytes)",
                    "DNLOAD 0 SET_ADDRESS 0x8020800", "DNLOAD 2 (952 bytes)"
                ])
        #expect(await bench.device.bytes(at: 0x0802_0000, count: bytes.count) == bytes)
    }

    @Test("the clock advances by exactly the poll timeouts the device reports")
    func pollTimeoutsAreHonoured() async throws {
        let bench = try Bench()
        await bench.device.configure {
            $0.reportedPollMs[.command] = 7
            $0.reportedPollMs[.data] = 11
        }
        try await bench.client.write(patternBytes(5 * 1024), at: 0x0800_0000)
        // Two set-addresses (the run's, and the short tail's) and three blocks.
        #expect(bench.clock.now() == .milliseconds(2 * 7 + 3 * 11))
        #expect(await bench.client.statistics.pollWait == .milliseconds(47))
    }

    @Test("an operation still busy after its poll timeout is polled again until it is done")
    func longerOperationsArePolledAgain() async throws {
        let bench = try Bench()
        await bench.device.configure {
            $0.reportedPollMs[.erase] = 50
            $0.actualDuration[.erase] = .milliseconds(250)
        }
        try await bench.client.erase(sectorsAt: [0x0800_4000], in: layout(f407Layout))
        #expect(bench.clock.now() == .milliseconds(250))
        #expect(await bench.log == ["GETSTATUS", "DNLOAD 0 ERASE 0x8004000"] + Array(repeating: "GETSTATUS", count: 6))
    }

    @Test("read: set address, ABORT to dfuIDLE, UPLOAD blocks from 2, a short tail as its own run, then back to dfuIDLE")
    func readSequence() async throws {
        let bench = try Bench()
        let content = patternBytes(5000, seed: 9)
        await bench.device.preload(content, at: 0x0800_8000)
        let read = try await bench.client.read(address: 0x0800_8000, length: 5000)
        #expect(read == content)
        #expect(
            await bench.log == ["GETSTATUS"] + commandRequests(.setAddress(0x0800_8000))
                + ["ABORT", "GETSTATUS", "UPLOAD 2 (2048)", "UPLOAD 3 (2048)", "ABORT", "GETSTATUS"]
                // The short tail is its own run (its address follows its wLength, AN2662 §4.4.1).
                + commandRequests(.setAddress(0x0800_9000)) + ["ABORT", "GETSTATUS", "UPLOAD 2 (904)", "ABORT", "GETSTATUS"])
        #expect(await bench.device.state == .dfuIdle)
        #expect(bench.events.events.last == .phaseFinished(.read))
        #expect(bench.events.events.contains(.bytesRead(done: 5000, total: 5000)))
    }

    @Test("a read of nothing sends nothing but the start check; a range past 4 GiB is refused")
    func readEdges() async throws {
        let bench = try Bench()
        #expect(try await bench.client.read(address: 0x0800_0000, length: 0) == [])
        await #expect(throws: DfuSeError.addressRangeOverflow(address: 0xFFFF_FFF0, length: 32)) {
            _ = try await bench.client.read(address: 0xFFFF_FFF0, length: 32)
        }
    }

    @Test("an UPLOAD that returns fewer bytes than asked is a short read at that block's address")
    func shortRead() async throws {
        let bench = try Bench()
        await bench.device.configure { $0.shortUpload = true }
        await #expect(throws: DfuSeError.shortRead(address: 0x0800_0000, expected: 100, got: 99)) {
            _ = try await bench.client.read(address: 0x0800_0000, length: 100)
        }
    }

    @Test("get commands reads UPLOAD block 0 and returns to dfuIDLE")
    func getCommands() async throws {
        let bench = try Bench()
        #expect(try await bench.client.getCommands() == [0x00, 0x21, 0x41, 0x92])
        #expect(await bench.log == ["GETSTATUS", "UPLOAD 0 (2048)", "ABORT", "GETSTATUS"])
        #expect(await bench.device.state == .dfuIdle)
    }

    @Test("a command list not starting with the get-commands code is malformed")
    func malformedCommandList() async throws {
        let bench = try Bench()
        await bench.device.configure { $0.commandList = [0x21, 0x41] }
        await #expect(throws: DfuSeError.malformedCommandList([0x21, 0x41])) { _ = try await bench.client.getCommands() }
    }

    @Test("a GETSTATUS answer that is not a DFU status is a typed error naming the operation")
    func garbledStatus() async throws {
        let bench = try Bench()
        try await bench.client.abortToIdle()
        await bench.device.configure { $0.garbledStatus = [0x00, 0x05, 0x00, 0x00, 0x42, 0x00] }
        await #expect(
            throws: DfuSeError.malformedStatus(
                [0x00, 0x05, 0x00, 0x00, 0x42, 0x00],
                during: .setAddress(0x0800_0000))
        ) {
            try await bench.client.setAddress(0x0800_0000)
        }
    }

    @Test("mass erase and read unprotect need the explicit consent values and send the right commands")
    func destructiveCommands() async throws {
        let bench = try Bench()
        await bench.device.preload([1, 2, 3, 4], at: 0x0802_0000)
        try await bench.client.massErase(.operatorRequestedMassErase)
        #expect(await bench.device.byte(at: 0x0802_0000) == 0xFF)
        #expect(await bench.log.contains("DNLOAD 0 MASS_ERASE"))
        #expect(bench.events.events.contains(.massErased))

        let reset = try await bench.client.readUnprotect(.operatorRequestedFullWipe)
        #expect(reset, "the ROM wipes the flash and resets, so the device leaves the bus")
        #expect(await bench.log.suffix(3) == ["DNLOAD 0 READ_UNPROTECT", "GETSTATUS", "GETSTATUS"])
        #expect(bench.events.events.contains(.readUnprotected(deviceReset: true)))
        #expect(await bench.client.lastKnownState == nil)
    }

    @Test("prepare selects the alternate setting, parses its layout and checks the state")
    func prepare() async throws {
        let bench = try Bench()
        let parsed = try await bench.client.prepare(alternateSetting: 0)
        #expect(parsed == (try layout(f407Layout)))
        #expect(await bench.log == ["SET_INTERFACE 0", "GETSTATUS"])
        await #expect(throws: DfuSeError.noSuchAlternateSetting(7, available: [0, 1])) {
            try await bench.client.prepare(alternateSetting: 7)
        }
    }

    @Test("a descriptor with wTransferSize 0 or a plain DFU version is refused before any transfer")
    func descriptorChecks() throws {
        let clock = VirtualClock()
        let zero = try FakeDfuSeDevice(transferSize: 0, clock: clock)
        #expect(throws: DfuSeError.invalidTransferSize(0)) { _ = try DfuSeClient(transport: zero, clock: clock) }
        let plain = try FakeDfuSeDevice(clock: clock, bcdDFU: 0x0110)
        #expect(throws: DfuSeError.notDfuSe(bcdDFU: 0x0110)) { _ = try DfuSeClient(transport: plain, clock: clock) }
    }
}

@Suite("DfuSe client: every path back to dfuIDLE")
struct ReturnToIdleTests {
    @Test("dfuIDLE needs nothing but one GETSTATUS")
    func alreadyIdle() async throws {
        let bench = try Bench()
        #expect(try await bench.client.abortToIdle() == .dfuIdle)
        #expect(await bench.log == ["GETSTATUS"])
        #expect(bench.events.events.isEmpty)
    }

    @Test("dfuERROR is cleared with CLRSTATUS")
    func fromError() async throws {
        let bench = try Bench(initialState: .error)
        #expect(try await bench.client.abortToIdle() == .error)
        #expect(await bench.log == ["GETSTATUS", "CLRSTATUS", "GETSTATUS"])
        #expect(await bench.device.state == .dfuIdle)
        #expect(bench.events.events == [.returnedToIdle(from: .error)])
    }

    @Test("dfuDNLOAD-IDLE and dfuUPLOAD-IDLE are left with ABORT", arguments: [DFUState.downloadIdle, .uploadIdle])
    func fromIdleStates(state: DFUState) async throws {
        let bench = try Bench(initialState: state)
        #expect(try await bench.client.abortToIdle() == state)
        #expect(await bench.log == ["GETSTATUS", "ABORT", "GETSTATUS"])
        #expect(await bench.device.state == .dfuIdle)
    }

    @Test("the first operation of a session brings a device found in dfuERROR back before its command")
    func firstOperationRecovers() async throws {
        let bench = try Bench(initialState: .error)
        try await bench.client.setAddress(0x0800_0000)
        #expect(await bench.log == ["GETSTATUS", "CLRSTATUS", "GETSTATUS"] + commandRequests(.setAddress(0x0800_0000)))
    }

    @Test("a device running its application is not in DFU mode", arguments: [DFUState.appIdle, .appDetach])
    func applicationStates(state: DFUState) async throws {
        let bench = try Bench(initialState: state)
        await #expect(throws: DfuSeError.notInDfuMode(state)) { try await bench.client.abortToIdle() }
    }

    @Test("after a DFU error status the client sends CLRSTATUS, so the device is back in dfuIDLE")
    func errorStatusIsCleared() async throws {
        let bench = try Bench()
        try await bench.client.prepare()
        await bench.device.configure { $0.statusFault = (.data, .errProg) }
        let error = await #expect(throws: DfuSeError.self) {
            try await bench.client.write(patternBytes(4096), at: 0x0800_4000)
        }
        let sector = try layout(f407Layout).sector(containing: 0x0800_4000)
        #expect(
            error
                == .deviceStatus(
                    .errProg, state: .error,
                    during: .download(block: 2, address: 0x0800_4000, length: 2048), sector: sector))
        #expect(await bench.log.last == "CLRSTATUS")
        #expect(await bench.device.state == .dfuIdle)
        #expect(await bench.client.lastKnownState == .dfuIdle)
        let text = error?.description ?? ""
        #expect(text.contains("errPROG") && text.contains("0x08004000") && text.contains("sector 1"), "\(text)")
    }

    @Test(
        "an error status on a command names the command, its address and the state",
        arguments: [
            DFUStatus.errTarget, .errErase, .errVendor, .errAddress
        ])
    func commandErrorStatuses(status: DFUStatus) async throws {
        let bench = try Bench()
        await bench.device.configure { $0.statusFault = (.erase, status) }
        let error = await #expect(throws: DfuSeError.self) {
            try await bench.client.erase(sectorsAt: [0x0802_0000], in: layout(f407Layout))
        }
        let sector = try layout(f407Layout).sector(containing: 0x0802_0000)
        #expect(error == .deviceStatus(status, state: .error, during: .eraseSector(0x0802_0000), sector: sector))
        #expect(error?.category == .deviceError)
        #expect(await bench.device.state == .dfuIdle)
    }
}

@Suite("DfuSe client: leaving DFU")
struct LeaveTests {
    @Test("leave sets the jump address, sends a zero-length DNLOAD and accepts dfuMANIFEST")
    func leaveManifests() async throws {
        let bench = try Bench()
        try await bench.client.abortToIdle()
        let outcome = try await bench.client.leave(jumpTo: 0x0800_0000)
        #expect(outcome == .manifesting)
        #expect(
            await bench.log == ["GETSTATUS"] + commandRequests(.setAddress(0x0800_0000))
                + ["DNLOAD 0 (0 bytes)", "GETSTATUS"])
        #expect(bench.events.events.contains(.left(jumpTo: 0x0800_0000, outcome: .manifesting)))
        #expect(await bench.client.lastKnownState == nil)
    }

    @Test(
        "a device that vanishes, stalls or times out on the last GETSTATUS has left: success",
        arguments: [FakeDfuSeDevice.LeaveBehaviour.disconnectOnStatus, .stallOnStatus, .timeoutOnStatus])
    func leaveToleratesVanishing(behaviour: FakeDfuSeDevice.LeaveBehaviour) async throws {
        let bench = try Bench()
        await bench.device.configure { $0.leave = behaviour }
        #expect(try await bench.client.leave(jumpTo: 0x0800_0199) == .deviceLeftBus)
        #expect(await bench.log.suffix(2) == ["DNLOAD 0 (0 bytes)", "GETSTATUS"])
    }

    @Test("a leave the device refuses with an error status is an error, not a success")
    func leaveErrorStatus() async throws {
        let bench = try Bench()
        await bench.device.configure { $0.leave = .errorStatus(.errAddress) }
        let error = await #expect(throws: DfuSeError.self) { try await bench.client.leave(jumpTo: 0x2000_0000) }
        guard case .deviceStatus(.errAddress, .error, .leave(jumpTo: 0x2000_0000), _) = error else {
            Issue.record("unexpected \(String(describing: error))")
            return
        }
    }

    @Test("the H7 strategy: leave to the reset handler, an address inside the image (seed 001)")
    func leaveToResetHandler() async throws {
        let bench = try Bench(layout: h753Layout, transferSize: 1024)
        #expect(try await bench.client.leave(jumpTo: 0x0800_BA65) == .manifesting)
        #expect(await bench.log.contains("DNLOAD 0 SET_ADDRESS 0x800BA65"))
    }
}
