import AppLink
import DeviceProfiles
import FirmwareImage
import HexFormat
import USBTransport

/// Phase 1, find: which unit, how it can be reached, and what firmware it holds as far as can be told
/// without changing anything.
extension UpgradeEngine {
    /// A candidate unit and how it can be reached.
    struct Found: Sendable {
        enum Reach: Sendable {
            /// The application answers: ENTER_BOOTLOADER.
            case application(HIDDeviceInfo, sectorCRCs: Bool)
            /// The ROM already shows DFU.
            case rom(ROM)
            /// An application interface that does not answer, or nothing at all: the BOOT0 path. The port
            /// is nil only when nothing at all is on the bus.
            case boot0(port: String?)
        }

        var description: UnitDescription
        var family: McuFamily?
        var reach: Reach
        /// The complete image the unit holds, as its application reports it.
        var installed: Installed?
        /// The image descriptor `find` read through the ROM of a unit in DFU (its span not proven).
        var seen: Installed? = nil

        /// The application answered GET_INFO (what it reported is in `description` and `installed`).
        var hadApplicationAnswer: Bool {
            if case .application = reach { true } else { false }
        }

        /// Whether the unit had a working application before this run: it must be given back to it if the
        /// run stops before writing.
        var hadApplication: Bool {
            if case .application = reach { return true }
            return installed != nil || seen != nil
        }
    }

    /// A complete image on the unit: its descriptor, valid, and where it starts.
    struct Installed: Sendable, Hashable {
        var productID: UInt32
        var version: FirmwareVersion
        var imageSize: UInt32
        var imageCRC: UInt32
        var base: UInt32
        /// Its size and CRC are filled in (an unstamped build's are zero: it is never "the same image").
        var stamped = true
    }

    /// A ROM on the bus: its identity and alternate settings.
    struct ROM: Sendable, Hashable {
        var identity: USBDeviceIdentity
        var alternates: [DFUAlternateSetting]

        var flashLayoutString: String? { alternates.first { $0.number == 0 }?.name }
        /// The one part line whose ROM shows these alternate settings, bcdDevice and serial; nil when it is
        /// not one (several part lines share a flash layout string: F411/F446, G0B1/G431, L476/L496).
        var family: McuFamily? {
            let found = candidates
            return found.count == 1 ? found[0] : nil
        }

        /// The part line to read this ROM as: its own, or the first of those that share it when they share what
        /// an inspection needs (L476/L496: UID, flash base, option bytes).
        var inspectionFamily: McuFamily? {
            if let family { return family }
            let all = candidates
            guard let first = all.first,
                all.allSatisfy({
                    $0.uidAddress == first.uidAddress && $0.flashBase == first.flashBase && $0.optionBytes == first.optionBytes
                        && $0.eccFlash == first.eccFlash
                })
            else { return nil }
            return first
        }

        /// Every part line whose ROM shows what this one shows.
        var candidates: [McuFamily] {
            let names = alternates.sorted { $0.number < $1.number }.map(\.name)
            return McuFamily.candidates(alternates: names, bcdDevice: identity.bcdDevice, serial: identity.serialNumber)
        }
    }

    /// Every unit on the bus, classified without changing anything (applications are asked GET_INFO, ROMs
    /// are read): what `dfuhop list` shows and `--all` upgrades. Blank units that show nothing cannot be listed;
    /// with `skippingRefused`, a unit the OS refuses to open is left out (it cannot be classified; `list` shows
    /// it from the bus with the reason), else it ends the survey (`--all` must not skip a unit silently).
    public func survey(skippingRefused: Bool = false) async throws(UpgradeError) -> [UnitDescription] {
        let devices: [DiscoveredDevice]
        do { devices = try await discovery.devices() } catch { throw UpgradeError.wrap(error, phase: .find) }
        var units: [UnitDescription] = []
        for device in devices {
            do {
                let found = try await within(.find) { try await describe(device) }
                units.append(found.description)
            } catch {
                guard skippingRefused, case .transport(let inner) = error.kind, inner.kind == .accessDenied else { throw error }
            }
        }
        return units.sorted { ($0.portPath ?? "") < ($1.portPath ?? "") }
    }

    func describe(_ device: DiscoveredDevice, survey: Bool = true) async throws -> Found {
        switch device {
        case .hid(let hid): return try await describeApplication(hid)
        case .dfu(let identity, let alternates):
            if !survey { try await discovery.explainUnreadDFU(identity, alternates: alternates) }
            return await describeROM(ROM(identity: identity, alternates: alternates))
        }
    }

    /// The one unit `options.unit` names (unique ID, serial or port path, as `UnitName` compares them), or the
    /// only one there is. A name that matches nothing on the bus is a silent unit only if it is a port (the
    /// BOOT0 path needs one) or the UID of a journal entry (its port); otherwise nothing is touched.
    func find(_ options: Options) async throws -> Found {
        let name = try UnitName.parse(options.unit)
        let devices = try await discovery.devices()
        var wanted: [Found] = []
        for device in devices {
            var described: Found?
            let named = try await Self.names(name, device) {
                let found = try await describe(device, survey: false)
                described = found
                return found
            }
            guard named else { continue }
            if let described { wanted.append(described) } else { wanted.append(try await describe(device, survey: false)) }
        }
        guard wanted.count <= 1 else {
            let matches = wanted.map { UnitMatch(shows: "\($0.description.classification.rawValue) unit", port: $0.description.portPath) }
            throw UpgradeError(
                .ambiguous(matches), phase: .find,
                hint: "nothing was touched; " + NextStep.nameOneUnit(orAll: true).clause, next: .nameOneUnit(orAll: true))
        }
        if let found = wanted.first { return found }
        return try silentUnit(name, options: options, busIsEmpty: devices.isEmpty)
    }

    /// Nothing matching shows: blank, corrupted, unplugged, or nothing attached. Only BOOT0 can tell, and only
    /// a request naming a port is safe while other units could react to it. Without a BOOT0 path nothing
    /// can tell a silent unit from none: "no unit" (the same answer every command gives), unless the journal
    /// knows an interrupted upgrade of the unit named.
    func silentUnit(_ name: UnitName?, options: Options, busIsEmpty: Bool) throws -> Found {
        var port: String?
        var journaled = false
        if let name {
            if name.isPortPath {
                port = name.text
            } else if let uid = name.uid, let entry = try options.journal?.entry(for: uid) {
                (port, journaled) = (entry.portPath, true)
            } else {
                throw UpgradeError(
                    .noUnit(.named(name.text)), phase: .find,
                    hint: "nothing was touched; " + NextStep.nameAListedUnit.clause, next: .nameAListedUnit)
            }
        } else if !busIsEmpty {
            throw UpgradeError(.noUnit(.amongOthers), phase: .find, hint: "nothing was touched")
        }
        if options.boot0 == nil, !journaled, try options.journal?.entry(forPort: port) == nil {
            throw UpgradeError(
                .noUnit(port.map { .atPort($0) } ?? .any), phase: .find,
                hint: "nothing was touched; plug the unit in (a blank one shows nothing until its ROM is started: "
                    + "hold BOOT0 while plugging it in, or \(NextStep.plugInOrBoot0.clause)), then run this again", next: .plugInOrBoot0)
        }
        let description = UnitDescription(
            classification: .absent, uid: nil, familyID: "?", portPath: port, dfuSerial: nil,
            version: nil, productID: nil)
        return Found(description: description, family: nil, reach: .boot0(port: port), installed: nil)
    }

    /// GET_INFO; an application that does not answer is corrupted and goes the BOOT0 way on its port. An
    /// interface that cannot be opened (permissions) is an error, not a classification.
    func describeApplication(_ hid: HIDDeviceInfo) async throws -> Found {
        let answer = try await withHID(hid) { link in try await Self.askInfo(link) }
        guard let info = answer else {
            let description = UnitDescription(
                classification: .corrupted, uid: nil, familyID: "?", portPath: hid.usb.portPath,
                dfuSerial: nil, version: nil, productID: nil)
            return Found(description: description, family: nil, reach: .boot0(port: hid.usb.portPath), installed: nil)
        }
        let family = McuFamily.withDeviceID(info.deviceID)
        let installed = info.image.map {
            Installed(productID: $0.productID, version: $0.version, imageSize: $0.imageSize, imageCRC: $0.imageCRC, base: info.imageBase)
        }
        let description = UnitDescription(
            classification: .programmed, uid: info.uid, familyID: family?.id ?? "DEV_ID 0x\(Hex.digits(info.deviceID, width: 3))",
            portPath: hid.usb.portPath, dfuSerial: family?.romSerial.serial(uid: info.uid.bytes),
            version: info.image?.version, productID: info.image?.productID)
        return Found(
            description: description, family: family,
            reach: .application(hid, sectorCRCs: info.capabilities.contains(.sectorCRCs)), installed: installed)
    }

    /// A ROM in DFU, as `list` and `find` see it: its vector table and descriptor (never the span: that is read,
    /// where it is safe, once the run is in the ROM and knows the unit's journal). What this shows is not
    /// what the rules finally judge (`checkInROM` reads again), so a read that fails here leaves the unit
    /// "in DFU", not read, and `list` still lists it.
    func describeROM(_ rom: ROM) async -> Found {
        let family = rom.family
        var description = UnitDescription(
            classification: .inDFU, uid: nil, familyID: family?.id ?? "?",
            portPath: rom.identity.portPath, dfuSerial: rom.identity.serialNumber,
            version: nil, productID: nil)
        var found = Found(description: description, family: family, reach: .rom(rom), installed: nil)
        guard let probe = rom.inspectionFamily else { return found }
        do {
            let view = try await inspect(rom, family: probe, depth: .head)
            description.classification = view.classification
            description.uid = view.uid
            description.version = view.headImage?.version
            description.productID = view.headImage?.productID
            found.description = description
            found.seen = view.headImage
        } catch {
            onEvent(.note("the ROM at \(rom.identity.portPath) could not be read yet (\(error)); it is shown as in DFU"))
        }
        return found
    }

    /// GET_INFO, asked twice: one lost report does not make a running application "corrupted". nil: it does
    /// not answer (the BOOT0 path then reaches its ROM, where the flash is read and judged). A cancellation
    /// stays one.
    static func askInfo(_ link: AppLinkClient) async throws -> DeviceInfo? {
        for attempt in 1...2 {
            do { return try await link.info() } catch {
                if error.isCancellation { throw error }
                if attempt == 2 { return nil }
            }
        }
        return nil
    }

    /// Opens the application's HID interface for `body` and closes it on every path.
    func withHID<T>(_ hid: HIDDeviceInfo, _ body: (AppLinkClient) async throws -> T) async throws -> T {
        let transport = try await discovery.openHID(hid)
        do {
            let value = try await body(AppLinkClient(transport: transport, clock: clock))
            await transport.close()
            return value
        } catch {
            await transport.close()
            throw error
        }
    }
}
