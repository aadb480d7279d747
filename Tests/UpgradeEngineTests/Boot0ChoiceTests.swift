import DeviceProfiles
import Foundation
import Testing

@testable import UpgradeEngine

/// Issue 23: the engine decides which BOOT0 path a run uses and how a profile's hook is called; the CLI
/// only runs the process or asks the person.
@Suite("BOOT0 path: chosen and filled in by the engine")
struct Boot0ChoiceTests {
    static func profile(boot0: String, directory: String? = nil) throws -> ProductProfile {
        let json = """
            {"format": 1, "id": "boot0-choice", "name": "BOOT0 choice", "family": "g474",
             "application": {"usbVendorID": "0x1209", "usbProductID": "0x0001", "hidUsagePage": "0xFFDF",
                             "hidUsage": "0x0001", "protocol": "dfuhop", "imageProductID": "0x00001234"},
             "dfu": {"usbVendorID": "0x0483", "usbProductID": "0xDF11"},
             "boot0": \(boot0), "reenumerationTimeoutMs": 2000}
            """
        var profile = try ProductProfile.decode(Data(json.utf8), file: "boot0-choice")
        profile.sourceDirectory = directory
        return profile
    }

    static let hook = #"{"method": "command", "command": ["./jig/boot0.sh", "{port}", "--uid={uid}"]}"#
    static let prompt = #"{"method": "prompt", "instructions": "Press the jig's button."}"#

    @Test func theCallersCommandComesFirstThenTheProfilesHookThenAPerson() throws {
        let withHook = try Self.profile(boot0: Self.hook, directory: "/etc/products")
        let withPrompt = try Self.profile(boot0: Self.prompt)
        #expect(Boot0Path.choice(command: "relay.sh", profile: withHook, canPrompt: true) == .command("relay.sh"))
        #expect(
            Boot0Path.choice(command: nil, profile: withHook, canPrompt: false)
                == .profileHook(arguments: ["./jig/boot0.sh", "{port}", "--uid={uid}"], profileDirectory: "/etc/products"))
        #expect(Boot0Path.choice(command: nil, profile: withPrompt, canPrompt: true) == .prompt(instructions: "Press the jig's button."))
        #expect(Boot0Path.choice(command: nil, profile: nil, canPrompt: true) == .prompt(instructions: Boot0Path.generalInstructions))
        #expect(Boot0Path.choice(command: nil, profile: withPrompt, canPrompt: false) == nil, "nobody to ask: no path")
        #expect(Boot0Path.choice(command: nil, profile: nil, canPrompt: false) == nil)
    }

    @Test func aHookIsFilledInAndResolvedNextToItsProfile() {
        let arguments = ["./jig/boot0.sh", "{port}", "--uid={uid}"]
        let known = Boot0Path.Request(action: .enterROM, port: "1-2.3", uid: "0029003A3532510C35383234", method: nil)
        #expect(
            Boot0Path.hookArguments(arguments, for: known, profileDirectory: "/etc/products")
                == ["/etc/products/jig/boot0.sh", "1-2.3", "--uid=0029003A3532510C35383234"])
        let unknown = Boot0Path.Request(action: .startApplication, port: nil, uid: nil, method: nil)
        #expect(Boot0Path.hookArguments(arguments, for: unknown, profileDirectory: nil) == ["./jig/boot0.sh", "", "--uid="])
        #expect(
            Boot0Path.hookArguments(["/usr/bin/relay", "{port}"], for: known, profileDirectory: "/etc/products") == [
                "/usr/bin/relay", "1-2.3"
            ],
            "an absolute program stays")
        #expect(
            Boot0Path.hookArguments(["relay", "{port}"], for: known, profileDirectory: "/etc/products") == ["relay", "1-2.3"],
            "a bare name is looked up in PATH, as a shell would")
    }
}
