import AppLink
import DeviceProfiles
import DfuSe
import FirmwareImage
import HexFormat
import USBTransport

/// Phase 4, option bytes (seed 003): only the fields the product profile names, only with the operator's
/// consent, never a read-protection change.
extension UpgradeEngine {
    /// The option bits a product profile names, where dfuhop knows them on the family.
    struct RequiredBits {
        var bits: [(name: String, bit: Int, value: UInt32)]

        func values(_ bytes: [UInt8]) -> [String: UInt32] {
            Dictionary(uniqueKeysWithValues: bits.map { ($0.name, UInt32(bytes[$0.bit / 8] >> UInt8($0.bit % 8) & 1)) })
        }

        var wanted: [String: UInt32] { Dictionary(uniqueKeysWithValues: bits.map { ($0.name, $0.value) }) }

        /// `bytes` with the named bits set as required and every other bit as it was.
        func applied(to bytes: [UInt8]) -> [UInt8] {
            var updated = bytes
            for item in bits {
                let mask = UInt8(1) << UInt8(item.bit % 8)
                if item.value == 1 { updated[item.bit / 8] |= mask } else { updated[item.bit / 8] &= ~mask }
            }
            return updated
        }
    }

    /// The option bytes the product needs (seed 003). Read, compared, and written only with the operator's
    /// consent; the write resets the unit, which is then reached again: its ROM by itself, its application
    /// (ENTER_BOOTLOADER), or the BOOT0 path. Returns the ROM to flash through.
    func ensureOptionBytes(_ rom: ROM, found unit: Found, target: Target, run: Run) async throws -> ROM {
        guard let profile = target.profile else { return rom }
        let family = target.family
        let required = try requiredBits(profile, family: family)
        let current = try await readOptionBytes(rom, family: family)
        guard required.values(current) != required.wanted else {
            onEvent(.optionBytes(found: required.values(current), required: required.wanted, written: false))
            return rom
        }
        try checkConsent(required, current: current, profile: profile, options: run.options)
        let updated = required.applied(to: current)
        // Only the named bits change; a write that would leave read protection other than level 0 is never sent
        // (0xCC is level 2: permanent, and it disables the ROM — RM0090 §3.6.3, RM0440 §3.5.1).
        let rdp = updated[family.optionBytes.readProtectionByteOffset]
        guard family.optionBytes.readProtectionLevel(rdp) == 0 else {
            throw UpgradeError(.readProtected(.writeWouldProtect(rdp: rdp)), phase: .optionBytes, hint: "nothing was written")
        }
        let events = discovery.events()
        try await withClient(rom, family: family) { client in
            try await client.prepare(alternateSetting: try optionBytesAlternate(rom, family: family))
            _ = try await client.writeOptionBytes(updated, at: family.optionBytes.address, .operatorRequestedOptionBytes)
        }
        try record(.optionBytesWritten, run, target: target)
        onEvent(
            .note(
                "option bytes written (\(required.wanted.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: ", "))); "
                    + "the unit resets"))
        let again = try await reachAfterReset(rom, events: events, target: target, run: run)
        let now = try await readOptionBytes(again, family: family)
        guard required.values(now) == required.wanted else {
            throw UpgradeError(
                .notConfirmed(.optionBytes(read: required.values(now), wanted: required.wanted)),
                phase: .optionBytes, hint: "the unit is in its ROM; check write protection and run the same command again")
        }
        onEvent(.optionBytes(found: required.values(current), required: required.wanted, written: true))
        return again
    }

    func requiredBits(_ profile: ProductProfile, family: McuFamily) throws -> RequiredBits {
        var bits: [(name: String, bit: Int, value: UInt32)] = []
        for requirement in profile.requiredOptionBytes {
            guard let bit = family.optionBytes.bit(named: requirement.name), requirement.value <= 1 else {
                let reason = Refusal.uncheckableOptionByte(product: profile.name, requirement: requirement, family: family.name)
                throw UpgradeError(.refused(reason), phase: .optionBytes, hint: reason.hint)
            }
            bits.append((requirement.name, bit, requirement.value))
        }
        return RequiredBits(bits: bits)
    }

    /// Writing needs the caller's consent (`Options.writeOptionBytes`) and a BOOT0 path (the reset may leave only BOOT0 to reach the ROM).
    func checkConsent(_ required: RequiredBits, current: [UInt8], profile: ProductProfile, options: Options) throws {
        guard !options.writeOptionBytes || options.boot0 == nil else { return }
        let differing = required.bits.filter { required.values(current)[$0.name] != $0.value }
            .map { "\($0.name)=\(required.values(current)[$0.name]!)" }
        let reason = Refusal.optionBytesNeedConsent(
            unit: differing, product: profile.name, required: profile.requiredOptionBytes.map(\.description),
            allowed: options.writeOptionBytes)
        throw UpgradeError(.refused(reason), phase: .optionBytes, hint: reason.hint)
    }

    /// The option-byte load resets the MCU (seed 003): BOOT0 held or an empty-check part brings back the
    /// ROM, a valid application may start (it is asked to enter its ROM), or nothing shows (BOOT0 path).
    /// The ROM reached must be the same unit.
    func reachAfterReset(_ rom: ROM, events: AsyncStream<DiscoveryEvent>, target: Target, run: Run) async throws -> ROM {
        let port = rom.identity.portPath
        let serial = rom.identity.serialNumber
        let uid = run.before.uid?.description
        enum Back: Sendable {
            case rom(ROM)
            case application(HIDDeviceInfo)
        }
        let back = try await awaitDevice(events: events, timeout: timeout(target, run), includePresent: false) { device -> Back? in
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
                again = try await enterBootloader(
                    hid: hid, unit: reached.description, family: target.family, timeout: timeout(target, run),
                    nonceHook: run.options.nonceHook)
            } else {
                again = try await enterByBoot0(
                    port: port, expectedSerial: serial, uid: uid, method: target.profile?.boot0,
                    options: run.options)
            }
        case nil:
            again = try await enterByBoot0(
                port: port, expectedSerial: serial, uid: uid, method: target.profile?.boot0, options: run.options)
        }
        if let expected = run.before.uid, case let seen = try await readUID(again, family: target.family), seen != expected {
            // Not `reason.hint`: this run wrote the option bytes of the unit it started with.
            let reason = Refusal.otherUnit(port: again.identity.portPath, seen: seen.description, expected: expected.description)
            throw UpgradeError(
                .refused(reason), phase: .optionBytes,
                hint: "nothing was written to that unit; check which unit is on that port, then run again")
        }
        return again
    }

    func optionBytesAlternate(_ rom: ROM, family: McuFamily) throws -> UInt8 {
        let address = String(format: "/0x%08X/", family.optionBytes.address)
        guard let alternate = rom.alternates.first(where: { $0.name.uppercased().contains(address.uppercased()) }) else {
            let reason = Refusal.noOptionByteMemory(
                port: rom.identity.portPath, address: family.optionBytes.address, alternates: rom.alternates.map(\.shown))
            throw UpgradeError(.refused(reason), phase: .optionBytes, hint: "the unit is in its ROM, unchanged")
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
