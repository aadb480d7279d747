import DeviceProfiles
import DfuSe
import FirmwareImage
import Foundation
import Synchronization
import USBTransport
import UpgradeEngine
import VirtualDevice

/// upgrade: the whole workflow on virtual G474s in scaled real time (the engine's own waits are real):
///  1. a full upgrade of a 256 KiB image against the device-bound minimum (the application's reset delay,
///     every erase, every block programmed, every byte sent and read back, and every control transfer
///     the ROM's protocol needs for the plan; goal: overhead under 5 %);
///  2. one changed sector of that image, skipped through the application's sector CRCs, against the full
///     upgrade (goal: under 25 %);
///  3. eight units upgraded at once (as `--all` does) against one (goal: under 1.3x).
enum UpgradeBenchmark {
    static func run(_ arguments: [String]) throws -> Bool {
        var scale = 1.0
        var kib = 256
        var index = 0
        while index < arguments.count {
            let value = index + 1 < arguments.count ? arguments[index + 1] : ""
            switch arguments[index] {
            case "--scale": scale = Double(value) ?? scale
            case "--kib": kib = Int(value) ?? kib
            default: throw BenchError(description: "upgrade takes --kib N, --scale X (device seconds per wall second)")
            }
            index += 2
        }
        let (factor, size) = (scale, kib * 1024)
        return try blocking { try await measure(scale: factor, size: size) }
    }

    static func image(_ major: UInt16, size: Int) throws -> (FirmwareImage, NormalizedImage) {
        let normalized = try DemoImage.make(family: .g474, version: FirmwareVersion(major: major, minor: 0, patch: 0), size: size)
        return (FirmwareImage(format: .binary, segments: normalized.segments), normalized)
    }

    /// v3: v2 with only the vector-table sector changed (its descriptor's version and CRC).
    static func oneSectorChanged(from v2: NormalizedImage, size: Int) throws -> FirmwareImage {
        var v3 = try image(3, size: size).0
        v3.targets[0].segments[0].bytes.replaceSubrange(0x800..<size, with: v2.segments[0].bytes[0x800...])
        return try v3.stamped(
            productID: ApplicationIdentity.demoImageProductID(for: .g474),
            version: FirmwareVersion(major: 3, minor: 0, patch: 0), name: "dfuhop-demo-g474", file: "v3")
    }

    static func units(_ count: Int, clock: any DeviceClock) throws -> [VirtualUnit] {
        try (1...count).map { try SimulationSpec(family: .g474, state: .programmed).makeUnit(index: $0, clock: clock) }
    }

    /// CPU time this process has used (user and system, every thread), from getrusage.
    static func processCPUTime() -> Duration {
        var usage = rusage()
        #if os(Linux)
            getrusage(RUSAGE_SELF.rawValue, &usage)
        #else
            getrusage(RUSAGE_SELF, &usage)
        #endif
        func duration(_ time: timeval) -> Duration { .seconds(time.tv_sec) + .microseconds(time.tv_usec) }
        return duration(usage.ru_utime) + duration(usage.ru_stime)
    }

    /// A clock that counts the sleeps asked of it (host and virtual unit), so the bench can time as many bare ones.
    final class SleepCountingClock: DeviceClock {
        let base: ScaledClock
        private let count = Atomic<Int>(0)

        init(_ base: ScaledClock) { self.base = base }

        var sleeps: Int { count.load(ordering: .relaxed) }
        func now() -> Duration { base.now() }
        var preferredExecutor: (any TaskExecutor)? { base.preferredExecutor }

        func sleep(for duration: Duration) async throws(CancellationError) {
            if duration > .zero { count.add(1, ordering: .relaxed) }
            try await base.sleep(for: duration)
        }
    }

    /// Process CPU time and wall time from the first unit's flash phase starting to the last one's ending.
    final class FlashPhaseMeter: Sendable {
        private struct Marks {
            var running = 0
            var start: (cpu: Duration, wall: ContinuousClock.Instant)?
            var total: (cpu: Duration, wall: Duration) = (.zero, .zero)
        }
        private let marks = Mutex(Marks())

        func observe(_ event: UpgradeEvent) {
            switch event {
            case .phaseStarted(.flash):
                marks.withLock { marks in
                    if marks.running == 0 { marks.start = (processCPUTime(), .now) }
                    marks.running += 1
                }
            case .phaseFinished(.flash, _):
                marks.withLock { marks in
                    marks.running -= 1
                    guard marks.running == 0, let start = marks.start else { return }
                    marks.total.cpu += processCPUTime() - start.cpu
                    marks.total.wall += ContinuousClock.now - start.wall
                }
            default: break
            }
        }

        var total: (cpu: Duration, wall: Duration) { marks.withLock { $0.total } }
    }

    struct Measured {
        var device: Duration
        var wall: Duration
        var cpu: Duration
        /// CPU and wall time while the units were in the flash phase (erase, write, verify).
        var flashing: (cpu: Duration, wall: Duration)
        var results: [UpgradeResult]

        /// CPU per unit as a share of one core, over the whole upgrade and over the flash phase alone.
        func cpuShare(units: Int) -> (whole: Double, flashing: Double) {
            (cpu.seconds / Double(units) / wall.seconds * 100, flashing.cpu.seconds / Double(units) / flashing.wall.seconds * 100)
        }
    }

    /// Device time, wall time and CPU time of one upgrade per unit, all at once.
    static func upgrade(_ file: FirmwareImage, units: [VirtualUnit], clock: any DeviceClock) async throws -> Measured {
        let bus = VirtualBus(units: units)
        let meter = FlashPhaseMeter()
        let start = clock.now()
        let cpuStart = processCPUTime()
        let wallStart = ContinuousClock.now
        let results = try await withThrowingTaskGroup(of: UpgradeResult.self) { group in
            for unit in units {
                var options = UpgradeEngine.Options()
                options.unit = unit.portPath
                group.addTask {
                    try await UpgradeEngine(discovery: bus, clock: clock, onEvent: meter.observe).upgrade(
                        file, source: "bench", options: options)
                }
            }
            var all: [UpgradeResult] = []
            for try await result in group { all.append(result) }
            return all
        }
        return Measured(
            device: clock.now() - start, wall: ContinuousClock.now - wallStart, cpu: processCPUTime() - cpuStart,
            flashing: meter.total, results: results)
    }

    /// CPU and wall time of `sleeps` bare sleeps on `clock`, each as long as an upgrade's average wait: what
    /// waking up costs this machine (a virtual machine pays far more per wake-up than bare metal).
    static func bareSleepCost(clock: ScaledClock, sleeps: Int, each: Duration) async throws -> (cpu: Duration, wall: Duration) {
        let cpuStart = processCPUTime()
        let wallStart = ContinuousClock.now
        try await withTaskExecutorPreference(clock.preferredExecutor) {
            for _ in 0..<sleeps { try await clock.sleep(for: each) }
        }
        return (processCPUTime() - cpuStart, ContinuousClock.now - wallStart)
    }

    static func measure(scale: Double, size: Int) async throws -> Bool {
        try? "1".write(toFile: "/proc/self/timerslack_ns", atomically: false, encoding: .utf8)
        let family = McuFamily.g474
        let clock = ScaledClock(factor: scale)
        let (v2File, v2) = try image(2, size: size)

        // 1. Full upgrade.
        let counting = SleepCountingClock(clock)
        let one = try units(1, clock: counting)
        let full = try await upgrade(v2File, units: one, clock: counting)
        guard let plan = full.results.first?.plan else { throw BenchError(description: "no plan") }
        let t = family.timings
        let erase = plan.erasedSectors.reduce(Duration.zero) { $0 + t.eraseTime(sectorSize: $1.size) }
        var program = Duration.zero
        var transfer = Duration.zero
        for write in plan.writes {
            var offset = 0
            while offset < write.length {
                let length = min(Int(family.rom.transferSize), write.length - offset)
                program += t.programTime(bytes: length, granularity: family.writeGranularity)
                transfer += t.transferTime(bytes: length)
                offset += length
            }
        }
        // Verification reads the whole span back (and any write outside it), in blocks of transferSize.
        let (readBlocks, readTime) = FlashBenchmark.readBack(plan, transferSize: Int(family.rom.transferSize), timings: t)
        transfer += readTime
        let resetDelay = Duration.milliseconds(50)
        // The control transfers the ROM needs for this plan besides the data blocks (AN3156 §6): a command
        // is a DNLOAD, the GETSTATUS that starts it and the GETSTATUS that sees it done — one per sector
        // erase, per set-address (each write run, each read-back run, the option bytes, leave); each data
        // block needs the same two GETSTATUS; each read-back run one ABORT to dfuIDLE; the option bytes
        // one ABORT and one UPLOAD; leave its zero-length DNLOAD and one GETSTATUS.
        let blocks = plan.blockCount
        let readRuns = plan.readBackRanges.count
        let setAddresses = plan.setAddressCount + readRuns + 1 + 1
        let protocolTransfers = 3 * plan.erasedSectors.count + 3 * setAddresses + 2 * blocks + readRuns + 2 + 2
        let dataTransfers = blocks + readBlocks
        let flashOnly = erase + program + transfer + resetDelay
        let minimum = flashOnly + t.controlTransferOverhead * protocolTransfers
        let overhead = (full.device.seconds / minimum.seconds - 1) * 100
        let transfers = one[0].controlTransfers

        // 2. One changed sector on the upgraded unit.
        let partial = try await upgrade(try oneSectorChanged(from: v2, size: size), units: one, clock: clock)
        let ratio = partial.device.seconds / full.device.seconds

        // 3. Eight units at once against one (fresh units, same image).
        let single = try await upgrade(v2File, units: try units(1, clock: clock), clock: clock)
        let eight = try await upgrade(v2File, units: try units(8, clock: clock), clock: clock)
        let parallel = eight.device.seconds / single.device.seconds
        // CPU per unit as a share of one core: over the whole upgrade (the first in this process, so it
        // includes one-time costs such as reading the embedded family data) and over the flash phase alone.
        // Both include the virtual units themselves (flash model, CRCs), so dfuhop's own share is lower.
        let cpuShare = full.cpuShare(units: 1)
        let cpuShareEight = eight.cpuShare(units: 8)
        let sleeps = counting.sleeps
        let cpuPerWakeUp = try await bareSleepCost(clock: clock, sleeps: sleeps, each: full.wall / sleeps)

        print("upgrade: virtual STM32G474, \(size / 1024) KiB image, verify on, time scale \(scale)x")
        print("  full upgrade           \(FlashBenchmark.fmt(full.device)) s  (\(FlashBenchmark.fmt(full.wall)) s wall)")
        print(
            "  device-bound minimum   \(FlashBenchmark.fmt(minimum)) s = reset \(FlashBenchmark.fmt(resetDelay)) + erase \(FlashBenchmark.fmt(erase)) "
                + "+ program \(FlashBenchmark.fmt(program)) + data on the bus \(FlashBenchmark.fmt(transfer)) "
                + "+ \(protocolTransfers) protocol transfers x \(String(format: "%.2f", t.controlTransferOverhead.seconds * 1000)) ms")
        print(
            "  overhead               \(String(format: "%.2f", overhead)) %   (goal: under 5 %); "
                + "\(transfers) DFU control transfers sent, the plan needs \(dataTransfers + protocolTransfers)")
        print(
            "  against flash and data time alone (\(FlashBenchmark.fmt(flashOnly)) s): "
                + "\(String(format: "%.2f", (full.device.seconds / flashOnly.seconds - 1) * 100)) %")
        print(
            "  one changed sector     \(FlashBenchmark.fmt(partial.device)) s = \(String(format: "%.1f", ratio * 100)) % of the full upgrade "
                + "(\(partial.results.first?.skippedSectors ?? 0) sectors skipped; goal: under 25 %)")
        func percent(_ value: Double) -> String { String(format: "%.2f %%", value) }
        print(
            "  CPU per unit, flashing \(FlashBenchmark.fmt(full.flashing.cpu)) s in \(FlashBenchmark.fmt(full.flashing.wall)) s = "
                + "\(percent(cpuShare.flashing)) of a core; 8 at once: \(percent(cpuShareEight.flashing)) each "
                + "(goal: under 1 %, virtual units included)")
        print(
            "  CPU per unit, upgrade  \(FlashBenchmark.fmt(full.cpu)) s in \(FlashBenchmark.fmt(full.wall)) s = \(percent(cpuShare.whole)) "
                + "(the first in this process); 8 at once: \(percent(cpuShareEight.whole)) each")
        print(
            "  the same number of bare sleeps on this machine: \(FlashBenchmark.fmt(cpuPerWakeUp.cpu)) s CPU in "
                + "\(FlashBenchmark.fmt(cpuPerWakeUp.wall)) s = \(percent(cpuPerWakeUp.cpu.seconds / full.wall.seconds * 100)) "
                + "of the upgrade's wall time: \(sleeps) sleeps as the upgrade slept, the cost of waking up with no work)")
        print(
            "  8 units at once        \(FlashBenchmark.fmt(eight.device)) s against \(FlashBenchmark.fmt(single.device)) s for one = \(String(format: "%.2f", parallel))x  (goal: under 1.3x)"
        )
        return overhead < 5 && ratio < 0.25 && parallel < 1.3
    }
}
