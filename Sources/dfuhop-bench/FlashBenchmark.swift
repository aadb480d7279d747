import DeviceProfiles
import DfuSe
import FirmwareImage
import Foundation
import USBTransport
import VirtualDevice

/// dfu-flash: flash 1 MiB to a virtual F407 in scaled real time, verify on, and compare dfuhop's time
/// with the device-bound minimum the model implies (every erase, every block's programming, every data
/// transfer, nothing else). Also counts control transfers beside dfu-util's scheme, which sends a
/// set-address command (DNLOAD + 2 GETSTATUS) before every block.
enum FlashBenchmark {
    static func run(_ arguments: [String]) throws -> Bool {
        var family = McuFamily.f407
        var size = 1 << 20
        var scale = 2.0
        var index = 0
        while index < arguments.count {
            let value = index + 1 < arguments.count ? arguments[index + 1] : ""
            switch arguments[index] {
            case "--family": family = try McuFamily.named(value) ?? { throw BenchError(description: "unknown family \(value)") }()
            case "--kib": size = (Int(value) ?? 1024) * 1024
            case "--scale": scale = Double(value) ?? scale
            default: throw BenchError(description: "dfu-flash takes --family F, --kib N, --scale X (device seconds per wall second)")
            }
            index += 2
        }
        let (chosen, bytes, factor) = (family, size, scale)
        return try blocking { try await measure(family: chosen, size: bytes, scale: factor) }
    }

    static func measure(family: McuFamily, size: Int, scale: Double) async throws -> Bool {
        // Linux rounds sleeps up by the timer slack (50 µs by default); a benchmark of thousands of
        // short waits would measure that instead of dfuhop. Threads created later inherit the setting.
        try? "1".write(toFile: "/proc/self/timerslack_ns", atomically: false, encoding: .utf8)
        let image = try DemoImage.make(family: family, version: FirmwareVersion(major: 1, minor: 0, patch: 0), size: size)
        let clock = ScaledClock(factor: scale)
        let unit = try SimulationSpec(family: family, state: .dfu).makeUnit(clock: clock)
        let client = try DfuSeClient(transport: VirtualDFUTransport(unit: unit), clock: clock, quirks: family.quirks)
        let layout = try await client.prepare()
        let plan = try FlashPlan(image: image, layout: layout, family: family, transferSize: client.transferSize)

        let start = clock.now()
        let wallStart = ContinuousClock.now
        let report = try await client.execute(plan, image: image, verify: true)
        let wall = ContinuousClock.now - wallStart
        let elapsed = clock.now() - start

        let t = family.timings
        let erase = plan.erasedSectors.reduce(Duration.zero) { $0 + t.eraseTime(sectorSize: $1.size) }
        var program = Duration.zero
        var transfer = Duration.zero
        for write in plan.writes {
            var offset = 0
            while offset < write.length {
                let length = min(client.transferSize, write.length - offset)
                program += t.programTime(bytes: length, granularity: family.writeGranularity)
                transfer += t.transferTime(bytes: length)
                offset += length
            }
        }
        let (readBlocks, readTime) = readBack(plan, transferSize: client.transferSize, timings: t)
        transfer += readTime
        let flashOnly = erase + program + transfer
        // The control transfers the ROM's protocol needs besides the data blocks (AN3156 §6), counted from the
        // plan as `dfuhop-bench upgrade` counts them: three per sector erase and per set-address (each write
        // run and read-back run), two GETSTATUS per block written, one ABORT per read-back run.
        let readRuns = plan.readBackRanges.count
        let protocolTransfers = 3 * plan.erasedSectors.count + 3 * (plan.setAddressCount + readRuns) + 2 * plan.blockCount + readRuns
        let minimum = flashOnly + t.controlTransferOverhead * protocolTransfers
        let overhead = (elapsed.seconds / minimum.seconds - 1) * 100
        let stats = await client.statistics
        let blocks = plan.blockCount
        let dfuUtil = stats.controlTransfers + 3 * (blocks - plan.writes.count)

        print("dfu-flash: \(size / 1024) KiB to a virtual \(family.name), verify on, time scale \(scale)x")
        print(
            "  device-bound minimum   \(fmt(minimum)) s  (erase \(fmt(erase)) + program \(fmt(program)) + data on the bus \(fmt(transfer)) "
                + "+ \(protocolTransfers) protocol transfers x \(String(format: "%.2f", t.controlTransferOverhead.seconds * 1000)) ms)")
        print("  dfuhop                 \(fmt(elapsed)) s device time (\(fmt(wall)) s wall)")
        print("  overhead               \(String(format: "%.2f", overhead)) %   (goal: under 5 %)")
        print(
            "  against flash and data time alone (\(fmt(flashOnly)) s): \(String(format: "%.2f", (elapsed.seconds / flashOnly.seconds - 1) * 100)) %"
        )
        print(
            "  control transfers      \(stats.controlTransfers), the plan needs \(blocks + readBlocks + protocolTransfers) "
                + "(dfu-util's set-address per block: \(dfuUtil))")
        print("  blocks \(blocks), sectors erased \(report.erasedSectors), poll wait \(fmt(stats.pollWait)) s")
        return overhead < 5
    }

    /// Verification reads every read-back range in blocks of `transferSize`: how many, and their time on the bus
    /// (each block a control transfer of its own).
    static func readBack(_ plan: FlashPlan, transferSize: Int, timings: FlashTimings) -> (blocks: Int, time: Duration) {
        var (blocks, time) = (0, Duration.zero)
        for range in plan.readBackRanges {
            var remaining = Int(range.upperBound - range.lowerBound)
            while remaining > 0 {
                time += timings.transferTime(bytes: min(transferSize, remaining))
                blocks += 1
                remaining -= transferSize
            }
        }
        return (blocks, time)
    }

    static func fmt(_ duration: Duration) -> String { String(format: "%.3f", duration.seconds) }
}

extension Duration {
    var seconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) / 1e18
    }
}

/// Runs async work from the synchronous benchmark entry point.
final class ResultBox<T>: @unchecked Sendable {
    var result: Result<T, any Error>?
}

func blocking<T: Sendable>(_ work: @escaping @Sendable () async throws -> T) throws -> T {
    let box = ResultBox<T>()
    let done = DispatchSemaphore(value: 0)
    Task {
        do { box.result = .success(try await work()) } catch { box.result = .failure(error) }
        done.signal()
    }
    done.wait()
    return try box.result!.get()
}
