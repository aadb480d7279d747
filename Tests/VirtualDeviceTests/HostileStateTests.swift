import DeviceProfiles
import Foundation
import Testing
import USBTransport

@testable import VirtualDevice

/// `--simulate-state FILE` is outside input: offsets and sizes anywhere in Int's range, runs and ranges
/// that repeat or overlap. Each is refused with an error naming the file, never a trap or a long loop.
@Suite struct HostileStateTests {
    static func restore(_ snapshot: UnitSnapshot) throws(VirtualDeviceError) -> VirtualUnit {
        try VirtualUnit.restore(snapshot, clock: VirtualClock(), source: "state.json")
    }

    static let eightBytes = Data([1, 2, 3, 4, 5, 6, 7, 8]).base64EncodedString()

    @Test(
        "a flash run at a huge offset is refused, not an overflow",
        arguments: [
            Int.max, Int.max - 7, Int.max - 4096, Int.min, -8, 1 << 62
        ])
    func hugeFlashOffset(offset: Int) throws {
        var snapshot = unitInDFU(.g474).snapshot()
        snapshot.flash = [.init(offset: offset, data: Self.eightBytes)]
        let error = #expect(throws: VirtualDeviceError.self) { _ = try Self.restore(snapshot) }
        #expect(error?.source == "state.json")
        #expect(error?.problem.contains("flash run at offset \(offset)") == true)
    }

    @Test(
        "written-unit ranges at huge indices are refused",
        arguments: [
            Int.max...Int.max, (Int.max - 1)...Int.max, 0...Int.max, -1...0
        ])
    func hugeWrittenRange(range: ClosedRange<Int>) throws {
        var snapshot = unitInDFU(.g474).snapshot()
        snapshot.writtenUnits = [range]
        #expect(throws: VirtualDeviceError.self) { _ = try Self.restore(snapshot) }
    }

    @Test("repeated or overlapping runs and ranges are refused, so a small file cannot cost a long loop")
    func repeatedRunsAndRanges() throws {
        let unit = unitInDFU(.g474)
        var runs = unit.snapshot()
        runs.flash = Array(repeating: .init(offset: 0, data: Self.eightBytes), count: 2)
        #expect(throws: VirtualDeviceError.self) { _ = try Self.restore(runs) }
        var ranges = unit.snapshot()
        ranges.writtenUnits = Array(repeating: 0...1000, count: 2)
        #expect(throws: VirtualDeviceError.self) { _ = try Self.restore(ranges) }
    }

    @Test("a saved unit with several runs still restores")
    func ascendingRunsRestore() throws {
        let unit = unitInDFU(.g474)
        unit.programDirectly([1, 2, 3, 4, 5, 6, 7, 8], at: 0x0800_0000)
        unit.programDirectly([9, 9, 9, 9, 9, 9, 9, 9], at: 0x0800_1000)
        let snapshot = unit.snapshot()
        #expect(snapshot.flash.count == 2)
        #expect(try Self.restore(snapshot).snapshot() == snapshot)
    }
}
