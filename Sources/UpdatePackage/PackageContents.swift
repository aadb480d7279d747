import DeviceProfiles
import FirmwareImage
import HexFormat

/// The checks an upgrade makes on a package's contents, made on the package alone so `package verify` and
/// `upgrade` refuse the same packages: every image's descriptor names the manifest's product and version,
/// the manifest's family is the profile's, and the manifest's option bytes are ones the upgrade applies.
extension SignedPackage {
    /// Checks every listed image against the manifest, as `profile`'s family lays it out (with that
    /// family's memory-map checks), or, with no profile, as the manifest's own family does; returns the
    /// first image (the one flashed), parsed.
    @discardableResult
    public func checkContents(profile: ProductProfile?) throws(PackageError) -> FirmwareImage {
        let family = try contentsFamily(profile: profile)
        var first: FirmwareImage?
        for entry in manifest.images {
            let source = "\(file):\(entry.file)"
            let image = try ProductImages.parse(contents(of: entry), source: source)
            let descriptor: ImageDescriptor
            do {
                descriptor =
                    try profile == nil
                    ? ProductImages.descriptor(image, family: family, source: source)
                    : ProductImages.check(image, family: family, source: source)
            } catch { throw PackageError(.untrusted, file: source, error.problem) }
            guard descriptor.productID == manifest.productID, descriptor.version == manifest.version else {
                throw PackageError(
                    .untrusted, file: source,
                    "is product 0x\(Hex.digits(descriptor.productID, width: 8)) version \(descriptor.version.fullDescription); "
                        + "the signed manifest says product 0x\(Hex.digits(manifest.productID, width: 8)) "
                        + "version \(manifest.version.fullDescription)")
            }
            first = first ?? image
        }
        guard let first else { throw PackageError(.malformed, file: file, "lists no image") } // decode requires one
        try checkOptionBytes(profile: profile)
        return first
    }

    /// The profile's family, which the manifest must name; without a profile, the manifest's own.
    func contentsFamily(profile: ProductProfile?) throws(PackageError) -> McuFamily {
        let manifestFile = "\(file):\(PackageNames.manifest)"
        if let profile {
            guard manifest.family == profile.family.id else {
                throw PackageError(
                    .untrusted, file: manifestFile,
                    "family is \"\(manifest.family)\" but profile \(profile.id) is for \(profile.family.name) (\"\(profile.family.id)\")")
            }
            return profile.family
        }
        guard let family = McuFamily.named(manifest.family) else {
            throw PackageError(
                .untrusted, file: manifestFile,
                "family \"\(manifest.family)\" is not a part line this dfuhop knows, so its images cannot be read as an upgrade would")
        }
        return family
    }

    /// The upgrade applies (checks) the profile's option bytes only: a manifest that names others is refused
    /// rather than silently overruled, and one that names some where no profile does cannot be honoured.
    func checkOptionBytes(profile: ProductProfile?) throws(PackageError) {
        let manifestFile = "\(file):\(PackageNames.manifest)"
        let named = manifest.requiredOptionBytes
        guard !named.isEmpty else { return }
        let listed = named.map { "\($0.name)=\($0.value)" }.sorted().joined(separator: ", ")
        guard let profile, !profile.requiredOptionBytes.isEmpty else {
            let whose = profile.map { "profile \($0.id) requires none" } ?? "no profile for the product is loaded"
            throw PackageError(
                .untrusted, file: manifestFile,
                "requiredOptionBytes names \(listed) but \(whose); dfuhop cannot apply option bytes from a package "
                    + "(only a profile's are checked), so the package cannot be honoured")
        }
        let required = profile.requiredOptionBytes.map { "\($0.name)=\($0.value)" }.sorted().joined(separator: ", ")
        guard listed == required else {
            throw PackageError(
                .untrusted, file: manifestFile,
                "requiredOptionBytes (\(listed)) conflicts with profile \(profile.id)'s (\(required)); "
                    + "dfuhop applies only the profile's, so the package is refused rather than overruled")
        }
    }
}
