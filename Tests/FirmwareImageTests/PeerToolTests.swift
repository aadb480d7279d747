import Foundation
import TestSupport
import Testing

@testable import FirmwareImage

/// Tools no one here wrote, as referees. A missing tool skips the test with its reason, except on CI
/// (environment variable CI set), where it fails: CI installs them (.ci/run).
enum PeerTool {
    static var isCI: Bool { ProcessInfo.processInfo.environment["CI"].map { !$0.isEmpty } ?? false }

    static func path(_ name: String) -> String? {
        let directories = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
        return directories.map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Whether a test needing `name` should run: present, or on CI (where its absence is a failure).
    static func runnable(_ name: String) -> Bool { path(name) != nil || isCI }

    /// The tool's path, or a recorded failure (CI only: otherwise the test was not enabled).
    static func require(_ name: String, package: String) -> String? {
        if let path = path(name) { return path }
        Issue.record("\(name) is missing on CI; install Debian package \(package)")
        return nil
    }

    /// Runs `tool` off the cooperative pool; its output is stdout then stderr.
    static func run(_ tool: String, _ arguments: [String]) async throws -> (status: Int32, output: String) {
        let result = try await ProcessRunner.run(URL(fileURLWithPath: tool), arguments)
        return (result.status, result.standardOutput + result.standardError)
    }
}

@Suite("Agreement with srec_cat and dfu-suffix", .timeLimit(.minutes(10)))
struct PeerToolTests {
    /// Sparse, unaligned, crossing a 64 KiB boundary: the cases where converters differ.
    let image = FirmwareImage(
        format: .binary,
        segments: [
            Segment(address: 0x0800_0000, bytes: (0..<600).map { UInt8(truncatingIfNeeded: $0 * 13) }),
            Segment(address: 0x0800_FFF3, bytes: (0..<77).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 5) }),
            Segment(address: 0x0801_2001, bytes: [0xDE, 0xAD, 0xBE, 0xEF, 0x00])
        ], entryPoint: 0x0800_0201)

    @Test(.enabled(if: PeerTool.runnable("srec_cat"), "srec_cat (Debian srecord) is not installed"))
    func srecCatTurnsOurHexAndSRecordsIntoTheSameBinaryWeDo() async throws {
        guard let srecCat = PeerTool.require("srec_cat", package: "srecord") else { return }
        let scratch = try TemporaryDirectory()
        let ours = try ImageWriter.bytes(image, as: .binary)
        for (format, flag, name) in [(ImageFormat.intelHex, "-intel", "x.hex"), (.srec, "-motorola", "x.srec")] {
            let input = scratch.path(name)
            try Data(try ImageWriter.bytes(image, as: format)).write(to: URL(fileURLWithPath: input))
            let output = scratch.path(name + ".bin")
            // Fill the gaps inside the image's span with 0xFF, then move the base to offset 0.
            let result = try await PeerTool.run(
                srecCat,
                [
                    input, flag, "-fill", "0xFF", "0x08000000", "0x08012006",
                    "-offset", "-0x08000000", "-o", output, "-binary"
                ])
            #expect(result.status == 0, "\(result.output)")
            #expect(Array(try Data(contentsOf: URL(fileURLWithPath: output))) == ours, "\(name)")
        }
    }

    @Test(.enabled(if: PeerTool.runnable("srec_cat"), "srec_cat (Debian srecord) is not installed"))
    func weReadWhatSrecCatWrites() async throws {
        guard let srecCat = PeerTool.require("srec_cat", package: "srecord") else { return }
        let scratch = try TemporaryDirectory()
        let binary = scratch.path("x.bin")
        let payload = (0..<70_000).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 13) }
        try Data(payload).write(to: URL(fileURLWithPath: binary))
        for (flag, name, lineLength) in [("-intel", "y.hex", "44"), ("-motorola", "y.s37", "80"), ("-intel", "z.hex", "76")] {
            let output = scratch.path(name)
            let result = try await PeerTool.run(
                srecCat,
                [
                    binary, "-binary", "-offset", "0x08010003", "-o", output, flag,
                    "-line-length", lineLength
                ])
            #expect(result.status == 0, "\(result.output)")
            let read = try ImageFile.read(path: output)
            #expect(try read.canonicalSegments() == [Segment(address: 0x0801_0003, bytes: payload)], "\(name)")
        }
    }

    @Test(.enabled(if: PeerTool.runnable("dfu-suffix"), "dfu-suffix (Debian dfu-util) is not installed"))
    func dfuSuffixAcceptsEveryDfuFileWeWrite() async throws {
        guard let dfuSuffix = PeerTool.require("dfu-suffix", package: "dfu-util") else { return }
        let scratch = try TemporaryDirectory()
        let multi = FirmwareImage(
            format: .dfuse,
            targets: [
                ImageTarget(alternateSetting: 0, name: "Internal Flash", segments: image.segments),
                ImageTarget(
                    alternateSetting: 1, name: "Option Bytes", segments: [Segment(address: 0x1FFF_C000, bytes: [0xAA, 0xF8, 0xFF, 0xFF])])
            ])
        let identities = [nil, DfuSuffixIdentity(vendorID: 0x1209, productID: 0x0001, bcdDevice: 0x0102)]
        for (index, (source, identity)) in [(image, identities[0]), (multi, identities[1])].enumerated() {
            let path = scratch.path("x\(index).dfu")
            try ImageFile.write(source, to: path, as: .dfuse, options: WriteOptions(suffixIdentity: identity))
            let result = try await PeerTool.run(dfuSuffix, ["-c", path])
            #expect(result.status == 0, "\(result.output)")
            #expect(result.output.contains("contains a DFU suffix"), "\(result.output)")
            let expected = identity ?? WriteOptions.defaultIdentity
            #expect(result.output.contains("Vendor ID:\t0x\(String(format: "%04X", expected.vendorID))"), "\(result.output)")
        }
    }
}
