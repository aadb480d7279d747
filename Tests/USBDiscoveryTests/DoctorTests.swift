import Foundation
import HIDAPIBackend
import Testing
import USBDiscovery
import USBTransport

@testable import LibUSBBackend

@Suite("dfuhop doctor")
struct DoctorTests {
    /// A USB device as a scan records it: `dfu` gives it an ST ROM's DFU-mode interface (AN3156: interface
    /// 0, DfuSe, wTransferSize 2048).
    static func record(
        port: String, address: UInt8, vendorID: UInt16, productID: UInt16, dfu: Bool, openError: LibUSBError.Code? = nil
    ) -> LibUSBDeviceRecord {
        let interface = DFUInterfaceDescription(
            interfaceNumber: 0, isDFUMode: true, settings: [.init(alternateSetting: 0, nameIndex: 4)],
            functionalDescriptor: DFUFunctionalDescriptor(attributes: 0x0B, detachTimeoutMs: 255, transferSize: 2048, dfuVersion: 0x011A))
        var record = LibUSBDeviceRecord(
            portPath: USBPortPath(port)!, address: address,
            descriptor: USBDeviceDescriptor(
                usbVersion: 0x200, deviceClass: 0, deviceSubclass: 0, deviceProtocol: 0, maxPacketSize0: 64,
                vendorID: vendorID, productID: productID, bcdDevice: 0x2200, manufacturerIndex: 1, productIndex: 2,
                serialNumberIndex: 3, configurationCount: 1),
            dfuInterfaces: dfu ? [interface] : [])
        record.openError = openError.map { LibUSBError($0, operation: "libusb_open(\(record.devicePath))") }
        return record
    }

    static let rom = record(port: "1-3.2", address: 7, vendorID: 0x0483, productID: 0xDF11, dfu: true, openError: .access)
    static let keyboard = record(port: "1-4", address: 3, vendorID: 0x046D, productID: 0xC31C, dfu: false)

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

    @Test func modesAreWrittenAsChmodTakesThem() {
        func text(_ mode: UInt32) -> String {
            NodeAccess(exists: true, readable: false, writable: false, mode: mode, owner: "root", group: "root").modeText
        }
        #expect([text(0), text(0o600), text(0o664), text(0o4755)] == ["0000", "0600", "0664", "04755"])
    }

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

    @Test func aUnitAnotherProgramHoldsIsAWarningNamingTheProgramsToClose() async throws {
        var environment = Self.environment(rules: UdevRules.text, access: Self.granted)
        environment.usbDevices = {
            [Self.record(port: "1-3.2", address: 7, vendorID: 0x0483, productID: 0xDF11, dfu: true, openError: .busy)]
        }
        let findings = await USBDoctor.diagnose(environment)
        let rom = try #require(findings.first { $0.check == "usb device" })
        #expect(rom.status == .warning)
        #expect(rom.detail.contains("LIBUSB_ERROR_BUSY"))
        #expect(rom.fix?.contains("dfu-util") == true)
        #expect(USBDoctor.verdict(findings) == .needsAttention)
    }

    @Test func aNodeThatVanishedBeforeItsCheckIsAWarningWithoutAFix() async throws {
        let gone = NodeAccess(exists: false, readable: false, writable: false)
        let findings = await USBDoctor.diagnose(Self.environment(rules: UdevRules.text, access: gone))
        let rom = try #require(findings.first { $0.check == "usb device" })
        #expect(rom.status == .warning)
        #expect(rom.detail.contains("does not exist"))
        #expect(rom.fix == nil)
    }

    @Test func rootThatCannotOpenANodeIsPointedAtSecurityModulesNotAtTheRules() async throws {
        let findings = await USBDoctor.diagnose(Self.environment(rules: UdevRules.text, access: Self.denied, isRoot: true))
        let rom = try #require(findings.first { $0.check == "usb device" })
        #expect(rom.status == .problem)
        #expect(rom.fix?.contains("SELinux") == true)
    }

    @Test(
        "the rules are looked for where udev reads them, /etc first (udev(7))",
        arguments: ["/etc/udev/rules.d", "/run/udev/rules.d", "/lib/udev/rules.d", "/usr/lib/udev/rules.d"])
    func rulesAreFoundInEveryUdevDirectory(directory: String) async throws {
        var environment = Self.environment(rules: nil, access: Self.granted)
        environment.readFile = { path in path == "\(directory)/70-dfuhop.rules" ? UdevRules.text : nil }
        let rules = try #require(await USBDoctor.diagnose(environment).first { $0.check == "udev rules" })
        #expect(rules.status == .ok)
        #expect(rules.subject == "\(directory)/70-dfuhop.rules")
    }

    @Test func anOldFileInEtcOverridesACurrentVendorFileAndIsReported() async throws {
        let old = UdevRules.text.split(separator: "\n").filter { !$0.contains("\"0002\"") }.joined(separator: "\n")
        var environment = Self.environment(rules: nil, access: Self.granted)
        environment.readFile = { path in
            switch path {
            case "/etc/udev/rules.d/70-dfuhop.rules": old
            case "/usr/lib/udev/rules.d/70-dfuhop.rules": UdevRules.text
            default: nil
            }
        }
        let rules = try #require(await USBDoctor.diagnose(environment).first { $0.check == "udev rules" })
        #expect(rules.status == .warning)
        #expect(rules.subject == "/etc/udev/rules.d/70-dfuhop.rules")
        #expect(rules.detail.contains("hidraw 1209:0002"))
    }

    @Test func hidInterfacesOfOtherProductsAreNotChecked() async throws {
        var environment = Self.environment(rules: UdevRules.text, access: Self.denied)
        let mouse = HIDDeviceInfo(
            usb: USBDeviceIdentity(vendorID: 0x046D, productID: 0xC077, portPath: "1-5"), usagePage: 1, usage: 2,
            interfaceNumber: 0, path: "/dev/hidraw0")
        environment.hidDevices = { [mouse, Self.app] }
        let findings = await USBDoctor.diagnose(environment)
        #expect(findings.filter { $0.check == "hid device" }.map(\.subject) == ["/dev/hidraw4"])
        #expect(findings.first { $0.check == "hidapi" }?.detail.contains("1 product HID interfaces") == true)
    }

    @Test func hidapiThatCannotStartIsALibraryFailureAndTheUSBChecksStillRun() async throws {
        var environment = Self.environment(rules: UdevRules.text, access: Self.granted)
        environment.hidDevices = { throw HIDAPIError(.initialize, path: "", message: "hid_init failed") }
        let findings = await USBDoctor.diagnose(environment)
        #expect(findings.map(\.check) == ["libusb", "udev rules", "usb device", "hidapi"])
        #expect(findings.last?.status == .problem)
        #expect(findings.last?.detail.contains("hid_init") == true)
        #expect(USBDoctor.verdict(findings) == .libraryFailure)
    }

    @Test func readsRealNodePermissions() {
        #expect(NodeAccess.of("/dev/null").readable)
        #expect(NodeAccess.of("/dev/null").writable)
        #expect(NodeAccess.of("/dev/null").modeText == "0666")
        #expect(!NodeAccess.of("/dev/bus/usb/999/999").exists)
    }
}

@Suite("dfuhop doctor's verdict")
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
