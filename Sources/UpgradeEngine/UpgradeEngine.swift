import AppLink
import DeviceProfiles
import DfuSe
import FirmwareImage
import USBTransport

/// One unit from its running application to the new firmware, confirmed: find → plan → enter →
/// re-enumerate (same unit, proven) → flash and verify → leave → confirm over HID. It plans before it
/// touches the unit, knows only `DeviceDiscovery`, the transports and a clock, emits typed events and
/// never prints (architecture.md; field-safety.md).
public struct UpgradeEngine: Sendable {
    public struct Options: Sendable {
        /// Serial number or port path of the unit, when several are connected.
        public var unit: String?
        public var allowDowngrade = false
        public var verify = true
        /// Stop after the plan; nothing on the unit changes.
        public var dryRun = false
        /// How long a unit may take to re-enumerate (ROM after ENTER_BOOTLOADER, application after leave).
        public var reenumerationTimeout: Duration = .seconds(10)

        public init() {}
    }

    public let discovery: any DeviceDiscovery
    public let clock: any DeviceClock
    public let onEvent: @Sendable (UpgradeEvent) -> Void

    public init(discovery: any DeviceDiscovery, clock: any DeviceClock, onEvent: @escaping @Sendable (UpgradeEvent) -> Void = { _ in }) {
        self.discovery = discovery
        self.clock = clock
        self.onEvent = onEvent
    }

    /// Upgrades the unit to `image` (`source` names the file in messages).
    public func upgrade(_ image: FirmwareImage, source: String, options: Options = Options()) async throws(UpgradeError) -> UpgradeResult {
        var phases: [(phase: UpgradePhase, duration: Duration)] = []
        func run<T>(_ phase: UpgradePhase, _ body: () async throws -> T) async throws(UpgradeError) -> T {
            onEvent(.phaseStarted(phase))
            let start = clock.now()
            do {
                let value = try await body()
                let duration = clock.now() - start
                phases.append((phase, duration))
                onEvent(.phaseFinished(phase, duration))
                return value
            } catch { throw UpgradeError.wrap(error, phase: phase) }
        }

        // 1. Find: the one application that answers (an interrupted upgrade's ROM is picked up too).
        let found = try await run(.find) { try await find(options) }
        onEvent(.found(found.description))

        // 2. Plan, against what the unit runs and its flash.
        let prepared = try await run(.plan) { try await plan(image, source: source, unit: found, options: options) }
        if prepared.upToDate {
            return UpgradeResult(outcome: .upToDate, before: found.description, newVersion: found.description.version,
                                 phases: phases, plan: prepared.plan, flashReport: nil, skippedSectors: prepared.skipped)
        }
        onEvent(.planned(prepared.plan, skippedSectors: prepared.skipped))
        if options.dryRun {
            return UpgradeResult(outcome: .planned, before: found.description, newVersion: nil, phases: phases,
                                 plan: prepared.plan, flashReport: nil, skippedSectors: prepared.skipped)
        }

        // 3–4. Enter the ROM and prove it is the same unit.
        let rom: USBDeviceIdentity
        if let hid = found.hid {
            rom = try await run(.enter) {
                try await enterBootloader(hid: hid, unit: found.description, timeout: options.reenumerationTimeout)
            }
        } else {
            rom = found.dfu!
        }

        // 5. Flash and verify (vector-table sector last: FlashPlan).
        let report = try await run(.flash) {
            let transport = try await discovery.openDFU(rom)
            defer { Task { await transport.close() } }
            let client = try DfuSeClient(transport: transport, clock: clock, quirks: found.family.quirks,
                                         onEvent: { onEvent(.flash($0)) })
            _ = try await client.prepare(alternateSetting: 0)
            let report = try await client.execute(prepared.plan, image: prepared.image, verify: options.verify)
            // 6. Leave to what this family's ROM needs (seed 001: H7 jumps straight to the address).
            _ = try await client.leave(jumpTo: prepared.leaveAddress)
            return report
        }

        // 7. Confirm: the same unit's application is back with the image's version.
        let confirmed = try await run(.confirm) {
            try await confirm(port: rom.portPath, expected: found.description, version: prepared.version,
                              timeout: options.reenumerationTimeout)
        }
        return UpgradeResult(outcome: .upgraded, before: found.description, newVersion: confirmed, phases: phases,
                             plan: prepared.plan, flashReport: report, skippedSectors: prepared.skipped)
    }

    /// Sends the running application into its ROM bootloader and returns the unit as it was and the ROM
    /// it became, proven to be the same unit (`dfuhop enter-dfu`).
    public func enterDFU(options: Options = Options()) async throws(UpgradeError) -> (unit: UnitDescription, rom: USBDeviceIdentity) {
        let found: Found
        do { found = try await find(options) } catch { throw UpgradeError.wrap(error, phase: .find) }
        guard let hid = found.hid else {
            throw UpgradeError(.refused("the unit at \(found.description.portPath) is already in DFU mode"), phase: .find,
                               hint: "nothing to do: it is ready for `dfuhop flash`")
        }
        do {
            return (found.description, try await enterBootloader(hid: hid, unit: found.description, timeout: options.reenumerationTimeout))
        } catch { throw UpgradeError.wrap(error, phase: .enter) }
    }

    // MARK: Find

    struct Found {
        var description: UnitDescription
        var family: McuFamily
        var hid: HIDDeviceInfo?
        var dfu: USBDeviceIdentity?
        var sectorCRCs: Bool
    }

    func find(_ options: Options) async throws -> Found {
        let devices = try await discovery.devices()
        func wanted(_ identity: USBDeviceIdentity) -> Bool {
            options.unit.map { identity.serialNumber == $0 || identity.portPath == $0 } ?? true
        }
        let applications = devices.compactMap { if case .hid(let info) = $0, wanted(info.usb) { info } else { nil } }
        let roms = devices.compactMap { if case .dfu(let identity, _) = $0, wanted(identity) { identity } else { nil } }
        guard applications.count + roms.count <= 1 else {
            let names = applications.map { "application at \($0.usb.portPath)" } + roms.map { "DFU unit at \($0.portPath)" }
            throw UpgradeError(.ambiguous("\(names.count) units match: \(names.joined(separator: ", "))"), phase: .find,
                               hint: "name one with --unit SERIAL or --unit PORT")
        }
        if let hid = applications.first {
            let link = AppLinkClient(transport: try await discovery.openHID(hid), clock: clock)
            let info = try await link.info()
            guard let family = McuFamily.withDeviceID(info.deviceID) else {
                throw UpgradeError(.refused("the unit reports DEV_ID 0x\(hex(info.deviceID, 3)), a part dfuhop has no data for"),
                                   phase: .find, hint: "nothing was touched")
            }
            let description = UnitDescription(
                classification: .programmed, uid: info.uid, familyID: family.id, portPath: hid.usb.portPath,
                dfuSerial: family.romSerial.serial(uid: info.uid.bytes), version: info.image?.version,
                productID: info.image?.productID)
            return Found(description: description, family: family, hid: hid, dfu: nil,
                         sectorCRCs: info.capabilities.contains(.sectorCRCs))
        }
        if let rom = roms.first {
            let alternates: [DFUAlternateSetting] = devices.lazy.compactMap { device -> [DFUAlternateSetting]? in
                if case .dfu(let identity, let alternates) = device, identity == rom { alternates } else { nil }
            }.first ?? []
            let layout = alternates.first { $0.number == 0 }?.name
            guard let family = McuFamily.all.first(where: { $0.flashModes.contains { $0.layoutString == layout } }) else {
                throw UpgradeError(.refused("cannot tell the MCU family of the DFU unit at \(rom.portPath) from its layout \"\(layout ?? "")\""),
                                   phase: .find, hint: "use `dfuhop flash IMAGE --family F --leave` for this unit")
            }
            let description = UnitDescription(classification: .inDFU, uid: nil, familyID: family.id, portPath: rom.portPath,
                                              dfuSerial: rom.serialNumber, version: nil, productID: nil)
            return Found(description: description, family: family, hid: nil, dfu: rom, sectorCRCs: false)
        }
        throw UpgradeError(.noUnit("no unit is connected\(options.unit.map { " matching \"\($0)\"" } ?? "")"), phase: .find,
                           hint: "plug the unit in; a unit that shows nothing at all (blank or corrupted) needs the BOOT0 path: "
                               + "hold BOOT0 while plugging it in, then run this again")
    }

    // MARK: Plan

    struct Prepared {
        var image: NormalizedImage
        var plan: FlashPlan
        var version: FirmwareVersion
        var leaveAddress: UInt32
        var skipped: Int
        var upToDate: Bool
    }

    func plan(_ file: FirmwareImage, source: String, unit: Found, options: Options) async throws -> Prepared {
        let family = unit.family
        let image = try file.normalized(granularity: family.writeGranularity)
        let ram = family.ramRegions.map { $0.start...UInt32($0.end - 1) }
        let flash = family.defaultFlashMode.layout.zones.map { $0.start...UInt32($0.end - 1) }
        let report = ImageCheck.check(image, for: TargetMemoryMap(partName: family.name, ram: ram, flash: flash), source: source)
        if let error = report.errors.first {
            throw UpgradeError(.refused("\(source): \(error)"), phase: .plan, hint: "nothing was touched; was the image built for \(family.name)?")
        }
        guard let base = image.baseAddress else { throw UpgradeError(.refused("\(source) is empty"), phase: .plan, hint: "nothing was touched") }
        let descriptor = try ImageDescriptor.validate(image, base: base, source: source)
        let version = FirmwareVersion(descriptor.version.major, descriptor.version.minor, descriptor.version.patch, descriptor.version.build)
        if let running = unit.description.productID, running != descriptor.productID {
            throw UpgradeError(.refused("\(source) is for product 0x\(hex(descriptor.productID, 8)); the unit runs product 0x\(hex(running, 8))"),
                               phase: .plan, hint: "nothing was touched; pick the image built for this product")
        }
        let layout = family.defaultFlashMode.layout
        let transferSize = Int(family.rom.transferSize)
        var skip: Set<UInt32> = []
        if let running = unit.description.version {
            if running == version, !options.allowDowngrade {
                let plan = try FlashPlan(image: image, layout: layout, family: family, transferSize: transferSize)
                return Prepared(image: image, plan: plan, version: version, leaveAddress: base, skipped: 0, upToDate: true)
            }
            if version < running, !options.allowDowngrade {
                throw UpgradeError(.refused("\(source) holds version \(version), older than the \(running) the unit runs"),
                                   phase: .plan, hint: "nothing was touched; pass --allow-downgrade if you mean it")
            }
            if unit.sectorCRCs, let hid = unit.hid {
                skip = try await unchangedSectors(image: image, layout: layout, hid: hid)
            }
        }
        let plan = try FlashPlan(image: image, layout: layout, family: family, transferSize: transferSize, unchangedSectors: skip)
        let leave: UInt32
        switch family.leaveJump {
        case .vectorTable: leave = base
        case .directJump:
            guard let reset = image.word(at: base + 4), reset & 1 == 1 else {
                throw UpgradeError(.refused("\(source) has no Thumb reset handler in word 1, which \(family.name)'s ROM needs to leave DFU"),
                                   phase: .plan, hint: "nothing was touched")
            }
            leave = reset
        }
        return Prepared(image: image, plan: plan, version: version, leaveAddress: leave, skipped: skip.count, upToDate: false)
    }

    /// Sectors the image touches whose content on the unit (CRCs the application reports) already equals
    /// what flashing would leave there: the image's bytes, 0xFF elsewhere in the sector.
    func unchangedSectors(image: NormalizedImage, layout: FlashLayout, hid: HIDDeviceInfo) async throws -> Set<UInt32> {
        let touched = layout.sectors.filter { sector in
            image.segments.contains { UInt64($0.address) < sector.end && $0.end > UInt64(sector.start) }
        }
        guard !touched.isEmpty else { return [] }
        let link = AppLinkClient(transport: try await discovery.openHID(hid), clock: clock)
        var unchanged: Set<UInt32> = []
        var index = 0
        while index < touched.count {
            // A run of adjacent sectors of one size is one batched query.
            var end = index + 1
            while end < touched.count, touched[end].size == touched[index].size, touched[end].start == UInt32(touched[end - 1].end) { end += 1 }
            let run = touched[index..<end]
            let crcs = try await link.sectorCRCs(address: run.first!.start, size: run.first!.size, count: run.count)
            for (sector, crc) in zip(run, crcs) where crc == expectedCRC(of: sector, image: image) { unchanged.insert(sector.start) }
            index = end
        }
        return unchanged
    }

    func expectedCRC(of sector: FlashLayout.Sector, image: NormalizedImage) -> UInt32 {
        var bytes = [UInt8](repeating: 0xFF, count: Int(sector.size))
        for segment in image.segments where UInt64(segment.address) < sector.end && segment.end > UInt64(sector.start) {
            let from = max(UInt64(segment.address), UInt64(sector.start))
            let to = min(segment.end, sector.end)
            let source = Int(from - UInt64(segment.address))
            let target = Int(from - UInt64(sector.start))
            bytes.replaceSubrange(target..<target + Int(to - from), with: segment.bytes[source..<source + Int(to - from)])
        }
        return CRC32.zlib(bytes)
    }

    // MARK: Enter, re-enumerate

    /// ENTER_BOOTLOADER naming the unit's own UID, then the ROM with the predicted serial on the same port.
    func enterBootloader(hid: HIDDeviceInfo, unit: UnitDescription, timeout: Duration) async throws -> USBDeviceIdentity {
        guard let uid = unit.uid, let serial = unit.dfuSerial else {
            throw UpgradeError(.notBuilt("the unit did not report its unique ID"), phase: .enter, hint: "use the BOOT0 path")
        }
        let events = discovery.events()
        let link = AppLinkClient(transport: try await discovery.openHID(hid), clock: clock)
        _ = try await link.enterBootloader(uid: uid, nonce: UInt32(truncatingIfNeeded: clock.now().components.attoseconds) | 1)
        return try await awaitDevice(events: events, timeout: timeout, phase: .reenumerate, describe: "the ROM (serial \(serial) at \(hid.usb.portPath))") { device in
            guard case .dfu(let identity, _) = device, identity.portPath == hid.usb.portPath else { return nil }
            // A ROM on the same port with another serial is another unit: never flash it (field-safety.md).
            return identity.serialNumber == nil || identity.serialNumber == serial ? identity : nil
        }
    }

    /// Waits for a device `match` accepts: already present, or arriving before `timeout`.
    func awaitDevice<T: Sendable>(events: AsyncStream<DiscoveryEvent>, timeout: Duration, phase: UpgradePhase, describe: String,
                                  _ match: @escaping @Sendable (DiscoveredDevice) -> T?) async throws -> T {
        if let present = try await discovery.devices().lazy.compactMap(match).first { return present }
        let clock = self.clock
        let deadline = clock.now() + timeout
        let found = try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                for await event in events { if case .arrived(let device) = event, let value = match(device) { return value } }
                return nil
            }
            group.addTask {
                try await clock.sleep(for: deadline - clock.now())
                return nil
            }
            defer { group.cancelAll() }
            return try await group.next() ?? nil
        }
        guard let found else {
            throw UpgradeError(.notConfirmed("\(describe) did not show up within \(timeout)"), phase: phase,
                               hint: phase == .reenumerate
                                   ? "nothing was written; if the application cannot jump to its bootloader, use the BOOT0 path"
                                   : "the new firmware is written and verified; power-cycle the unit and check it with `dfuhop info`")
        }
        return found
    }

    // MARK: Confirm

    func confirm(port: String, expected: UnitDescription, version: FirmwareVersion, timeout: Duration) async throws -> FirmwareVersion {
        let events = discovery.events()
        let hid = try await awaitDevice(events: events, timeout: timeout, phase: .confirm, describe: "the application at \(port)") { device in
            if case .hid(let info) = device, info.usb.portPath == port { info } else { nil }
        }
        let info = try await AppLinkClient(transport: try await discovery.openHID(hid), clock: clock).info()
        if let uid = expected.uid, info.uid != uid {
            throw UpgradeError(.notConfirmed("the application at \(port) is unit \(info.uid), not \(uid)"), phase: .confirm,
                               hint: "check which unit is on that port")
        }
        guard let running = info.image?.version, running == version else {
            throw UpgradeError(.notConfirmed("the unit runs \(info.image.map { "version \($0.version)" } ?? "an image without a descriptor"), not \(version)"),
                               phase: .confirm, hint: "run the same command again; the unit is recoverable through DFU")
        }
        return running
    }
}
