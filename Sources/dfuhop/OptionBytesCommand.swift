import ArgumentParser
import DeviceProfiles
import Foundation
import HexFormat
import UpgradeEngine

/// `dfuhop option-bytes`: a unit's option bytes, read from its ROM and decoded per part line
/// (protocols/option-bytes/). Read-only: uploads only, like `read`.
struct OptionBytesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "option-bytes",
        abstract: "Read a unit's option bytes in DFU mode and show what each field means (nothing is written).",
        discussion: """
            Reads the ROM's option-byte memory ("@Option Bytes" alternate setting) with uploads only, then names \
            each field by the reference manual (RDP, BOR_LEV, nBOOT0, nSWBOOT0, watchdogs, WRP ...) with its value, \
            its meaning and the source of its bit position. Fields no public source places are marked unverified. \
            Part lines without a layout show the raw bytes only. The unit stays in DFU mode, as after `read`.

            Examples:
              dfuhop option-bytes
              dfuhop option-bytes --json
            """)

    @Flag(help: "The result as a JSON object.") var json = false
    @OptionGroup var device: DeviceOptions

    func run() async throws {
        try await runCommand("option-bytes", json: json) {
            try await DeviceSession.withDFUTarget(device, json: json) { unit, engine, renderer in
                let read = try await engine.readOptionBytes(from: unit)
                renderer.finish()
                let layout = OptionByteLayout.layout(forFamily: unit.family.id)
                let decoded = layout?.decode(read.bytes, family: unit.family.id) ?? []
                if !json { Output.print(lines: Self.text(read, unit: unit, layout: layout, decoded: decoded)) }
                var result = ResultLine("read")
                result.optionBytes = OptionBytesJSON(read, unit: unit, layout: layout, decoded: decoded)
                return result
            }
        }
    }

    static func text(
        _ read: UpgradeEngine.OptionBytesRead, unit: UpgradeEngine.DFUUnit, layout: OptionByteLayout?, decoded: [DecodedOption]
    ) -> [String] {
        var lines = [
            "option bytes of \(unit.family.name) at \(unit.identity.portPath): \(read.bytes.count) bytes from "
                + "\(Hex.word(read.address)) (alternate \(read.alternate))"
        ]
        for row in stride(from: 0, to: read.bytes.count, by: 16) {
            let chunk = read.bytes[row..<min(row + 16, read.bytes.count)]
            lines.append("  \(Hex.word(read.address + UInt32(row)))  \(chunk.map { Hex.digits($0, width: 2) }.joined(separator: " "))")
        }
        guard let layout else {
            lines.append("not decoded: raw bytes shown (dfuhop has no option-byte layout for \(unit.family.name))")
            return lines
        }
        lines.append("")
        let nameWidth = decoded.map(\.field.name.count).max() ?? 0
        let valueWidth = decoded.map(\.valueText.count).max() ?? 0
        for option in decoded {
            let mark = option.field.unverified ? "  (unverified)" : ""
            let meaning = option.meaning.map { ": \($0)" } ?? ""
            lines.append(
                "\(option.field.name.padding(toLength: nameWidth, withPad: " ", startingAt: 0))  "
                    + "\(option.valueText.padding(toLength: valueWidth, withPad: " ", startingAt: 0))  "
                    + "\(option.field.description)\(meaning)\(mark)")
        }
        let unverified = decoded.filter(\.field.unverified).count
        lines.append("")
        lines.append(
            "layout: protocols/option-bytes/\(layout.file) (\(layout.line)); every field's source is in --json"
                + (unverified > 0 ? "; \(unverified) field(s) placed by no checked source are marked unverified" : ""))
        return lines
    }
}

/// `option-bytes --json`: the bytes read and, where dfuhop has the part line's layout, each field.
struct OptionBytesJSON: Codable, Equatable, Sendable {
    struct Field: Codable, Equatable, Sendable {
        var name: String
        var offset: Int
        var bit: Int
        var width: Int
        var value: UInt32
        var description: String
        var meaning: String?
        var source: String
        var unverified: Bool
    }

    var family: String
    var port: String
    var alternate: Int
    var address: String
    var length: Int
    var bytes: String
    /// The layout file, absent when the part line has none (then `fields` is empty and `note` says so).
    var layout: String?
    var note: String?
    var fields: [Field]

    init(_ read: UpgradeEngine.OptionBytesRead, unit: UpgradeEngine.DFUUnit, layout: OptionByteLayout?, decoded: [DecodedOption]) {
        family = unit.family.id
        port = unit.identity.portPath
        alternate = Int(read.alternate)
        address = Hex.word(read.address)
        length = read.bytes.count
        bytes = Hex.string(read.bytes)
        self.layout = layout.map { "protocols/option-bytes/\($0.file)" }
        note = layout == nil ? "not decoded: raw bytes shown" : nil
        fields = decoded.map {
            Field(
                name: $0.field.name, offset: $0.field.offset, bit: $0.field.bit, width: $0.field.width, value: $0.value,
                description: $0.field.description, meaning: $0.meaning, source: $0.field.source, unverified: $0.field.unverified)
        }
    }
}
