import Crypto
import DeviceProfiles
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// An Ed25519 public key (RFC 8032), known by the base64 of its raw 32 bytes: the form `KEY.pub` files and
/// profiles' `signing.publicKeys` hold, and the form errors name it by.
public struct SigningPublicKey: Sendable, Hashable, CustomStringConvertible {
    public let rawRepresentation: [UInt8]

    /// `text` is the base64 of the raw 32-byte key; `source` names where it came from, in errors.
    public init(base64 text: String, source: String) throws(PackageError) {
        guard let data = Data(base64Encoded: text), data.count == 32 else {
            throw PackageError(.malformed, file: source, "\"\(text.prefix(60))\" is not an Ed25519 public key (the base64 of 32 bytes)")
        }
        if let problem = Ed25519KeyCheck.problem(withPublicKey: data) {
            throw PackageError(.untrusted, file: source, "key \(text.prefix(60)) \(problem); refused")
        }
        rawRepresentation = Array(data)
    }

    public init(_ key: Curve25519.Signing.PublicKey) { rawRepresentation = Array(key.rawRepresentation) }

    public var base64: String { Data(rawRepresentation).base64EncodedString() }
    public var description: String { base64 }

    /// RFC 8032 §5.1.7 verification, strict: a weak key (small order, non-canonical), a signature whose R is
    /// such a point or whose S is not below the group order never verifies, whatever the library beneath does.
    public func isValidSignature(_ signature: some Collection<UInt8>, of message: some Collection<UInt8>) -> Bool {
        let signature = Array(signature)
        guard signature.count == 64, Ed25519KeyCheck.problem(withPublicKey: rawRepresentation) == nil,
            Ed25519KeyCheck.problem(withPublicKey: signature[0..<32]) == nil,
            Ed25519KeyCheck.isCanonicalScalar(signature[32..<64]),
            let key = try? Curve25519.Signing.PublicKey(rawRepresentation: rawRepresentation)
        else { return false }
        return key.isValidSignature(Data(signature), for: Data(message))
    }
}

/// Key files: `KEY` holds the base64 of the raw 32-byte Ed25519 private key on one line (mode 0600);
/// `KEY.pub` holds the base64 of the public key, optionally followed by a space and a comment.
public enum SigningKeys {
    /// Makes a new key pair; refuses to replace either file (a dangling symbolic link counts as a file), so a
    /// release key is never lost by accident, and leaves neither file behind when it fails.
    public static func generate(privateKeyPath: String, comment: String?) throws(PackageError) -> SigningPublicKey {
        let publicKeyPath = privateKeyPath + ".pub"
        for path in [privateKeyPath, publicKeyPath] {
            var status = stat()
            guard lstat(path, &status) != 0 else {
                let what = (status.st_mode & S_IFMT) == S_IFLNK ? "exists as a symbolic link" : "already exists"
                throw PackageError(.cannotWrite, file: path, "\(what); dfuhop never overwrites a key (move it away first)")
            }
        }
        let key = Curve25519.Signing.PrivateKey()
        let publicKey = SigningPublicKey(key.publicKey)
        try writeNew(path: privateKeyPath, text: Data(key.rawRepresentation).base64EncodedString() + "\n", mode: 0o600)
        let line = publicKey.base64 + (comment.map { " " + $0.filter { !$0.isNewline } } ?? "") + "\n"
        do { try writeNew(path: publicKeyPath, text: line, mode: 0o644) } catch {
            unlink(privateKeyPath) // half a pair is no pair: nobody could trust what it signs
            throw error
        }
        return publicKey
    }

    /// The private key in `path`, refused when its file is readable or writable by group or others (a
    /// signing key anyone on the machine can read signs for them too) unless `allowReadable`.
    public static func loadPrivateKey(path: String, allowReadable: Bool = false) throws(PackageError) -> Curve25519.Signing.PrivateKey {
        let file = try BoundedFile(path: path)
        if !allowReadable, file.mode & 0o077 != 0 {
            throw PackageError(
                .refused, file: path,
                "is a private key with mode 0\(String(file.mode & 0o777, radix: 8)): group or others can read or change it; "
                    + "run `chmod 600 \(path)` (or give --allow-readable-key)")
        }
        let bytes = try file.read(limit: 4096)
        guard let text = String(validating: bytes, as: UTF8.self)?.trimmingCharacters(in: .whitespacesAndNewlines),
            let data = Data(base64Encoded: text), data.count == 32,
            let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: data)
        else {
            throw PackageError(.malformed, file: path, "is not a dfuhop private key (one line: the base64 of a 32-byte Ed25519 key)")
        }
        return key
    }

    /// The first word of the file's first line; the rest of the line is a comment.
    public static func loadPublicKey(path: String) throws(PackageError) -> SigningPublicKey {
        let text = try readSmallText(path: path)
        let word = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0.isNewline }).first.map(String.init) ?? ""
        return try SigningPublicKey(base64: word, source: path)
    }

    static func readSmallText(path: String) throws(PackageError) -> String {
        let bytes = try BoundedFile.contents(path: path, limit: 4096)
        guard let text = String(validating: bytes, as: UTF8.self) else { throw PackageError(.malformed, file: path, "is not text") }
        return text
    }

    /// Creates `path` (never replacing a file, never through a symbolic link) with `mode`, whatever the
    /// umask; removes it again if writing fails.
    static func writeNew(path: String, text: String, mode: mode_t) throws(PackageError) {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
        guard descriptor >= 0 else { throw PackageError(.cannotWrite, file: path, "cannot create: \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        guard fchmod(descriptor, mode) == 0, written == bytes.count, fsync(descriptor) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(path)
            throw PackageError(.cannotWrite, file: path, "cannot write: \(reason)")
        }
    }
}

/// A regular file opened for reading, whose size is known before anything is read: what bounds the memory
/// a hostile input can take. The whole file is read only once its size is within the caller's limit (and
/// at most that many bytes even if it grows meanwhile).
final class BoundedFile {
    let path: String
    let size: Int
    let mode: mode_t
    private let descriptor: Int32

    init(path: String) throws(PackageError) {
        self.path = path
        descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw PackageError(.cannotRead, file: path, "cannot open: \(String(cString: strerror(errno)))") }
        var status = stat()
        guard fstat(descriptor, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG else {
            close(descriptor)
            throw PackageError(.cannotRead, file: path, "is not a regular file")
        }
        size = Int(status.st_size)
        mode = status.st_mode
    }

    deinit { close(descriptor) }

    static func contents(path: String, limit: Int) throws(PackageError) -> [UInt8] { try BoundedFile(path: path).read(limit: limit) }

    /// The first `count` bytes (fewer if the file is shorter), read without reading the rest.
    func prefix(_ count: Int) throws(PackageError) -> [UInt8] { try bytes(min(count, size)) }

    /// The whole file, refused unread when it is larger than `limit`; `what` says which limit, in the refusal.
    func read(limit: Int, what: String = "the limit") throws(PackageError) -> [UInt8] {
        guard size <= limit else { throw PackageError(.malformed, file: path, "is \(size) bytes; \(what) is \(limit)") }
        return try bytes(size)
    }

    private func bytes(_ count: Int) throws(PackageError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var filled = 0
        while filled < bytes.count {
            let got = bytes.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress! + filled, $0.count - filled, off_t(filled)) }
            if got < 0, errno == EINTR { continue }
            guard got >= 0 else { throw PackageError(.cannotRead, file: path, "read failed: \(String(cString: strerror(errno)))") }
            if got == 0 { break }
            filled += got
        }
        if filled < bytes.count { bytes.removeSubrange(filled...) } // the file shrank meanwhile; no second copy
        return bytes
    }
}
