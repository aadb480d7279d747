import FirmwareImage

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The hostile files of issue 12 through the dfuhop executable (`image info`): each one's exit
/// status, median wall time and peak resident memory (ru_maxrss) above the same binary on a 16-byte file,
/// and that extra memory as a multiple of the file's size. Goals: memory above the baseline at most 3× the
/// file (or refused), and no time that grows with a span's gaps.
enum HostileInputBenchmark {
    struct Case {
        var name: String
        var file: String
        /// 0: described; 65: refused as malformed.
        var expectedStatus: Int32
        /// After `image info FILE`: `--json` measures the JSON result of the same file.
        var options: [String] = []
        /// Made only by the child that writes the files (see `run`).
        var bytes: () -> [UInt8]
    }

    static func run(_ arguments: [String]) throws -> Bool {
        if arguments.count == 2, arguments[0] == "--write-files" {
            for item in cases() { try write(item.bytes(), to: arguments[1] + "/" + item.file) }
            try writeZipFiles(to: arguments[1])
            return true
        }
        if arguments.first == "--pad-recording" { return try padRecording(arguments) }
        if arguments.first == "--recordings-only" { return try recordingsOnly(arguments) }
        var runs = 3
        if arguments.count == 2, arguments[0] == "--runs", let number = Int(arguments[1]), number > 0 {
            runs = number
        } else if !arguments.isEmpty {
            throw BenchError(description: "usage: dfuhop-bench hostile-input [--runs N]")
        }
        let dfuhop = try ImageConvertBenchmark.locateDfuhop()
        let directory = try ImageConvertBenchmark.makeTemporaryDirectory()
        let files = ["tiny.hex"] + cases().map(\.file)
        defer {
            for file in files { unlink(directory + "/" + file) }
            rmdir(directory)
        }
        // A child writes the files: Linux counts the peak RSS of a spawned process from the spawning
        // process's own peak (the memory is shared until exec), so this process must stay small.
        let writer = try ImageConvertBenchmark.spawn(ownExecutable(), ["hostile-input", "--write-files", directory])
        guard writer.status == 0 else { throw BenchError(description: "cannot write the files (exit \(writer.status))") }
        try write(Array(":0400000001020304F2\n:00000001FF\n".utf8), to: directory + "/tiny.hex")
        let baseline = try measure(dfuhop, [directory + "/tiny.hex"], runs: runs)
        print("dfuhop image info, median of \(runs); peak RSS above the same binary on a 16-byte file (\(baseline.rssKiB) KiB)")
        var allMet = true
        for item in cases() {
            let path = directory + "/" + item.file
            let result = try measure(dfuhop, [path] + item.options, runs: runs)
            let size = fileSize(path)
            let extraKiB = max(0, result.rssKiB - baseline.rssKiB)
            let ratio = Double(extraKiB * 1024) / Double(max(1, size))
            let met = result.status == item.expectedStatus && (ratio <= 3 || extraKiB <= 1024)
            allMet = allMet && met
            let outcome = result.status == 0 ? "described" : "refused (exit \(result.status))"
            print(
                "  " + item.name.rightPadded(to: 46) + "\(size) bytes".leftPadded(to: 15)
                    + (ImageConvertBenchmark.fixed(result.seconds * 1000) + " ms").leftPadded(to: 12)
                    + "  +\(extraKiB) KiB = \(ImageConvertBenchmark.fixed(ratio))x the file  \(outcome)\(met ? "" : "  GOAL MISSED")")
        }
        allMet = try measureZips(dfuhop, directory: directory, baseline: baseline, runs: runs) && allMet
        print("goal: exit status as listed, and memory above the baseline at most 3x the file (or under 1 MiB)")
        allMet = try recordingCases(dfuhop, directory: directory, runs: runs) && allMet
        return allMet
    }

    static func fileSize(_ path: String) -> Int {
        var status = stat()
        return stat(path, &status) == 0 ? Int(status.st_size) : 0
    }

    static func ownExecutable() throws -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard length > 0 else { throw BenchError(description: "cannot find this executable") }
        return String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func cases() -> [Case] {
        [
            Case(
                name: "ELF: 4,000 headers over the same 137 KiB", file: "shared.elf",
                expectedStatus: 65
            ) { elfWithSharedLoads(count: 4_000, size: 137 << 10) },
            Case(
                name: "ELF: 30,000 headers over the same 137 KiB", file: "shared30k.elf",
                expectedStatus: 65
            ) { elfWithSharedLoads(count: 30_000, size: 137 << 10) },
            Case(
                name: "Intel HEX: 72 bytes spanning 4 GiB", file: "span.hex",
                expectedStatus: 0
            ) { Array(":020000040000FA\n:0100000011EE\n:02000004FFFFFC\n:01FFFF0022DF\n:00000001FF\n".utf8) },
            // In each 64 KiB page, records alternate between its two halves: 400,000 runs while reading.
            Case(
                name: "Intel HEX: 1-byte records, alternating runs", file: "interleaved.hex",
                expectedStatus: 0
            ) { oneByteRecords((0..<400_000).map(alternatingHalves)) },
            Case(
                name: "Intel HEX: 1-byte records, every other byte", file: "scattered.hex",
                expectedStatus: 65
            ) { oneByteRecords((0..<400_000).map { UInt32($0 * 2) }) },
            Case(
                name: "Intel HEX: 16-byte records, each in its own gap", file: "fragmented.hex",
                expectedStatus: 0
            ) { sixteenByteRecords(count: 100_000) },
            Case(
                name: "the same, --json (every segment listed)", file: "fragmented.hex",
                expectedStatus: 0, options: ["--json"]
            ) { sixteenByteRecords(count: 100_000) },
            Case(
                name: "the same for a G474: 83,617 segments past its flash", file: "fragmented.hex",
                expectedStatus: 0, options: ["--json", "--family", "g474"]
            ) { sixteenByteRecords(count: 100_000) }
        ]
    }

    /// Record `index` of a file whose records alternate between the two halves of each 64 KiB page.
    static func alternatingHalves(_ index: Int) -> UInt32 {
        let page: Int = index & ~0xFFFF
        let half: Int = (index & 1) << 15
        let offset: Int = (index & 0xFFFF) >> 1
        return UInt32(page | half | offset)
    }

    struct Result {
        var status: Int32
        var seconds: Double
        var rssKiB: Int
    }

    static func measure(_ dfuhop: String, _ arguments: [String], runs: Int) throws -> Result {
        var times: [Double] = []
        var peak = 0
        var status: Int32 = 0
        let clock = ContinuousClock()
        for _ in 0..<runs {
            var child = ImageConvertBenchmark.ChildResult(status: 0, maxRSSKiB: 0)
            let elapsed = try clock.measure { child = try ImageConvertBenchmark.spawn(dfuhop, ["image", "info"] + arguments) }
            times.append(Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
            peak = max(peak, child.maxRSSKiB)
            status = child.status
        }
        times.sort()
        return Result(status: status, seconds: times[times.count / 2], rssKiB: peak)
    }

    static func write(_ bytes: [UInt8], to path: String) throws {
        guard let file = fopen(path, "wb") else { throw BenchError(description: "cannot create \(path)") }
        defer { fclose(file) }
        guard fwrite(bytes, 1, bytes.count, file) == bytes.count else { throw BenchError(description: "cannot write \(path)") }
    }

    static func le(_ value: UInt32, _ count: Int) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: value >> (8 * UInt32($0))) } }

    /// An ELF32 ARM executable whose `count` PT_LOAD headers all load the same `size` bytes of the file.
    static func elfWithSharedLoads(count: Int, size: Int) -> [UInt8] {
        var file: [UInt8] = [0x7F, 0x45, 0x4C, 0x46, 1, 1, 1, 0] + [UInt8](repeating: 0, count: 8)
        file += le(2, 2) + le(40, 2) + le(1, 4) + le(0x0800_0001, 4) + le(52, 4) + le(0, 4) + le(0x0500_0200, 4)
        file += le(52, 2) + le(32, 2) + le(UInt32(count), 2) + le(40, 2) + le(0, 2) + le(0, 2)
        let dataOffset = UInt32(52 + 32 * count)
        for index in 0..<count {
            let address = 0x0800_0000 &+ UInt32(truncatingIfNeeded: index &* size)
            file += le(1, 4) + le(dataOffset, 4) + le(address, 4) + le(address, 4)
            file += le(UInt32(size), 4) + le(UInt32(size), 4) + le(5, 4) + le(4, 4)
        }
        return file + (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 7) }
    }

    static func record(_ fields: [UInt8]) -> String {
        let sum = fields.reduce(UInt8(0), &+)
        let digits = Array("0123456789ABCDEF")
        return ":" + String((fields + [0 &- sum]).flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 0xF)]] })
    }

    /// 1-byte data records at `addresses` (below 1 MiB above 0x08000000), extended address records as needed.
    static func oneByteRecords(_ addresses: [UInt32]) -> [UInt8] {
        var lines: [String] = []
        var upper: UInt32?
        for address in addresses {
            let full = 0x0800_0000 + address
            if upper != full >> 16 {
                upper = full >> 16
                lines.append(record([2, 0, 0, 4, UInt8(full >> 24), UInt8(full >> 16 & 0xFF)]))
            }
            lines.append(record([1, UInt8(full >> 8 & 0xFF), UInt8(full & 0xFF), 0, UInt8(truncatingIfNeeded: address)]))
        }
        lines.append(":00000001FF")
        return Array((lines.joined(separator: "\n") + "\n").utf8)
    }

    static func sixteenByteRecords(count: Int) -> [UInt8] {
        var lines: [String] = []
        for index in 0..<count {
            let full = 0x0800_0000 + UInt32(index * 32)
            if index == 0 || full & 0xFFFF == 0 { lines.append(record([2, 0, 0, 4, UInt8(full >> 24), UInt8(full >> 16 & 0xFF)])) }
            let data = [UInt8](repeating: UInt8(index & 0xFF), count: 16)
            lines.append(record([16, UInt8(full >> 8 & 0xFF), UInt8(full & 0xFF), 0] + data))
        }
        lines.append(":00000001FF")
        return Array((lines.joined(separator: "\n") + "\n").utf8)
    }
}

/// Issue 21's hostile zip through `dfuhop package info`: 63 members nested inside each other (each one's data
/// holds every later member and the shared payload), near the 64 MiB package limit. Checking each member's
/// CRC-32 before the layout cost 63 × 63 MiB ≈ 4 GiB of CRC work (23 s); the layout check refuses it first.
extension HostileInputBenchmark {
    static let nestedZipFile = "nested.dfuhop"

    static func writeZipFiles(to directory: String) throws {
        try write(nestedZip(members: 63, payload: 63 << 20), to: directory + "/" + nestedZipFile)
    }

    static func measureZips(_ dfuhop: String, directory: String, baseline: Result, runs: Int) throws -> Bool {
        let path = directory + "/" + nestedZipFile
        defer { unlink(path) }
        var times: [Double] = []
        var peak = 0
        var status: Int32 = 0
        let clock = ContinuousClock()
        for _ in 0..<runs {
            var child = ImageConvertBenchmark.ChildResult(status: 0, maxRSSKiB: 0)
            let elapsed = try clock.measure { child = try ImageConvertBenchmark.spawn(dfuhop, ["package", "info", path]) }
            times.append(Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
            peak = max(peak, child.maxRSSKiB)
            status = child.status
        }
        times.sort()
        let size = fileSize(path)
        let extraKiB = max(0, peak - baseline.rssKiB)
        let ratio = Double(extraKiB * 1024) / Double(max(1, size))
        let seconds = times[times.count / 2]
        // 87: refused as malformed, within a second (the CRC-first reader took 23 s).
        let met = status == 87 && ratio <= 3 && seconds < 1
        print(
            "  " + "package info: 63 nested overlapping zip members".rightPadded(to: 46) + "\(size) bytes".leftPadded(to: 15)
                + (ImageConvertBenchmark.fixed(seconds * 1000) + " ms").leftPadded(to: 12)
                + "  +\(extraKiB) KiB = \(ImageConvertBenchmark.fixed(ratio))x the file  refused (exit \(status))"
                + (met ? "" : "  GOAL MISSED (exit 87 in under 1 s)"))
        return met
    }

    /// Stored members 0..<members, local headers back to back, then `payload` bytes: member i's data runs
    /// from the end of its own local header to the end of the payload. Every CRC and size is right, so only
    /// the overlap is wrong.
    static func nestedZip(members: Int, payload: Int) -> [UInt8] {
        let names = (0..<members).map { "m\($0).bin" }
        let headerSizes = names.map { 30 + $0.utf8.count }
        let end = headerSizes.reduce(0, +) + payload
        let kernel = (0..<payload).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ ($0 >> 12)) }
        // CRCs from the last member back: member i's data is member i+1's local header, then member i+1's data.
        var headers = [[UInt8]](repeating: [], count: members)
        var crcs = [UInt32](repeating: 0, count: members)
        var offsets = [Int](repeating: 0, count: members)
        var nextCRC = CRC32.zlib(kernel)
        var nextLength = payload
        for index in (0..<members).reversed() {
            offsets[index] = headerSizes[..<index].reduce(0, +)
            let size = end - offsets[index] - headerSizes[index]
            crcs[index] = nextCRC
            headers[index] =
                le(0x0403_4B50, 4) + le(20, 2) + le(0, 2) + le(0, 2) + le(0, 2) + le(0x21, 2)
                + le(crcs[index], 4) + le(UInt32(size), 4) + le(UInt32(size), 4) + le(UInt32(names[index].utf8.count), 2) + le(0, 2)
                + Array(names[index].utf8)
            nextCRC = crc32Combine(CRC32.zlib(headers[index]), nextCRC, nextLength)
            nextLength += headers[index].count
        }
        var file = headers.flatMap { $0 } + kernel
        let directoryStart = file.count
        for index in 0..<members {
            let size = UInt32(end - offsets[index] - headerSizes[index])
            file += le(0x0201_4B50, 4) + le(0x031E, 2) + le(20, 2) + le(0, 2) + le(0, 2) + le(0, 2) + le(0x21, 2)
            file += le(crcs[index], 4) + le(size, 4) + le(size, 4) + le(UInt32(names[index].utf8.count), 2) + le(0, 2) + le(0, 2)
            file += le(0, 2) + le(0, 2) + le(0o100644 << 16, 4) + le(UInt32(offsets[index]), 4) + Array(names[index].utf8)
        }
        let directorySize = file.count - directoryStart
        file += le(0x0605_4B50, 4) + le(0, 2) + le(0, 2) + le(UInt32(members), 2) + le(UInt32(members), 2)
        return file + le(UInt32(directorySize), 4) + le(UInt32(directoryStart), 4) + le(0, 2)
    }

    /// The CRC-32 of A followed by B from crc(A), crc(B) and B's length (zlib's crc32_combine method): crc(A)
    /// is carried through B's length of zero bits by squaring the one-zero-bit operator, a 32×32 GF(2) matrix.
    static func crc32Combine(_ first: UInt32, _ second: UInt32, _ secondLength: Int) -> UInt32 {
        func times(_ matrix: [UInt32], _ vector: UInt32) -> UInt32 {
            var sum: UInt32 = 0
            var vector = vector
            var row = 0
            while vector != 0 {
                if vector & 1 != 0 { sum ^= matrix[row] }
                vector >>= 1
                row += 1
            }
            return sum
        }
        func square(_ matrix: [UInt32]) -> [UInt32] { (0..<32).map { times(matrix, matrix[$0]) } }
        guard secondLength > 0 else { return first }
        var odd = [0xEDB8_8320] + (0..<31).map { UInt32(1) << UInt32($0) } // one zero bit
        var even = square(odd) // two zero bits
        odd = square(even) // four zero bits
        var crc = first
        var length = secondLength
        while true {
            even = square(odd) // first pass: one zero byte
            if length & 1 != 0 { crc = times(even, crc) }
            length >>= 1
            if length == 0 { break }
            odd = square(even)
            if length & 1 != 0 { crc = times(odd, crc) }
            length >>= 1
            if length == 0 { break }
        }
        return crc ^ second
    }
}
