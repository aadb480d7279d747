import Foundation
import Testing
import USBDiscovery

@Suite("udev rules")
struct UdevRulesTests {
    static let rulesFile = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("udev/70-dfuhop.rules")

    @Test func theEmbeddedRulesAreTheShippedFile() throws {
        let shipped = try String(contentsOf: Self.rulesFile, encoding: .utf8)
        #expect(UdevRules.text == shipped)
    }

    @Test func coverTheROMBootloaderAndTheDemoProductsHIDInterfaces() {
        let matches = UdevRules.matches(in: UdevRules.text)
        #expect(matches.first == UdevRules.Match(node: .usb, vendorID: 0x0483, productID: 0xDF11))
        #expect(matches.filter { $0.node == .hidraw }.map(\.productID) == [1, 2, 3])
        #expect(matches.allSatisfy { $0.node == .usb || $0.vendorID == 0x1209 })
    }

    @Test func grantAccessOnlyThroughUaccessNeverAWorldWritableMode() {
        let rules = UdevRules.text.split(separator: "\n").filter { !$0.hasPrefix("#") && !$0.isEmpty }
        #expect(rules.count == 4)
        for rule in rules {
            #expect(rule.contains("TAG+=\"uaccess\""))
            #expect(!rule.contains("MODE"))
            #expect(!rule.contains("GROUP"))
        }
    }

    @Test func readLinesOfEitherAttributeFormAndEitherCaseButOnlyWithUaccess() {
        let text = """
            SUBSYSTEM=="usb", ATTR{idVendor}=="0483", ATTR{idProduct}=="DF11", TAG+="uaccess"
            SUBSYSTEM=="hidraw", KERNEL=="hidraw*", ATTRS{idVendor}=="1209", ATTRS{idProduct}=="00ff", TAG+="uaccess"
            SUBSYSTEM=="usb", ATTR{idVendor}=="1234", ATTR{idProduct}=="5678", MODE="0666"
            SUBSYSTEM=="usb", ATTR{idVendor}=="zz12", ATTR{idProduct}=="5678", TAG+="uaccess"
            """
        #expect(
            UdevRules.matches(in: text) == [
                UdevRules.Match(node: .usb, vendorID: 0x0483, productID: 0xDF11),
                UdevRules.Match(node: .hidraw, vendorID: 0x1209, productID: 0x00FF)
            ])
        #expect(UdevRules.Match(node: .hidraw, vendorID: 0x1209, productID: 0x00FF).description == "hidraw 1209:00ff")
    }

    @Test func ignoreCommentedOutLines() {
        let text = "# SUBSYSTEM==\"usb\", ATTR{idVendor}==\"0483\", ATTR{idProduct}==\"df11\", TAG+=\"uaccess\"\n"
        #expect(UdevRules.matches(in: text).isEmpty)
    }
}
