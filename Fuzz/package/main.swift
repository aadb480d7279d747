// libFuzzer harness: the package reading path before any key is involved — the strict zip reader, the
// manifest parser, and the manifest-versus-members check — on arbitrary bytes. The first input byte picks
// whether the rest is a whole package, a manifest on its own, or (2) any JSON for the shared strict reader.
import FirmwareImage
import StrictJSON

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPackage(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let mode = bytes.first else { return 0 }
    let rest = Array(bytes.dropFirst())
    if mode == 2 {
        fuzzJSON(rest)
    } else if mode & 1 == 0 {
        fuzzZip(rest)
    } else {
        fuzzManifest(rest)
    }
    return 0
}

/// Members must lie inside the file, apart, plainly named; a manifest inside must survive its own checks.
func fuzzZip(_ bytes: [UInt8]) {
    do {
        let archive = try ZipArchive(bytes: bytes, file: "fuzz")
        let ranges = archive.members.map(\.range).sorted { $0.lowerBound < $1.lowerBound }
        for range in ranges { precondition(range.lowerBound >= 0 && range.upperBound <= bytes.count, "a member outside the file") }
        for (a, b) in zip(ranges, ranges.dropFirst()) { precondition(a.upperBound <= b.lowerBound, "members overlap") }
        for member in archive.members { precondition(PackageNames.problem(with: member.name) == nil, "a bad name was accepted") }
        if let member = archive.member(named: PackageNames.manifest),
            let manifest = try? PackageManifest.decode(archive.contents(of: member), file: "fuzz")
        {
            try? manifest.checkMembers(of: archive, file: "fuzz")
        }
    } catch {
        precondition(!error.problem.isEmpty, "a PackageError must say what is wrong")
    }
}

/// A manifest that parses must re-encode to one that parses to the same value.
func fuzzManifest(_ bytes: [UInt8]) {
    do {
        let manifest = try PackageManifest.decode(bytes, file: "fuzz")
        let again = try? PackageManifest.decode(try manifest.encoded(), file: "fuzz")
        precondition(again == manifest, "a manifest does not survive encode → decode")
    } catch {
        precondition(!error.problem.isEmpty, "a PackageError must say what is wrong")
    }
}

/// The strict JSON reader never traps (its nesting is bounded), and a refusal names a problem at an offset
/// inside the text.
func fuzzJSON(_ bytes: [UInt8]) {
    do {
        _ = try JSONValue.parse(bytes)
    } catch {
        precondition(!error.problem.isEmpty && error.offset >= 0 && error.offset <= bytes.count, "a JSON refusal must say what and where")
    }
}
