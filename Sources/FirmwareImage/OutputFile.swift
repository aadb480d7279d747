#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// An output file written safely: the bytes go to `PATH.dfuhop-partial`, created exclusively (O_EXCL, so
/// an existing file is never reused) without following a symlink (O_NOFOLLOW, so a planted link cannot
/// redirect the write to another file), mode 0644 less the umask; `commit` renames it over PATH (a symlink
/// at PATH is replaced, not followed). A partial file left by a crash is removed first, but only if it is
/// a regular file owned by this user with one link; anything else stops the write. Not committed, the
/// partial file is removed when the value goes away.
public final class OutputFile {
    public let path: String
    public let temporaryPath: String
    private var descriptor: Int32
    private var committed = false

    public static let partialSuffix = ".dfuhop-partial"

    public init(path: String) throws(ImageError) {
        self.path = path
        temporaryPath = path + Self.partialSuffix
        try Self.removeLeftover(temporaryPath, for: path)
        descriptor = open(temporaryPath, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            let raced = errno == EEXIST || errno == ELOOP
            let reason = raced ? "\(temporaryPath) appeared while dfuhop was creating it" : ImageFile.errnoText()
            throw ImageError(.cannotWrite, file: path, "cannot create \(temporaryPath): \(reason)")
        }
    }

    deinit {
        if descriptor >= 0 { close(descriptor) }
        if !committed { unlink(temporaryPath) }
    }

    /// Writes all of `bytes`, retrying short writes and EINTR.
    public func write(_ bytes: UnsafeBufferPointer<UInt8>) throws(ImageError) {
        guard descriptor >= 0, let start = bytes.baseAddress else { return }
        var offset = 0
        while offset < bytes.count {
            let written = posixWrite(descriptor, start + offset, bytes.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                throw ImageError(.cannotWrite, file: path, "write failed: \(ImageFile.errnoText())")
            }
            offset += written
        }
    }

    /// Closes the partial file and renames it over `path`.
    public func commit() throws(ImageError) {
        let status = close(descriptor)
        descriptor = -1
        guard status == 0 else { throw ImageError(.cannotWrite, file: path, "write failed: \(ImageFile.errnoText())") }
        guard rename(temporaryPath, path) == 0 else {
            throw ImageError(.cannotWrite, file: path, "cannot replace the file: \(ImageFile.errnoText())")
        }
        committed = true
    }

    /// A leftover from an interrupted run is ours to remove only if it is a plain file of ours; lstat
    /// does not follow a symlink, and unlink removes a link, never what it points to.
    private static func removeLeftover(_ temporary: String, for path: String) throws(ImageError) {
        var status = stat()
        guard lstat(temporary, &status) == 0 else {
            guard errno == ENOENT else {
                throw ImageError(.cannotWrite, file: path, "cannot check \(temporary): \(ImageFile.errnoText())")
            }
            return
        }
        guard (status.st_mode & S_IFMT) == S_IFREG, status.st_uid == geteuid(), status.st_nlink == 1 else {
            throw ImageError(
                .cannotWrite, file: path,
                "\(temporary) exists and is not a partial file of this user's (a symlink, another file type, another owner, "
                    + "or a hard link); remove it and try again")
        }
        guard unlink(temporary) == 0 || errno == ENOENT else {
            throw ImageError(
                .cannotWrite, file: path,
                "cannot remove the partial file \(temporary) of an earlier run: \(ImageFile.errnoText())")
        }
    }
}

private func posixWrite(_ descriptor: Int32, _ buffer: UnsafePointer<UInt8>, _ count: Int) -> Int {
    #if canImport(Glibc)
        Glibc.write(descriptor, buffer, count)
    #elseif canImport(Musl)
        Musl.write(descriptor, buffer, count)
    #else
        Darwin.write(descriptor, buffer, count)
    #endif
}
