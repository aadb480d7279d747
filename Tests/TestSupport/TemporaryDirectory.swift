import Foundation

/// A scratch directory, removed with its contents when the last reference to it goes.
public final class TemporaryDirectory: Sendable {
    public let url: URL

    public init(prefix: String = "dfuhop-test") throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    public func path(_ name: String) -> String { url.appendingPathComponent(name).path }

    @discardableResult
    public func write(_ name: String, _ bytes: [UInt8]) throws -> String {
        let path = path(name)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    public func read(_ name: String) throws -> [UInt8] { Array(try Data(contentsOf: url.appendingPathComponent(name))) }

    /// An empty file, open for writing (a child's standard output, say).
    public func handleForWriting(_ name: String) throws -> FileHandle {
        let path = path(name)
        guard FileManager.default.createFile(atPath: path, contents: nil) else {
            throw ProcessRunnerError(description: "cannot create \(path)")
        }
        return try FileHandle(forWritingTo: URL(fileURLWithPath: path))
    }

    deinit { try? FileManager.default.removeItem(at: url) }
}
