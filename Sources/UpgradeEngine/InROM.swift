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
///
/// Fail closed (docs/guarantees.md): a read that fails is read again; if it still fails the unit is
/// *unknown* and the run stops before anything is written. "Corrupted" and "blank" are findings read back
/// from the flash, never what a failed read leaves.
extension UpgradeEngine {
    /// What the first words of the flash show.
    enum FlashHead: Sendable, Hashable {
        /// Not read (the depth did not ask for it).
        case notRead
        /// The vector table's first two words read erased.
        case erased
        /// A vector table, but no image descriptor where its word 8 points.
        case noDescriptor
        /// A decoded image descriptor (its CRC over the span not checked by this alone).
        case descriptor(Installed)
    }

    /// What the ROM shows of the unit.
    struct ROMView: Sendable {
        /// Nil only where the depth did not read it.
        var uid: UniqueID?
        /// The read-protection byte (the family's level-0 value, e.g. 0xAA; 0xCC level 2; else level 1).
        var readProtection: UInt8?
        var protected = false
        var head = FlashHead.notRead
        /// nil: the span was not read; true: its CRC matches the descriptor; false: it does not.
        var spanIntact: Bool?
        /// The whole flash read back erased.
        var blankVerified = false
        /// How much was read.
        var depth = Depth.identity

        /// The descriptor the flash holds, whether or not its span was proven.
        var headImage: Installed? {
            if case .descriptor(let image) = head { image } else { nil }
        }
        /// The complete image, proven by the CRC over its span.
        var proven: Installed? { spanIntact == true ? headImage : nil }

        var classification: UnitDescription.Classification {
            if protected { return .inDFU }
            switch head {
            case .notRead: return .inDFU
            // An erased head is blank only once the whole flash read erased; a head-only look (`list`) shows it
            // as blank, and nothing is decided on that.
            case .erased: return blankVerified || depth < .blank ? .blank : .corrupted
            case .noDescriptor: return .corrupted
            case .descriptor: return spanIntact.map { $0 ? .programmedInDFU : .corrupted } ?? .inDFU
            }
        }
    }

    /// How much of the flash an inspection may read. Reading a flash word whose ECC a torn write broke
    /// makes the ROM fault (NMI) and hang (RM0351 §3.3.3, seed 004), so the span is read only where no
    /// interrupted write can be in it.
    enum Depth: Sendable, Comparable {
        /// Read protection and UID only: the operator's statement replaces reading the flash.
        case identity
        /// The vector table and the descriptor it points at.
        case head
        /// And, where the head reads erased, the whole flash (erased words never hang a ROM).
        case blank
        /// And, where a descriptor is found, its whole span to prove its CRC.
        case span
    }

    /// Reads the unit through its ROM at `depth`, each read checked; a read that fails throws. A read the
    /// ROM refuses for protection is a finding, not an error. `knownUID`: read already through this ROM.
    func inspect(_ rom: ROM, family: McuFamily, depth: Depth, knownUID: UniqueID? = nil) async throws -> ROMView {
        var view = ROMView(uid: knownUID, depth: depth)
        // A flash layout that does not parse is refused before anything is sent (the client would stop on it
        // later, as a flash failure).
        let layout = try rom.flashLayout(family, phase: .enter)
        view.readProtection = try await readProtectionByte(rom, family: family)
        if let level = view.readProtection, family.optionBytes.readProtectionLevel(level) != 0 { view.protected = true }
        if view.protected { return view }
        try await withClient(rom, family: family) { client in
            try await client.prepare(alternateSetting: 0)
            do {
                if view.uid == nil { view.uid = try await readUID(client, family: family) }
                if depth > .identity {
                    try await readFlash(client, family: family, layout: layout, depth: depth, into: &view)
                }
            } catch {
                // Under read protection every upload fails with errVENDOR (AN3156 §4.3).
                guard let failure = error as? DfuSeError, await refusedForProtection(failure, client) else { throw error }
                view.protected = true
            }
        }
        return view
    }

    /// The read-protection byte; nil where the ROM shows no option bytes, or refuses to read them for
    /// protection (the flash read then tells). Any other failure throws.
    func readProtectionByte(_ rom: ROM, family: McuFamily) async throws -> UInt8? {
        guard let alternate = rom.alternate(at: family.optionBytes.address) else { return nil }
        return try await withClient(rom, family: family) { client in
            try await client.prepare(alternateSetting: alternate)
            do {
                return try await client.read(address: family.optionBytes.address, length: family.optionBytes.factoryBytes.count)[
                    family.optionBytes.readProtectionByteOffset]
            } catch {
                guard let failure = error as? DfuSeError, await refusedForProtection(failure, client) else { throw error }
                return nil
            }
        }
    }

    /// Whether a failed upload was the ROM refusing it for read protection: errVENDOR, reported at once or
    /// by the GETSTATUS after a stall (AN3156 §4.3). A passing stall leaves another status: not protection.
    func refusedForProtection(_ error: DfuSeError, _ client: DfuSeClient) async -> Bool {
        if error.deviceStatus == .errVendor { return true }
        guard error.isStall else { return false }
        do { return try await client.status().status == .errVendor } catch { return false }
    }

    /// The vector table, the descriptor it points at (each read only once the one before it checks out),
    /// then, by depth, the whole flash of an erased head or the span of a descriptor.
    func readFlash(_ client: DfuSeClient, family: McuFamily, layout: FlashLayout, depth: Depth, into view: inout ROMView) async throws {
        let base = family.flashBase
        let flashEnd = layout.sectors.last.map { $0.end } ?? UInt64(base)
        let head = try await client.read(address: base, length: 0x24)
        if head.prefix(8).allSatisfy({ $0 == 0xFF }) {
            view.head = .erased
            if depth >= .blank { view.blankVerified = try await readsErased(client, from: base, to: flashEnd) }
            return
        }
        let pointer = UInt32(littleEndianBytes: head[0x20..<0x24])
        guard pointer != 0xFFFF_FFFF, pointer % 4 == 0, pointer > base,
            UInt64(pointer) + UInt64(ImageDescriptor.size) <= flashEnd
        else {
            view.head = .noDescriptor
            return
        }
        let bytes = try await client.read(address: pointer, length: ImageDescriptor.size)
        guard let descriptor = Self.descriptor(decoding: bytes, at: pointer),
            descriptor.imageSize >= pointer - base + UInt32(ImageDescriptor.size) || descriptor.isUnstamped,
            UInt64(base) + UInt64(descriptor.imageSize) <= flashEnd
        else {
            view.head = .noDescriptor
            return
        }
        view.head = .descriptor(
            Installed(
                productID: descriptor.productID, version: descriptor.version, imageSize: descriptor.imageSize,
                imageCRC: descriptor.crc, base: base, stamped: !descriptor.isUnstamped))
        guard depth >= .span, !descriptor.isUnstamped else { return }
        let span = try await client.read(address: base, length: Int(descriptor.imageSize))
        // A CRC that does not match is a finding about bytes read back (corrupted), not a failed read: the
        // read above throws, and `inspect` only looks at the bytes.
        let status = ImageDescriptor.inspect(FlatMemory(base: base, bytes: span), base: base, source: "flash")
        view.spanIntact = if case .valid = status { true } else { false }
    }

    /// The descriptor those bytes (read back from `address`) hold, or nil when they hold none. The error is
    /// typed: only the bytes' format can fail here, never a transfer, so nothing unknown becomes "no descriptor".
    static func descriptor(decoding bytes: [UInt8], at address: UInt32) -> ImageDescriptor? {
        do throws(ImageError) { return try ImageDescriptor(decoding: bytes, at: address, source: "flash") } catch { return nil }
    }

    /// Whether every byte from `start` to `end` reads 0xFF, read in 64 KiB pieces, stopping at the first
    /// piece that does not.
    func readsErased(_ client: DfuSeClient, from start: UInt32, to end: UInt64) async throws -> Bool {
        var address = UInt64(start)
        while address < end {
            let length = Int(min(end - address, 64 * 1024))
            let bytes = try await client.read(address: UInt32(address), length: length)
            guard bytes.allSatisfy({ $0 == 0xFF }) else { return false }
            address += UInt64(length)
        }
        return true
    }

    /// The 96-bit UID, read through the ROM (AN2606: the ROM reads system memory). A failed read throws.
    func readUID(_ rom: ROM, family: McuFamily) async throws -> UniqueID {
        try await withClient(rom, family: family) { client in
            try await client.prepare(alternateSetting: 0)
            return try await readUID(client, family: family)
        }
    }

    /// The UID through a client already prepared on alternate setting 0.
    func readUID(_ client: DfuSeClient, family: McuFamily) async throws -> UniqueID {
        let bytes = try await client.read(address: family.uidAddress, length: UniqueID.byteCount)
        guard let uid = UniqueID(bytes) else {
            throw UpgradeError(
                .unexpected("the ROM returned \(bytes.count) bytes for the \(UniqueID.byteCount)-byte unique ID"), phase: .enter,
                hint: "nothing was written; run the same command again")
        }
        return uid
    }

    /// `inspect`, read again when a read fails in a way a second read can get past (a stall, a moment's
    /// silence): reads change nothing. A failure that stands makes the unit unknown: the run stops here,
    /// nothing written, with a hint that reaches the unit another way.
    func inspectReadingAgain(_ rom: ROM, family: McuFamily, depth: Depth, knownUID: UniqueID?) async throws -> ROMView {
        var attempt = 1
        while true {
            do { return try await inspect(rom, family: family, depth: depth, knownUID: knownUID) } catch let error as DfuSeError
                where Self.worthOneMoreTry(error) && attempt < 3
            {
                onEvent(.note("the ROM failed a read (\(error)); reading again"))
                attempt += 1
            } catch let error as DfuSeError {
                throw unreadable(error, family: family, depth: depth)
            }
        }
    }

    /// A unit whose ROM could not be read: unknown, never "corrupted". Where a torn ECC word may be what
    /// hangs the ROM, the hint names the way that reads no flash.
    func unreadable(_ error: DfuSeError, family: McuFamily, depth: Depth) -> UpgradeError {
        var failure = UpgradeError.wrap(error, phase: .enter)
        let mayBeTorn = family.eccFlash && depth > .identity
        failure.hint =
            "nothing was written; the unit could not be read, so what it holds is unknown: power-cycle it (unplug, or the "
            + "BOOT0 path), then run the same command again"
            + (mayBeTorn
                ? "; if its ROM stops answering again while its flash is read (a word torn by an interrupted write hangs "
                    + "an ECC part's ROM), run again " + NextStep.stateProduct.clause
                : "")
        if mayBeTorn { failure.nextStep = .stateProduct }
        return failure
    }

    /// The ROM this run reached, proven and inspected, with the rules applied again to what its flash
    /// holds. Throws before anything is erased: another unit, read protection, an unreadable unit, or a
    /// rule the image breaks.
    func checkInROM(_ rom: ROM, found: Found, target: Target, run: Run) async throws -> Target {
        guard let family = rom.family ?? Optional(target.family), family.id == target.family.id else {
            let reason = Refusal.romOfOtherFamily(port: rom.identity.portPath, shown: rom.family?.name, expected: target.family.name)
            throw UpgradeError(.refused(reason), phase: .enter, hint: reason.hint)
        }
        // Identity first: which journal entry is this unit's decides how much of its flash may be read.
        let identity = try await inspectReadingAgain(rom, family: family, depth: .identity, knownUID: nil)
        if identity.protected { throw readProtected(identity, rom: rom, family: family) }
        try proveIdentity(identity, rom: rom, run: run)
        try adoptEntryOnceKnown(run)
        let depth = inspectionDepth(found, family: family, run: run)
        let view = try await inspectReadingAgain(rom, family: family, depth: depth, knownUID: identity.uid)
        if view.protected { throw readProtected(view, rom: rom, family: family) }
        if !found.hadApplicationAnswer { describeFromROM(view, found: found, run: run) }
        if found.hadApplicationAnswer, view.headImage != found.installed {
            onEvent(
                .note(
                    "the flash's descriptor (\(view.headImage.map { "\($0.version)" } ?? "none")) is not what the application "
                        + "reported; judging by both"))
        }
        var target = target
        try applyRules(&target, holding: holding(found, view: view, run: run), run: run, final: true)
        try await within(.enter) {
            if let uid = run.before.uid { try await lock(uid.description, run) }
            try record(.inROM, run, target: target)
        }
        return try replanIfLayoutDiffers(target, rom: rom)
    }

    /// How much of this unit's flash may be read (`Depth`): an application that answered had checked its own
    /// image; a unit its journal shows mid-write, or an ECC unit that did not answer, may hold torn words.
    func inspectionDepth(_ found: Found, family: McuFamily, run: Run) -> Depth {
        if found.hadApplicationAnswer { return .head }
        if run.options.assumedProduct != nil { return .identity }
        if run.resumed?.step == .flashing { return .head }
        return family.eccFlash && run.resumed.map({ $0.step < .verified }) ?? true ? .blank : .span
    }

    /// A unit that did not answer is described by what its ROM read. An image whose span was not read is
    /// called corrupted only where the unit showed no application (it was reached through BOOT0).
    func describeFromROM(_ view: ROMView, found: Found, run: Run) {
        var classification = view.classification
        if classification == .inDFU, case .boot0 = found.reach, view.headImage != nil { classification = .corrupted }
        run.before.classification = classification
        run.before.version = view.headImage?.version ?? run.before.version
        run.before.productID = view.headImage?.productID ?? run.before.productID
        onEvent(.classified(classification))
    }

    /// The ROM must be the unit the run started with: the same UID where both are known.
    func proveIdentity(_ view: ROMView, rom: ROM, run: Run) throws {
        if let expected = run.before.uid, let seen = view.uid, expected != seen {
            let reason = Refusal.otherUnit(port: rom.identity.portPath, seen: seen.description, expected: expected.description)
            throw UpgradeError(.refused(reason), phase: .enter, hint: reason.hint)
        }
        run.before.uid = run.before.uid ?? view.uid
        run.before.portPath = rom.identity.portPath
        run.before.dfuSerial = rom.identity.serialNumber
        guard let entry = run.candidateEntry else { return }
        if let seen = view.uid, entry.uid == seen.description {
            run.resumed = entry
            onEvent(.resuming(entry))
        } else if entry.uid == nil {
            // An entry keyed by port alone comes from a run that never read the unit's UID in its ROM, so it
            // never got past "planned": it records no write, and this run's own entry replaces it.
            onEvent(.note("the journal entry for port \(entry.portPath) recorded no write (its run never reached the ROM); it is replaced"))
        } else {
            onEvent(
                .note(
                    "the journal entry for unit \(entry.uid ?? entry.key) on \(entry.portPath) is kept: the unit there now "
                        + (view.uid.map { "is \($0)" } ?? "cannot be identified") + ", a different unit; the journal lists it"))
        }
        run.candidateEntry = nil
    }

    /// A unit whose UID only its ROM told (it showed nothing, or its ROM's UID could not be read before):
    /// its own journal entry, by UID, now that the UID is known.
    func adoptEntryOnceKnown(_ run: Run) throws {
        guard run.resumed == nil, !run.journalAskedByUID, let journal = run.options.journal, let uid = run.before.uid
        else { return }
        run.journalAskedByUID = true
        run.resumed = try journal.entry(for: uid.description)
        if let entry = run.resumed { onEvent(.resuming(entry)) }
    }

    func readProtected(_ view: ROMView, rom: ROM, family: McuFamily) -> UpgradeError {
        let stop = ReadProtectionStop.unitProtected(
            port: rom.identity.portPath, level: view.readProtection.map { family.optionBytes.readProtectionLevel($0) },
            rdp: view.readProtection)
        return UpgradeError(
            .readProtected(stop), phase: .enter,
            hint: "nothing was written; only a read-unprotect clears level 1, and it erases the whole flash: "
                + NextStep.readUnprotect.clause + ", then run the upgrade again "
                + "(the blank unit is reached through the BOOT0 path); level 2 is permanent", next: .readUnprotect)
    }

    /// The ROM may show another organisation than planned (G4 DBANK): plan again for what it shows,
    /// without skipping sectors.
    func replanIfLayoutDiffers(_ target: Target, rom: ROM) throws -> Target {
        guard let string = rom.flashLayoutString else { return target }
        let layout = try rom.flashLayout(target.family, phase: .flash)
        guard layout != target.plan.layout else { return target }
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

extension UpgradeEngine.ROM {
    /// The alternate setting whose memory starts at `address` (AN3156 §3: "@Name /0xADDRESS/..."), if shown.
    func alternate(at address: UInt32) -> UInt8? {
        let wanted = String(format: "/0x%08X/", address).uppercased()
        return alternates.first { $0.name.uppercased().contains(wanted) }?.number
    }

    /// The flash as this ROM shows it, else (it shows none) as the family's default mode lays it out. A layout
    /// the ROM shows that does not parse is refused, never replaced by a guess: a plan for a guessed layout could
    /// erase sectors the ROM lays out otherwise.
    func flashLayout(_ family: McuFamily, phase: UpgradePhase) throws(UpgradeError) -> FlashLayout {
        guard let string = flashLayoutString else { return family.defaultFlashMode.layout }
        do throws(FlashLayoutError) {
            return try FlashLayout(parsing: string)
        } catch {
            let reason = Refusal.romLayoutUnreadable(port: identity.portPath, error: error)
            throw UpgradeError(.refused(reason), phase: phase, hint: reason.hint)
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
