import DeviceProfiles
import DfuSe
import FirmwareImage
import Testing

@testable import dfuhop

/// The plan for people: ranges of sectors with the reason, whatever the number of sectors.
@Suite("CLI: the plan as ranges")
struct PlanTextTests {
    /// 400 KiB over 200 sectors of 2 KiB, all but sectors 0, 7 and 8 reported unchanged (issue 24's example).
    @Test func twoHundredSectorsThreeChangedReadAsAFewRanges() throws {
        let layout = try FlashLayout(parsing: "@Internal Flash  /0x08000000/256*02Kg")
        let image = try FirmwareImage.normalize(
            [Segment(address: 0x0800_0000, bytes: (0..<(400 * 1024)).map { UInt8(truncatingIfNeeded: $0 * 7) })], granularity: 8,
            entryPoint: nil)
        let changed: Set<Int> = [0, 7, 8]
        let unchanged = Set(layout.sectors.prefix(200).filter { !changed.contains($0.index) }.map(\.start))
        let plan = try FlashPlan(image: image, layout: layout, writeGranularity: 8, transferSize: 2048, unchangedSectors: unchanged)
        let lines = PlanText.lines(plan)
        #expect(lines.count <= 10, "\(lines.joined(separator: "\n"))")
        #expect(lines.contains("  erase  sectors 7-8 [0x08003800, 0x08004800) 2 sectors, 4.0 KiB: its content changes"), "\(lines)")
        #expect(lines.contains("  skip   sectors 1-6 [0x08000800, 0x08003800) 6 sectors, 12.0 KiB: " + PlanText.skipReason), "\(lines)")
        #expect(lines.contains("  skip   sectors 9-199 [0x08004800, 0x08064000) 191 sectors, 382.0 KiB: " + PlanText.skipReason))
        #expect(lines.contains { $0.hasPrefix("  erase  sector 0 [0x08000000, 0x08000800)") && $0.contains("vector table") })
        #expect(
            lines.last == "  3 sectors to erase and write, 197 unchanged; 6.0 KiB in 3 blocks of up to 2048 bytes; "
                + "payload CRC-32 0x" + String(plan.payloadCRC32, radix: 16, uppercase: true).leftPadded(to: 8))
    }
}

extension String {
    func leftPadded(to width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}
