#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Issue 21 item 6 through the dfuhop executable: `dfuhop replay` of large recordings. dfuhop records two
/// commands on a simulated G474, and a child pads copies of each to two sizes:
/// - `list` with `subscribe` lines (the shortest records a replay reads and does not match);
/// - `flash` with distinct hotplug events at a port no request goes to, all due at the first request (the
///   old replay de-duplicated them pairwise: quadratic).
/// Both still replay with no divergence. Reported as the image cases are: peak RSS above the replay of the
/// unpadded recording, as a multiple of the file's size; and the median CPU time (user and system, which a
/// loaded machine does not inflate as it does wall time) per MiB: the same at both sizes when linear.
extension HostileInputBenchmark {
    static func recordingCases(_ dfuhop: String, directory: String, runs: Int) throws -> Bool {
        let list = directory + "/list.jsonl"
        let image = directory + "/flash.hex"
        let flash = directory + "/flash.jsonl"
        defer { for file in [list, image, flash] { unlink(file) } }
        try write(flashImage(), to: image)
        for (path, command) in [(list, ["list"]), (flash, ["flash", image])] {
            let recorded = try ImageConvertBenchmark.spawn(dfuhop, command + ["--simulate", "g474", "--record", path])
            guard recorded.status == 0 else {
                throw BenchError(description: "cannot record `dfuhop \(command[0])` (exit \(recorded.status))")
            }
        }
        print("dfuhop replay, median of \(runs); peak RSS above the replay of the unpadded recording")
        let subscribed = try recordingCase(
            "`list` + subscribe lines", base: list, padding: "subscribe", sizes: [8 << 20, 16 << 20], runs: runs)
        let flooded = try recordingCase("`flash` + hotplug events", base: flash, padding: "hotplug", sizes: [2 << 20, 4 << 20], runs: runs)
        print("goal: replayed (exit 0), memory above the baseline at most 3x the file, CPU per MiB the same at both sizes")
        return subscribed && flooded
    }

    static func recordingCase(_ name: String, base: String, padding: String, sizes: [Int], runs: Int) throws -> Bool {
        let dfuhop = try ImageConvertBenchmark.locateDfuhop()
        let baseline = try measureReplay(dfuhop, base, runs: runs)
        var allMet = true
        for size in sizes {
            let path = base + ".\(padding)-\(size >> 20).jsonl"
            defer { unlink(path) }
            let writer = try ImageConvertBenchmark.spawn(
                ownExecutable(), ["hostile-input", "--pad-recording", padding, base, path, String(size)])
            guard writer.status == 0 else { throw BenchError(description: "cannot pad the recording (exit \(writer.status))") }
            let result = try measureReplay(dfuhop, path, runs: runs)
            let fileBytes = fileSize(path)
            let extraKiB = max(0, result.rssKiB - baseline.rssKiB)
            let ratio = Double(extraKiB * 1024) / Double(max(1, fileBytes))
            let met = result.status == 0 && ratio <= 3
            allMet = allMet && met
            let perMiB = result.cpuSeconds / (Double(fileBytes) / Double(1 << 20))
            print(
                "  " + name.rightPadded(to: 30) + "\(fileBytes) bytes".leftPadded(to: 15)
                    + (ImageConvertBenchmark.fixed(result.cpuSeconds * 1000) + " ms CPU").leftPadded(to: 17)
                    + " (\(ImageConvertBenchmark.fixed(perMiB * 1000)) ms/MiB, wall \(ImageConvertBenchmark.fixed(result.seconds)) s)"
                    + "  +\(extraKiB) KiB = \(ImageConvertBenchmark.fixed(ratio))x the file  exit \(result.status)"
                    + (met ? "" : "  GOAL MISSED"))
        }
        return allMet
    }

    /// `--recordings-only [--runs N]`: the recording case alone.
    static func recordingsOnly(_ arguments: [String]) throws -> Bool {
        var runs = 3
        if arguments.count == 3, arguments[1] == "--runs", let number = Int(arguments[2]), number > 0 {
            runs = number
        } else if arguments.count != 1 {
            throw BenchError(description: "usage: dfuhop-bench hostile-input --recordings-only [--runs N]")
        }
        let directory = try ImageConvertBenchmark.makeTemporaryDirectory()
        defer { rmdir(directory) }
        return try recordingCases(ImageConvertBenchmark.locateDfuhop(), directory: directory, runs: runs)
    }

    /// `--pad-recording subscribe|hotplug BASE OUT SIZE`: BASE with lines after its header until OUT has
    /// about SIZE bytes: the same `subscribe` line, or hotplug arrivals of distinct DFU devices at port 9-9.
    static func padRecording(_ arguments: [String]) throws -> Bool {
        guard arguments.count == 5, ["subscribe", "hotplug"].contains(arguments[1]), let size = Int(arguments[4]) else {
            throw BenchError(description: "usage: dfuhop-bench hostile-input --pad-recording subscribe|hotplug BASE OUT SIZE")
        }
        let base = try ImageConvertBenchmark.readFile(arguments[2])
        guard let headerEnd = base.firstIndex(of: UInt8(ascii: "\n")) else {
            throw BenchError(description: "\(arguments[2]) has no header line")
        }
        var bytes = Array(base[...headerEnd])
        bytes.reserveCapacity(size + base.count)
        var number = 0
        while bytes.count + base.count - headerEnd < size {
            bytes += Array((arguments[1] == "subscribe" ? subscribeLine : hotplugLine(number)).utf8)
            number += 1
        }
        bytes += base[(headerEnd + 1)...]
        try write(bytes, to: arguments[3])
        return true
    }

    /// 1 KiB at 0x08000000 that a G474 takes: a stack pointer in its RAM, the reset handler, then zeros.
    static func flashImage() -> [UInt8] {
        let words = [0x2000_1000, 0x0800_0101] + [UInt32](repeating: 0, count: 254)
        var lines = [record([2, 0, 0, 4, 0x08, 0x00])]
        for offset in stride(from: 0, to: words.count, by: 4) {
            let address = offset * 4
            lines.append(record([16, UInt8(address >> 8), UInt8(address & 0xFF), 0] + words[offset..<(offset + 4)].flatMap { le($0, 4) }))
        }
        return Array((lines.joined(separator: "\n") + "\n:00000001FF\n").utf8)
    }

    static let subscribeLine = "{\"event\":\"subscribe\",\"subscription\":1,\"t\":0}\n"

    /// The arrival of DFU device `number` at 9-9, recorded at time `number` (so no two are the same change).
    static func hotplugLine(_ number: Int) -> String {
        let serial = String(number).leftPadded(to: 12)
        return "{\"change\":\"arrived\",\"device\":{\"alternates\":[{\"name\":\"@Internal Flash   /0x08000000/256*02Kg\","
            + "\"number\":0}],\"bcdDevice\":\"0x0200\",\"kind\":\"dfu\",\"manufacturer\":\"STMicroelectronics\",\"port\":\"9-9\","
            + "\"product\":\"DFU in FS Mode\",\"serial\":\"\(serial)\",\"vidPid\":\"0483:df11\"},\"event\":\"hotplug\","
            + "\"port\":\"9-9\",\"subscription\":1,\"t\":\(number)}\n"
    }

    struct ReplayResult {
        var status: Int32
        var seconds: Double
        /// User and system time of the child: what the replay costs, whatever else the machine runs.
        var cpuSeconds: Double
        var rssKiB: Int
    }

    static func measureReplay(_ dfuhop: String, _ path: String, runs: Int) throws -> ReplayResult {
        var results: [ReplayResult] = []
        let clock = ContinuousClock()
        for _ in 0..<runs {
            var child = ReplayResult(status: 0, seconds: 0, cpuSeconds: 0, rssKiB: 0)
            let elapsed = try clock.measure { child = try spawnMeasured(dfuhop, ["replay", path]) }
            child.seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            results.append(child)
        }
        let median = results.sorted { $0.cpuSeconds < $1.cpuSeconds }[results.count / 2]
        return ReplayResult(
            status: median.status, seconds: results.map(\.seconds).sorted()[results.count / 2], cpuSeconds: median.cpuSeconds,
            rssKiB: results.map(\.rssKiB).max() ?? 0)
    }

    /// Runs `path` with its output discarded: exit status, CPU time and peak RSS (`ImageConvertBenchmark.spawn`).
    static func spawnMeasured(_ path: String, _ arguments: [String]) throws -> ReplayResult {
        let child = try ImageConvertBenchmark.spawn(path, arguments)
        return ReplayResult(status: child.status, seconds: 0, cpuSeconds: child.cpuSeconds, rssKiB: child.maxRSSKiB)
    }
}
