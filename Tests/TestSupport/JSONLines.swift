import Foundation

/// Decodes JSON Lines text (one JSON value a line, as a `--json` run prints) into `Decodable` types, so a
/// test reads fields by name and type instead of casting `[String: Any]`: a field of the wrong type fails.
///
///     let result = try JSONLines.last(ResultLine.self, in: stdout)
///     let events = try JSONLines.each(EventLine.self, in: stdout)
public enum JSONLines {
    /// Every non-empty line of `text`, each decoded as `T`.
    public static func each<T: Decodable>(_ type: T.Type, in text: String) throws -> [T] {
        try numberedLines(text).map { try decode(T.self, line: $0.text, number: $0.number) }
    }

    /// The last non-empty line of `text`, decoded as `T`.
    public static func last<T: Decodable>(_ type: T.Type, in text: String) throws -> T {
        guard let last = numberedLines(text).last else {
            throw JSONLineError(number: 0, line: "", type: "\(T.self)", reason: "there is no line")
        }
        return try decode(T.self, line: last.text, number: last.number)
    }

    /// One line, its number (1-based) given for the error.
    public static func decode<T: Decodable>(_ type: T.Type, line: String, number: Int) throws -> T {
        do {
            return try JSONDecoder().decode(T.self, from: Data(line.utf8))
        } catch let error as DecodingError {
            throw JSONLineError(number: number, line: line, type: "\(T.self)", reason: describe(error))
        }
    }

    /// The non-empty lines with their 1-based numbers in `text` (a line of blanks is not empty: it fails).
    static func numberedLines(_ text: String) -> [(number: Int, text: String)] {
        text.split(separator: "\n", omittingEmptySubsequences: false).enumerated().compactMap { index, line in
            line.isEmpty ? nil : (index + 1, String(line))
        }
    }

    /// What went wrong and where: the coding path as `image.segments[2].start`.
    static func describe(_ error: DecodingError) -> String {
        switch error {
        case .keyNotFound(let key, let context):
            "no field \(path(context.codingPath + [key]))"
        case .typeMismatch(let type, let context):
            "\(path(context.codingPath)) is not \(type): \(context.debugDescription)"
        case .valueNotFound(let type, let context):
            "\(path(context.codingPath)) has no \(type) (null): \(context.debugDescription)"
        case .dataCorrupted(let context):
            "\(path(context.codingPath)): \(context.debugDescription)"
        @unknown default:
            "\(error)"
        }
    }

    static func path(_ keys: [any CodingKey]) -> String {
        let text = keys.map { key in key.intValue.map { "[\($0)]" } ?? ".\(key.stringValue)" }.joined()
        return text.isEmpty ? "the line" : String(text.drop { $0 == "." })
    }
}

/// A line that is not the JSON a test expects: its number, its text, the type and the decoding error's path.
public struct JSONLineError: Error, CustomStringConvertible {
    public var number: Int
    public var line: String
    public var type: String
    public var reason: String

    public var description: String { "line \(number) does not decode as \(type): \(reason)\n\(line)" }
}
