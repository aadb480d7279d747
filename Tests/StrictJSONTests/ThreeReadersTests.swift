import DeviceProfiles
import Foundation
import SeededRandom
import StrictJSON
import Testing
import UpdatePackage

private let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

/// The three readers of dfuhop's JSON files — product profiles, family files, package manifests — stand on
/// the one strict reader: each refuses a key given twice, at the top and nested, naming the file and the
/// path; and each holds integers to the same rule.
@Suite(.timeLimit(.minutes(5))) struct ThreeReadersTests {
    /// The outcome of reading one file: the integer read from the field under test, or the field the
    /// refusal names and its words.
    enum Outcome: Equatable {
        case accepted(UInt32)
        case refused(field: String, problem: String)

        var field: String? {
            if case .refused(let field, _) = self { return field }
            return nil
        }
    }

    /// A file kind: a good file with `VALUE` where the field under test goes, how to read it, and the field.
    struct Kind: Sendable, CustomStringConvertible {
        var description: String
        var field: String
        /// Integers may be strings here (profiles: "0x1209" or "4660").
        var stringsAllowed: Bool
        var template: @Sendable () throws -> String
        var read: @Sendable (String) -> Outcome
    }

    static let profile = Kind(
        description: "profile", field: "application.imageProductID", stringsAllowed: true,
        template: {
            let text = try String(contentsOf: repository.appendingPathComponent("protocols/devices/dfuhop-demo-g474.json"), encoding: .utf8)
            return try replacing(#""imageProductID": "0x0DF00474""#, with: #""imageProductID": VALUE"#, in: text)
        },
        read: { text in
            do {
                let profile = try ProductProfile.decode(Data(text.utf8), file: "p.json")
                guard case .dfuhop(let id) = profile.application.hidProtocol else { return .refused(field: "?", problem: "?") }
                return .accepted(id)
            } catch let error as ProductProfileError {
                return .refused(field: error.field, problem: error.problem)
            } catch {
                return .refused(field: "?", problem: "\(error)")
            }
        })

    static let family = Kind(
        description: "family file", field: "ram.regions.0.size", stringsAllowed: false,
        template: {
            let text = try String(contentsOf: repository.appendingPathComponent("protocols/families/f407.json"), encoding: .utf8)
            return try replacing(#""size": 131072"#, with: #""size": VALUE"#, in: text)
        },
        read: { text in
            do {
                let catalog = try FamilyCatalog(files: [("f407.json", text)])
                return .accepted(catalog.families.first?.ramRegions.first?.size ?? 0)
            } catch let error as FamilyDataError {
                return .refused(field: error.field, problem: error.problem)
            } catch {
                return .refused(field: "?", problem: "\(error)")
            }
        })

    static let manifestText = """
        {"format": 1, "profile": "dfuhop-demo-g474", "productID": "0x0DF00474", "family": "g474", "part": "STM32G474",
         "version": "2.0.0", "created": "2026-01-01T00:00:00Z", "requiredOptionBytes": [{"name": "DBANK", "value": VALUE}],
         "images": [{"file": "app.hex", "sha256": "\(String(repeating: "ab", count: 32))", "size": 10}]}
        """

    static let manifest = Kind(
        description: "manifest", field: "requiredOptionBytes.0.value", stringsAllowed: false,
        template: { manifestText },
        read: { text in
            do {
                return .accepted(try PackageManifest.decode(Array(text.utf8), file: "m.json").requiredOptionBytes[0].value)
            } catch let error as PackageError {
                // A manifest refusal reads "<dotted path> <problem>".
                let (field, problem) = error.problem.split(separator: " ", maxSplits: 1).map(String.init).pairs
                return .refused(field: field, problem: problem)
            } catch {
                return .refused(field: "?", problem: "\(error)")
            }
        })

    static let kinds = [profile, family, manifest]

    static func replacing(_ target: String, with replacement: String, in text: String) throws -> String {
        let range = try #require(text.range(of: target), "\(target) not in the file")
        return text.replacingCharacters(in: range, with: replacement)
    }

    /// `addition` placed right after the first `{` that follows `marker` (the document's own with no marker),
    /// so that object gets a key twice.
    static func inserting(_ addition: String, intoObjectAfter marker: String?, in text: String) throws -> String {
        let start = try marker.map { marker in try #require(text.range(of: marker), "\(marker) not in the file").upperBound }
        let brace = try #require(text[(start ?? text.startIndex)...].firstIndex(of: "{"))
        return text.replacingCharacters(in: brace...brace, with: "{" + addition)
    }

    @Test("the good files read", arguments: kinds)
    func goodFiles(kind: Kind) throws {
        let good = try kind.template().replacingOccurrences(of: "VALUE", with: "7")
        #expect(kind.read(good) == .accepted(7))
    }

    @Test("a key given twice at the top is refused, naming it", arguments: kinds)
    func duplicateAtTop(kind: Kind) throws {
        let text = try kind.template().replacingOccurrences(of: "VALUE", with: "7")
        let doubled = try Self.inserting(#""format": 1, "#, intoObjectAfter: nil, in: text)
        let outcome = kind.read(doubled)
        #expect(outcome.field == "format", "\(outcome)")
        if case .refused(_, let problem) = outcome { #expect(problem.contains("\"format\" appears twice"), "\(problem)") }
    }

    @Test("a key given twice in a nested object is refused, naming its path", arguments: kinds)
    func duplicateNested(kind: Kind) throws {
        let text = try kind.template().replacingOccurrences(of: "VALUE", with: "7")
        let (marker, key, path): (String, String, String) =
            switch kind.description {
            case "profile": (#""application""#, "protocol", "application.protocol")
            case "family file": (#""flash""#, "base", "flash.base")
            default: (#""images""#, "size", "images.0.size")
            }
        let outcome = kind.read(try Self.inserting(#""\#(key)": "x", "#, intoObjectAfter: marker, in: text))
        #expect(outcome.field == path, "\(kind): \(outcome)")
        if case .refused(_, let problem) = outcome { #expect(problem.contains("\"\(key)\" appears twice"), "\(problem)") }
    }

    /// A value for a 32-bit unsigned field as JSON text, and what the integer rule makes of it: the integer,
    /// or nil (refused); `asString` tells values that are integers only where strings are allowed.
    static func randomValue(using generator: inout SplitMix64) -> (text: String, integer: UInt32?, asString: Bool) {
        let n = UInt32.random(in: 0...UInt32.max, using: &generator)
        let big = Int64.random(in: Int64(UInt32.max) + 1...Int64.max, using: &generator)
        switch Int.random(in: 0..<12, using: &generator) {
        case 0: return ("\(n)", n, false)
        case 1:
            let edge = [0, 1, UInt32.max].randomElement(using: &generator)!
            return ("\(edge)", edge, false)
        case 2: return ("\(big)", nil, false)
        case 3: return ("-\(Int64.random(in: 1...Int64.max, using: &generator))", nil, false)
        case 4: return ("\(n).0", nil, false)
        case 5: return ("\(n)e0", nil, false)
        case 6: return ("\(Double(n) + 0.5)", nil, false)
        case 7: return (Bool.random(using: &generator) ? "true" : "false", nil, false)
        case 8: return ("\"\(n)\"", n, true)
        case 9: return ("\"0x\(String(n, radix: 16))\"", n, true)
        case 10: return ("\"0x\(String(big, radix: 16))\"", nil, true)
        default:
            return (
                ["18446744073709551616", "1e40", "null", "\"\"", "\"0x\"", "\"12a\"", "[]", "{}"].randomElement(using: &generator)!, nil,
                false
            )
        }
    }

    @Test("the integer rule is the same in all three: integers in range accepted; fractions, exponents, booleans and out of range refused")
    func integerRule() throws {
        let seed = ProcessInfo.processInfo.environment["DFUHOP_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 0...UInt64.max)
        var generator = SplitMix64(seed: seed)
        let templates = try Self.kinds.map { try $0.template() }
        for _ in 0..<150 {
            let (text, integer, asString) = Self.randomValue(using: &generator)
            for (kind, template) in zip(Self.kinds, templates) {
                let outcome = kind.read(template.replacingOccurrences(of: "VALUE", with: text))
                let expected = asString && !kind.stringsAllowed ? nil : integer
                if let expected {
                    #expect(outcome == .accepted(expected), "seed \(seed): \(kind) \(text): \(outcome)")
                } else {
                    #expect(outcome.field == kind.field, "seed \(seed): \(kind) \(text): \(outcome)")
                }
            }
        }
    }
}

extension Array where Element == String {
    /// The first two elements (the second empty when missing).
    fileprivate var pairs: (String, String) { (first ?? "", count > 1 ? self[1] : "") }
}
