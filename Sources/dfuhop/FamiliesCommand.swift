import ArgumentParser
import DeviceProfiles
import HexFormat
import USBTransport

/// `dfuhop families`: the part lines dfuhop models (protocols/families/), what in each no public source
/// confirms yet, and the part lines it refuses.
struct FamiliesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "families",
        abstract: "List the STM32 part lines dfuhop knows, with their ROM identity and the values still unverified.",
        discussion: """
            Each part line is a data file in protocols/families/ (embedded in the binary); every value there \
            names its source, and values no public source confirms are marked unverified. Part lines whose ROM \
            has no USB DFU are listed as refused, with the reason.

            Examples:
              dfuhop families
              dfuhop families --json
              dfuhop families --unverified
            """)

    @Flag(help: "Part lines as JSON: one result line listing each with every value's source.") var json = false
    @Flag(help: "List each unverified value with its note.") var unverified = false

    func run() async throws {
        let asJSON = json
        let detail = unverified
        try await runCommand("families", json: asJSON) {
            if !asJSON {
                for family in McuFamily.all { Self.render(family, unverified: detail) }
                for refused in McuFamily.unsupported {
                    Output.print("\(Self.pad(refused.id, 6)) \(refused.name): refused, \(refused.reason)")
                }
            }
            var result = ResultLine("listed")
            result.families =
                McuFamily.all.map(FamilyJSON.init)
                + McuFamily.unsupported.map { FamilyJSON(refused: $0.id, name: $0.name, reason: $0.reason, source: $0.source.text) }
            return result
        }
    }

    static func render(_ family: McuFamily, unverified: Bool) {
        let rom = family.romVersions[0]
        let open = family.unverified
        Output.print(
            "\(pad(family.id, 6)) \(pad(family.name, 56)) DEV_ID 0x\(Hex.digits(family.deviceID, width: 3))  ROM 0x\(Hex.digits(rom.bcdDevice, width: 4))"
                + "  " + (open.isEmpty ? "all values sourced" : "\(open.count) unverified: " + open.map(\.field).joined(separator: ", ")))
        guard unverified else { return }
        for item in open { Output.print("         \(item.field): \(item.note)") }
    }

    static func pad(_ text: String, _ width: Int) -> String { text + String(repeating: " ", count: max(0, width - text.count)) }
}

/// One part line in `families --json` (docs/json.md).
struct FamilyJSON: Codable, Equatable, Sendable {
    struct ROMJSON: Codable, Equatable, Sendable {
        var bcdDevice: String
        var product: String
        var alternates: [String]
    }

    var id: String
    var name: String
    var usbDFU: Bool
    var deviceID: String?
    var romVersions: [ROMJSON]?
    var flashLayouts: [String]?
    var emptyCheck: Bool?
    var serialRule: String?
    var boot0PinReachesROM: Bool?
    var sources: [String: String]?
    var unverified: [String]?
    var refusal: String?
    var source: String?

    init(_ family: McuFamily) {
        id = family.id
        name = family.name
        usbDFU = true
        deviceID = "0x" + Hex.digits(family.deviceID, width: 3)
        romVersions = family.romVersions.map {
            ROMJSON(bcdDevice: "0x" + Hex.digits($0.bcdDevice, width: 4), product: $0.product, alternates: $0.otherMemories)
        }
        flashLayouts = family.flashModes.map(\.layoutString)
        emptyCheck = family.emptyCheck
        serialRule = family.romSerial.kind.rawValue
        boot0PinReachesROM = family.factoryBoot0PinReachesROM
        sources = Dictionary(uniqueKeysWithValues: family.sources.map { ($0.key, $0.value.text) })
        unverified = family.unverified.map(\.field)
    }

    init(refused id: String, name: String, reason: String, source: String) {
        self.id = id
        self.name = name
        usbDFU = false
        refusal = reason
        self.source = source
    }
}
