import DeviceProfiles
import DfuSe
import FirmwareImage
import Foundation
import HexFormat
import Testing
import USBTransport

@testable import VirtualDevice

/// ROM behaviours from public logs and ST's notes (docs/silicon-sources.md), driven by the family data.
@Suite("Virtual ROM: behaviours the sources show")
struct RomBehaviourTests {
    @Test("F4 0x2200: set-address reports 104 ms and a sector erase 100 ms (modm's dfu-util -v log)")
    func reportedPollTimeouts() async throws {
        let unit = unitInDFU(.f407)
        let raw = try RawDFU(unit)
        try await raw.command(.setAddress(0x0800_0000))
        #expect(try await raw.status().pollTimeout == .milliseconds(104))
        _ = try await raw.settle(clock: unit.clock)
        try await raw.command(.erase(0x0800_0000))
        #expect(try await raw.status().pollTimeout == .milliseconds(100))
        #expect(try await raw.settle(clock: unit.clock).state == .downloadIdle)
    }

    @Test("set-address outside every memory the ROM knows gives errTARGET", arguments: [0x4000_0000 as UInt32, 0x0900_0000, 0xE000_0000])
    func setAddressRejected(address: UInt32) async throws {
        let unit = unitInDFU(.g474)
        let raw = try RawDFU(unit)
        try await raw.command(.setAddress(address))
        let report = try await raw.settle(clock: unit.clock)
        #expect(report.state == .error)
        #expect(report.status == .errTarget)
    }

    @Test("the ROM reads RAM, system memory, OTP and the UID as well as flash and option bytes")
    func readsBeyondFlash() async throws {
        let unit = unitInDFU(.g474)
        let dfu = try client(unit)
        _ = try await dfu.prepare()
        #expect(try await dfu.read(address: 0x2000_0000, length: 64).count == 64)
        #expect(try await dfu.read(address: McuFamily.g474.systemMemoryBase, length: 64).count == 64)
        #expect(try await dfu.read(address: 0x1FFF_7000, length: 1024) == [UInt8](repeating: 0xFF, count: 1024))
        #expect(try await dfu.read(address: McuFamily.g474.uidAddress, length: 12) == unit.uid)
        #expect(try await dfu.read(address: McuFamily.g474.optionBytes.address, length: 4) == McuFamily.g474.optionBytes.factoryBytes)
    }

    @Test("under read protection every upload fails with errVENDOR, option bytes included")
    func readProtectedUploads() async throws {
        let unit = unitInDFU(.f407)
        unit.lock.withLock { unit.optionBytes[McuFamily.f407.optionBytes.readProtectionByteOffset] = 0x55 }
        for address in [McuFamily.f407.flashBase, McuFamily.f407.optionBytes.address, 0x2000_0000] {
            let raw = try RawDFU(unit)
            try await raw.command(.setAddress(address))
            _ = try await raw.settle(clock: unit.clock)
            try await raw.abort()
            await #expect(throws: TransportError.self) { _ = try await raw.upload(block: 2, length: 16) }
            let report = try await raw.status()
            #expect(report.state == .error && report.status == .errVendor, "upload at \(Hex.digits(address, width: 8))")
            try await raw.clearStatus()
        }
    }

    @Test("an option-byte write must start at the base; one that does resets the unit when it ends, without a GETSTATUS")
    func optionByteWrite() async throws {
        let clock = VirtualClock()
        let unit = unitInDFU(.g474, clock: clock)
        let raw = try RawDFU(unit)
        let base = McuFamily.g474.optionBytes.address
        try await raw.command(.setAddress(base + 4))
        _ = try await raw.settle(clock: clock)
        try await raw.download(block: 2, [0xFF, 0xFF, 0xFF, 0xFF])
        let refused = try await raw.settle(clock: clock)
        #expect(refused.state == .error && refused.status == .errTarget)
        try await raw.clearStatus()

        let before = unit.currentEnumeration
        try await raw.command(.setAddress(base))
        _ = try await raw.settle(clock: clock)
        try await raw.download(block: 2, McuFamily.g474.optionBytes.factoryBytes)
        let busy = try await raw.status()
        #expect(busy.state == .downloadBusy)
        try await clock.sleep(for: busy.pollTimeout + .milliseconds(1))
        #expect(unit.currentEnumeration > before, "the option-byte load reset the unit by itself")
    }

    @Test("H7 rev V: stuck in dfuDNBUSY on an erase; the first CLRSTATUS leaves (errUNKNOWN, dfuERROR), the second dfuIDLE")
    func h7StuckOnErase() async throws {
        let unit = unitInDFU(.h753, faults: FaultPlan(stuckBusyAtFlashOperation: 1))
        let raw = try RawDFU(unit)
        try await raw.command(.setAddress(0x0810_0000))
        _ = try await raw.settle(clock: unit.clock)
        try await raw.command(.erase(0x0810_0000))
        for _ in 0..<5 {
            let report = try await raw.status()
            #expect(report.state == .downloadBusy && report.pollTimeout == .zero)
        }
        try await raw.clearStatus()
        let first = try await raw.status()
        #expect(first.state == .error && first.status == .errUnknown)
        try await raw.clearStatus()
        let second = try await raw.status()
        #expect(second.state == .dfuIdle && second.status == .ok)
    }

    @Test("a leave to an address outside flash and RAM resets the unit: the application starts, or the ROM on an empty-check part")
    func leaveOutsideFlashResets() async throws {
        let programmed = unitInDFU(.f407)
        try await flash(applicationImage(for: .f407, size: 4096), to: programmed)
        _ = try await client(programmed).leave(jumpTo: 0x1FFF_7800) // the OTP area
        #expect(programmed.currentMode == .application)

        let l43x = try #require(McuFamily.named("l43x"))
        let blankBoot = VirtualUnit(family: l43x, uid: VirtualUnit.uid(index: 4), portPath: "1-4", clock: VirtualClock())
        blankBoot.powerCycle() // empty flash: the empty check starts the ROM and latches until a power cycle
        try await flash(applicationImage(for: l43x, size: 4096), to: blankBoot)
        _ = try await client(blankBoot).leave(jumpTo: 0x1FFF_7000)
        #expect(blankBoot.currentMode == .rom)
    }
}
