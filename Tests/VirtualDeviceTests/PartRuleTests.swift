import DeviceProfiles
import DfuSe
import Foundation
import Testing
import USBTransport

@testable import VirtualDevice

/// Each part line's own bootloader rules (AN2606, issue 22) as the virtual unit plays them.
@Suite("Part-line bootloader rules", .timeLimit(.minutes(10)))
struct PartRuleTests {
    static let cannotJump = McuFamily.all.filter { !$0.applicationCanJumpToROM }
    static let canJump = McuFamily.all.filter(\.applicationCanJumpToROM)

    /// A unit of `family` running a flashed application.
    func running(_ family: McuFamily) async throws -> VirtualUnit {
        let unit = unitInDFU(family)
        try await flash(applicationImage(for: family, size: 4096), to: unit)
        unit.powerCycle()
        #expect(unit.currentMode == .application)
        return unit
    }

    @Test("where AN2606 forbids the jump, a plain jump comes back to user flash", arguments: cannotJump)
    func jumpGoesBackToFlash(family: McuFamily) async throws {
        let unit = try await running(family)
        unit.applicationJumpsToROM()
        #expect(unit.currentMode == .application)
        #expect(unit.backupRegister(0) == 0, "the start-up code consumed the magic")
        unit.setBoot0(true)
        unit.powerCycle()
        #expect(unit.currentMode == .rom, "BOOT0 still reaches the ROM")
    }

    @Test("where the jump is allowed, the application's request reaches the ROM", arguments: canJump.prefix(6))
    func jumpReachesROM(family: McuFamily) async throws {
        let unit = try await running(family)
        unit.applicationJumpsToROM()
        #expect(unit.currentMode == .rom)
    }

    @Test("F042's entry erases the first page and reloads the option bytes: the empty check starts the ROM")
    func eraseFirstPageEntry() async throws {
        let f042 = try #require(McuFamily.named("f042"))
        #expect(f042.applicationEntry == .eraseFirstPage)
        let unit = try await running(f042)
        let before = unit.flashContents().bytes
        unit.applicationRequestsBootloader()
        #expect(unit.currentMode == .rom)
        let page = 1024 // f042's layout: 1 KiB pages
        let after = unit.flashContents().bytes
        #expect(after.prefix(page).allSatisfy { $0 == 0xFF }, "the vector table's page is erased")
        #expect(after.dropFirst(page) == before.dropFirst(page), "nothing else is touched")
        unit.reset(.system)
        #expect(unit.currentMode == .rom, "the flag holds until the next option-byte load")
        unit.powerCycle()
        #expect(unit.currentMode == .rom, "power lost after the erase: the empty check keeps starting the ROM")
    }

    @Test("C071's entry forces the empty-check flag and resets: the ROM starts and nothing is erased")
    func forceEmptyFlagEntry() async throws {
        let c071 = try #require(McuFamily.named("c071"))
        #expect(c071.applicationEntry == .forceEmptyFlag)
        let unit = try await running(c071)
        let before = unit.flashContents().bytes
        unit.applicationRequestsBootloader()
        #expect(unit.currentMode == .rom)
        #expect(unit.flashContents().bytes == before)
        unit.powerCycle()
        #expect(unit.currentMode == .application, "a power-on reset evaluates the (programmed) first word again")
    }

    @Test("L0 has no entry: the request leaves the application running and the flash as it was")
    func noEntry() async throws {
        let l0 = try #require(McuFamily.named("l0"))
        #expect(l0.applicationEntry == .none && !l0.emptyCheck)
        let unit = try await running(l0)
        let before = unit.flashContents().bytes
        unit.applicationRequestsBootloader()
        #expect(unit.currentMode == .application)
        #expect(unit.flashContents().bytes == before)
    }

    @Test("only F042 and C071 enter by the empty check; only L0 has no entry")
    func entryData() {
        #expect(McuFamily.all.filter { $0.applicationEntry == .eraseFirstPage }.map(\.id) == ["f042"])
        #expect(McuFamily.all.filter { $0.applicationEntry == .forceEmptyFlag }.map(\.id) == ["c071"])
        #expect(McuFamily.all.filter { $0.applicationEntry == .none }.map(\.id) == ["l0"])
        let jumping = McuFamily.all.filter { $0.applicationEntry == .backupRegisterJump }
        #expect(jumping.allSatisfy { $0.applicationCanJumpToROM })
    }

    @Test("F042 and the other lines AN2606 restricts cannot jump; the F4 and G0 lines can")
    func jumpData() throws {
        #expect(Self.cannotJump.map(\.id).contains("f042"))
        #expect(try #require(McuFamily.named("f407")).applicationCanJumpToROM)
        #expect(try #require(McuFamily.named("g0b1")).applicationCanJumpToROM)
    }

    @Test("G0B1 V9.2 clears the empty-check flag at startup: a reset after the ROM ran boots the (empty) flash")
    func emptyCheckClearedAtStartup() throws {
        let g0b1 = try #require(McuFamily.named("g0b1"))
        #expect(g0b1.emptyCheckClearedAtStartup)
        let unit = VirtualUnit(family: g0b1, uid: VirtualUnit.uid(index: 1), portPath: "1-1", clock: VirtualClock())
        unit.powerCycle()
        #expect(unit.currentMode == .rom, "blank: the empty check starts the ROM")
        unit.reset(.system)
        #expect(unit.currentMode == .hung, "flag cleared by the ROM: the empty flash is booted")
        unit.powerCycle()
        #expect(unit.currentMode == .rom, "a power-on reset evaluates the empty check again")
    }

    @Test("an empty-check part that keeps its flag (L43x) re-enters the ROM on a reset")
    func emptyCheckKept() throws {
        let l43x = try #require(McuFamily.named("l43x"))
        #expect(!l43x.emptyCheckClearedAtStartup)
        let unit = VirtualUnit(family: l43x, uid: VirtualUnit.uid(index: 1), portPath: "1-1", clock: VirtualClock())
        unit.powerCycle()
        unit.reset(.system)
        #expect(unit.currentMode == .rom)
    }

    @Test("a data block larger than the ROM takes is stalled and leaves the ROM in dfuERROR (G431)")
    func largeWriteStalls() async throws {
        let g431 = try #require(McuFamily.named("g431"))
        let limit = try #require(g431.writeLimits.maxBytes)
        let unit = unitInDFU(g431)
        let raw = try RawDFU(unit)
        try await raw.command(.setAddress(g431.flashBase))
        _ = try await raw.settle(clock: unit.clock)
        await #expect(throws: TransportError.self) { try await raw.download(block: 2, [UInt8](repeating: 0x5A, count: limit * 2)) }
        #expect(try await raw.status().status == .errStalledPkt)
        try await raw.clearStatus()
        try await raw.download(block: 2, [UInt8](repeating: 0x5A, count: limit))
        #expect(try await raw.settle(clock: unit.clock).state == .downloadIdle)
    }

    @Test("L43x: a block over 256 bytes that is not a multiple of 8 is programmed wrong; multiples of 8 are right")
    func unalignedLargeWriteCorrupts() async throws {
        let l43x = try #require(McuFamily.named("l43x"))
        #expect(l43x.writeLimits.programmedCorrectly(260) == 256)
        #expect(l43x.writeLimits.programmedCorrectly(252) == 252)
        #expect(l43x.writeLimits.programmedCorrectly(264) == 264)
        for (length, intact) in [(300, false), (304, true), (250, true)] {
            let unit = unitInDFU(l43x)
            let raw = try RawDFU(unit) // a new unit's flash is erased
            try await raw.command(.setAddress(l43x.flashBase))
            _ = try await raw.settle(clock: unit.clock)
            let data = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ 1) & 0x7F }
            try await raw.download(block: 2, data)
            _ = try await raw.settle(clock: unit.clock)
            let stored = Array(unit.flashContents().bytes.prefix(length))
            #expect((stored == data) == intact, "\(length) bytes")
        }
    }
}
