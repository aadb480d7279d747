import AppLink
import Crypto
import DeviceProfiles
import DfuSe
import FirmwareImage
import USBTransport

extension UpgradeEngine {
    struct Prepared: Sendable {
        var image: NormalizedImage
        var family: McuFamily
        var profile: ProductProfile?
        var plan: FlashPlan
        var version: FirmwareVersion
        var leaveAddress: UInt32
        var skipped: Int
        var upToDate: Bool
        /// SHA-256 of the normalised image (journal).
        var digest: String
    }

    /// Checks the image against the unit and plans the flash, before anything on the unit changes.
    func plan(_ file: FirmwareImage, source: String, unit: Found, options: Options) async throws -> Prepared {
        // The product, from the image's descriptor; its profile names the family, flash mode and BOOT0 path.
        guard let family = unit.family ?? options.family ?? Self.familyFromDescriptor(file, profiles: options.profiles) else {
            throw UpgradeError(.refused("cannot tell which MCU the unit has: it does not answer and \(source)'s product has no profile"),
                               phase: .plan, hint: "nothing was touched; give --family or --profile")
        }
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
        let profile = options.profiles.first { $0.imageProductID == descriptor.productID }
        if let profile, profile.family.id != family.id {
            throw UpgradeError(.refused("\(source) is for \(profile.name), an \(profile.family.name); the unit is an \(family.name)"),
                               phase: .plan, hint: "nothing was touched; pick the image built for this unit")
        }
        // The flash organisation: what the ROM shows, else what the product needs, else the part's default.
        let layout: FlashLayout
        if case .rom(let rom) = unit.reach, let string = rom.flashLayoutString {
            do { layout = try FlashLayout(parsing: string) } catch {
                throw UpgradeError(.refused("the DFU unit's memory layout \"\(string)\" is not valid: \(error)"), phase: .plan,
                                   hint: "nothing was touched; is this an ST ROM bootloader?")
            }
        } else {
            layout = (profile?.flashMode ?? family.defaultFlashMode).layout
        }
        let transferSize = Int(family.rom.transferSize)
        let digest = SHA256.hash(data: image.segments.flatMap { segment in
            withUnsafeBytes(of: segment.address.littleEndian, Array.init) + segment.bytes
        }).withUnsafeBytes { hexString($0) }
        var skip: Set<UInt32> = []
        if let running = unit.description.version {
            if running == version, !options.allowDowngrade {
                let plan = try FlashPlan(image: image, layout: layout, family: family, transferSize: transferSize)
                return Prepared(image: image, family: family, profile: profile, plan: plan, version: version, leaveAddress: base,
                                skipped: 0, upToDate: true, digest: digest)
            }
            if version < running, !options.allowDowngrade {
                throw UpgradeError(.refused("\(source) holds version \(version), older than the \(running) the unit runs"),
                                   phase: .plan, hint: "nothing was touched; pass --allow-downgrade if you mean it")
            }
            if case .application(let hid, sectorCRCs: true) = unit.reach {
                skip = try await unchangedSectors(image: image, layout: layout, hid: hid)
            }
        }
        let plan = try FlashPlan(image: image, layout: layout, family: family, transferSize: transferSize, unchangedSectors: skip)
        return Prepared(image: image, family: family, profile: profile, plan: plan, version: version,
                        leaveAddress: try leaveAddress(image, base: base, family: family, source: source),
                        skipped: skip.count, upToDate: false, digest: digest)
    }

    /// The family named by the profile of the image's product, for units that do not answer.
    static func familyFromDescriptor(_ file: FirmwareImage, profiles: [ProductProfile]) -> McuFamily? {
        profile(for: file, among: profiles)?.family
    }

    /// The profile of the product `file`'s image descriptor names, if any.
    public static func profile(for file: FirmwareImage, among profiles: [ProductProfile]) -> ProductProfile? {
        for family in Set(profiles.map(\.family.id)).sorted().compactMap(McuFamily.named) {
            guard let image = try? file.normalized(granularity: family.writeGranularity), let base = image.baseAddress,
                  let descriptor = try? ImageDescriptor.validate(image, base: base, source: "") else { continue }
            if let profile = profiles.first(where: { $0.imageProductID == descriptor.productID }) { return profile }
        }
        return nil
    }

    /// Where the ROM must jump when leaving DFU: the vector base, or the reset handler on ROMs that jump
    /// straight to the address (`McuFamily.leaveJump`, seed 001).
    func leaveAddress(_ image: NormalizedImage, base: UInt32, family: McuFamily, source: String) throws -> UInt32 {
        switch family.leaveJump {
        case .vectorTable: return base
        case .directJump:
            guard let reset = image.word(at: base + 4), reset & 1 == 1 else {
                throw UpgradeError(.refused("\(source) has no Thumb reset handler in word 1, which \(family.name)'s ROM needs to leave DFU"),
                                   phase: .plan, hint: "nothing was touched")
            }
            return reset
        }
    }

    /// Sectors the image touches whose content on the unit (CRCs the application reports) already equals
    /// what flashing would leave there: the image's bytes, 0xFF elsewhere in the sector.
    func unchangedSectors(image: NormalizedImage, layout: FlashLayout, hid: HIDDeviceInfo) async throws -> Set<UInt32> {
        let touched = layout.sectors.filter { sector in
            image.segments.contains { UInt64($0.address) < sector.end && $0.end > UInt64(sector.start) }
        }
        guard !touched.isEmpty else { return [] }
        let transport = try await discovery.openHID(hid)
        let link = AppLinkClient(transport: transport, clock: clock)
        var unchanged: Set<UInt32> = []
        var index = 0
        do {
            while index < touched.count {
                // A run of adjacent sectors of one size is one batched query.
                var end = index + 1
                while end < touched.count, touched[end].size == touched[index].size, touched[end].start == UInt32(touched[end - 1].end) { end += 1 }
                let run = touched[index..<end]
                let crcs = try await link.sectorCRCs(address: run.first!.start, size: run.first!.size, count: run.count)
                for (sector, crc) in zip(run, crcs) where crc == expectedCRC(of: sector, image: image) { unchanged.insert(sector.start) }
                index = end
            }
        } catch {
            await transport.close()
            throw error
        }
        await transport.close()
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
}

extension ProductProfile {
    /// The image descriptor's product id this product's images carry, when it speaks dfuhop's protocol.
    public var imageProductID: UInt32? {
        if case .dfuhop(let id) = application.hidProtocol { id } else { nil }
    }
}
