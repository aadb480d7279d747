import FirmwareImage

/// The one error type of the UpdatePackage layer: which file (the package, a member of it, a key), and
/// exactly what failed (which key, which member, which hash), so a refusal can be acted on.
public struct PackageError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        /// A file (package, image, key) cannot be opened or read.
        case cannotRead
        /// An output file (package, key) cannot be written.
        case cannotWrite
        /// The package is not a well-formed dfuhop package: the zip, a member or the manifest is wrong,
        /// hostile or inconsistent (docs/packages.md says what is accepted).
        case malformed
        /// The package or image is well-formed but not trusted: no trusted key verifies the signature, a
        /// member's hash or size differs from the signed manifest, or the profile requires a signed package.
        case untrusted
        /// A bare image given to the upgrade cannot be read: the image layer's own error, kept as it is.
        case image(ImageError)
        /// `package create`: the images disagree with each other, their descriptors or their product's profile.
        case refused
    }

    public var kind: Kind
    /// The file the problem is in, e.g. "update.dfuhop" or "update.dfuhop:app.hex".
    public var file: String
    public var problem: String

    public init(_ kind: Kind, file: String, _ problem: String) {
        self.kind = kind
        self.file = file
        self.problem = problem
    }

    public var description: String { file.isEmpty ? problem : "\(file): \(problem)" }
}
