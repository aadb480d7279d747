import ArgumentParser
import DeviceProfiles
import HexFormat
import VirtualDevice

/// A time given in seconds on the command line: a positive, finite number no larger than a day, so no
/// value (`inf`, `1e16`, `nan`) can overflow a `Duration` or wait for ever.
struct Seconds: ExpressibleByArgument, Sendable, CustomStringConvertible {
    static let limit = 86_400.0
    let value: Double

    init?(argument: String) {
        guard let value = Double(argument), value.isFinite, value > 0, value <= Self.limit else { return nil }
        self.value = value
    }

    init(_ value: Double) { self.value = value }

    var duration: Duration { .milliseconds(Int64((value * 1000).rounded())) }
    var description: String { String(value) }
    static var defaultCompletionKind: CompletionKind { .default }
}

/// `--family g474`: one of the families dfuhop knows (protocols/devices), parsed once, here.
struct FamilyArgument: ExpressibleByArgument, Sendable {
    let family: McuFamily

    init?(argument: String) {
        guard let family = McuFamily.named(argument) else { return nil }
        self.family = family
    }

    static var allValueStrings: [String] { McuFamily.all.map(\.id) }
    static var defaultCompletionKind: CompletionKind { .list(allValueStrings) }
}

/// A 32-bit address as people write it: `0x08004000` or `0x0800_4000`. Without `0x` it is refused rather
/// than read as decimal: `08004000` meant as hex would otherwise land far from where it was meant to go.
struct Address: ExpressibleByArgument, Sendable, CustomStringConvertible {
    let value: UInt32

    init?(argument: String) {
        let cleaned = argument.replacingOccurrences(of: "_", with: "").lowercased()
        guard cleaned.hasPrefix("0x"), let value = UInt32(cleaned.dropFirst(2), radix: 16) else { return nil }
        self.value = value
    }

    init(_ value: UInt32) { self.value = value }

    var description: String { Hex.word(value) }
    static var defaultCompletionKind: CompletionKind { .default }
}

/// A byte count: decimal, `0x` hex, or with a K, KB, KiB, M, MB or MiB suffix (all binary, as sizes of flash
/// are: `4K`, `4KB` and `4KiB` are 4096), `_` allowed.
struct ByteCount: ExpressibleByArgument, Sendable, CustomStringConvertible {
    let value: UInt64

    init?(argument: String) {
        var text = argument.replacingOccurrences(of: "_", with: "").lowercased()
        var scale: UInt64 = 1
        for (suffix, factor) in [("kib", 1 << 10), ("mib", 1 << 20), ("kb", 1 << 10), ("mb", 1 << 20), ("k", 1 << 10), ("m", 1 << 20)]
            as [(String, UInt64)]
        where text.hasSuffix(suffix) {
            text.removeLast(suffix.count)
            scale = factor
            break
        }
        let number = text.hasPrefix("0x") ? UInt64(text.dropFirst(2), radix: 16) : UInt64(text)
        guard let number, number > 0, number <= UInt64(UInt32.max) + 1, number.multipliedReportingOverflow(by: scale).overflow == false,
            number * scale <= UInt64(UInt32.max) + 1
        else { return nil }
        value = number * scale
    }

    var description: String { String(value) }
    static var defaultCompletionKind: CompletionKind { .default }
}

/// What the shell completes (`dfuhop --generate-completion-script`): file names wherever a file goes, the
/// fixed values where there are some.
extension CompletionKind {
    /// Image formats dfuhop writes (`read --format`, `image convert --format`).
    static var imageFormats: CompletionKind { .list(["bin", "hex", "srec", "dfu"]) }
    /// `--simulate`: every family, alone and with every state.
    static var simulations: CompletionKind {
        .list(
            (McuFamily.all.map(\.id) + ["g474-single"]).flatMap { family in
                [family] + SimulationSpec.State.allCases.map { "\(family):\($0.rawValue)" }
            })
    }
    static var families: CompletionKind { .list(FamilyArgument.allValueStrings) }
}
