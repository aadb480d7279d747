import FirmwareImage

// dfuhop-bench: measurements that back the README's claims. One benchmark per first argument:
//   dfuhop-bench image-convert [--payload-mib N] [--runs N]
//   dfuhop-bench dfu-flash [--family F] [--kib N] [--scale X]
//   dfuhop-bench upgrade [--kib N] [--scale X]
//   dfuhop-bench hostile-input [--runs N]
// Build with `swift build -c release --product dfuhop` and `... --product dfuhop-bench`, then run
// `.build/release/dfuhop-bench image-convert`.
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A benchmark: a name for the command line, one line of help, and the work.
struct Benchmark: Sendable {
    var name: String
    var summary: String
    var run: @Sendable ([String]) throws -> Bool

    /// Every benchmark; add new ones here.
    static let all = [
        Benchmark(
            name: "image-convert",
            summary: "Intel HEX (2 MiB payload) to binary: dfuhop's library and executable against srec_cat; time and peak memory",
            run: { try ImageConvertBenchmark.run($0) }),
        Benchmark(
            name: "dfu-flash",
            summary:
                "1 MiB to a virtual F407 in scaled real time, verify on: dfuhop against the device-bound minimum; control transfers vs dfu-util",
            run: { try FlashBenchmark.run($0) }),
        Benchmark(
            name: "upgrade",
            summary: "the whole upgrade on virtual G474s in scaled real time: overhead, one changed sector, 8 units at once",
            run: { try UpgradeBenchmark.run($0) }),
        Benchmark(
            name: "hostile-input",
            summary: "issue 12's hostile files through image info: exit status, time and peak memory against the file's size",
            run: { try HostileInputBenchmark.run($0) })
    ]
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
}

func usage() -> String {
    "usage: dfuhop-bench BENCHMARK [options]\n"
        + Benchmark.all.map { "  \($0.name.rightPadded(to: 16))\($0.summary)" }.joined(separator: "\n")
}

let arguments = Array(CommandLine.arguments.dropFirst())
guard let name = arguments.first, let benchmark = Benchmark.all.first(where: { $0.name == name }) else {
    print(usage())
    exit(arguments.isEmpty || ["-h", "--help"].contains(arguments[0]) ? 0 : 64)
}
do {
    exit(try benchmark.run(Array(arguments.dropFirst())) ? 0 : 1)
} catch {
    print("error: \(error)")
    exit(1)
}
