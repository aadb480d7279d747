import AppLink
import DeviceProfiles
import DfuSe
import FirmwareImage
import USBTransport

/// Phase 4, option bytes (seed 003): only the fields the product profile names, only with the operator's
/// consent, never a read-protection change.
extension UpgradeEngine {
    /// The option bytes the product needs (seed 003). Read, compared, and written only with the operator's
    /// consent; the write resets the unit, which is then reached again: its ROM by itself, its application
    /// (ENTER_BOOTLOADER), or the BOOT0 path. Returns the ROM to flash through.
    func ensureOptionBytes(_ rom: ROM, found unit: Found, target: Target, run: Run) async throws -> ROM {
        guard let profile = target.profile else { return rom }
        let family = target.family
        let options = run.options
        let timeout = self.timeout(target, run)
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
            throw UpgradeError(.refused("the unit has \(differing.joined(separator: ", ")); \(profile.name) needs "
                                        + profile.requiredOptionBytes.map(\.description).joined(separator: ", ")),
                               phase: .optionBytes,
                               hint: "nothing was written; "
                                   + (options.writeOptionBytes
                                      ? "the write resets the unit, and only the BOOT0 path can bring it back: give --boot0-command or run on a terminal"
                                      : "run again with --write-option-bytes (the write resets the unit; dfuhop reaches it again)"))
        }
        var updated = current
        for item in required {
            if item.value == 1 { updated[item.bit / 8] |= 1 << UInt8(item.bit % 8) } else { updated[item.bit / 8] &= ~(1 << UInt8(item.bit % 8)) }
        }
        // Only the named bits change; a write that would leave read protection other than level 0 is never sent
        // (0xCC is level 2: permanent, and it disables the ROM — RM0090 §3.6.3, RM0440 §3.5.1).
        guard updated[family.optionBytes.readProtectionByteOffset] == 0xAA else {
            throw UpgradeError(.readProtected("the option bytes read RDP=0x\(hex(updated[family.optionBytes.readProtectionByteOffset], 2)); "
                                              + "dfuhop writes option bytes only on a unit at read protection level 0"),
                               phase: .optionBytes, hint: "nothing was written")
        }
        let events = discovery.events()
        try await withClient(rom, family: family) { client in
            try await client.prepare(alternateSetting: try optionBytesAlternate(rom, family: family))
            _ = try await client.writeOptionBytes(updated, at: family.optionBytes.address, .operatorRequestedOptionBytes)
        }
        try record(.optionBytesWritten, run, target: target)
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
            if case .application = reached.reach, reached.description.uid != nil, reached.description.uid == run.before.uid {
                again = try await enterBootloader(hid: hid, unit: reached.description, family: family, timeout: timeout)
            } else {
                again = try await enterByBoot0(port: port, expectedSerial: serial, uid: run.before.uid?.description,
                                               method: profile.boot0, options: options)
            }
        case nil:
            again = try await enterByBoot0(port: port, expectedSerial: serial, uid: run.before.uid?.description,
                                           method: profile.boot0, options: options)
        }
        let now = try await readOptionBytes(again, family: family)
        if let expected = run.before.uid, let seen = await readUID(again, family: family), seen != expected {
            throw UpgradeError(.refused("the ROM at \(again.identity.portPath) is unit \(seen), not \(expected)"), phase: .optionBytes,
                               hint: "nothing was written to that unit; check which unit is on that port, then run again")
        }
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
}
