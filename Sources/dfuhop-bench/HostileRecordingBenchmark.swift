#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Issue 21 item 6 through the dfuhop executable: `dfuhop replay` of large recordings. dfuhop records
/// `list --simulate g474` (a header, a device snapshot, the result), and a child pads copies to 8 and 16 MiB
/// with `subscribe` lines (the shortest records a replay reads and does not match, so a padded recording
/// still replays with no divergence). Reported as the image cases are: peak RSS above the replay of the
/// unpadded recording, as a multiple of the file's size; and the median CPU time (user and system, which
/// a loaded machine does not inflate as it does wall time) per MiB: the same at both sizes when linear.
extension HostileInputBenchmark {
    static let recordingSizes = [8 << 20, 16 << 20]

    static func recordingCases(_ dfuhop: String, directory: String, runs: Int) throws -> Bool {
        let base = directory + "/list.jsonl"
        let padded = recordingSizes.map { directory + "/padded-\($0 >> 20).jsonl" }
        defer { for file in [base] + padded { unlink(file) } }
        let recorded = try ImageConvertBenchmark.spawn(dfuhop, ["list", "--simulate", "g474", "--record", base])
        guard recorded.status == 0 else { throw BenchError(description: "cannot record `dfuhop list` (exit \(recorded.status))") }
        for (size, path) in zip(recordingSizes, padded) {
            let writer = try ImageConvertBenchmark.spawn(ownExecutable(), ["hostile-input", "--pad-recording", base, path, String(size)])
            guard writer.status == 0 else { throw BenchError(description: "cannot pad the recording (exit \(writer.status))") }
        }
        let baseline = try measureReplay(dfuhop, base, runs: runs)
        print("dfuhop replay, median of \(runs); peak RSS above the replay of the unpadded recording (\(baseline.rssKiB) KiB)")
        var allMet = true
        for path in padded {
            let result = try measureReplay(dfuhop, path, runs: runs)
            let size = fileSize(path)
            let extraKiB = max(0, result.rssKiB - baseline.rssKiB)
            let ratio = Double(extraKiB * 1024) / Double(max(1, size))
            let met = result.status == 0 && ratio <= 3
            allMet = allMet && met
            let perMiB = result.cpuSeconds / (Double(size) / Double(1 << 20))
            print(
                "  " + "recording: `list` + subscribe lines".rightPadded(to: 38) + "\(size) bytes".leftPadded(to: 15)
                    + (ImageConvertBenchmark.fixed(result.cpuSeconds * 1000) + " ms CPU").leftPadded(to: 16)
                    + " (\(ImageConvertBenchmark.fixed(perMiB * 1000)) ms/MiB, wall \(ImageConvertBenchmark.fixed(result.seconds)) s)"
                    + "  +\(extraKiB) KiB = \(ImageConvertBenchmark.fixed(ratio))x the file  exit \(result.status)"
                    + (met ? "" : "  GOAL MISSED"))
        }
        print("goal: replayed (exit 0), memory above the baseline at most 3x the file, CPU per MiB the same at both sizes")
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

    /// `--pad-recording BASE OUT SIZE`: BASE with `subscribe` lines after its header until OUT has SIZE bytes.
    static func padRecording(_ arguments: [String]) throws -> Bool {
        guard arguments.count == 4, let size = Int(arguments[3]) else {
            throw BenchError(description: "usage: dfuhop-bench hostile-input --pad-recording BASE OUT SIZE")
        }
        let text = String(decoding: try ImageConvertBenchmark.readFile(arguments[1]), as: UTF8.self)
        guard let headerEnd = text.firstIndex(of: "\n") else { throw BenchError(description: "\(arguments[1]) has no header line") }
        let line = "{\"event\":\"subscribe\",\"subscription\":1,\"t\":0}\n"
        let count = max(0, (size - text.utf8.count) / line.utf8.count)
        var bytes = Array(text[...headerEnd].utf8)
        bytes.reserveCapacity(size)
        let padding = Array(line.utf8)
        for _ in 0..<count { bytes += padding }
        bytes += Array(text[text.index(after: headerEnd)...].utf8)
        try write(bytes, to: arguments[2])
        return true
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

    /// Runs `path` with its output discarded: exit status, CPU time and peak RSS (wait4's rusage).
    static func spawnMeasured(_ path: String, _ arguments: [String]) throws -> ReplayResult {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid = pid_t()
        let spawned = posix_spawn(&pid, path, &actions, nil, argv, environ)
        guard spawned == 0 else { throw BenchError(description: "cannot start \(path): \(String(cString: strerror(spawned)))") }
        var status: Int32 = 0
        var usage = rusage()
        while wait4(pid, &status, 0, &usage) < 0 {
            guard errno == EINTR else { throw BenchError(description: "wait4 failed: \(String(cString: strerror(errno)))") }
        }
        func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }
        return ReplayResult(
            status: (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F), seconds: 0,
            cpuSeconds: seconds(usage.ru_utime) + seconds(usage.ru_stime), rssKiB: Int(usage.ru_maxrss))
    }
}
