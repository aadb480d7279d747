import ArgumentParser
import DeviceProfiles
import USBTransport

/// `dfuhop families`: the part lines dfuhop models (protocols/families/), what in each no public source
/// confirms yet, and the part lines it refuses.
struct FamiliesCommand: ParsableCommand {
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

    @Flag(help: "One JSON object per part line, with every value's source.") var json = false
    @Flag(help: "List each unverified value with its note.") var unverified = false

    func run() {
        for family in McuFamily.all { json ? Output.json(Self.object(family)) : render(family) }
        for refused in McuFamily.unsupported {
            if json {
                Output.json(["id": refused.id, "name": refused.name, "usbDFU": false, "refusal": refused.reason,
                             "source": refused.source.text, "unverified": refused.source.unverified])
            } else {
                Output.print("\(pad(refused.id, 6)) \(refused.name): refused, \(refused.reason)")
            }
        }
    }

    private func render(_ family: McuFamily) {
        let rom = family.romVersions[0]
        let open = family.unverified
        Output.print("\(pad(family.id, 6)) \(pad(family.name, 56)) DEV_ID 0x\(hex(family.deviceID, 3))  ROM 0x\(hex(rom.bcdDevice, 4))"
                     + "  " + (open.isEmpty ? "all values sourced" : "\(open.count) unverified: " + open.map(\.field).joined(separator: ", ")))
        guard unverified else { return }
        for item in open { Output.print("         \(item.field): \(item.note)") }
    }

    static func object(_ family: McuFamily) -> [String: Any] {
        [
            "id": family.id, "name": family.name, "usbDFU": true, "deviceID": "0x" + hex(family.deviceID, 3),
            "romVersions": family.romVersions.map {
                ["bcdDevice": "0x" + hex($0.bcdDevice, 4), "product": $0.product, "alternates": $0.otherMemories] as [String: Any]
            },
            "flashLayouts": family.flashModes.map(\.layoutString), "emptyCheck": family.emptyCheck,
            "serialRule": family.romSerial.kind.rawValue, "boot0PinReachesROM": family.factoryBoot0PinReachesROM,
            "sources": Dictionary(uniqueKeysWithValues: family.sources.map { ($0.key, $0.value.text) }),
            "unverified": family.unverified.map(\.field),
        ]
    }

    private func pad(_ text: String, _ width: Int) -> String { text + String(repeating: " ", count: max(0, width - text.count)) }
}
