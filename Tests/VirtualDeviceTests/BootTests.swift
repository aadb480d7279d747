import DeviceProfiles
import DfuSe
import FirmwareImage
import Foundation
import HexFormat
import Testing
import USBTransport

@testable import VirtualDevice

@Suite("Virtual unit: boot, leave, option bytes")
struct BootTests {
    @Test("seed 001: F4 starts the application from a leave to the vector base")
    func f4LeaveToVectorBase() async throws {
        let unit = unitInDFU(.f407)
        try await flash(applicationImage(for: .f407, size: 4096), to: unit)
        let outcome = try await client(unit).leave(jumpTo: 0x0800_0000)
        #expect(outcome == .manifesting || outcome == .deviceLeftBus)
        #expect(unit.currentMode == .application)
    }

    @Test("seed 001: an H7 left to the vector base hangs; left to its reset handler it runs")
    func h7LeaveNeedsResetHandler() async throws {
        let unit = unitInDFU(.h753)
        let image = applicationImage(for: .h753, size: 4096)
        try await flash(image, to: unit)
        _ = try await client(unit).leave(jumpTo: 0x0800_0000)
        #expect(unit.currentMode == .hung)
        unit.setBoot0(true)
        unit.powerCycle()
        unit.setBoot0(false)
        _ = try await client(unit).leave(jumpTo: image.word(at: 0x0800_0004)!)
        #expect(unit.currentMode == .application)
    }

    @Test("a blank non-empty-check part shows nothing (G474, L476); an empty-check part boots the ROM (L43x)")
    func blankParts() throws {
        for family in [McuFamily.g474, .l476] {
            let unit = VirtualUnit(family: family, uid: VirtualUnit.uid(index: 2), portPath: "1-2", clock: VirtualClock())
            unit.powerCycle()
            #expect(unit.currentMode == .hung)
            #expect(unit.presence == nil)
        }
        let l4 = VirtualUnit(
            family: try #require(McuFamily.named("l43x")), uid: VirtualUnit.uid(index: 3), portPath: "1-3",
            clock: VirtualClock())
        l4.powerCycle()
        #expect(l4.currentMode == .rom)
    }

    @Test("empty check: after the first programming an L43x keeps booting the ROM until a power cycle")
    func emptyCheckLatch() async throws {
        let l43x = try #require(McuFamily.named("l43x"))
        let unit = VirtualUnit(family: l43x, uid: VirtualUnit.uid(index: 1), portPath: "1-1", clock: VirtualClock())
        unit.powerCycle()
        try await flash(applicationImage(for: l43x, size: 4096), to: unit)
        unit.applicationRequestsBootloader() // a system reset
        #expect(unit.currentMode == .rom)
        unit.powerCycle()
        #expect(unit.currentMode == .application)
    }

    @Test("seed 000: the application's enter-bootloader magic lands in the ROM once, then is cleared")
    func backupRegisterMagic() async throws {
        let unit = unitInDFU(.g474)
        try await flash(applicationImage(for: .g474, size: 4096), to: unit)
        unit.powerCycle()
        #expect(unit.currentMode == .application)
        unit.applicationRequestsBootloader()
        #expect(unit.currentMode == .rom)
        #expect(unit.backupRegister(0) == 0)
        unit.powerCycle()
        #expect(unit.currentMode == .application)
    }

    @Test("seed 003: writing DBANK resets the G474; after a software entry it boots from flash, not the ROM")
    func optionByteWriteResets() async throws {
        let unit = unitInDFU(.g474)
        #expect(unit.flashMode.name == "dual bank")
        let raw = try RawDFU(unit)
        try await raw.command(.setAddress(McuFamily.g474.optionBytes.address))
        _ = try await raw.settle(clock: unit.clock)
        var options = unit.snapshot().optionBytes
        options = String(options.prefix(4)) + "AF" + String(options.dropFirst(6)) // clear bit 22 (DBANK)
        try await raw.download(block: 2, Array(Hex.bytes(fromHex: options)!.prefix(8)))
        _ = try await raw.status()
        _ = try? await raw.settle(clock: unit.clock)
        #expect(unit.flashMode.name == "single bank")
        #expect(unit.currentMode == .hung, "blank flash, BOOT0 low: nothing boots (the seed's timeout)")
        unit.setBoot0(true)
        unit.powerCycle()
        #expect(unit.currentMode == .rom)
        #expect(try VirtualDFUTransport(unit: unit).alternateSettings[0].name == McuFamily.g474.flashModes[1].layoutString)
    }

    @Test("the bus reports the ROM leaving and the unit coming back on the same port")
    func busEvents() async throws {
        let unit = unitInDFU(.f407)
        let bus = VirtualBus(units: [unit])
        let events = bus.events()
        #expect(try await bus.devices().count == 1)
        unit.setBoot0(true)
        unit.powerCycle()
        var iterator = events.makeAsyncIterator()
        let first = await iterator.next()
        let second = await iterator.next()
        guard case .left(let old) = first, case .arrived(let new) = second else {
            Issue.record("expected left then arrived, got \(String(describing: first)), \(String(describing: second))")
            return
        }
        #expect(old.identity.portPath == "1-1" && new.identity.portPath == "1-1")
        let transport = try await bus.openDFU(new.identity)
        #expect(transport.identity.serialNumber == unit.romSerial)
    }

    @Test("a handle dies when the unit re-enumerates")
    func staleHandle() async throws {
        let unit = unitInDFU(.f407)
        let raw = try RawDFU(unit)
        unit.setBoot0(true)
        unit.powerCycle()
        await #expect(throws: TransportError.self) { _ = try await raw.status() }
        #expect(try await RawDFU(unit).status().state == .dfuIdle)
    }
}
