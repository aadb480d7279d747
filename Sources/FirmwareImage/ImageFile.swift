#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Reading and writing image files with plain POSIX calls: input streamed in chunks, output written to
/// a temporary file beside the target and renamed into place, so a failed write never leaves half a file.
public enum ImageFile {
    static let chunkSize = 1 << 20

    /// Reads `path`, detecting the format (magic numbers, then extension, then content) unless given.
    public static func read(path: String, format: ImageFormat? = nil, options: ReadOptions = ReadOptions()) throws(ImageError)
        -> FirmwareImage
    {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw ImageError(.cannotRead, file: path, "cannot open: \(errnoText())")
        }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            throw ImageError(.cannotRead, file: path, "cannot read: \(errnoText())")
        }
        guard (status.st_mode & S_IFMT) == S_IFREG else {
            throw ImageError(.cannotRead, file: path, "not a regular file")
        }
        let size = Int(status.st_size)
        let chunk = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: chunkSize)
        defer { chunk.deallocate() }
        var filled = try readSome(descriptor, into: chunk, path: path)
        let chosen = format ?? ImageReader.detectFormat(fileName: path, head: UnsafeBufferPointer(rebasing: chunk[0..<filled]))
        var reader = ImageReader(format: chosen, file: path, options: options, expectedSize: size)
        while filled > 0 {
            try reader.consume(UnsafeBufferPointer(rebasing: chunk[0..<filled]))
            filled = try readSome(descriptor, into: chunk, path: path)
        }
        return try reader.finish()
    }

    private static func readSome(_ descriptor: Int32, into chunk: UnsafeMutableBufferPointer<UInt8>, path: String) throws(ImageError) -> Int
    {
        while true {
            let count = posixRead(descriptor, chunk.baseAddress, chunk.count)
            if count >= 0 { return count }
            if errno == EINTR { continue }
            throw ImageError(.cannotRead, file: path, "read failed: \(errnoText())")
        }
    }

    /// Writes `image` to `path` in `format` (atomically and safely: `OutputFile`).
    public static func write(
        _ image: FirmwareImage, to path: String, as format: ImageFormat,
        options: WriteOptions = WriteOptions()
    ) throws(ImageError) {
        let file = try OutputFile(path: path)
        var output = ChunkedOutput { (bytes) throws(ImageError) in try file.write(bytes) }
        try ImageWriter.write(image, as: format, options: options, file: path, to: &output)
        try file.commit()
    }

    static func errnoText() -> String {
        String(cString: strerror(errno))
    }
}

private func posixRead(_ descriptor: Int32, _ buffer: UnsafeMutablePointer<UInt8>?, _ count: Int) -> Int {
    #if canImport(Glibc)
        Glibc.read(descriptor, buffer, count)
    #elseif canImport(Musl)
        Musl.read(descriptor, buffer, count)
    #else
        Darwin.read(descriptor, buffer, count)
    #endif
}
