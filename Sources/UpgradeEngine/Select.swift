import AppLink
import DeviceProfiles
import USBTransport

/// How the caller names the unit a command is for: its 96-bit unique ID, its ROM's serial number or its
/// USB port path. Every command selects through it (`selectDFU`, `selectApplication`, `find`), so a name
/// means the same unit everywhere; names are compared without regard to case (`list` shows IDs and
/// serials in upper case, people type either).
public struct UnitName: Sendable, Hashable, CustomStringConvertible {
    public let text: String

    /// nil when no name is given (the only unit there is); an empty name is refused, never "any unit".
    public static func parse(_ text: String?) throws(UpgradeError) -> UnitName? {
        guard let text else { return nil }
        guard !text.allSatisfy(\.isWhitespace) else {
            throw UpgradeError(.invalidRequest(.emptyUnitName), phase: .find, hint: "nothing was touched")
        }
        return UnitName(text: text)
    }

    public var description: String { text }

    /// 24 hex digits: a 96-bit unique ID.
    public var isUID: Bool { text.count == 24 && text.allSatisfy(\.isHexDigit) }

    /// "BUS-PORT[.PORT...]", as the OS numbers USB ports.
    public var isPortPath: Bool {
        let parts = text.split(separator: "-", maxSplits: 1)
        return parts.count == 2 && !parts[0].isEmpty && parts[0].allSatisfy(\.isNumber)
            && !parts[1].isEmpty && parts[1].allSatisfy { $0.isNumber || $0 == "." }
    }

    /// The name as the journal keys a unit: a UID in upper case.
    public var uid: String? { isUID ? text.uppercased() : nil }

    /// The device's serial number or port path is this name.
    public func names(_ identity: USBDeviceIdentity) -> Bool {
        identity.portPath == text || identity.serialNumber.map { $0.uppercased() == text.uppercased() } ?? false
    }

    /// The unit with this unique ID is this name.
    public func names(uid: UniqueID?) -> Bool {
        guard let uid, isUID else { return false }
        return uid.description.uppercased() == text.uppercased()
    }
}

extension UpgradeEngine {
    /// What a command needs the unit to show.
    enum Showing: String {
        case rom = "unit in DFU mode"
        case application = "running application on dfuhop's HID usage page"
    }

    /// The one unit in its ROM bootloader `name` names (unique ID, ROM serial or port path), or the only one
    /// there is, and its family (`family(of:named:known:)`: `named` is the caller's, `known` a simulated
    /// unit's). None: `.noUnit`; several: `.ambiguous`; an empty name: `.invalidRequest`. Nothing is written:
    /// a unique ID is read through the ROM, as `survey` does.
    public func selectDFU(named name: String?, family named: McuFamily?, known: McuFamily? = nil) async throws(UpgradeError) -> DFUUnit {
        let unitName = try UnitName.parse(name)
        let rom = try await within(.find) {
            try await selectOne(unitName, showing: .rom) { device -> ROM? in
                if case .dfu(let identity, let alternates) = device { ROM(identity: identity, alternates: alternates) } else { nil }
            }
        }
        try await within(.find) { try await discovery.explainUnreadDFU(rom.identity, alternates: rom.alternates) }
        let family = try Self.family(of: rom, named: named, known: known)
        return DFUUnit(identity: rom.identity, alternateSettings: rom.alternates, family: family)
    }

    /// The one running application `name` names (unique ID, serial or port path), or the only one there is.
    public func selectApplication(named name: String?) async throws(UpgradeError) -> HIDDeviceInfo {
        let unitName = try UnitName.parse(name)
        return try await within(.find) {
            try await selectOne(unitName, showing: .application) { device -> HIDDeviceInfo? in
                if case .hid(let info) = device { info } else { nil }
            }
        }
    }

    /// The one device showing `showing` (what `unit` extracts) that `name` names, or the only one.
    func selectOne<Unit>(_ name: UnitName?, showing: Showing, _ unit: (DiscoveredDevice) -> Unit?) async throws -> Unit {
        let devices = try await discovery.devices().filter { unit($0) != nil }
        var matching: [DiscoveredDevice] = []
        for device in devices where try await Self.names(name, device, describe: { try await describe(device) }) {
            matching.append(device)
        }
        func shown(_ device: DiscoveredDevice) -> UnitMatch {
            UnitMatch(shows: device.identity.serialNumber ?? "no serial", port: device.identity.portPath)
        }
        guard !matching.isEmpty else {
            let none = NextStep.connect(inROM: showing == .rom)
            throw UpgradeError(
                .noUnit(.showing(inROM: showing == .rom, name: name?.text)), phase: .find,
                hint: devices.isEmpty ? none.clause : "connected: \(devices.map { shown($0).description }.joined(separator: ", "))",
                next: devices.isEmpty ? none : nil)
        }
        guard matching.count == 1, let only = unit(matching[0]) else {
            throw UpgradeError(
                .ambiguous(matching.map(shown)), phase: .find,
                hint: NextStep.nameOneUnit(orAll: false).clause, next: .nameOneUnit(orAll: false))
        }
        return only
    }

    /// Whether `name` names `device`: by its serial or port, else by the unique ID its application reports or
    /// its ROM shows, or the ROM serial that ID gives (an application named as `list` shows its ROM). Only
    /// what could be named so is described (GET_INFO, or a read through the ROM: nothing is written).
    static func names(_ name: UnitName?, _ device: DiscoveredDevice, describe: () async throws -> Found) async throws -> Bool {
        guard let name else { return true }
        if name.names(device.identity) { return true }
        if name.isPortPath { return false }
        if case .dfu = device, !name.isUID { return false }
        let seen = try await describe().description
        return name.names(uid: seen.uid) || seen.dfuSerial.map { $0.uppercased() == name.text.uppercased() } ?? false
    }

    /// The family of the ROM with this identity and these alternate settings, as `selectDFU` decides it.
    public static func family(
        of identity: USBDeviceIdentity, alternateSettings: [DFUAlternateSetting], named: McuFamily?, known: McuFamily? = nil
    ) throws(UpgradeError) -> McuFamily {
        try family(of: ROM(identity: identity, alternates: alternateSettings), named: named, known: known)
    }

    /// The family of a unit in its ROM, decided once for every command: the one the caller names (`named`)
    /// if the ROM's layout allows it; else the one the caller knows (`known`: a simulated unit); else the one
    /// part line whose ROM shows these alternate settings, bcdDevice and serial; else, among several, the
    /// one a product profile or the journal suggests. A name that contradicts the ROM would write the wrong
    /// flash word size (seed 004): refused, like a ROM several part lines share and nothing names.
    static func family(of rom: ROM, named: McuFamily?, known: McuFamily? = nil, suggested: McuFamily? = nil) throws(UpgradeError)
        -> McuFamily
    {
        let candidates = rom.candidates
        func allowed(_ family: McuFamily) -> Bool { candidates.isEmpty || candidates.contains { $0.id == family.id } }
        if let named {
            guard allowed(named) else {
                let reason = Refusal.familyMismatch(named: named.id, unit: candidates.map(\.name), port: rom.identity.portPath)
                throw UpgradeError(.refused(reason), phase: .plan, hint: reason.hint)
            }
            return named
        }
        if let known { return known }
        if candidates.count == 1 { return candidates[0] }
        if let suggested, allowed(suggested) { return suggested }
        let reason = Refusal.needsFamily(port: rom.identity.portPath, candidates: candidates, suggested: suggested)
        throw UpgradeError(.refused(reason), phase: .plan, hint: reason.hint)
    }
}
