import AppLink
import DeviceProfiles
import USBTransport

extension UpgradeEngine {
    /// A candidate unit and how it can be reached.
    struct Found: Sendable {
        enum Reach: Sendable {
            /// The application answers: ENTER_BOOTLOADER.
            case application(HIDDeviceInfo, sectorCRCs: Bool)
            /// The ROM already shows DFU.
            case rom(ROM)
            /// An application interface that does not answer, or nothing at all: the BOOT0 path.
            case boot0(port: String?, expectedSerial: String?)
        }

        var description: UnitDescription
        var family: McuFamily?
        var reach: Reach
    }

    /// A ROM on the bus: its identity and alternate settings.
    struct ROM: Sendable, Hashable {
        var identity: USBDeviceIdentity
        var alternates: [DFUAlternateSetting]

        var flashLayoutString: String? { alternates.first { $0.number == 0 }?.name }
        var family: McuFamily? { McuFamily.all.first { $0.flashModes.contains { $0.layoutString == flashLayoutString } } }
    }

    /// Every unit on the bus, classified without changing anything (applications are asked GET_INFO): what
    /// `dfuhop list` shows and `--all` upgrades. Blank units that show nothing cannot be listed.
    public func survey() async throws(UpgradeError) -> [UnitDescription] {
        let devices: [DiscoveredDevice]
        do { devices = try await discovery.devices() } catch { throw UpgradeError.wrap(error, phase: .find) }
        var units: [UnitDescription] = []
        for device in devices {
            switch device {
            case .hid(let hid):
                do { units.append(try await describeApplication(hid).description) } catch { throw UpgradeError.wrap(error, phase: .find) }
            case .dfu(let identity, let alternates):
                units.append(describeROM(ROM(identity: identity, alternates: alternates)).description)
            }
        }
        return units.sorted { ($0.portPath ?? "") < ($1.portPath ?? "") }
    }

    /// The one unit `options.unit` names (serial or port path), or the only one there is.
    func find(_ options: Options) async throws -> Found {
        let devices = try await discovery.devices()
        let wanted = devices.filter { device in
            options.unit.map { device.identity.serialNumber == $0 || device.identity.portPath == $0 } ?? true
        }
        guard wanted.count <= 1 else {
            let names = wanted.map { device -> String in
                switch device {
                case .hid(let info): "application at \(info.usb.portPath)"
                case .dfu(let identity, _): "DFU unit \(identity.serialNumber ?? "") at \(identity.portPath)"
                }
            }
            throw UpgradeError(.ambiguous("\(names.count) units match: \(names.joined(separator: ", "))"), phase: .find,
                               hint: "nothing was touched; name one with --unit SERIAL or --unit PORT, or use --all")
        }
        switch wanted.first {
        case .hid(let hid)?: return try await describeApplication(hid)
        case .dfu(let identity, let alternates)?: return describeROM(ROM(identity: identity, alternates: alternates))
        case nil:
            // Nothing shows: blank, corrupted, or unplugged. Only BOOT0 can tell.
            let port = options.unit.flatMap { Self.looksLikePortPath($0) ? $0 : nil }
            let serial = options.unit.flatMap { Self.looksLikePortPath($0) ? nil : $0 }
            let description = UnitDescription(classification: .absent, uid: nil, familyID: "?", portPath: port,
                                              dfuSerial: serial, version: nil, productID: nil)
            return Found(description: description, family: nil, reach: .boot0(port: port, expectedSerial: serial))
        }
    }

    static func looksLikePortPath(_ text: String) -> Bool {
        let parts = text.split(separator: "-", maxSplits: 1)
        return parts.count == 2 && parts[0].allSatisfy(\.isNumber) && parts[1].allSatisfy { $0.isNumber || $0 == "." }
    }

    /// GET_INFO; an application that does not answer is corrupted and goes the BOOT0 way on its port. An
    /// interface that cannot be opened (permissions) is an error, not a classification.
    func describeApplication(_ hid: HIDDeviceInfo) async throws -> Found {
        let transport = try await discovery.openHID(hid)
        let answer = try? await AppLinkClient(transport: transport, clock: clock).info()
        await transport.close()
        guard let info = answer else {
            let description = UnitDescription(classification: .corrupted, uid: nil, familyID: "?", portPath: hid.usb.portPath,
                                              dfuSerial: nil, version: nil, productID: nil)
            return Found(description: description, family: nil, reach: .boot0(port: hid.usb.portPath, expectedSerial: nil))
        }
        let family = McuFamily.withDeviceID(info.deviceID)
        let description = UnitDescription(
            classification: .programmed, uid: info.uid, familyID: family?.id ?? "DEV_ID 0x\(hex(info.deviceID, 3))",
            portPath: hid.usb.portPath, dfuSerial: family?.romSerial.serial(uid: info.uid.bytes),
            version: info.image?.version, productID: info.image?.productID)
        return Found(description: description, family: family,
                     reach: .application(hid, sectorCRCs: info.capabilities.contains(.sectorCRCs)))
    }

    func describeROM(_ rom: ROM) -> Found {
        let family = rom.family
        let description = UnitDescription(classification: .inDFU, uid: nil, familyID: family?.id ?? "?",
                                          portPath: rom.identity.portPath, dfuSerial: rom.identity.serialNumber,
                                          version: nil, productID: nil)
        return Found(description: description, family: family, reach: .rom(rom))
    }
}
