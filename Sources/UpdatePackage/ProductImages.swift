import DeviceProfiles
import FirmwareImage

/// Which product an image is for, as its descriptor says, and the checks `dfuhop upgrade` makes on it
/// before planning, so a package is refused at creation for what an upgrade would refuse later.
enum ProductImages {
    static func imageProductID(of profile: ProductProfile) -> UInt32? {
        if case .dfuhop(let id) = profile.application.hidProtocol { return id }
        return nil
    }

    static func profile(productID: UInt32, among profiles: [ProductProfile]) -> ProductProfile? {
        profiles.first { imageProductID(of: $0) == productID }
    }

    /// The image's descriptor read as each family of `profiles` lays it out, and the profile of the product
    /// it names: the same search `UpgradeEngine.profile(for:among:)` makes.
    static func identify(_ image: FirmwareImage, among profiles: [ProductProfile]) -> (ImageDescriptor, ProductProfile)? {
        for family in Set(profiles.map(\.family.id)).sorted().compactMap(McuFamily.named) {
            guard let normalized = try? image.normalized(granularity: family.writeGranularity), let base = normalized.baseAddress,
                let descriptor = try? ImageDescriptor.validate(normalized, base: base, source: "")
            else { continue }
            if let profile = profile(productID: descriptor.productID, among: profiles) { return (descriptor, profile) }
        }
        return nil
    }

    /// The family's memory-map checks and the descriptor (as the upgrade's plan makes them).
    static func check(_ image: FirmwareImage, family: McuFamily, source: String) throws(PackageError) -> ImageDescriptor {
        let normalized: NormalizedImage
        do { normalized = try image.normalized(granularity: family.writeGranularity) } catch {
            throw PackageError(.refused, file: source, "cannot be normalised for \(family.name): \(error)")
        }
        let ram = family.ramRegions.map { $0.start...UInt32($0.end - 1) }
        let flash = family.defaultFlashMode.layout.zones.map { $0.start...UInt32($0.end - 1) }
        let report = ImageCheck.check(normalized, for: TargetMemoryMap(partName: family.name, ram: ram, flash: flash), source: source)
        if let error = report.errors.first { throw PackageError(.refused, file: source, "fails the \(family.name) checks: \(error)") }
        guard let base = normalized.baseAddress else { throw PackageError(.refused, file: source, "is empty") }
        do { return try ImageDescriptor.validate(normalized, base: base, source: source) } catch {
            throw PackageError(.refused, file: source, "has no valid image descriptor: \(error)")
        }
    }

    /// The descriptor as `family` lays the image out (normalised to its write unit), without the memory-map
    /// checks, which need the product's profile.
    static func descriptor(_ image: FirmwareImage, family: McuFamily, source: String) throws(PackageError) -> ImageDescriptor {
        let normalized: NormalizedImage
        do { normalized = try image.normalized(granularity: family.writeGranularity) } catch {
            throw PackageError(.refused, file: source, "cannot be normalised for \(family.name): \(error)")
        }
        guard let base = normalized.baseAddress else { throw PackageError(.refused, file: source, "is empty") }
        do { return try ImageDescriptor.validate(normalized, base: base, source: source) } catch {
            throw PackageError(.refused, file: source, "has no valid image descriptor: \(error)")
        }
    }

    /// Reads an image held in memory; `source` names it (and its extension picks the format).
    static func parse(_ bytes: [UInt8], source: String) throws(PackageError) -> FirmwareImage {
        do { return try ImageReader.read(bytes, file: source) } catch {
            throw PackageError(.malformed, file: source, "is not a readable image: \(error)")
        }
    }
}
