import Foundation

/// A recording read back: the header, the records with their line numbers, and the closing result line.
public struct Recording: Sendable {
    public struct Line: Sendable, Equatable {
        /// Line number in the file (the header is line 1).
        public var number: Int
        public var record: Record
    }

    public var path: String
    public var header: RecordingHeader
    public var lines: [Line]
    /// The closing `result` line as written, for the command to decode in its own terms; nil when the
    /// recorded run never finished.
    public var resultLine: String?
    public var resultLineNumber: Int?
    /// The last line was cut off (the recording process died while writing it) and is left out.
    public var truncated: Bool

    /// The largest recording read (a megabyte of flash records as about 4 MB of hex).
    public static let maximumSize = 256 << 20

    public static func load(path: String) throws(RecordingError) -> Recording {
        let data: Data
        do {
            let attributes = try FileManager.default.attributesOfItem(atPath: path)
            if let size = attributes[.size] as? Int, size > maximumSize {
                throw RecordingError(file: path, "\(size) bytes is larger than a recording can be (\(maximumSize >> 20) MiB)")
            }
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch let error as RecordingError {
            throw error
        } catch {
            throw RecordingError(file: path, "cannot read it: \(error.localizedDescription)")
        }
        return try Recording(text: String(decoding: data, as: UTF8.self), path: path)
    }

    public init(text: String, path: String) throws(RecordingError) {
        self.path = path
        let rows = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let decoder = JSONDecoder()
        guard let first = rows.first, !first.isEmpty else { throw RecordingError(file: path, line: 1, "the file is empty") }
        header = try Self.header(first, path: path, decoder: decoder)
        lines = []
        resultLine = nil
        resultLineNumber = nil
        truncated = false
        for (offset, row) in rows.enumerated().dropFirst() where !row.isEmpty {
            let number = offset + 1
            guard resultLine == nil else { throw RecordingError(file: path, line: number, "a line after the result line") }
            guard let record = try? decoder.decode(Record.self, from: Data(row.utf8)) else {
                // Only the very last line may be cut off: a process killed while writing it.
                if offset == rows.count - 1, !text.hasSuffix("\n") {
                    truncated = true
                    break
                }
                throw RecordingError(file: path, line: number, "not a record of format version \(RecordingFormat.version)")
            }
            if record.event == .result {
                (resultLine, resultLineNumber) = (row, number)
            } else {
                lines.append(Line(number: number, record: record))
            }
        }
    }

    static func header(_ line: String, path: String, decoder: JSONDecoder) throws(RecordingError) -> RecordingHeader {
        struct Probe: Decodable {
            var format: String?
            var version: Int?
        }
        let probe = try? decoder.decode(Probe.self, from: Data(line.utf8))
        guard probe?.format == RecordingFormat.name else {
            throw RecordingError(
                file: path, line: 1, "not a dfuhop recording (the first line has no \"format\":\"\(RecordingFormat.name)\")")
        }
        guard probe?.version == RecordingFormat.version else {
            throw RecordingError(
                file: path, line: 1,
                "format version \(probe?.version.map(String.init) ?? "?"); this dfuhop reads version \(RecordingFormat.version)")
        }
        do { return try decoder.decode(RecordingHeader.self, from: Data(line.utf8)) } catch {
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
