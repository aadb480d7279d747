import FirmwareImage
import SeededRandom

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Intel HEX → raw binary, three ways on the same file: dfuhop's library in this process, the dfuhop
/// executable as a child, and srec_cat as a child. Reports the median wall time of each, the speed-up
/// over srec_cat, and the children's peak resident memory (wait4's ru_maxrss) next to the peak of the same
/// dfuhop binary converting a 16-byte file, so the Swift runtime's fixed cost is visible.
/// Goals (issue 3): the dfuhop executable ≥ 3× faster than srec_cat; its peak memory above that baseline
/// under 3× the payload. All three outputs must be byte-identical.
enum ImageConvertBenchmark {
    static func run(_ arguments: [String]) throws -> Bool {
        let (payloadMiB, runs) = try options(arguments)
        let payloadSize = payloadMiB << 20
        let dfuhop = try locateDfuhop()
        guard let srecCat = findInPath("srec_cat") else {
            throw BenchError(description: "srec_cat not found (Debian package srecord)")
        }
        let directory = try makeTemporaryDirectory()
        defer { removeTree(directory) }
        let input = directory + "/payload.hex"
        let tiny = directory + "/tiny.hex"
        try writeInputs(payloadSize: payloadSize, to: input, tiny: tiny)

        let libraryOutput = directory + "/library.bin"
        let library = try measure(runs: runs) {
            let image = try ImageFile.read(path: input)
            try ImageFile.write(image, to: libraryOutput, as: .binary)
            return ChildResult(status: 0, maxRSSKiB: 0)
        }
        let executableOutput = directory + "/dfuhop.bin"
        let executable = try measure(runs: runs) {
            try spawn(dfuhop, ["image", "convert", input, executableOutput])
        }
        let baseline = try measure(runs: 3) {
            try spawn(dfuhop, ["image", "convert", tiny, directory + "/tiny.bin"])
        }
        let srecOutput = directory + "/srec_cat.bin"
        let reference = try measure(runs: runs) {
            try spawn(srecCat, [input, "-intel", "-offset", "-0x08000000", "-o", srecOutput, "-binary"])
        }

        let identical = try readFile(libraryOutput) == readFile(srecOutput) && readFile(executableOutput) == readFile(srecOutput)
        let inputSize = try readFile(input).count
        print("image-convert: Intel HEX -> binary, \(payloadMiB) MiB payload (\(inputSize) bytes of HEX), median of \(runs) runs")
        return report(
            library: library, executable: executable, reference: reference, baseline: baseline, payloadSize: payloadSize,
            identical: identical)
    }

    /// `--payload-mib N` (default 2) and `--runs N` (default 5).
    static func options(_ arguments: [String]) throws -> (payloadMiB: Int, runs: Int) {
        var payloadMiB = 2
        var runs = 5
        var index = 0
        while index < arguments.count {
            let value = index + 1 < arguments.count ? Int(arguments[index + 1]) : nil
            switch (arguments[index], value) {
            case ("--payload-mib", let number?) where number > 0: payloadMiB = number
            case ("--runs", let number?) where number > 0: runs = number
            default: throw BenchError(description: "unknown or incomplete option '\(arguments[index])'\n\(usage())")
            }
            index += 2
        }
        return (payloadMiB, runs)
    }

    /// The input: pseudo-random payload (so nothing compresses into a shortcut), 16 bytes a record as most
    /// toolchains write, at the STM32 flash base; and the same file cut to 16 bytes, for the baseline.
    static func writeInputs(payloadSize: Int, to input: String, tiny: String) throws {
        var generator = SplitMix64(seed: 0xDF05_E000)
        var payload = [UInt8](repeating: 0, count: payloadSize)
        for offset in stride(from: 0, to: payloadSize, by: 8) {
            var word = generator.next()
            for byte in 0..<8 {
                payload[offset + byte] = UInt8(truncatingIfNeeded: word)
                word >>= 8
            }
        }
        try ImageFile.write(
            FirmwareImage(format: .binary, segments: [Segment(address: 0x0800_0000, bytes: payload)]),
            to: input, as: .intelHex)
        try ImageFile.write(
            FirmwareImage(format: .binary, segments: [Segment(address: 0x0800_0000, bytes: Array(payload.prefix(16)))]),
            to: tiny, as: .intelHex)
    }

    /// Prints the table and the goals; true when they are met.
    static func report(
        library: Measurement, executable: Measurement, reference: Measurement, baseline: Measurement, payloadSize: Int,
        identical: Bool
    ) -> Bool {
        let speedup = reference.medianSeconds / executable.medianSeconds
        let extraKiB = executable.maxRSSKiB - baseline.maxRSSKiB
        let memoryRatio = Double(extraKiB * 1024) / Double(payloadSize)
        print(row("dfuhop library (in process)", library.medianSeconds, nil))
        print(row("dfuhop executable", executable.medianSeconds, executable.maxRSSKiB))
        print(row("srec_cat", reference.medianSeconds, reference.maxRSSKiB))
        print(row("dfuhop, 16-byte file (baseline)", baseline.medianSeconds, baseline.maxRSSKiB))
        print(
            "speed-up over srec_cat: executable \(fixed(speedup))x, library \(fixed(reference.medianSeconds / library.medianSeconds))x (goal >= 3x)"
        )
        print("peak memory above the baseline: \(extraKiB) KiB = \(fixed(memoryRatio))x the payload (goal < 3x)")
        print("outputs identical: \(identical ? "yes" : "NO")")
        let met = identical && speedup >= 3 && memoryRatio < 3
        print(met ? "goals met" : "goals NOT met")
        return met
    }

    struct ChildResult {
        var status: Int32
        var maxRSSKiB: Int
        /// User and system time of the child (wait4's rusage).
        var cpuSeconds: Double = 0
    }

    struct Measurement {
        var medianSeconds: Double
        var maxRSSKiB: Int
    }

    static func measure(runs: Int, _ body: () throws -> ChildResult) throws -> Measurement {
        var times: [Double] = []
        var peak = 0
        let clock = ContinuousClock()
        for _ in 0..<runs {
            var result = ChildResult(status: 0, maxRSSKiB: 0)
            let elapsed = try clock.measure { result = try body() }
            guard result.status == 0 else { throw BenchError(description: "a conversion exited with status \(result.status)") }
            times.append(Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
            peak = max(peak, result.maxRSSKiB)
        }
        times.sort()
        return Measurement(medianSeconds: times[times.count / 2], maxRSSKiB: peak)
    }

    /// Runs a program with stdout and stderr discarded; returns its status, peak RSS (ru_maxrss, KiB) and CPU time.
    static func spawn(_ path: String, _ arguments: [String]) throws -> ChildResult {
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
        let exitStatus = (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
        func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }
        return ChildResult(
            status: exitStatus, maxRSSKiB: Int(usage.ru_maxrss), cpuSeconds: seconds(usage.ru_utime) + seconds(usage.ru_stime))
    }

    /// dfuhop beside this benchmark (same build directory), or $DFUHOP_EXECUTABLE.
    static func locateDfuhop() throws -> String {
        if let explicit = getenv("DFUHOP_EXECUTABLE") { return String(cString: explicit) }
        var buffer = [CChar](repeating: 0, count: 4096)
        let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        let own = length > 0 ? String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self) : CommandLine.arguments[0]
        let candidate = String(own[..<(own.lastIndex(of: "/") ?? own.startIndex)]) + "/dfuhop"
        guard access(candidate, X_OK) == 0 else {
            throw BenchError(
                description: "dfuhop not found at \(candidate); build it (swift build -c release --product dfuhop) or set DFUHOP_EXECUTABLE"
            )
        }
        return candidate
    }

    static func findInPath(_ name: String) -> String? {
        let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/\(name)" }.first { access($0, X_OK) == 0 }
    }

    static func makeTemporaryDirectory() throws -> String {
        var template = Array("/tmp/dfuhop-bench-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw BenchError(description: "cannot create a temporary directory") }
        return String(cString: made)
    }

    static func removeTree(_ directory: String) {
        for name in ["payload.hex", "tiny.hex", "tiny.bin", "library.bin", "dfuhop.bin", "srec_cat.bin"] {
            unlink(directory + "/" + name)
        }
        rmdir(directory)
    }

    static func readFile(_ path: String) throws -> [UInt8] {
        guard let file = fopen(path, "rb") else { throw BenchError(description: "cannot read \(path)") }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = fread(&chunk, 1, chunk.count, file)
            if count == 0 { break }
            bytes.append(contentsOf: chunk[0..<count])
        }
        return bytes
    }

    static func row(_ label: String, _ seconds: Double, _ rssKiB: Int?) -> String {
        let time = fixed(seconds * 1000) + " ms"
        let memory = rssKiB.map { "  peak RSS \($0) KiB" } ?? ""
        return "  " + label.rightPadded(to: 34) + time.leftPadded(to: 11) + memory
    }

    static func fixed(_ value: Double) -> String {
        let scaled = (value * 100).rounded() / 100
        return String(scaled)
    }
}

extension String {
    func rightPadded(to width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }

    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
