import Testing

@testable import DeviceProfiles

@Suite("MCU family table")
struct FamilyTests {
    @Test("every built-in layout string parses and covers the flash it claims", arguments: McuFamily.all)
    func layoutsParse(family: McuFamily) throws {
        for mode in family.flashModes {
            let layout = try FlashLayout(parsing: mode.layoutString)
            #expect(layout.zones.first?.start == family.flashBase)
            #expect(layout.sectors.allSatisfy { $0.attributes == .all }, "ROM flash sectors are readable, erasable, writable")
        }
        for memory in family.otherMemories {
            _ = try FlashLayout(parsing: memory)
        }
    }

    @Test("flash modes of one family describe the same flash size", arguments: McuFamily.all)
    func flashModesAgreeOnSize(family: McuFamily) {
        let sizes = Set(family.flashModes.map { $0.layout.zones.reduce(0) { $0 + $1.size } })
        #expect(sizes.count == 1)
    }

    @Test("known sizes: F407 1 MiB in 12 sectors, L476 1 MiB of 2 KiB pages, G474 512 KiB, H753 2 MiB")
    func knownGeometry() {
        #expect(McuFamily.f407.defaultFlashMode.layout.sectors.count == 12)
        #expect(McuFamily.f407.defaultFlashMode.layout.zones[0].size == 1024 * 1024)
        #expect(McuFamily.l476.defaultFlashMode.layout.sectors.count == 512)
        #expect(McuFamily.g474.flashModes.map { $0.layout.sectors.count } == [256, 128])
        #expect(McuFamily.g474.defaultFlashMode.layout.zones[0].size == 512 * 1024)
        #expect(McuFamily.h753.defaultFlashMode.layout.zones[0].size == 2 * 1024 * 1024)
    }

    @Test("ids and device ids are unique, and lookups find them")
    func lookups() {
        #expect(Set(McuFamily.all.map(\.id)).count == McuFamily.all.count)
        #expect(Set(McuFamily.all.map(\.deviceID)).count == McuFamily.all.count)
        #expect(McuFamily.named("G474")?.deviceID == 0x469)
        #expect(McuFamily.withDeviceID(0x450)?.id == "h753")
        #expect(McuFamily.named("f103") == nil)
    }

    @Test("quirks by name: the F4 mass erase, L4 stalls, H7 stuck busy, H5 leave, and none on G474")
    func namedQuirks() throws {
        #expect(McuFamily.f407.massEraseAllowance == .milliseconds(35000))
        #expect(McuFamily.l476.eraseStallAllowance == 3)
        #expect(McuFamily.h753.stuckBusyClearCount == 2)
        #expect(try #require(McuFamily.named("h563")).leaveLocksUp)
        let g474 = McuFamily.g474
        #expect(g474.massEraseAllowance == nil && g474.eraseStallAllowance == nil && g474.stuckBusyClearCount == nil && !g474.leaveLocksUp)
    }

    @Test("an initial stack pointer at the very end of RAM counts as inside only when asked")
    func ramEnd() {
        let f407 = McuFamily.f407
        #expect(f407.isInRAM(0x2001_FFFC))
        #expect(!f407.isInRAM(0x2002_0000))
        #expect(f407.isInRAM(0x2002_0000, inclusiveEnd: true))
        #expect(!f407.isInRAM(0x0800_0000, inclusiveEnd: true))
    }

    @Test("the ROM serial matches MicroPython's byte form when the wafer coordinates' high bytes are zero")
    func serialFormulaAgreesWithByteForm() {
        // docs/silicon-sources.md: the two forms agree when id[1] = id[3] = 0 and there is no +0x0A.
        let uids: [[UInt8]] = [
            [0x30, 0x00, 0x45, 0x00, 0x12, 0x51, 0x33, 0x37, 0x37, 0x36, 0x34, 0x32],
            [0x01, 0x00, 0x02, 0x00, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A]
        ]
        for id in uids {
            let byteForm = [id[11], id[10] &+ id[2], id[9], id[8] &+ id[0], id[7], id[6]]
                .map { String($0, radix: 16, uppercase: true) }
                .map { $0.count == 1 ? "0" + $0 : $0 }.joined()
            #expect(RomSerialFormula(secondWordOffset: 0).serial(uid: id) == byteForm)
        }
    }

    @Test("an offset is added to UID0 + UID2 (F7: 0x0A)")
    func serialOffset() {
        let uid: [UInt8] = [0x30, 0x00, 0x45, 0x00, 0x12, 0x51, 0x33, 0x37, 0x37, 0x36, 0x34, 0x32]
        #expect(RomSerialFormula(secondWordOffset: 0).serial(uid: uid) == "327936673733")
        #expect(RomSerialFormula(secondWordOffset: 0x0A).serial(uid: uid) == "327936713733")
    }

    @Test("timings: erase time by sector size, programming rounds up to whole units")
    func timings() {
        let t = McuFamily.f407.timings
        #expect(t.eraseTime(sectorSize: 16 * 1024) == .milliseconds(250))
        #expect(t.eraseTime(sectorSize: 4096) == t.defaultSectorErase)
        #expect(t.programTime(bytes: 5, granularity: 4) == t.programUnit * 2)
        #expect(t.transferTime(bytes: 0) == t.controlTransferOverhead)
    }
}
