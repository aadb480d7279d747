import AppLink
import DeviceProfiles
import DfuSe
import FirmwareImage
import USBTransport

extension UpgradeEngine {
    // MARK: Enter

    func enter(_ found: Found, prepared: Prepared, options: Options, timeout: Duration) async throws -> ROM {
        switch found.reach {
        case .application(let hid, _):
            return try await enterBootloader(hid: hid, unit: found.description, family: prepared.family, timeout: timeout)
        case .rom(let rom):
            return rom
        case .boot0(let port, let serial):
            return try await enterByBoot0(port: port, expectedSerial: serial, uid: nil, prepared: prepared, options: options)
        }
    }

    /// ENTER_BOOTLOADER naming the unit's own UID, then the ROM with the predicted serial on the same port.
    func enterBootloader(hid: HIDDeviceInfo, unit: UnitDescription, family: McuFamily, timeout: Duration) async throws -> ROM {
        guard let uid = unit.uid else {
            throw UpgradeError(.refused("the unit did not report its unique ID"), phase: .enter, hint: "nothing was touched")
        }
        let serial = family.romSerial.serial(uid: uid.bytes)
        let events = discovery.events()
        let transport = try await discovery.openHID(hid)
        do {
            let link = AppLinkClient(transport: transport, clock: clock)
            _ = try await link.enterBootloader(uid: uid, nonce: UInt32(truncatingIfNeeded: clock.now().components.attoseconds) | 1)
        } catch {
            await transport.close()
            throw error
        }
        await transport.close()
        if let rom = await awaitROM(events: events, port: hid.usb.portPath, serial: serial, timeout: timeout) { return rom }
        var moved = ""
        if let serial { moved = await elsewhere(serial: serial, port: hid.usb.portPath) }
        throw UpgradeError(.notConfirmed("the ROM (serial \(serial ?? "not derivable from the UID")) did not show up at "
                                         + "\(hid.usb.portPath) within \(timeout)" + moved),
                           phase: .reenumerate,
                           hint: "nothing was written; run the same command again (if the application cannot jump to its ROM, use the BOOT0 path)")
    }

    /// The BOOT0 path: ask for the ROM, then wait for it on the unit's port (any new ROM if the port is
    /// not known) with the expected serial, if known.
    func enterByBoot0(port: String?, expectedSerial: String?, uid: String?, prepared: Prepared, options: Options) async throws -> ROM {
        guard let boot0 = options.boot0 else {
            throw UpgradeError(.needsBoot0("no application answers\(port.map { " at \($0)" } ?? ""), and no BOOT0 path is set up"),
                               phase: .enter,
                               hint: "nothing was written; hold BOOT0 while plugging the unit in and run again, or give --boot0-command")
        }
        let request = Boot0Path.Request(action: .enterROM, port: port, uid: uid, method: prepared.profile?.boot0)
        let events = discovery.events()
        // With no port to watch, only a ROM that was not there before the request can be this unit.
        let present: Set<USBDeviceIdentity> = port == nil ? Set(((try? await discovery.devices()) ?? []).map(\.identity)) : []
        onEvent(.boot0(request, path: boot0.description))
        try await perform(request, on: boot0)
        if let rom = await awaitROM(events: events, port: port, serial: expectedSerial, timeout: boot0.arrivalTimeout, excluding: present) {
            return rom
        }
        throw UpgradeError(.needsBoot0("no ROM showed up\(port.map { " at \($0)" } ?? "") within \(boot0.arrivalTimeout) of the BOOT0 request (\(boot0.description))"
                                       + (expectedSerial == nil ? "" : await elsewhere(serial: expectedSerial!, port: port))),
                           phase: .reenumerate, hint: "check the BOOT0 wiring or hook, then run the same command again")
    }

    func perform(_ request: Boot0Path.Request, on path: Boot0Path) async throws {
        do { try await path.perform(request) } catch {
            throw UpgradeError(.needsBoot0("the BOOT0 path (\(path.description)) failed to \(request.action.rawValue): \(error)"),
                               phase: .enter, hint: "check the jig or hook; the unit is recoverable: run the same command again")
        }
    }

    /// ", but it showed up at PORT" when the serial is on the bus at another port.
    func elsewhere(serial: String, port: String?) async -> String {
        guard let devices = try? await discovery.devices(),
              let other = devices.first(where: { $0.identity.serialNumber == serial && $0.identity.portPath != port }) else { return "" }
        return "; a ROM with that serial is at \(other.identity.portPath): if the cable was moved, run the same command again "
            + "(with --unit \(other.identity.portPath) if you named the unit by its port)"
    }

    /// The ROM on `port` (any port if nil) with `serial` (any if nil); a ROM on that port with another
    /// serial is another unit and is never taken (field-safety.md).
    func awaitROM(events: AsyncStream<DiscoveryEvent>, port: String?, serial: String?, timeout: Duration,
                  excluding: Set<USBDeviceIdentity> = []) async -> ROM? {
        await awaitDevice(events: events, timeout: timeout) { device in
            guard case .dfu(let identity, let alternates) = device, !excluding.contains(identity) else { return nil }
            if let port, identity.portPath != port { return nil }
            if let serial, identity.serialNumber != serial { return nil }
            return ROM(identity: identity, alternates: alternates)
        }
    }

    func awaitApplication(events: AsyncStream<DiscoveryEvent>, port: String, timeout: Duration) async -> HIDDeviceInfo? {
        await awaitDevice(events: events, timeout: timeout) { device in
            if case .hid(let info) = device, info.usb.portPath == port { info } else { nil }
        }
    }

    /// Waits for a device `match` accepts: already present, or arriving before `timeout`; nil if none.
    func awaitDevice<T: Sendable>(events: AsyncStream<DiscoveryEvent>, timeout: Duration, includePresent: Bool = true,
                                  _ match: @escaping @Sendable (DiscoveredDevice) -> T?) async -> T? {
        if includePresent, let present = try? await discovery.devices().lazy.compactMap(match).first { return present }
        let clock = self.clock
        let deadline = clock.now() + timeout
        return await withTaskGroup(of: T?.self) { group in
            group.addTask {
                for await event in events { if case .arrived(let device) = event, let value = match(device) { return value } }
                return nil
            }
            group.addTask { [discovery] in
                try? await clock.sleep(for: deadline - clock.now())
                // At the deadline a device that is there counts, even if its arrival is still on its way.
                guard includePresent else { return nil }
                return try? await discovery.devices().lazy.compactMap(match).first
            }
            defer { group.cancelAll() }
            return await group.next() ?? nil
        }
    }

    // MARK: In the ROM

    /// Blank (vector table erased), corrupted, or an interrupted upgrade (journal): read, never written.
    func classifyInROM(_ rom: ROM, family: McuFamily, resumed: JournalEntry?) async throws -> UnitDescription.Classification {
        let vectors = try await withClient(rom, family: family) { client in
            try await client.prepare(alternateSetting: 0)
            return try await client.read(address: family.flashBase, length: 8)
        }
        if vectors.allSatisfy({ $0 == 0xFF }) { return .blank }
        return resumed == nil ? .corrupted : .inDFU
    }

    func withClient<T>(_ rom: ROM, family: McuFamily, _ body: (DfuSeClient) async throws -> T) async throws -> T {
        let transport = try await discovery.openDFU(rom.identity)
        do {
            let client = try DfuSeClient(transport: transport, clock: clock, quirks: family.quirks, onEvent: { onEvent(.flash($0)) })
            let value = try await body(client)
            await transport.close()
            return value
        } catch {
            await transport.close()
            throw error
        }
    }

    /// The option bytes the product needs (seed 003). Read, compared, and written only with the operator's
    /// consent; the write resets the unit, which is then reached again: its ROM by itself, its application
    /// (ENTER_BOOTLOADER), or the BOOT0 path. Returns the ROM to flash through.
    func ensureOptionBytes(_ rom: ROM, profile: ProductProfile, prepared: Prepared, unit: Found, options: Options, timeout: Duration,
                           record: (JournalEntry.Step) throws -> Void) async throws -> ROM {
        let family = prepared.family
        var required: [(name: String, bit: Int, value: UInt32)] = []
        for requirement in profile.requiredOptionBytes {
            guard let bit = family.optionBytes.bit(named: requirement.name), requirement.value <= 1 else {
                throw UpgradeError(.refused("\(profile.name) requires \(requirement), which dfuhop cannot check on \(family.name)"),
                                   phase: .optionBytes, hint: "the unit is in its ROM, unchanged; fix the product profile")
            }
            required.append((requirement.name, bit, requirement.value))
        }
        let current = try await readOptionBytes(rom, family: family)
        func values(_ bytes: [UInt8]) -> [String: UInt32] {
            Dictionary(uniqueKeysWithValues: required.map { ($0.name, UInt32(bytes[$0.bit / 8] >> UInt8($0.bit % 8) & 1)) })
        }
        let wanted = Dictionary(uniqueKeysWithValues: required.map { ($0.name, $0.value) })
        guard values(current) != wanted else {
            onEvent(.optionBytes(found: values(current), required: wanted, written: false))
            return rom
        }
        let differing = required.filter { values(current)[$0.name] != $0.value }.map { "\($0.name)=\(values(current)[$0.name]!)" }
        guard options.writeOptionBytes, options.boot0 != nil else {
            let back = try await returnToApplication(rom, family: family, unit: unit)
            throw UpgradeError(.refused("the unit has \(differing.joined(separator: ", ")); \(profile.name) needs "
                                        + profile.requiredOptionBytes.map(\.description).joined(separator: ", ")),
                               phase: .optionBytes,
                               hint: (back ? "the unit was returned to its application, unchanged; " : "nothing was written; ")
                                   + (options.writeOptionBytes
                                      ? "the write resets the unit, and only the BOOT0 path can bring it back: give --boot0-command or run on a terminal"
                                      : "run again with --write-option-bytes (the write resets the unit; dfuhop reaches it again)"))
        }
        var updated = current
        for item in required {
            if item.value == 1 { updated[item.bit / 8] |= 1 << UInt8(item.bit % 8) } else { updated[item.bit / 8] &= ~(1 << UInt8(item.bit % 8)) }
        }
        let events = discovery.events()
        try await withClient(rom, family: family) { client in
            try await client.prepare(alternateSetting: try optionBytesAlternate(rom, family: family))
            _ = try await client.writeOptionBytes(updated, at: family.optionBytes.address, .operatorRequestedOptionBytes)
        }
        try record(.optionBytesWritten)
        onEvent(.note("option bytes written (\(required.map { "\($0.name)=\($0.value)" }.joined(separator: ", "))); the unit resets"))

        // The option-byte load resets the MCU (seed 003): BOOT0 held or an empty-check part brings back the
        // ROM, a valid application may start, or nothing shows.
        let port = rom.identity.portPath
        let serial = rom.identity.serialNumber
        enum Back: Sendable { case rom(ROM), application(HIDDeviceInfo) }
        let back = await awaitDevice(events: events, timeout: timeout, includePresent: false) { device -> Back? in
            switch device {
            case .dfu(let identity, let alternates) where identity.portPath == port && (serial == nil || identity.serialNumber == serial):
                .rom(ROM(identity: identity, alternates: alternates))
            case .hid(let info) where info.usb.portPath == port: .application(info)
            default: nil
            }
        }
        let again: ROM
        switch back {
        case .rom(let rom)?: again = rom
        case .application(let hid)?:
            let reached = try await describeApplication(hid)
            if case .application = reached.reach, reached.description.dfuSerial == serial {
                again = try await enterBootloader(hid: hid, unit: reached.description, family: family, timeout: timeout)
            } else {
                again = try await enterByBoot0(port: port, expectedSerial: serial, uid: nil, prepared: prepared, options: options)
            }
        case nil:
            again = try await enterByBoot0(port: port, expectedSerial: serial, uid: nil, prepared: prepared, options: options)
        }
        let now = try await readOptionBytes(again, family: family)
        guard values(now) == wanted else {
            throw UpgradeError(.notConfirmed("the option bytes read \(values(now)) after the write, not \(wanted)"), phase: .optionBytes,
                               hint: "the unit is in its ROM; check write protection and run the same command again")
        }
        onEvent(.optionBytes(found: values(current), required: wanted, written: true))
        return again
    }

    func optionBytesAlternate(_ rom: ROM, family: McuFamily) throws -> UInt8 {
        let address = String(format: "/0x%08X/", family.optionBytes.address)
        guard let alternate = rom.alternates.first(where: { $0.name.uppercased().contains(address.uppercased()) }) else {
            throw UpgradeError(.refused("the ROM at \(rom.identity.portPath) shows no option-byte memory at \(address)"),
                               phase: .optionBytes, hint: "the unit is in its ROM, unchanged")
        }
        return alternate.number
    }

    func readOptionBytes(_ rom: ROM, family: McuFamily) async throws -> [UInt8] {
        try await withClient(rom, family: family) { client in
            try await client.prepare(alternateSetting: try optionBytesAlternate(rom, family: family))
            return try await client.read(address: family.optionBytes.address, length: family.optionBytes.factoryBytes.count)
        }
    }

    /// Leaves DFU into the application already on the unit (a refused option-byte change must not strand a
    /// working unit in its ROM). Returns false when there is no application to return to.
    func returnToApplication(_ rom: ROM, family: McuFamily, unit: Found) async throws -> Bool {
        guard case .application = unit.reach else { return false }
        try await withClient(rom, family: family) { client in
            try await client.prepare(alternateSetting: 0)
            let vectors = try await client.read(address: family.flashBase, length: 8)
            let reset = UInt32(vectors[4]) | UInt32(vectors[5]) << 8 | UInt32(vectors[6]) << 16 | UInt32(vectors[7]) << 24
            _ = try await client.leave(jumpTo: family.leaveJump == .vectorTable ? family.flashBase : reset)
        }
        return true
    }

    // MARK: Confirm

    /// The application back on the ROM's port, the same unit (its UID, or for a unit that was blank, the
    /// ROM serial its UID predicts), running `version`. If it does not start after leaving DFU, the BOOT0
    /// path resets it with BOOT0 low (a direct start from its vector table: seed 001's way out).
    func confirm(rom: ROM, expectedUID: UniqueID?, version: FirmwareVersion, family: McuFamily, prepared: Prepared,
                 options: Options, timeout: Duration) async throws -> (uid: UniqueID, version: FirmwareVersion) {
        let port = rom.identity.portPath
        var hid = await awaitApplication(events: discovery.events(), port: port, timeout: timeout)
        if hid == nil, let boot0 = options.boot0 {
            onEvent(.note("the application did not start after leaving DFU; resetting the unit with BOOT0 low"))
            let request = Boot0Path.Request(action: .startApplication, port: port, uid: expectedUID?.description,
                                            method: prepared.profile?.boot0)
            let events = discovery.events()
            onEvent(.boot0(request, path: boot0.description))
            try await perform(request, on: boot0)
            hid = await awaitApplication(events: events, port: port, timeout: boot0.arrivalTimeout)
        }
        guard let hid else {
            throw UpgradeError(.notConfirmed("the application did not show up at \(port) within \(timeout) of leaving DFU"), phase: .confirm,
                               hint: "the new firmware is written and verified; power-cycle the unit, then check it with `dfuhop info`")
        }
        let transport = try await discovery.openHID(hid)
        let answer: DeviceInfo
        do { answer = try await AppLinkClient(transport: transport, clock: clock).info() } catch {
            await transport.close()
            throw error
        }
        await transport.close()
        if let expectedUID, answer.uid != expectedUID {
            throw UpgradeError(.notConfirmed("the application at \(port) is unit \(answer.uid), not \(expectedUID)"), phase: .confirm,
                               hint: "check which unit is on that port")
        }
        // A serial not derivable from the UID (nil) proves nothing either way.
        if expectedUID == nil, let serial = rom.identity.serialNumber, let predicted = family.romSerial.serial(uid: answer.uid.bytes),
           predicted != serial {
            throw UpgradeError(.notConfirmed("the application at \(port) is unit \(answer.uid), whose ROM serial is not \(serial)"),
                               phase: .confirm, hint: "check which unit is on that port")
        }
        guard let running = answer.image?.version, running == version else {
            throw UpgradeError(.notConfirmed("the unit runs \(answer.image.map { "version \($0.version)" } ?? "an image without a descriptor"), not \(version)"),
                               phase: .confirm, hint: "run the same command again; the unit is recoverable through its ROM")
        }
        return (answer.uid, running)
    }
}
