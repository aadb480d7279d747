import AppLink
import DeviceProfiles
import DfuSe
import DfuSeWire
import FirmwareImage
import HexFormat
import USBTransport

/// Phase 3 continued: the ROM is reached. Before anything is erased, the engine reads — never writes —
/// what it needs to know through the ROM: the read protection, the unit's UID (its identity), and the
/// image in flash (vector table, descriptor, CRC over the descriptor's span). Every path (running,
/// already in DFU, named by serial, BOOT0, resume) goes through here, so the same rules apply to all.
extension UpgradeEngine {
    /// What the ROM shows of the unit.
    struct ROMView: Sendable {
        /// Nil where the ROM does not let the UID be read.
        var uid: UniqueID?
        /// The read-protection byte (the family's level-0 value, e.g. 0xAA; 0xCC level 2; else level 1), when the ROM shows it; a
        /// flash read refused with errVENDOR also means protected.
        var readProtection: UInt8?
        var protected: Bool
        var blank: Bool
        var installed: Installed?

        var classification: UnitDescription.Classification {
            if protected { return .inDFU }
            if blank { return .blank }
            return installed == nil ? .corrupted : .programmedInDFU
        }
    }

    /// How much of the flash an inspection may read. Reading a flash word whose ECC a torn write broke
    /// makes the ROM fault (NMI) and hang (RM0351 §3.3.3, seed 004), so the whole span is read only where
    /// no interrupted write can be in it.
    enum Depth: Sendable {
        /// The vector table and the descriptor it points at: classification, version as the descriptor says.
        case head
        /// The descriptor's whole span too, to prove its CRC.
        case span
    }

    /// Reads the unit through its ROM. A read the ROM refuses for protection is a finding, not an error.
    /// `knownUID`: the UID the caller already read through this ROM (it is not read again).
    func inspect(_ rom: ROM, family: McuFamily, depth: Depth, knownUID: UniqueID? = nil) async throws -> ROMView {
        var view = ROMView(uid: nil, readProtection: nil, protected: false, blank: false, installed: nil)
        view.readProtection = try? await readOptionBytes(rom, family: family)[family.optionBytes.readProtectionByteOffset]
        if let level = view.readProtection, family.optionBytes.readProtectionLevel(level) != 0 { view.protected = true }
        if view.protected { return view }
        try await withClient(rom, family: family) { client in
            try await client.prepare(alternateSetting: 0)
            do {
                let head = try await client.read(address: family.flashBase, length: 0x24)
                view.blank = head.prefix(8).allSatisfy { $0 == 0xFF }
                if !view.blank { view.installed = try await installedImage(client, head: head, base: family.flashBase, depth: depth) }
            } catch let error as DfuSeError where error.deviceStatus == .errVendor || (view.readProtection == nil && error.isStall) {
                // Under read protection every upload fails (errVENDOR, often seen as a stall), option bytes
                // included (AN3156 §4.3): both reads refused is read protection, not a cable fault.
                view.protected = true
            }
            // In the same session: the UID, last, since a ROM that refuses the read ends in dfuERROR.
            if !view.protected, knownUID == nil { view.uid = await readUID(client, family: family) }
        }
        if !view.protected, knownUID != nil { view.uid = knownUID }
        return view
    }

    /// The image the flash holds, if its descriptor is stamped (and, at `.span` depth, its CRC matches).
    func installedImage(_ client: DfuSeClient, head: [UInt8], base: UInt32, depth: Depth) async throws -> Installed? {
        let pointer = UInt32(littleEndianBytes: head[0x20..<0x24])
        guard pointer != 0, pointer != 0xFFFF_FFFF, pointer % 4 == 0, pointer > base,
            let header = try? await client.read(address: pointer, length: ImageDescriptor.size),
            let descriptor = try? ImageDescriptor(decoding: header, at: pointer, source: "flash"),
            !descriptor.isUnstamped, descriptor.imageSize >= pointer - base + UInt32(ImageDescriptor.size),
            UInt64(base) + UInt64(descriptor.imageSize) <= UInt64(UInt32.max)
        else { return nil }
        if depth == .span {
            let span = try await client.read(address: base, length: Int(descriptor.imageSize))
            guard (try? ImageDescriptor.validate(FlatMemory(base: base, bytes: span), base: base, source: "flash")) != nil else {
                return nil
            }
        }
        return Installed(
            productID: descriptor.productID, version: descriptor.version, imageSize: descriptor.imageSize,
            imageCRC: descriptor.crc, base: base)
    }

    /// The 96-bit UID, read through the ROM (AN2606: the ROM reads system memory); nil if it refuses.
    func readUID(_ rom: ROM, family: McuFamily) async -> UniqueID? {
        try? await withClient(rom, family: family) { client in
            try await client.prepare(alternateSetting: 0)
            return await readUID(client, family: family)
        }
    }

    /// The UID through a client already prepared on alternate setting 0; nil if the ROM refuses the read.
    func readUID(_ client: DfuSeClient, family: McuFamily) async -> UniqueID? {
        (try? await client.read(address: family.uidAddress, length: UniqueID.byteCount)).flatMap { UniqueID($0) }
    }

    /// The ROM this run reached, proven and inspected, with the rules applied again to what its flash
    /// holds. Throws before anything is erased: another unit, read protection, or a rule the image breaks.
    func checkInROM(_ rom: ROM, found: Found, target: Target, run: Run) async throws -> Target {
        guard let family = rom.family ?? Optional(target.family), family.id == target.family.id else {
            throw UpgradeError(
                .refused(
                    "the ROM at \(rom.identity.portPath) shows the flash of \(rom.family?.name ?? "an unknown part"), "
                        + "not of \(target.family.name)"), phase: .enter,
                hint: "nothing was written; pick the image built for this unit's MCU")
        }
        // An application that answered had checked its own image at start-up; a unit mid-upgrade may hold torn
        // words: neither needs (nor survives) a read of the whole span.
        let midUpgrade = run.resumed != nil || run.candidateEntry != nil
        let depth: Depth = found.hadApplicationAnswer || midUpgrade ? .head : .span
        let view: ROMView
        do { view = try await inspect(rom, family: family, depth: depth) } catch let error as DfuSeError where Self.worthOneMoreTry(error) {
            // Reads change nothing: a stall or a moment's silence is simply read again.
            onEvent(.note("the ROM failed a read (\(error)); reading once more"))
            view = try await inspect(rom, family: family, depth: depth)
        }
        try proveIdentity(view, rom: rom, run: run)
        if view.protected { throw readProtected(view, rom: rom, family: family) }
        var target = target
        if !found.hadApplicationAnswer {
            run.before.classification = view.classification
            run.before.version = view.installed?.version ?? run.before.version
            run.before.productID = view.installed?.productID ?? run.before.productID
            onEvent(.classified(view.classification))
        }
        // What the ROM read is the truth the rules judge, whoever reported what before; a unit mid-upgrade
        // is judged by its journal entry.
        if found.hadApplicationAnswer, view.installed != found.installed {
            onEvent(
                .note(
                    "the flash's descriptor (\(view.installed.map { "\($0.version)" } ?? "none")) is not what the application "
                        + "reported; judging by the flash"))
        }
        try applyRules(&target, installed: midUpgrade ? nil : view.installed, run: run, skipAllowed: false)
        try await within(.enter) {
            if let uid = run.before.uid { try await lock(uid.description, run) }
            try record(.inROM, run, target: target)
        }
        return try replanIfLayoutDiffers(target, rom: rom)
    }

    /// The ROM must be the unit the run started with: the same UID where both are known.
    func proveIdentity(_ view: ROMView, rom: ROM, run: Run) throws {
        if let expected = run.before.uid, let seen = view.uid, expected != seen {
            throw UpgradeError(
                .refused("the ROM at \(rom.identity.portPath) is unit \(seen), not \(expected)"), phase: .enter,
                hint: "nothing was written to either unit; check which unit is on that port, then run again")
        }
        run.before.uid = run.before.uid ?? view.uid
        run.before.portPath = rom.identity.portPath
        run.before.dfuSerial = rom.identity.serialNumber
        guard let entry = run.candidateEntry else { return }
        if let seen = view.uid, entry.uid == seen.description {
            run.resumed = entry
            onEvent(.resuming(entry))
        } else {
            onEvent(
                .note(
                    "the journal entry for unit \(entry.uid ?? entry.key) on \(entry.portPath) is kept: the unit there now "
                        + (view.uid.map { "is \($0)" } ?? "cannot be identified") + ", a different unit; `dfuhop journal` lists it"))
        }
        run.candidateEntry = nil
    }

    func readProtected(_ view: ROMView, rom: ROM, family: McuFamily) -> UpgradeError {
        let level =
            view.readProtection.map { "level \(family.optionBytes.readProtectionLevel($0)) (RDP=0x\(Hex.digits($0, width: 2)))" }
            ?? "level 1 or 2"
        return UpgradeError(
            .readProtected(
                "the unit at \(rom.identity.portPath) has read protection \(level): its ROM refuses "
                    + "every read and write of the flash"), phase: .enter,
            hint: "nothing was written; only a read-unprotect clears level 1, and it erases the whole flash: "
                + "`dfuhop enter-dfu`, then `dfuhop erase --read-unprotect`, then run the upgrade again "
                + "(the blank unit is reached through the BOOT0 path); level 2 is permanent")
    }

    /// The ROM may show another organisation than planned (G4 DBANK): plan again for what it shows,
    /// without skipping sectors.
    func replanIfLayoutDiffers(_ target: Target, rom: ROM) throws -> Target {
        guard let string = rom.flashLayoutString, let layout = try? FlashLayout(parsing: string), layout != target.plan.layout else {
            return target
        }
        onEvent(.note("the ROM shows the flash as \"\(string)\", not as planned; planning again for it, without skipping sectors"))
        var target = target
        target.plan = try FlashPlan(
            image: target.image, layout: layout, family: target.family, transferSize: target.plan.transferSize,
            span: target.span)
        return target
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
}

extension UInt32 {
    init(littleEndianBytes bytes: ArraySlice<UInt8>) {
        self = bytes.reversed().reduce(0) { $0 << 8 | UInt32($1) }
    }
}

extension DfuSeError {
    var isStall: Bool {
        if case .transport(let transport, _) = self { transport.kind == .stall } else { false }
    }

    /// The DFU status the device reported, when this is a device-status error.
    var deviceStatus: DFUStatus? {
        if case .deviceStatus(let status, _, _, _) = self { status } else { nil }
    }
}
