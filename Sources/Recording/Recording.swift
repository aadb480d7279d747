import Foundation

/// A recording read back: the header, the records with their line numbers, and the closing result line.
/// A recording is what users attach to bug reports, so it is read as hostile input: one pass checks every
/// line and keeps each record as its bytes, and a record is decoded again only when the replay reaches it
/// (`Lines`). Memory stays about twice the file's size, time linear in it (`dfuhop-bench hostile-input`).
public struct Recording: Sendable {
    public struct Line: Sendable, Equatable {
        /// Line number in the file (the header is line 1).
        public var number: Int
        public var record: Record
    }

    public var path: String
    public var header: RecordingHeader
    public var lines: Lines
    /// The closing `result` line as written, for the command to decode in its own terms; nil when the
    /// recorded run never finished.
    public var resultLine: String?
    public var resultLineNumber: Int?
    /// The last line was cut off (the recording process died while writing it) and is left out.
    public var truncated: Bool

    /// The largest recording read (a megabyte of flash records as about 4 MB of hex).
    public static let maximumSize = 256 << 20
    /// The most port paths a recording may name. A USB bus addresses at most 127 devices (a 7-bit address,
    /// USB 2.0 §8.3.2.1), and one session of one station names a few; the bound keeps the replay's per-port
    /// bookkeeping small whatever the file holds.
    public static let maximumPorts = 256
    /// The longest record line read. The longest a recorder writes is a devices snapshot or an opened
    /// interface (a few KiB); a transfer's data is at most 4 KiB of hex (wLength is 16 bits, USB 2.0
    /// §9.3.5, and DfuSe transfers are 2 KiB at most). The bound keeps what decoding one line costs small.
    public static let maximumLineLength = 1 << 20

    public static func load(path: String) throws(RecordingError) -> Recording {
        // The buffer is handed over, not kept here: the header is cut from it in place, with no copy.
        try Recording(bytes: readAll(path), path: path)
    }

    /// The file's bytes, read once into one buffer of the file's size (no intermediate `Data` or `String`
    /// of the whole file, no growth by doubling).
    private static func readAll(_ path: String) throws(RecordingError) -> [UInt8] {
        do {
            let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
            defer { try? handle.close() }
            let size = try handle.seekToEnd()
            guard size <= maximumSize else {
                throw RecordingError(file: path, "\(size) bytes is larger than a recording can be (\(maximumSize >> 20) MiB)")
            }
            try handle.seek(toOffset: 0)
            var bytes: [UInt8] = []
            bytes.reserveCapacity(Int(size))
            while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty {
                guard bytes.count + chunk.count <= maximumSize else {
                    throw RecordingError(file: path, "larger than a recording can be (\(maximumSize >> 20) MiB)")
                }
                bytes.append(contentsOf: chunk)
            }
            return bytes
        } catch let error as RecordingError {
            throw error
        } catch {
            throw RecordingError(file: path, "cannot read it: \(error.localizedDescription)")
        }
    }

    public init(text: String, path: String) throws(RecordingError) {
        try self.init(bytes: Array(text.utf8), path: path)
    }

    /// Checks every line (each must decode as a record; only a cut-off last line may not) and indexes them.
    public init(bytes: consuming [UInt8], path: String) throws(RecordingError) {
        self.path = path
        let decoder = JSONDecoder()
        var bytes = bytes
        let headerEnd = bytes.firstIndex(of: Lines.newline) ?? bytes.endIndex
        guard headerEnd > 0 else { throw RecordingError(file: path, line: 1, "the file is empty") }
        header = try Self.header(Data(bytes[..<headerEnd]), path: path, decoder: decoder)
        // The header (and its embedded inputs) lives on in `header` only.
        bytes.removeSubrange(..<min(headerEnd + 1, bytes.endIndex))
        resultLine = nil
        resultLineNumber = nil
        truncated = false
        var index = Lines.Builder()
        var start = 0
        var number = 2
        while start < bytes.endIndex {
            let end = bytes[start...].firstIndex(of: Lines.newline) ?? bytes.endIndex
            defer { (start, number) = (end + 1, number + 1) }
            guard end > start else { continue }
            guard resultLine == nil else { throw RecordingError(file: path, line: number, "a line after the result line") }
            guard end - start <= Self.maximumLineLength else {
                throw RecordingError(
                    file: path, line: number, "a line of \(end - start) bytes; a record is at most \(Self.maximumLineLength >> 20) MiB")
            }
            guard let record = try? decoder.decode(Record.self, from: Data(bytes[start..<end])) else {
                // Only the very last line may be cut off: a process killed while writing it.
                if end == bytes.endIndex {
                    truncated = true
                    break
                }
                throw RecordingError(file: path, line: number, "not a record of format version \(RecordingFormat.version)")
            }
            if record.event == .result {
                (resultLine, resultLineNumber) = (String(decoding: bytes[start..<end], as: UTF8.self), number)
            } else if !index.add(record, start: start, number: number) {
                throw RecordingError(
                    file: path, line: number, "more than \(Self.maximumPorts) port paths: not the recording of one session")
            }
        }
        lines = Lines(bytes: bytes, index: index)
    }

    static func header(_ line: Data, path: String, decoder: JSONDecoder) throws(RecordingError) -> RecordingHeader {
        struct Probe: Decodable {
            var format: String?
            var version: Int?
        }
        let probe = try? decoder.decode(Probe.self, from: line)
        guard probe?.format == RecordingFormat.name else {
            throw RecordingError(
                file: path, line: 1, "not a dfuhop recording (the first line has no \"format\":\"\(RecordingFormat.name)\")")
        }
        guard probe?.version == RecordingFormat.version else {
            throw RecordingError(
                file: path, line: 1,
                "format version \(probe?.version.map(String.init) ?? "?"); this dfuhop reads version \(RecordingFormat.version)")
        }
        do { return try decoder.decode(RecordingHeader.self, from: line) } catch {
            throw RecordingError(file: path, line: 1, "the header is incomplete: \(error)")
        }
    }

    /// The closing line, decoded with the command's own result type.
    public func result<Result: Codable>(as type: Result.Type) throws(RecordingError) -> ResultRecord<Result>? {
        guard let resultLine else { return nil }
        do { return try JSONDecoder().decode(ResultRecord<Result>.self, from: Data(resultLine.utf8)) } catch {
            throw RecordingError(file: path, line: resultLineNumber, "the result line is not a result: \(error)")
        }
    }
}
