import Crypto
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
        rawRepresentation = Array(data)
    }

    public init(_ key: Curve25519.Signing.PublicKey) { rawRepresentation = Array(key.rawRepresentation) }

    public var base64: String { Data(rawRepresentation).base64EncodedString() }
    public var description: String { base64 }

    public func isValidSignature(_ signature: some Collection<UInt8>, of message: some Collection<UInt8>) -> Bool {
        guard let key = try? Curve25519.Signing.PublicKey(rawRepresentation: rawRepresentation) else { return false }
        return key.isValidSignature(Data(signature), for: Data(message))
    }
}

/// Key files: `KEY` holds the base64 of the raw 32-byte Ed25519 private key on one line (mode 0600);
/// `KEY.pub` holds the base64 of the public key, optionally followed by a space and a comment.
public enum SigningKeys {
    /// Makes a new key pair; refuses to replace either file, so a release key is never lost by accident.
    public static func generate(privateKeyPath: String, comment: String?) throws(PackageError) -> SigningPublicKey {
        let publicKeyPath = privateKeyPath + ".pub"
        for path in [privateKeyPath, publicKeyPath] where FileManager.default.fileExists(atPath: path) {
            throw PackageError(.cannotWrite, file: path, "already exists; dfuhop never overwrites a key (move it away first)")
        }
        let key = Curve25519.Signing.PrivateKey()
        let publicKey = SigningPublicKey(key.publicKey)
        try writeNew(path: privateKeyPath, text: Data(key.rawRepresentation).base64EncodedString() + "\n", mode: 0o600)
        let line = publicKey.base64 + (comment.map { " " + $0.filter { !$0.isNewline } } ?? "") + "\n"
        try writeNew(path: publicKeyPath, text: line, mode: 0o644)
        return publicKey
    }

    public static func loadPrivateKey(path: String) throws(PackageError) -> Curve25519.Signing.PrivateKey {
        let text = try readSmallText(path: path).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let data = Data(base64Encoded: text), data.count == 32,
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

    /// Creates `path` (never replacing a file) with `mode`, whatever the umask.
    static func writeNew(path: String, text: String, mode: mode_t) throws(PackageError) {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard descriptor >= 0 else { throw PackageError(.cannotWrite, file: path, "cannot create: \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        guard fchmod(descriptor, mode) == 0, written == bytes.count, fsync(descriptor) == 0 else {
            throw PackageError(.cannotWrite, file: path, "cannot write: \(String(cString: strerror(errno)))")
        }
    }
}

/// Reads a regular file whole, refusing one larger than `limit` without reading it (and reading at most
/// `limit` bytes even if it grows meanwhile): what bounds the memory a hostile input can take.
enum BoundedFile {
    static func contents(path: String, limit: Int) throws(PackageError) -> [UInt8] {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw PackageError(.cannotRead, file: path, "cannot open: \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG else {
            throw PackageError(.cannotRead, file: path, "is not a regular file")
        }
        guard Int(status.st_size) <= limit else {
            throw PackageError(.malformed, file: path, "is \(status.st_size) bytes; the limit is \(limit)")
        }
        var bytes = [UInt8](repeating: 0, count: Int(status.st_size))
        var filled = 0
        while filled < bytes.count {
            let count = bytes.withUnsafeMutableBytes { read(descriptor, $0.baseAddress! + filled, $0.count - filled) }
            if count < 0, errno == EINTR { continue }
            guard count >= 0 else { throw PackageError(.cannotRead, file: path, "read failed: \(String(cString: strerror(errno)))") }
            if count == 0 { break }
            filled += count
        }
        if filled < bytes.count { bytes.removeSubrange(filled...) } // the file shrank meanwhile; no second copy
        return bytes
    }
}
