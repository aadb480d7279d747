import AppLink
import ArgumentParser
import DeviceProfiles
import Foundation
import HexFormat
import USBTransport
import UpgradeEngine

extension DeviceSession {
    /// The one running application this command is for, as the engine selects it (`--unit`).
    func hidUnit() async throws -> HIDDeviceInfo {
        try await UpgradeEngine(discovery: discovery, clock: clock).selectApplication(named: options.unit)
    }
}

/// `dfuhop info`: who the running application is.
struct InfoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info",
        abstract: "Ask a running application who it is: product, firmware version, unique ID, MCU.",
        discussion: """
            Speaks dfuhop's HID protocol (protocols/hid-app-protocol.md): GET_INFO, and CHECK_IMAGE when the \
            application supports it. Nothing on the unit changes.

            Examples:
              dfuhop info
              dfuhop info --unit 1-2.3 --json
              dfuhop info --simulate g474:programmed
            """)

    @Flag(help: "The answer as one JSON object.") var json = false
    @OptionGroup var device: DeviceOptions

    func run() async throws {
        try await runCommand("info", json: json) {
            let session = try DeviceSession.open(device)
            return try await session.run {
                let unit = try await session.hidUnit()
                let (info, check, family) = try await UpgradeEngine(discovery: session.discovery, clock: session.clock).info(unit)
                var result = ResultLine("identified")
                result.unit = UnitJSON(
                    classification: "programmed", family: family?.id, port: unit.usb.portPath, uid: info.uid.description,
                    romSerial: family.flatMap { $0.romSerial.serial(uid: info.uid.bytes) },
                    version: info.image?.version.description, productID: info.image.map { Hex.word($0.productID) },
                    deviceID: "0x" + Hex.digits(info.deviceID, width: 3), imageBase: Hex.word(info.imageBase),
                    flashKiB: Int(info.flashSizeKiB), descriptor: info.descriptorState.description,
                    imageSize: info.image.map { Int($0.imageSize) }, imageCheck: check?.result.description)
                if !json {
                    Output.print("unit:        \(info.uid) at \(unit.usb.portPath)")
                    Output.print(
                        "mcu:         \(family?.name ?? "unknown") (DEV_ID 0x\(Hex.digits(info.deviceID, width: 3)), \(info.flashSizeKiB) KiB flash)"
                    )
                    if let image = info.image {
                        Output.print(
                            "firmware:    version \(image.version), product 0x\(Hex.digits(image.productID, width: 8)), \(image.imageSize) bytes"
                        )
                    } else {
                        Output.print("firmware:    no image descriptor (\(info.descriptorState))")
                    }
                    if let check { Output.print("image check: \(check.result)") }
                    if let family {
                        let serial = family.romSerial.serial(uid: info.uid.bytes)
                        Output.print(
                            "dfu serial:  "
                                + (serial.map { "\($0) (what its ROM will show)" }
                                    ?? "not derived from the UID on \(family.name) (\(family.romSerial.fixedSerial ?? "changes"))"))
                    }
                }
                return result
            }
        }
    }
}

/// `dfuhop enter-dfu`: reboot a running application into the STM32 ROM bootloader.
struct EnterDFUCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enter-dfu",
        abstract: "Reboot a running application into the STM32 ROM bootloader (DFU mode).",
        discussion: """
            Sends ENTER_BOOTLOADER naming the unit's own unique ID (a request can never send another unit \
            into its bootloader), then waits until the same unit shows up in DFU mode: the ROM's serial \
            number is predicted from the unique ID, and the port must be the same. For scripts: exit 0 \
            means the unit is in DFU mode and ready for `dfuhop flash`.

            Examples:
              dfuhop enter-dfu
              dfuhop enter-dfu --unit 1-2.3 --timeout 10
              dfuhop enter-dfu --simulate-state unit.json
            """)

    @Option(help: ArgumentHelp("Seconds to wait for the ROM to appear (at most a day).", valueName: "s")) var timeout = Seconds(10)
    @Flag(help: "A result object as JSON.") var json = false
    @OptionGroup var device: DeviceOptions

    func run() async throws {
        try await runCommand("enter-dfu", json: json) {
            let session = try DeviceSession.open(device)
            return try await session.run {
                var options = UpgradeEngine.Options()
                options.unit = device.unit
                options.reenumerationTimeout = timeout.duration
                options.nonceHook = session.nonceHook
                let (unit, rom) = try await UpgradeEngine(discovery: session.discovery, clock: session.clock).enterDFU(options: options)
                let name = unit.uid?.description ?? unit.portPath ?? "the unit"
                if !json {
                    Output.print(
                        "\(unit.familyID) \(name) is in DFU mode: serial \(TerminalText.escaped(rom.serialNumber ?? "?")) at \(rom.portPath)"
                    )
                }
                var result = ResultLine("in-dfu")
                result.unit = UnitJSON(
                    classification: "in-dfu", family: unit.familyID, port: rom.portPath, uid: unit.uid?.description,
                    romSerial: rom.serialNumber, version: unit.version?.description)
                return result
            }
        }
    }
}
