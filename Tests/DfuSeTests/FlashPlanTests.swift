import DeviceProfiles
import FirmwareImage
import Foundation
import Testing

@testable import DfuSe

@Suite("Flash plan: what to erase and write, in which order, and what to refuse")
struct FlashPlanTests {
    let f407 = McuFamily.f407.defaultFlashMode.layout

    func sector(_ layout: FlashLayout, _ index: Int) -> FlashLayout.Sector { layout.sectors[index] }

    @Test("only touched sectors are erased; the vector-table sector is erased and written last, its first block last of all")
    func ordering() throws {
        // 100 KiB from the flash base: sectors 0–3 (16 KiB each) and 4 (64 KiB).
        let plan = try FlashPlan(
            image: image([(0x0800_0000, 100 * 1024)]), layout: f407, writeGranularity: 4,
            transferSize: 2048)
        let s = f407.sectors
        #expect(
            plan.steps == [
                .erase(s[1]), .erase(s[2]), .erase(s[3]), .erase(s[4]),
                .write(FlashPlan.Write(address: 0x0800_4000, length: 0x15000, blockCount: 42, holdsVectorTable: false)),
                .erase(s[0]),
                .write(FlashPlan.Write(address: 0x0800_0800, length: 0x3800, blockCount: 7, holdsVectorTable: false)),
                .write(FlashPlan.Write(address: 0x0800_0000, length: 0x800, blockCount: 1, holdsVectorTable: true))
            ])
        #expect(plan.vectorTableSector == s[0])
        #expect(plan.bytesToWrite == 100 * 1024)
        #expect(plan.blockCount == 50)
        #expect(plan.setAddressCount == 3)
        #expect(plan.skippedSectors.isEmpty)
    }

    @Test("an image that does not start at a sector boundary still puts its base sector last")
    func baseInsideASector() throws {
        let plan = try FlashPlan(
            image: image([(0x0802_0200, 0x400), (0x0800_C000, 0x100)]), layout: f407,
            writeGranularity: 4, transferSize: 2048)
        let s = f407.sectors
        #expect(plan.imageBase == 0x0800_C000)
        #expect(
            plan.steps == [
                .erase(s[5]),
                .write(FlashPlan.Write(address: 0x0802_0200, length: 0x400, blockCount: 1, holdsVectorTable: false)),
                .erase(s[3]),
                .write(FlashPlan.Write(address: 0x0800_C000, length: 0x100, blockCount: 1, holdsVectorTable: true))
            ])
    }

    @Test("segments separated by a gap become separate runs; a run spans sectors when the data does")
    func runs() throws {
        let plan = try FlashPlan(
            image: image([(0x0800_0000, 1024), (0x0800_3F00, 0x200), (0x0801_0000, 16)]),
            layout: f407, writeGranularity: 4, transferSize: 2048)
        #expect(plan.writes.map(\.address) == [0x0800_4000, 0x0801_0000, 0x0800_3F00, 0x0800_0000])
        #expect(plan.writes.map(\.length) == [0x100, 16, 0x100, 1024])
        #expect(plan.erasedSectors.map(\.index) == [1, 4, 0])
    }

    @Test("sectors named unchanged are neither erased nor written")
    func skipUnchanged() throws {
        let plan = try FlashPlan(
            image: image([(0x0800_0000, 48 * 1024)]), layout: f407, writeGranularity: 4,
            transferSize: 2048, unchangedSectors: [0x0800_4000])
        let s = f407.sectors
        #expect(plan.skippedSectors == [s[1]])
        #expect(plan.erasedSectors == [s[2], s[0]])
        #expect(plan.writes.allSatisfy { $0.end <= 0x0800_4000 || $0.address >= 0x0800_8000 })
        #expect(plan.bytesToWrite == 32 * 1024)
    }

    @Test("an unchanged vector-table sector is skipped like any other")
    func skipVectorSector() throws {
        let plan = try FlashPlan(
            image: image([(0x0800_0000, 20 * 1024)]), layout: f407, writeGranularity: 4,
            transferSize: 2048, unchangedSectors: [0x0800_0000])
        #expect(plan.vectorTableSector == nil)
        #expect(
            plan.steps == [
                .erase(f407.sectors[1]),
                .write(FlashPlan.Write(address: 0x0800_4000, length: 4096, blockCount: 2, holdsVectorTable: false))
            ])
    }

    @Test("when every touched sector is unchanged the plan is empty and says so")
    func everythingUnchanged() throws {
        let plan = try FlashPlan(
            image: image([(0x0800_0000, 1024)]), layout: f407, writeGranularity: 4,
            transferSize: 2048, unchangedSectors: [0x0800_0000, 0x0802_0000])
        #expect(plan.isEmpty)
        #expect(plan.description.contains("nothing to do"))
    }

    @Test("an unchanged-sector address that is not a sector start is refused")
    func skipMustNameSectorStarts() throws {
        #expect(throws: DfuSeError.notASectorStart(address: 0x0800_0100, layout: f407.render())) {
            try FlashPlan(
                image: image([(0x0800_0000, 1024)]), layout: f407, writeGranularity: 4, transferSize: 2048,
                unchangedSectors: [0x0800_0100])
        }
    }

    // MARK: Refusals

    @Test("seed 002: an image over the firmware DfuSe's own read-only sectors is refused, naming the sector and why")
    func seed002NotErasable() throws {
        let layout = try FlashLayout(parsing: seed002Layout)
        let error = #expect(throws: DfuSeError.self) {
            try FlashPlan(image: image([(0x0800_0000, 4096)]), layout: layout, writeGranularity: 4, transferSize: 2048)
        }
        #expect(error == .notErasable(layout.sectors[0], layout: "@Internal Flash/0x08000000/03*016Ka,01*016Kg,01*064Kg,07*128Kg"))
        #expect(error?.category == .refused)
        let text = error?.description ?? ""
        for part in ["sector 0", "0x08000000", "not erasable", "'a'", "03*016Ka", "seed 002"] {
            #expect(text.contains(part), "\(part) missing from: \(text)")
        }
    }

    @Test("seed 002: an image linked above the bootloader's sectors plans fine and erases only sector 3")
    func seed002AboveBootloader() throws {
        let layout = try FlashLayout(parsing: seed002Layout)
        let plan = try FlashPlan(
            image: image([(0x0800_C000, 8 * 1024)]), layout: layout, writeGranularity: 4,
            transferSize: 2048)
        #expect(plan.erasedSectors == [layout.sectors[3]])
    }

    @Test("a sector that is erasable but not writable is refused", arguments: ["b", "c"])
    func notWritable(letter: String) throws {
        let layout = try FlashLayout(parsing: "@Flash/0x08000000/02*001K\(letter)")
        #expect(throws: DfuSeError.notWritable(layout.sectors[1], layout: layout.render())) {
            try FlashPlan(image: image([(0x0800_0400, 64)]), layout: layout, writeGranularity: 4, transferSize: 1024)
        }
    }

    @Test("a writable sector without the erasable bit is refused: an upgrade must erase", arguments: ["d", "e"])
    func writableButNotErasable(letter: String) throws {
        let layout = try FlashLayout(parsing: "@Flash/0x08000000/02*001K\(letter)")
        #expect(throws: DfuSeError.notErasable(layout.sectors[0], layout: layout.render())) {
            try FlashPlan(image: image([(0x0800_0000, 64)]), layout: layout, writeGranularity: 4, transferSize: 1024)
        }
    }

    @Test(
        "data outside every zone is refused with the first address outside",
        arguments: [
            (UInt32(0x0810_0000), 64, UInt32(0x0810_0000)), // past the end of flash
            (UInt32(0x080F_FF00), 0x200, UInt32(0x0810_0000)), // straddling the end
            (UInt32(0x0000_0000), 64, UInt32(0x0000_0000)) // below it
        ])
    func outsideMemory(start: UInt32, length: Int, firstOutside: UInt32) throws {
        let error = #expect(throws: DfuSeError.self) {
            try FlashPlan(image: image([(start, length)]), layout: f407, writeGranularity: 4, transferSize: 2048)
        }
        #expect(error == .outsideMemory(address: firstOutside, layout: f407.render()))
        #expect(error?.description.contains(f407.render()) == true)
    }

    @Test("a gap between two zones is outside memory too")
    func gapBetweenZones() throws {
        let layout = try FlashLayout(parsing: "@Option Bytes   /0x1FFF7800/01*048 e/0x1FFFF800/01*048 e")
        #expect(throws: DfuSeError.outsideMemory(address: 0x1FFF_7830, layout: layout.render())) {
            try FlashPlan(image: image([(0x1FFF_7800, 0x40)]), layout: layout, writeGranularity: 8, transferSize: 2048)
        }
    }

    @Test("segments not on the family's flash word are refused (seed 004)")
    func misaligned() throws {
        let l476 = try FlashLayout(parsing: l476Layout)
        let startOff = NormalizedImage(
            uncheckedSegments: [Segment(address: 0x0800_0004, bytes: patternBytes(8))],
            granularity: 1, entryPoint: nil)
        #expect(throws: DfuSeError.misaligned(address: 0x0800_0004, granularity: 8, layout: l476.render())) {
            try FlashPlan(image: startOff, layout: l476, family: .l476, transferSize: 2048)
        }
        let endOff = NormalizedImage(
            uncheckedSegments: [Segment(address: 0x0800_0000, bytes: patternBytes(12))],
            granularity: 1, entryPoint: nil)
        #expect(throws: DfuSeError.misaligned(address: 0x0800_000C, granularity: 8, layout: l476.render())) {
            try FlashPlan(image: endOff, layout: l476, family: .l476, transferSize: 2048)
        }
        // Normalised to the family's granularity, the same bytes plan fine.
        _ = try FlashPlan(image: image([(0x0800_0004, 8)], granularity: 8), layout: l476, family: .l476, transferSize: 2048)
    }

    @Test("a transfer size that would split a flash word between blocks is refused")
    func transferSizeMustHoldWholeWords() throws {
        #expect(throws: DfuSeError.transferSizeNotMultipleOfGranularity(transferSize: 1020, granularity: 32)) {
            try FlashPlan(
                image: image([(0x0800_0000, 64)], granularity: 32), layout: f407, writeGranularity: 32,
                transferSize: 1020)
        }
        #expect(throws: DfuSeError.invalidTransferSize(0)) {
            try FlashPlan(image: image([(0x0800_0000, 64)]), layout: f407, writeGranularity: 4, transferSize: 0)
        }
    }

    @Test("an empty image is refused")
    func emptyImage() throws {
        #expect(throws: DfuSeError.emptyImage) {
            try FlashPlan(image: image([]), layout: f407, writeGranularity: 4, transferSize: 2048)
        }
    }

    // MARK: Rendering

    @Test("the plan reads as numbered steps for --dry-run")
    func textRendering() throws {
        let plan = try FlashPlan(
            image: image([(0x0800_0000, 20 * 1024)]), layout: f407, writeGranularity: 4,
            transferSize: 2048, unchangedSectors: [0x0802_0000])
        let text = plan.description
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines.first == "flash plan for @Internal Flash/0x08000000/04*016Kg,01*064Kg,07*128Kg")
        #expect(lines.contains("  1. erase sector 1 [0x08004000, 0x08008000) rew ('g')"), "\(text)")
        #expect(lines.contains("  2. write [0x08004000, 0x08005000) 4096 bytes in 2 blocks"), "\(text)")
        #expect(lines.contains { $0.hasPrefix("  3. erase sector 0") && $0.hasSuffix("(vector table sector, last)") }, "\(text)")
        #expect(lines.contains("  5. write [0x08000000, 0x08000800) 2048 bytes in 1 block (vector table)"), "\(text)")
        #expect(lines.last?.hasPrefix("  2 sectors erased, 3 set-address commands, 0 skipped") == true, "\(text)")
    }

    @Test("the plan encodes to JSON with named actions and decodes to the same plan")
    func jsonRoundTrip() throws {
        let plan = try FlashPlan(
            image: image([(0x0800_0000, 40 * 1024)]), layout: f407, writeGranularity: 4,
            transferSize: 2048, unchangedSectors: [0x0800_4000])
        let data = try JSONEncoder().encode(plan)
        let object = try JSONSerialization.jsonObject(with: data) as? [String: Any]
        let steps = object?["steps"] as? [[String: Any]]
        #expect(steps?.first?["action"] as? String == "erase")
        #expect(steps?.contains { $0["action"] as? String == "write" } == true)
        #expect(object?["transferSize"] as? Int == 2048)
        #expect(try JSONDecoder().decode(FlashPlan.self, from: data) == plan)
    }

    @Test("a JSON step with an unknown action does not decode")
    func jsonUnknownAction() throws {
        let json = Data(#"{"action":"format"}"#.utf8)
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(FlashPlan.Step.self, from: json) }
    }
}
