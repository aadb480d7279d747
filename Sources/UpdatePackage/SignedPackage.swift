import Crypto
import Foundation

/// A dfuhop update package, read and structurally checked (docs/packages.md): a strict zip holding
/// `manifest.json`, `manifest.sig` (the detached Ed25519 signature of the manifest's exact bytes) and the
/// images the manifest lists. Reading checks the structure; `verify` decides whether to trust it.
public struct SignedPackage: Sendable {
    /// The largest package dfuhop reads; the file is refused before it is read if it is larger.
    public static let maximumSize = PackageManifest.maximumImageSize
    public static let fileExtension = "dfuhop"

    public let file: String
    public let manifest: PackageManifest
    public let manifestBytes: [UInt8]
    /// 64 bytes (RFC 8032 §5.1.6).
    public let signature: [UInt8]
    /// SHA-256 of the whole package file, lower-case hex: what the journal records.
    public let digest: String
    let archive: ZipArchive

    /// Reads `path` (at most `maximumSize` bytes) and checks its structure.
    public static func read(path: String) throws(PackageError) -> SignedPackage {
        try SignedPackage(bytes: BoundedFile.contents(path: path, limit: maximumSize), file: path)
    }

    public init(bytes: [UInt8], file: String) throws(PackageError) {
        self.file = file
        archive = try ZipArchive(bytes: bytes, file: file)
        guard let manifestMember = archive.member(named: PackageNames.manifest) else {
            throw PackageError(.malformed, file: file, "holds no \(PackageNames.manifest): not a dfuhop package")
        }
        guard let signatureMember = archive.member(named: PackageNames.signature) else {
            throw PackageError(.untrusted, file: file, "holds no \(PackageNames.signature): the package is not signed")
        }
        manifestBytes = Array(archive.contents(of: manifestMember))
        manifest = try PackageManifest.decode(manifestBytes, file: "\(file):\(PackageNames.manifest)")
        signature = Array(archive.contents(of: signatureMember))
        guard signature.count == 64 else {
            throw PackageError(
                .malformed, file: "\(file):\(PackageNames.signature)",
                "is \(signature.count) bytes; an Ed25519 signature is 64")
        }
        try manifest.checkMembers(of: archive, file: file)
        digest = sha256Hex(bytes)
    }

    /// The bytes of a listed image.
    public func contents(of image: PackageManifest.Image) -> [UInt8] {
        archive.member(named: image.file).map { Array(archive.contents(of: $0)) } ?? []
    }

    /// Checks the signature against `keys` (the first that verifies is returned; `keySource` names where
    /// they came from, in the refusal), then every image's SHA-256 against the signed manifest.
    @discardableResult
    public func verify(trusting keys: [SigningPublicKey], keySource: String) throws(PackageError) -> SigningPublicKey {
        guard !keys.isEmpty else {
            throw PackageError(.untrusted, file: file, "no key to check the signature with: \(keySource) lists none")
        }
        guard let key = keys.first(where: { $0.isValidSignature(signature, of: manifestBytes) }) else {
            let names = keys.map(\.base64).joined(separator: ", ")
            let which = keys.count == 1 ? "the key" : "any of the \(keys.count) keys"
            throw PackageError(
                .untrusted, file: file,
                "the manifest's signature does not verify with \(which) of \(keySource) (\(names)): "
                    + "signed by another key, or the manifest was altered")
        }
        try checkImageHashes()
        return key
    }

    /// Every listed image's SHA-256 against the manifest (sizes were checked when the package was read).
    public func checkImageHashes() throws(PackageError) {
        for image in manifest.images {
            let actual = sha256Hex(contents(of: image))
            guard actual == image.sha256 else {
                throw PackageError(
                    .untrusted, file: "\(file):\(image.file)",
                    "SHA-256 is \(actual) but the signed manifest says \(image.sha256): the image was altered")
            }
        }
    }
}

func sha256Hex(_ bytes: some Collection<UInt8>) -> String {
    let digest = bytes.withContiguousStorageIfAvailable { SHA256.hash(data: UnsafeRawBufferPointer($0)) } ?? SHA256.hash(data: Array(bytes))
    return digest.map { byte in (byte < 16 ? "0" : "") + String(byte, radix: 16) }.joined()
}
