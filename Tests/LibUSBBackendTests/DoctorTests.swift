import Foundation
import Testing
import USBDiscovery
import USBTransport

@testable import LibUSBBackend

@Suite("udev rules", .timeLimit(.minutes(10)))
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

    @Test func ignoreCommentedOutLines() {
        let text = "# SUBSYSTEM==\"usb\", ATTR{idVendor}==\"0483\", ATTR{idProduct}==\"df11\", TAG+=\"uaccess\"\n"
        #expect(UdevRules.matches(in: text).isEmpty)
    }
}

@Suite("dfuhop doctor", .timeLimit(.minutes(10)))
struct DoctorTests {
    static let rom: LibUSBDeviceRecord = {
        let configuration = try! USBConfiguration(parsing: ROMDescriptors.configuration())
        var record = LibUSBDeviceRecord(
            portPath: USBPortPath("1-3.2")!, address: 7,
            descriptor: try! USBDeviceDescriptor(parsing: ROMDescriptors.device),
            dfuInterfaces: try! DFUInterfaceDescription.find(in: configuration))
        record.openError = LibUSBError(.access, operation: "libusb_open(/dev/bus/usb/001/007)")
        return record
    }()

    static let keyboard = LibUSBDeviceRecord(
        portPath: USBPortPath("1-4")!, address: 3,
        descriptor: USBDeviceDescriptor(
            usbVersion: 0x200, deviceClass: 0, deviceSubclass: 0, deviceProtocol: 0, maxPacketSize0: 8,
            vendorID: 0x046D, productID: 0xC31C, bcdDevice: 0, manufacturerIndex: 0, productIndex: 0,
            serialNumberIndex: 0, configurationCount: 1),
        dfuInterfaces: [])

    static let app = HIDDeviceInfo(
        usb: USBDeviceIdentity(vendorID: 0x1209, productID: 0x0001, portPath: "1-3.2"), usagePage: 0xFFDF,
        usage: 1, interfaceNumber: 0, path: "/dev/hidraw4")

    static func environment(rules: String?, access: NodeAccess, isRoot: Bool = false) -> DoctorEnvironment {
        DoctorEnvironment(
            libusbVersion: { "1.0.26.11724" }, hidapiVersion: { "0.13.1" },
            usbDevices: { [rom, keyboard] }, hidDevices: { [app] },
            readFile: { path in path == "/etc/udev/rules.d/70-dfuhop.rules" ? rules : nil },
            nodeAccess: { _ in access }, isRoot: isRoot)
    }

    static let denied = NodeAccess(exists: true, readable: false, writable: false, mode: 0o664, owner: "root", group: "root")
    static let granted = NodeAccess(exists: true, readable: true, writable: true, mode: 0o664, owner: "root", group: "root")

    @Test func withoutRulesItSaysHowToInstallThemForEveryInaccessibleNode() async throws {
        let findings = await USBDoctor.diagnose(Self.environment(rules: nil, access: Self.denied))
        #expect(findings.map(\.check) == ["libusb", "udev rules", "usb device", "hidapi", "hid device"])
        let rules = try #require(findings.first { $0.check == "udev rules" })
        #expect(rules.status == .problem)
        #expect(rules.fix == USBDoctor.installCommand)
        let rom = try #require(findings.first { $0.check == "usb device" })
        #expect(rom.status == .problem)
        #expect(rom.subject == "/dev/bus/usb/001/007")
        #expect(rom.detail.contains("mode 0664, owner root, group root"))
        #expect(rom.fix?.contains("install the udev rules") == true)
        #expect(findings.first { $0.check == "hid device" }?.subject == "/dev/hidraw4")
        #expect(findings.first { $0.check == "hidapi" }?.detail.contains("0.13.1") == true)
    }

    @Test func withRulesButNoAccessItAsksForAReplugAndExplainsUaccess() async throws {
        let findings = await USBDoctor.diagnose(Self.environment(rules: UdevRules.text, access: Self.denied))
        #expect(findings.first { $0.check == "udev rules" }?.status == .ok)
        let rom = try #require(findings.first { $0.check == "usb device" })
        #expect(rom.status == .problem)
        #expect(rom.fix?.contains("replug") == true)
        #expect(rom.fix?.contains("active local session") == true)
    }

    @Test func everythingInPlaceIsAllOK() async throws {
        let findings = await USBDoctor.diagnose(Self.environment(rules: UdevRules.text, access: Self.granted))
        #expect(findings.allSatisfy { $0.status == .ok }, "\(findings)")
        #expect(!findings.contains { $0.detail.contains("046d") }, "a keyboard is none of dfuhop's business")
    }

    @Test func oldRulesAreAWarningNamingWhatIsMissing() async throws {
        let old = UdevRules.text.split(separator: "\n").filter { !$0.contains("\"0003\"") }.joined(separator: "\n")
        let findings = await USBDoctor.diagnose(Self.environment(rules: old, access: Self.granted))
        let rules = try #require(findings.first { $0.check == "udev rules" })
        #expect(rules.status == .warning)
        #expect(rules.detail.contains("hidraw 1209:0003"))
    }

    @Test func rootNeedsNoRulesButIsToldTheUsersWill() async throws {
        let findings = await USBDoctor.diagnose(Self.environment(rules: nil, access: Self.granted, isRoot: true))
        #expect(findings.first { $0.check == "udev rules" }?.status == .warning)
    }

    @Test func aLibraryThatCannotStartIsAProblem() async throws {
        var environment = Self.environment(rules: UdevRules.text, access: Self.granted)
        environment.usbDevices = { throw LibUSBError(.io, operation: "libusb_get_device_list") }
        let findings = await USBDoctor.diagnose(environment)
        #expect(findings.first?.status == .problem)
        #expect(findings.first?.detail.contains("LIBUSB_ERROR_IO") == true)
        #expect(findings.contains { $0.check == "udev rules" })
    }

    @Test func readsRealNodePermissions() {
        #expect(NodeAccess.of("/dev/null").readable)
        #expect(NodeAccess.of("/dev/null").writable)
        #expect(NodeAccess.of("/dev/null").modeText == "0666")
        #expect(!NodeAccess.of("/dev/bus/usb/999/999").exists)
    }
}

@Suite("dfuhop doctor's verdict", .timeLimit(.minutes(10)))
struct DoctorVerdictTests {
    static func finding(_ check: String, _ status: DoctorFinding.Status) -> DoctorFinding {
        DoctorFinding(check: check, status: status, detail: "\(check) \(status)")
    }

    @Test func everyWarningOrProblemNeedsAttentionAndOnlyAllOKIsHealthy() {
        // Every combination of three statuses on the non-library checks: healthy exactly when all are ok.
        let statuses: [DoctorFinding.Status] = [.ok, .warning, .problem]
        for a in statuses {
            for b in statuses {
                for c in statuses {
                    let findings = [
                        Self.finding("libusb", .ok), Self.finding("udev rules", a), Self.finding("usb device", b),
                        Self.finding("hidapi", .ok), Self.finding("hid device", c)
                    ]
                    let expected: DoctorVerdict = [a, b, c].allSatisfy { $0 == .ok } ? .healthy : .needsAttention
                    #expect(USBDoctor.verdict(findings) == expected, "\(findings)")
                }
            }
        }
    }

    @Test func aLibraryThatCannotStartOutranksEverythingElse() {
        let findings = [Self.finding("libusb", .ok), Self.finding("udev rules", .warning), Self.finding("hidapi", .problem)]
        #expect(USBDoctor.verdict(findings) == .libraryFailure)
    }

    @Test func theScenariosAboveComeToTheRightVerdicts() async {
        let oldRules = UdevRules.text.split(separator: "\n").filter { !$0.contains("\"0003\"") }.joined(separator: "\n")
        let cases: [(String?, NodeAccess, Bool, DoctorVerdict)] = [
            (UdevRules.text, DoctorTests.granted, false, .healthy),
            (oldRules, DoctorTests.granted, false, .needsAttention), // only a warning: still not healthy
            (nil, DoctorTests.granted, true, .needsAttention), // root without rules: a warning
            (UdevRules.text, DoctorTests.denied, false, .needsAttention)
        ]
        for (rules, access, isRoot, expected) in cases {
            let findings = await USBDoctor.diagnose(DoctorTests.environment(rules: rules, access: access, isRoot: isRoot))
            #expect(USBDoctor.verdict(findings) == expected, "\(findings)")
        }
    }
}
