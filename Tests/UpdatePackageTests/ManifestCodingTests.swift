import FirmwareImage
import Foundation
import SeededRandom
import Testing

@testable import UpdatePackage

/// The manifest is written by JSONEncoder and read by the strict decoder: whatever dfuhop writes reads back
/// as the same manifest, and writing that again gives the same bytes.
struct ManifestCodingTests {
    static func randomText(_ generator: inout SplitMix64, allowing characters: [Character]) -> String {
        String((0..<Int.random(in: 1...12, using: &generator)).map { _ in characters.randomElement(using: &generator)! })
    }

    static func randomManifest(_ generator: inout SplitMix64) -> PackageManifest {
        let letters = Array("abcdefghijklmnopqrstuvwxyz0123456789-")
        let any = letters + Array(" \"\\/é😀\n\t{}[]:,")
        func version() -> FirmwareVersion {
            FirmwareVersion(
                major: .random(in: 0...UInt16.max, using: &generator), minor: .random(in: 0...UInt16.max, using: &generator),
                patch: .random(in: 0...UInt16.max, using: &generator),
                build: Bool.random(using: &generator) ? 0 : .random(in: 1...UInt16.max, using: &generator))
        }
        let images = (0..<Int.random(in: 1...PackageManifest.maximumImages, using: &generator)).map { index in
            PackageManifest.Image(
                file: "image\(index).hex",
                sha256: String((0..<64).map { _ in Array("0123456789abcdef").randomElement(using: &generator)! }),
                size: .random(in: 1...PackageManifest.maximumImageSize, using: &generator))
        }
        let optionBytes = (0..<Int.random(in: 0...3, using: &generator)).map { index in
            PackageManifest.OptionByte(name: "OPT\(index)", value: .random(in: 0...UInt32.max, using: &generator))
        }
        return PackageManifest(
            profile: randomText(&generator, allowing: letters), productID: .random(in: 0...UInt32.max, using: &generator),
            family: randomText(&generator, allowing: letters), part: randomText(&generator, allowing: any), version: version(),
            minimumVersion: Bool.random(using: &generator) ? version() : nil, requiredOptionBytes: optionBytes,
            releaseNotes: Bool.random(using: &generator) ? randomText(&generator, allowing: any) : nil,
            created: "2026-12-06T14:52:26Z", images: images)
    }

    @Test("encode → decode gives the manifest back, and encoding is stable")
    func roundTrip() throws {
        let seed = ProcessInfo.processInfo.environment["DFUHOP_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 0...UInt64.max)
        var generator = SplitMix64(seed: seed)
        for _ in 0..<300 {
            let manifest = Self.randomManifest(&generator)
            let bytes = try manifest.encoded()
            let again = try PackageManifest.decode(bytes, file: "m")
            #expect(again == manifest, "seed \(seed): \(String(decoding: bytes, as: UTF8.self))")
            #expect(try again.encoded() == bytes, "seed \(seed)")
        }
    }

    @Test("the written form: keys sorted, indented, the product id as 8 hex digits, a newline at the end")
    func writtenForm() throws {
        let manifest = PackageManifest(
            profile: "p", productID: 0x0DF0_0474, family: "g474", part: "STM32G474", version: FirmwareVersion(major: 2, minor: 0, patch: 0),
            created: "2026-01-01T00:00:00Z", images: [.init(file: "a/b.hex", sha256: String(repeating: "0", count: 64), size: 5)])
        let text = String(decoding: try manifest.encoded(), as: UTF8.self)
        #expect(text.hasSuffix("}\n") && text.contains("\"productID\" : \"0x0DF00474\"") && text.contains("\"a/b.hex\""), "\(text)")
        let keys = ["created", "family", "format", "images", "part", "productID", "profile", "version"]
        let positions = keys.compactMap { text.range(of: "\n  \"\($0)\"")?.lowerBound }
        #expect(positions.count == keys.count && positions == positions.sorted(), "\(text)")
        #expect(!text.contains("minimumVersion") && !text.contains("requiredOptionBytes") && !text.contains("releaseNotes"))
    }

    @Test("null, a fraction and a string where an integer goes are refused, naming the field")
    func strictFields() throws {
        var generator = SplitMix64(seed: 1)
        let good = String(decoding: try Self.randomManifest(&generator).encoded(), as: UTF8.self)
        for (from, to, field) in [
            ("\"format\" : 1", "\"format\" : 1.0", "format"), ("\"format\" : 1", "\"format\" : \"1\"", "format"),
            ("\"format\" : 1", "\"format\" : true", "format"), ("\"format\" : 1", "\"format\" : null", "format")
        ] {
            let text = good.replacingOccurrences(of: from, with: to)
            let error = try #require(throws: PackageError.self) { _ = try PackageManifest.decode(Array(text.utf8), file: "m") }
            #expect(error.kind == .malformed && error.problem.hasPrefix(field + " "), "\(to): \(error)")
        }
    }
}
