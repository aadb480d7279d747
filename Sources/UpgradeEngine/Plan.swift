import AppLink
import Crypto
import DeviceProfiles
import DfuSe
import FirmwareImage
import HexFormat
import USBTransport

/// Phase 2, plan: the image checked on its own and against the unit, and the flash plan, before anything
/// on the unit changes.
extension UpgradeEngine {
    /// The image, checked, and everything the later phases need to put it on the unit.
    struct Target: Sendable {
        var image: NormalizedImage
        var family: McuFamily
        var profile: ProductProfile?
        var productID: UInt32
        var version: FirmwareVersion
        var imageSize: UInt32
        var imageCRC: UInt32
        /// Where the image starts (its vector table) and the range it owns (its descriptor's image size).
        var base: UInt32
        var span: Range<UInt64>
        var plan: FlashPlan
        var leaveAddress: UInt32
        /// The unit already holds exactly this image: nothing to do.
        var upToDate = false
        /// SHA-256 of the normalised image, hex (the journal).
        var digest: String

        var needsOptionBytes: Bool { !(profile?.requiredOptionBytes.isEmpty ?? true) }
    }

    func plan(_ file: FirmwareImage, unit: Found, run: Run) async throws -> Target {
        var target = try checkedImage(file, unit: unit, run: run)
        try applyRules(&target, holding: holding(unit, view: nil, run: run), run: run, final: false)
        if !target.upToDate, case .application(let hid, sectorCRCs: true) = unit.reach, unit.installed?.productID == target.productID,
            !run.options.forceFull
        {
            let unchanged = try await unchangedSectors(image: target.image, layout: target.plan.layout, span: target.span, hid: hid)
            target.plan = try FlashPlan(
                image: target.image, layout: target.plan.layout, family: target.family,
                transferSize: target.plan.transferSize, span: target.span, unchangedSectors: unchanged)
        }
        return target
    }

    /// The image on its own and against the unit's MCU: one flash target, the image check (errors refuse,
    /// warnings are shown), a valid descriptor, the product's application base, the flash plan.
    func checkedImage(_ file: FirmwareImage, unit: Found, run: Run) throws -> Target {
        let source = run.source
        let family = try self.family(for: file, unit: unit, run: run)
        try checkTargets(file, source: source)
        let image = try file.normalized(granularity: family.writeGranularity)
        guard let base = image.baseAddress else {
            let reason = Refusal.emptyImage(source: source)
            throw UpgradeError(.refused(reason), phase: .plan, hint: reason.hint)
        }
        try checkImage(image, family: family, source: source)
        let descriptor = try ImageDescriptor.validate(image, base: base, source: source)
        try Self.checkSingleReading(file, flashed: descriptor, source: source)
        try checkSigning(productID: descriptor.productID, policy: run.options.signing, profiles: run.options.profiles, source: source)
        let profile = run.options.profiles.first { $0.imageProductID == descriptor.productID }
        if let profile, profile.family.id != family.id {
            let reason = Refusal.imageForOtherFamily(
                source: source, product: profile.name, productFamily: profile.family.name, unitFamily: family.name)
            throw UpgradeError(.refused(reason), phase: .plan, hint: reason.hint)
        }
        let applicationBase = profile?.applicationBase ?? family.flashBase
        guard base == applicationBase else {
            let reason = Refusal.otherApplicationBase(
                source: source, base: base, owner: profile?.name ?? family.name, expected: applicationBase)
            throw UpgradeError(.refused(reason), phase: .plan, hint: reason.hint)
        }
        let span = UInt64(base)..<max(UInt64(base) + UInt64(descriptor.imageSize), image.end)
        let layout = try flashLayout(unit: unit, profile: profile, family: family)
        let transferSize = profile?.dfuTransferSize ?? Int(family.rom.transferSize)
        let plan = try FlashPlan(image: image, layout: layout, family: family, transferSize: transferSize, span: span)
        return Target(
            image: image, family: family, profile: profile, productID: descriptor.productID,
            version: descriptor.version, imageSize: descriptor.imageSize, imageCRC: descriptor.crc,
            base: base, span: span, plan: plan,
            leaveAddress: try Self.leaveAddress(
                family: family, vectorTable: base, resetHandler: image.word(at: base + 4), of: source, phase: .plan),
            digest: Self.digest(of: image))
    }

    /// The unit's MCU: what it reports, else `--family`, else the product profile's, else the journal's. A
    /// `--family` that contradicts the unit is refused, never trusted.
    func family(for file: FirmwareImage, unit: Found, run: Run) throws -> McuFamily {
        let named = run.options.family
        if let reported = unit.family, let named, named.id != reported.id {
            let reason = Refusal.familyMismatch(named: named.id, unit: [reported.name], port: unit.description.portPath)
            throw UpgradeError(.refused(reason), phase: .plan, hint: reason.hint)
        }
        let journalFamily = run.candidateEntry.flatMap { McuFamily.named($0.family) } ?? run.resumed.flatMap { McuFamily.named($0.family) }
        let profileFamily = Self.familyFromDescriptor(file, profiles: run.options.profiles)
        if unit.family == nil, case .rom(let rom) = unit.reach {
            return try Self.family(of: rom, named: named, suggested: profileFamily ?? journalFamily)
        }
        guard let family = unit.family ?? named ?? profileFamily ?? journalFamily else {
            let reason = Refusal.unknownFamily(source: run.source)
            throw UpgradeError(.refused(reason), phase: .plan, hint: reason.hint)
        }
        return family
    }

    /// `upgrade` writes the internal flash; other targets of a multi-target .dfu (option bytes, OTP) are
    /// refused rather than dropped.
    func checkTargets(_ file: FirmwareImage, source: String) throws {
        let others = file.targets.filter { $0.alternateSetting != 0 && !$0.segments.isEmpty }
        guard others.isEmpty else {
            let names = others.map { "alternate setting \($0.alternateSetting)" + ($0.name.map { " (\($0))" } ?? "") }
            let reason = Refusal.otherTargets(source: source, targets: names)
            throw UpgradeError(.refused(reason), phase: .plan, hint: reason.hint)
        }
    }

    /// ImageCheck against the family's memory: errors refuse, warnings are shown.
    func checkImage(_ image: NormalizedImage, family: McuFamily, source: String) throws {
        let ram = family.ramRegions.map { $0.start...UInt32($0.end - 1) }
        let flash = family.defaultFlashMode.layout.zones.map { $0.start...UInt32($0.end - 1) }
        let report = ImageCheck.check(image, for: TargetMemoryMap(partName: family.name, ram: ram, flash: flash), source: source)
        if let error = report.errors.first {
            let reason = Refusal.imageCheckFailed(source: source, finding: error, family: family.name)
            throw UpgradeError(.refused(reason), phase: .plan, hint: reason.hint)
        }
        for warning in report.warnings { onEvent(.warning("\(source): \(warning)")) }
    }

    /// The flash organisation: what the ROM shows, else what the product needs, else the part's default.
    func flashLayout(unit: Found, profile: ProductProfile?, family: McuFamily) throws -> FlashLayout {
        guard case .rom(let rom) = unit.reach, let string = rom.flashLayoutString else {
            return (profile?.flashMode ?? family.defaultFlashMode).layout
        }
        do throws(FlashLayoutError) { return try FlashLayout(parsing: string) } catch {
            let reason = Refusal.romLayoutUnreadable(port: rom.identity.portPath, error: error)
            throw UpgradeError(.refused(reason), phase: .plan, hint: reason.hint)
        }
    }

    static func digest(of image: NormalizedImage) -> String {
        SHA256.hash(
            data: image.segments.flatMap { segment in
                withUnsafeBytes(of: segment.address.littleEndian, Array.init) + segment.bytes
            }
        ).withUnsafeBytes { Hex.string($0) }
    }

    /// The family named by the profile of the image's product, for units that do not answer.
    static func familyFromDescriptor(_ file: FirmwareImage, profiles: [ProductProfile]) -> McuFamily? {
        profile(for: file, among: profiles)?.family
    }

    /// The profile of the product `file`'s image descriptor names, if any.
    public static func profile(for file: FirmwareImage, among profiles: [ProductProfile]) -> ProductProfile? {
        for family in Set(profiles.map(\.family.id)).sorted().compactMap(McuFamily.named) {
            guard let descriptor = validDescriptor(of: file, granularity: family.writeGranularity) else { continue }
            if let profile = profiles.first(where: { $0.imageProductID == descriptor.productID }) { return profile }
        }
        return nil
    }

    /// The valid descriptor of `file` laid out for `granularity`, or nil when it has none there. The errors
    /// are typed: only the file's own bytes can fail these checks, and such a file names no product.
    static func validDescriptor(of file: FirmwareImage, granularity: Int) -> ImageDescriptor? {
        let image: NormalizedImage
        do throws(NormalizationError) { image = try file.normalized(granularity: granularity) } catch { return nil }
        guard let base = image.baseAddress else { return nil }
        do throws(ImageError) { return try ImageDescriptor.validate(image, base: base, source: "") } catch { return nil }
    }

    /// Sectors of the span whose content on the unit (CRCs the application reports) already equals what
    /// flashing would leave there: the image's bytes, 0xFF elsewhere. Only a hint: verification reads the
    /// whole span back through the ROM, and a wrong report makes the flash run again in full.
    func unchangedSectors(image: NormalizedImage, layout: FlashLayout, span: Range<UInt64>, hid: HIDDeviceInfo) async throws -> Set<UInt32>
    {
        let touched = layout.sectors.filter { UInt64($0.start) < span.upperBound && $0.end > span.lowerBound }
        guard !touched.isEmpty else { return [] }
        return try await withHID(hid) { link in
            var unchanged: Set<UInt32> = []
            var index = 0
            while index < touched.count {
                // A run of adjacent sectors of one size is one batched query.
                var end = index + 1
                while end < touched.count, touched[end].size == touched[index].size, touched[end].start == UInt32(touched[end - 1].end) {
                    end += 1
                }
                let run = touched[index..<end]
                let crcs = try await link.sectorCRCs(address: run.first!.start, size: run.first!.size, count: run.count)
                for (sector, crc) in zip(run, crcs)
                where crc == CRC32.zlib(FlashPlan.expectedBytes(in: UInt64(sector.start)..<sector.end, of: image)) {
                    unchanged.insert(sector.start)
                }
                index = end
            }
            return unchanged
        }
    }
}

extension ProductProfile {
    /// The image descriptor's product id this product's images carry, when it speaks dfuhop's protocol.
    public var imageProductID: UInt32? {
        if case .dfuhop(let id) = application.hidProtocol { id } else { nil }
    }
}
