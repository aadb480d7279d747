import DeviceProfiles
import DfuSe
import FirmwareImage
import Foundation
import Testing
import USBTransport

@testable import VirtualDevice

@Suite("Virtual unit: injected faults and saved state")
struct FaultTests {
    @Test("power lost during the Nth flash operation leaves it torn and the unit off")
    func powerLossTearsOperation() async throws {
        let unit = unitInDFU(.g474, faults: FaultPlan(powerLossAtFlashOperation: 3))
        let image = applicationImage(for: .g474, size: 16 * 1024)
        await #expect(throws: DfuSeError.self) { try await flash(image, to: unit) }
        #expect(unit.currentMode == .off)
        #expect(unit.flashOperations == 3)
        unit.setFaults(.none)
        unit.setBoot0(true)
        unit.powerCycle()
        #expect(unit.currentMode == .rom, "the ROM is still reachable through BOOT0")
        try await flash(image, to: unit)
        #expect(unit.flashContents().read(0x0800_0000, count: image.payloadSize) == image.segments[0].bytes)
    }

    /// Issue 23: only the option-byte write can reset the unit. A stall on SET_ADDRESS (nothing written) is
    /// the ROM refusing the address, never "the device left": the unit is still there, unchanged.
    @Test("a stall on the option bytes' SET_ADDRESS is a refusal with nothing written", arguments: [1, 3])
    func optionBytesSetAddressStall(stalls: Int) async throws {
        let family = McuFamily.g474
        let unit = unitInDFU(family)
        let before = unit.lock.withLock { unit.optionBytes }
        let dfu = try client(unit)
        let address = String(format: "/0x%08X/", family.optionBytes.address)
        let alternate = try #require(VirtualDFUTransport(unit: unit).alternateSettings.first { $0.name.contains(address) })
        _ = try await dfu.prepare(alternateSetting: alternate.number)
        // The next transfer is SET_ADDRESS's DNLOAD (the client knows the state after `prepare`).
        unit.resetCounters()
        unit.setFaults(FaultPlan(stallAtTransfer: 1, stallCount: stalls))
        var changed = before
        changed[0] ^= 0x01
        do {
            let left = try await dfu.writeOptionBytes(changed, at: family.optionBytes.address, .operatorRequestedOptionBytes)
            Issue.record("the write returned (left: \(left)) after its SET_ADDRESS stalled")
        } catch {
            #expect(error == .optionBytesAddressRefused(family.optionBytes.address), "\(error)")
            #expect(error.category == .refused, "\(error)")
        }
        #expect(unit.currentMode == .rom, "the unit did not leave")
        #expect(unit.lock.withLock { unit.optionBytes } == before, "nothing was written")
        #expect(!unit.requestLog.contains { if case .download(block: 2, _, _) = $0.kind { true } else { false } }, "no DNLOAD of data")
    }

    @Test("a torn program corrupts the ECC word it stopped in")
    func tornProgram() async throws {
        let unit = unitInDFU(.l476)
        let raw = try RawDFU(unit)
        try await raw.command(.setAddress(0x0800_0000))
        _ = try await raw.settle(clock: unit.clock)
        unit.setFaults(FaultPlan(powerLossAtFlashOperation: unit.flashOperations + 1))
        try await raw.download(block: 2, [UInt8](repeating: 0, count: 2048))
        await #expect(throws: TransportError.self) { _ = try await raw.status() }
        #expect(unit.corruptedWords == [0x0800_0400])
    }

    @Test("the cable pulled at transfer N: the unit is gone until plugged in again")
    func disconnect() async throws {
        let unit = unitInDFU(.f407, faults: FaultPlan(disconnectAtTransfer: 5))
        await #expect(throws: DfuSeError.self) { try await flash(applicationImage(for: .f407, size: 8192), to: unit) }
        #expect(unit.currentMode == .off)
        #expect(unit.controlTransfers == 5)
    }

    @Test("a status error at a given block arrives on the GETSTATUS after it, once")
    func statusErrorAtBlock() async throws {
        let unit = unitInDFU(.f407, faults: FaultPlan(statusErrorAtBlock: .init(block: 3, status: .errProg)))
        do {
            try await flash(applicationImage(for: .f407, size: 8192), to: unit)
            Issue.record("the injected errPROG did not surface")
        } catch let error as DfuSeError {
            #expect(error.category == .deviceError)
            #expect(error.description.contains("errPROG"))
        }
    }

    @Test("stalls at transfer N come as TransportError stalls")
    func stalls() async throws {
        let unit = unitInDFU(.f407, faults: FaultPlan(stallAtTransfer: 1, stallCount: 2))
        let raw = try RawDFU(unit)
        await #expect(throws: TransportError.self) { _ = try await raw.status() }
        await #expect(throws: TransportError.self) { _ = try await raw.status() }
        #expect(try await raw.status().state == .dfuIdle)
    }

    @Test("a GETSTATUS that stalls when a session starts is answered with CLRSTATUS; a device that keeps stalling is an error")
    func stalledStatusAtStart() async throws {
        let unit = unitInDFU(.f407, faults: FaultPlan(stallAtTransfer: 1))
        #expect(try await client(unit).prepare().zones.first?.start == 0x0800_0000)
        let kinds = unit.requestLog.map(\.kind)
        #expect(kinds.filter { $0 == .clearStatus }.count == 1, "\(kinds)")

        let stubborn = unitInDFU(.f407, faults: FaultPlan(stallAtTransfer: 1, stallCount: 6))
        await #expect(throws: DfuSeError.self) { try await client(stubborn).prepare() }
    }

    @Test("a unit that never comes back after a reset stays off the bus")
    func neverComesBack() async throws {
        let unit = unitInDFU(.f407)
        try await flash(applicationImage(for: .f407, size: 4096), to: unit)
        unit.setFaults(FaultPlan(neverReturnAfterReset: true))
        _ = try await client(unit).leave(jumpTo: 0x0800_0000)
        #expect(unit.currentMode == .off)
        #expect(unit.presence == nil)
    }

    @Test("H7 stuck in dfuDNBUSY: the client's CLRSTATUS recovers and the image is still right")
    func h7StuckBusy() async throws {
        let unit = unitInDFU(.h753, faults: FaultPlan(stuckBusyAtFlashOperation: 3))
        let image = applicationImage(for: .h753, size: 6000)
        try await flash(image, to: unit)
        #expect(unit.flashContents().read(0x0800_0000, count: image.payloadSize) == image.segments[0].bytes)
        #expect(unit.corruptedWords.isEmpty)
    }

    @Test("a saved unit comes back with the same flash, ECC state, registers and mode")
    func snapshotRoundTrip() async throws {
        let unit = unitInDFU(.l476)
        try await flash(applicationImage(for: .l476, size: 5000), to: unit)
        unit.programDirectly([1, 2, 3, 4, 5, 6, 7, 8], at: 0x0808_0000)
        unit.programDirectly([1, 2, 3, 4, 5, 6, 7, 8], at: 0x0808_0000) // corrupt one word
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("vunit-\(UUID()).json")
        defer { try? FileManager.default.removeItem(at: url) }
        try unit.save(to: url)
        let restored = try VirtualUnit.load(from: url, clock: VirtualClock())
        #expect(restored.snapshot() == unit.snapshot())
        #expect(restored.corruptedWords == [0x0808_0000])
        #expect(restored.currentMode == .rom)
        #expect(try await client(restored).read(address: 0x0800_0000, length: 5000) == Array(unit.flashContents().bytes.prefix(5000)))
    }

    @Test(
        "hostile state files get an error naming the file and the field",
        arguments: [
            "not json", "{}", #"{"format":9}"#
        ])
    func hostileStateFiles(text: String) throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("vunit-\(UUID()).json")
        defer { try? FileManager.default.removeItem(at: url) }
        try Data(text.utf8).write(to: url)
        #expect(throws: VirtualDeviceError.self) { _ = try VirtualUnit.load(from: url, clock: VirtualClock()) }
    }

    @Test("a state file whose flash run lies outside the flash is refused")
    func flashRunOutside() throws {
        var snapshot = unitInDFU(.g474).snapshot()
        snapshot.flash = [.init(offset: 512 * 1024, data: Data([1, 2, 3, 4, 5, 6, 7, 8]).base64EncodedString())]
        #expect(throws: VirtualDeviceError.self) { _ = try VirtualUnit.restore(snapshot, clock: VirtualClock(), source: "t.json") }
    }

    @Test("--simulate specs parse, and bad ones say what is expected")
    func simulationSpecs() throws {
        #expect(try SimulationSpec(parsing: "f407").description == "f407:dfu")
        #expect(try SimulationSpec(parsing: "G474-single:blank").flashModeIndex == 1)
        #expect(throws: VirtualDeviceError.self) { try SimulationSpec(parsing: "f103") }
        #expect(throws: VirtualDeviceError.self) { try SimulationSpec(parsing: "f407:warm") }
        #expect(throws: VirtualDeviceError.self) { try SimulationSpec(parsing: "f407-single") }
        let unit = try SimulationSpec(parsing: "h753:dfu").makeUnit(clock: VirtualClock())
        #expect(try SimulationSpec(parsing: "g474:programmed").makeUnit(clock: VirtualClock()).currentMode == .application)
        #expect(try SimulationSpec(parsing: "g474:corrupted").makeUnit(clock: VirtualClock()).currentMode == .hung)
        #expect(unit.currentMode == .rom)
    }
}
