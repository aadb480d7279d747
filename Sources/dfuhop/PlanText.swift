import DeviceProfiles
import DfuSe
import HexFormat

/// A flash plan for people (`--dry-run`, `-v`): what is erased, written and skipped, as address ranges
/// with the reason, never one line per sector (a 512 KiB part has 256 of them).
enum PlanText {
    /// One line of the plan: an action over consecutive sectors or bytes.
    struct Range: Equatable {
        var action: String
        var first: Int?
        var last: Int?
        var start: UInt64
        var end: UInt64
        var count: Int
        var note: String
    }

    static func lines(_ plan: FlashPlan) -> [String] {
        var lines = [
            "plan for \(plan.layoutLine): image base \(Hex.word(plan.imageBase))"
                + (plan.span.map { ", span \(ProgressBar.bytes(Int($0.upperBound - $0.lowerBound)))" } ?? "")
        ]
        let ranges = steps(plan) + skipped(plan)
        if plan.steps.isEmpty { lines.append("  nothing to write: every sector the image touches is unchanged") }
        lines += ranges.map(text)
        let verify = plan.readBackRanges.map { "[\(hex($0.lowerBound)), \(hex($0.upperBound)))" }.joined(separator: ", ")
        if !verify.isEmpty { lines.append("  verify \(verify): \(ProgressBar.bytes(plan.bytesToVerify)) read back and compared") }
        lines.append(summary(plan))
        return lines
    }

    /// "3 sectors to erase and write, 199 unchanged; 6.0 KiB in 3 blocks; payload CRC-32 0x1C291CA3".
    static func summary(_ plan: FlashPlan) -> String {
        "  \(count(plan.erasedSectors.count, "sector")) to erase and write, \(plan.skippedSectors.count) unchanged; "
            + "\(ProgressBar.bytes(plan.bytesToWrite)) in \(count(plan.blockCount, "block")) of up to \(plan.transferSize) bytes; "
            + "payload CRC-32 \(Hex.word(plan.payloadCRC32))"
    }

    /// The plan's steps in order, consecutive erases of adjacent sectors (and adjacent writes) merged.
    static func steps(_ plan: FlashPlan) -> [Range] {
        var ranges: [Range] = []
        for step in plan.steps {
            let next: Range
            switch step {
            case .erase(let sector):
                let last = sector == plan.vectorTableSector
                next = Range(
                    action: "erase", first: sector.index, last: sector.index, start: UInt64(sector.start), end: sector.end, count: 1,
                    note: last ? "holds the vector table: erased and written last" : "its content changes")
            case .write(let write):
                next = Range(
                    action: "write", first: nil, last: nil, start: UInt64(write.address), end: write.end, count: write.blockCount,
                    note: write.holdsVectorTable ? "the vector table, last" : "")
            }
            if let previous = ranges.last, previous.action == next.action, previous.end == next.start, previous.note == next.note {
                ranges[ranges.count - 1].end = next.end
                ranges[ranges.count - 1].last = next.last
                ranges[ranges.count - 1].count += next.count
            } else {
                ranges.append(next)
            }
        }
        return ranges
    }

    /// The sectors left alone, merged into ranges of adjacent sectors.
    static func skipped(_ plan: FlashPlan) -> [Range] {
        var ranges: [Range] = []
        for sector in plan.skippedSectors.sorted(by: { $0.start < $1.start }) {
            if let previous = ranges.last, previous.end == UInt64(sector.start) {
                ranges[ranges.count - 1].end = sector.end
                ranges[ranges.count - 1].last = sector.index
                ranges[ranges.count - 1].count += 1
            } else {
                ranges.append(
                    Range(
                        action: "skip", first: sector.index, last: sector.index, start: UInt64(sector.start), end: sector.end, count: 1,
                        note: skipReason))
            }
        }
        return ranges
    }

    static let skipReason = "unchanged (the CRCs the application reports match the image); verified by read-back"

    static func text(_ range: Range) -> String {
        var sectors = ""
        if let first = range.first, let last = range.last {
            sectors = first == last ? "sector \(first) " : "sectors \(first)-\(last) "
        }
        let amount =
            range.action == "write"
            ? "\(ProgressBar.bytes(Int(range.end - range.start))) in \(count(range.count, "block"))"
            : "\(count(range.count, "sector")), \(ProgressBar.bytes(Int(range.end - range.start)))"
        let action = range.action.padding(toLength: 6, withPad: " ", startingAt: 0)
        return "  \(action) \(sectors)[\(hex(range.start)), \(hex(range.end))) \(amount)" + (range.note.isEmpty ? "" : ": \(range.note)")
    }

    static func hex(_ address: UInt64) -> String { Hex.word(UInt32(truncatingIfNeeded: address)) }

    static func count(_ number: Int, _ noun: String) -> String { "\(number) \(noun)\(number == 1 ? "" : "s")" }

    /// A DfuSe client event for `-vv`, addresses in hex: "sector 3 [0x08001800, 0x08002000) erased (1 of 3)".
    static func event(_ event: DfuSeEvent) -> String {
        switch event {
        case .phaseStarted(let phase): "\(phase) started"
        case .phaseFinished(let phase): "\(phase) finished"
        case .returnedToIdle(let state): "returned to dfuIDLE from \(state)"
        case .sectorErased(let sector, let number, let total):
            "sector \(sector.index) [\(Hex.word(sector.start)), \(hex(sector.end))) erased (\(number) of \(total))"
        case .bytesWritten(let done, let total, let address): "\(done) of \(total) bytes written, up to \(Hex.word(address))"
        case .bytesVerified(let done, let total): "\(done) of \(total) bytes verified"
        case .bytesRead(let done, let total): "\(done) of \(total) bytes read"
        case .quirk(let quirk): "quirk: \(quirk)"
        case .massErased: "mass erase done"
        case .readUnprotected(let reset): "read protection cleared" + (reset ? "; the device reset" : "")
        case .left(let address, let outcome): "left DFU: jump to \(Hex.word(address)) (\(outcome.rawValue))"
        }
    }
}
