import AppLink
import FirmwareImage
import Foundation
import Testing

@testable import DeviceProfiles

private let devices = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("protocols/devices")

private let demo = """
    {
      "format": 1, "id": "demo", "name": "Demo", "family": "g474",
      "application": { "usbVendorID": "0x1209", "usbProductID": 1, "protocol": "dfuhop", "imageProductID": "0x0DF00474" },
      "boot0": { "method": "command", "command": ["jig", "--port", "{port}", "--uid={uid}"] },
      "reenumerationTimeoutMs": 10000,
      "requiredOptionBytes": [{ "name": "DBANK", "value": 1 }]
    }
    """

/// `demo` with one edit, applied to its parsed JSON.
private func variant(_ edit: (inout [String: Any]) -> Void) throws -> Data {
    var object = try #require(try JSONSerialization.jsonObject(with: Data(demo.utf8)) as? [String: Any])
    edit(&object)
    return try JSONSerialization.data(withJSONObject: object)
}

private func expectRefusal(_ data: Data, field: String, saying words: String, sourceLocation: SourceLocation = #_sourceLocation) {
    do {
        let profile = try ProductProfile.decode(data, file: "test.json")
        Issue.record("accepted: \(profile)", sourceLocation: sourceLocation)
    } catch {
        #expect(error.file == "test.json", sourceLocation: sourceLocation)
        #expect(error.field == field, "\(error)", sourceLocation: sourceLocation)
        #expect(error.problem.contains(words), "\(error)", sourceLocation: sourceLocation)
        #expect(error.description.hasPrefix("test.json: "), sourceLocation: sourceLocation)
    }
}

@Suite struct ProductProfileTests {
    @Test func everyShippedProfileLoadsAndIsNamedAfterItsFile() throws {
        let profiles = try ProductProfile.loadAll(in: devices)
        #expect(Set(profiles.map(\.id)) == ["dfuhop-demo-g474", "dfuhop-demo-f407", "legacy-example-l476", "example-g474-single-bank"])
        for profile in profiles {
            #expect(FileManager.default.fileExists(atPath: devices.appendingPathComponent("\(profile.id).json").path))
        }
    }

    @Test func theG474DemoSpeaksDfuhopAndRequiresDualBank() throws {
        let profile = try ProductProfile.load(contentsOf: devices.appendingPathComponent("dfuhop-demo-g474.json"))
        #expect(profile.family == .g474)
        #expect(profile.application.hidProtocol == .dfuhop(imageProductID: 0x0DF0_0474))
        #expect(profile.application.usagePage == 0xFFDF)
        #expect(profile.dfu == .init(vendorID: 0x0483, productID: 0xDF11))
        #expect(profile.requiredOptionBytes.map(\.description) == ["DBANK=1"])
        #expect(profile.flashMode.selectedBy == "DBANK=1")
        #expect(profile.reenumerationTimeout == .seconds(10))
        guard case .prompt(let instructions) = profile.boot0 else {
            Issue.record("expected a prompt")
            return
        }
        #expect(instructions.contains("BOOT0"))
    }

    @Test func theLegacyExampleDescribesItsOwnCommands() throws {
        let profile = try ProductProfile.load(contentsOf: devices.appendingPathComponent("legacy-example-l476.json"))
        guard case .legacy(let legacy) = profile.application.hidProtocol else {
            Issue.record("expected legacy")
            return
        }
        #expect(legacy.reports == .interrupt)
        #expect(legacy.reportLength == 65)
        #expect(legacy.identify.request == [0x00, 0x49])
        #expect(legacy.identify.reply == .init(reportID: 0, match: [.init(offset: 1, bytes: [0x49])]))
        #expect(legacy.identify.version.format == .bcd16)
        #expect(legacy.identify.version.offset == 2)
        #expect(legacy.identify.uidOffset == 4)
        #expect(legacy.identify.productID == .init(offset: 16, width: 2))
        #expect(legacy.enterBootloader.request == [0x00, 0x42, 0x4F, 0x4F, 0x54])
        #expect(legacy.enterBootloader.reply == nil)
        #expect(profile.boot0 == .command(["logger-jig", "--boot0", "--usb-port", "{port}"]))
        #expect(profile.dfu == .init(vendorID: 0x0483, productID: 0xDF11), "the family's ROM identity by default")
        #expect(profile.flashMode == McuFamily.l476.defaultFlashMode)
    }

    @Test func aLoadedLegacyProfileReadsItsProductsReplyDirectly() throws {
        let profile = try ProductProfile.load(contentsOf: devices.appendingPathComponent("legacy-example-l476.json"))
        guard case .legacy(let legacy) = profile.application.hidProtocol else {
            Issue.record("expected legacy")
            return
        }
        var reply = [UInt8](repeating: 0, count: legacy.reportLength)
        reply[1] = 0x49
        reply[2...3] = [0x04, 0x03] // BCD 3.04, major in the high byte
        reply[4..<16] = ArraySlice((1...12).map { UInt8($0) })
        reply[16...17] = [0x34, 0x12]
        let identity = try legacy.identify.parse(reply)
        #expect(identity.version == FirmwareVersion(major: 3, minor: 4, patch: 0))
        #expect(identity.uid == UniqueID((1...12).map { UInt8($0) }))
        #expect(identity.productID == 0x1234)
    }

    @Test func defaultsFillWhatADfuhopProfileLeavesOut() throws {
        let profile = try ProductProfile.decode(Data(demo.utf8), file: "demo.json")
        #expect(profile.application.usagePage == 0xFFDF)
        #expect(profile.application.usage == 0x0001)
        #expect(profile.application.productID == 1)
        #expect(profile.boot0 == .command(["jig", "--port", "{port}", "--uid={uid}"]))
    }

    @Test func aMissingFileIsNamed() {
        #expect(throws: ProductProfileError.self) { try ProductProfile.load(contentsOf: devices.appendingPathComponent("nope.json")) }
    }

    @Test func brokenJSONIsRefusedForTheWholeFile() {
        expectRefusal(Data("{ \"format\": 1,".utf8), field: "", saying: "not valid JSON")
    }

    @Test func aFieldOfAnotherFormatIsRefused() throws {
        expectRefusal(try variant { $0["format"] = 2 }, field: "format", saying: "format 1")
    }

    @Test func aMissingFamilyIsRefused() throws {
        expectRefusal(try variant { $0["family"] = nil }, field: "family", saying: "missing")
    }

    @Test func anUnknownFamilyIsRefusedWithTheKnownOnes() throws {
        expectRefusal(try variant { $0["family"] = "g999" }, field: "family", saying: McuFamily.all.map(\.id).joined(separator: ", "))
    }

    @Test func aPartLineWithoutUSBDFUIsRefusedWithTheReason() throws {
        let refused = try #require(McuFamily.refusal(for: "f103"))
        expectRefusal(try variant { $0["family"] = "f103" }, field: "family", saying: refused.reason)
    }

    @Test func aMisspelledFieldIsRefusedRatherThanIgnored() throws {
        expectRefusal(try variant { $0["reenumerationTimeout"] = 5000 }, field: "reenumerationTimeout", saying: "not a field")
    }

    @Test func aVendorIDBeyondSixteenBitsIsRefused() throws {
        expectRefusal(
            try variant { root in
                var application = root["application"] as? [String: Any] ?? [:]
                application["usbVendorID"] = "0x10000"
                root["application"] = application
            }, field: "application.usbVendorID", saying: "outside")
    }

    @Test func anOptionValueThatSelectsNoFlashLayoutIsRefused() throws {
        expectRefusal(
            try variant { $0["requiredOptionBytes"] = [["name": "DBANK", "value": 2]] },
            field: "requiredOptionBytes.0.value", saying: "DBANK=1")
    }

    @Test func anUnknownPlaceholderInTheBoot0CommandIsRefused() throws {
        expectRefusal(
            try variant { $0["boot0"] = ["method": "command", "command": ["jig", "{serial}"]] },
            field: "boot0.command.1", saying: "{serial}")
    }

    @Test func aTimeoutOutOfRangeIsRefused() throws {
        expectRefusal(try variant { $0["reenumerationTimeoutMs"] = 10 }, field: "reenumerationTimeoutMs", saying: "100...120000")
    }

    @Test func aLegacyFieldPastTheReportIsRefusedWithItsPath() throws {
        let legacy: [String: Any] = [
            "reports": "interrupt", "reportLength": 16,
            "identify": ["request": "01 49", "reply": ["reportID": 1], "version": ["offset": 14, "format": "u16.u16"]],
            "enterBootloader": ["request": "01 42"]
        ]
        expectRefusal(
            try variant { root in
                root["application"] = [
                    "usbVendorID": 1, "usbProductID": 2, "hidUsagePage": "0xFF00", "hidUsage": 1,
                    "protocol": "legacy", "legacy": legacy
                ]
            }, field: "application.legacy.identify.version.offset", saying: "does not fit")
    }

    @Test func aLegacyProfileWithoutItsUsagePageIsRefused() throws {
        let legacy: [String: Any] = [
            "reports": "feature", "reportLength": 8,
            "identify": ["request": "01", "reply": ["reportID": 1], "version": ["offset": 1, "format": "ascii:6"]],
            "enterBootloader": ["request": "02"]
        ]
        expectRefusal(
            try variant { root in
                root["application"] = ["usbVendorID": 1, "usbProductID": 2, "protocol": "legacy", "legacy": legacy]
            }, field: "application.hidUsagePage", saying: "missing")
    }
}
