import DeviceProfiles
import FirmwareImage
import HexFormat

/// What the file given to `dfuhop upgrade` gives the upgrade, once the product's signing policy allows it:
/// a bare image, or the image a verified package carries. The one place that decides.
///
/// Policy (docs/packages.md): the product is the one the image's descriptor (or the package's signed
/// manifest) names; its profile's `signing` says which keys are trusted and whether signing is required.
/// - A bare image for a product whose profile requires signing is refused.
/// - A package must verify with one of the profile's keys when the profile lists any (required or not);
///   when it lists none and does not require signing, only the package's integrity is checked.
/// - Every image a package carries must name the manifest's product and version (`checkContents`), and
///   the manifest's option bytes must be the profile's.
/// The manifest's `minimumVersion` needs the unit's version, which only the engine knows: see
/// `admits(running:)`.
public struct UpgradeInput: Sendable {
    public var image: FirmwareImage
    /// For messages: the path, or "package.dfuhop:image.hex".
    public var source: String
    /// SHA-256 of the exact file given, lower-case hex (the journal compares it on resume).
    public var digest: String
    /// The signed manifest, when the input is a package.
    public var manifest: PackageManifest?
    /// The key that verified the package's signature, if one did.
    public var signedBy: SigningPublicKey?
    /// The profile of the input's product, if one is loaded.
    public var profile: ProductProfile?
    /// Things the person should know that are not failures (e.g. a signature that could not be checked).
    public var notes: [String]

    /// The largest bare image read (an ELF with debug sections can be large).
    public static let maximumImageFileSize = 256 << 20

    /// Whether a unit running `running` may take this input (a package's minimum version, if any).
    public func admits(running: FirmwareVersion) -> Bool { manifest?.admits(running: running) ?? true }

    public static func load(path: String, profiles: [ProductProfile]) throws(PackageError) -> UpgradeInput {
        // A zip is a package whatever its name: the package limit applies before the rest is read.
        let file = try BoundedFile(path: path)
        let prefix = try file.prefix(4)
        let isZip = prefix == [0x50, 0x4B, 0x03, 0x04] || prefix == [0x50, 0x4B, 0x05, 0x06]
        if isZip || path.lowercased().hasSuffix("." + SignedPackage.fileExtension) {
            let bytes = try file.read(limit: SignedPackage.maximumSize, what: "the limit for a package (a zip)")
            return try package(SignedPackage(bytes: bytes, file: path), profiles: profiles)
        }
        return try bareImage(file.read(limit: maximumImageFileSize), path: path, profiles: profiles)
    }

    static func bareImage(_ bytes: [UInt8], path: String, profiles: [ProductProfile]) throws(PackageError) -> UpgradeInput {
        let image: FirmwareImage
        do { image = try ImageReader.read(bytes, file: path) } catch {
            throw PackageError(.image(error), file: "", error.description)
        }
        let profile = ProductImages.identify(image, among: profiles)?.1
        if let profile, profile.signing?.required == true {
            throw PackageError(
                .untrusted, file: path,
                "is a bare image for \(profile.name) (profile \(profile.id)), "
                    + "whose profile requires signed packages; use the vendor's .\(SignedPackage.fileExtension) package")
        }
        return UpgradeInput(image: image, source: path, digest: sha256Hex(bytes), manifest: nil, signedBy: nil, profile: profile, notes: [])
    }

    static func package(_ package: SignedPackage, profiles: [ProductProfile]) throws(PackageError) -> UpgradeInput {
        let manifest = package.manifest
        let profile = ProductImages.profile(productID: manifest.productID, among: profiles)
        var notes: [String] = []
        var signedBy: SigningPublicKey?
        let keys = profile?.signing?.publicKeys ?? []
        if let profile, !keys.isEmpty || profile.signing?.required == true {
            signedBy = try package.verify(trusting: keys.map(SigningPublicKey.init(raw:)), keySource: "profile \(profile.id)")
        } else {
            try package.checkImageHashes()
            let reason =
                profile.map { "profile \($0.id) lists no signing keys" }
                ?? "no profile for product 0x\(Hex.digits(manifest.productID, width: 8)) is loaded"
            notes.append("\(package.file): signature not checked: \(reason); the images match the manifest")
        }
        let entry = manifest.images[0]
        let source = "\(package.file):\(entry.file)"
        let image = try ProductImages.parse(package.contents(of: entry), source: source)
        // The image's own product decides the policy of a bare image; a manifest naming another product
        // must not carry it past that policy.
        if let (descriptor, imageProfile) = ProductImages.identify(image, among: profiles), imageProfile.id != profile?.id {
            throw PackageError(
                .untrusted, file: source,
                "is an image for product 0x\(Hex.digits(descriptor.productID, width: 8)) (profile \(imageProfile.id)); "
                    + "the manifest says product 0x\(Hex.digits(manifest.productID, width: 8))")
        }
        // What `package verify` checks too: each image against the manifest, the family, the option bytes.
        try package.checkContents(profile: profile)
        return UpgradeInput(
            image: image, source: source, digest: package.digest, manifest: manifest, signedBy: signedBy,
            profile: profile, notes: notes)
    }
}

extension SigningPublicKey {
    /// A key from a profile, which checked it is 32 bytes.
    init(raw: [UInt8]) { rawRepresentation = raw }
}
