import Foundation
import USBTransport

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The one error type of the recording layer: a recording that cannot be written or read.
public struct RecordingError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The recording's path.
    public var file: String
    /// The line the problem is on (1 is the header), when it is about one.
    public var line: Int?
    public var problem: String

    public init(file: String, line: Int? = nil, _ problem: String) {
        self.file = file
        self.line = line
        self.problem = problem
    }

    public var description: String { "\(file)\(line.map { ", line \($0)" } ?? ""): \(problem)" }
}

/// The lines of a recording being written, one `write(2)` each, in the order the calls returned. The file
/// is created here (never through a symlink, never over an existing file, mode 0600), so a crash leaves
/// every line written until then. A write that fails is kept for `finish()` and later lines are dropped:
/// a full disk must not stop an upgrade half way.
final class RecordingLog: @unchecked Sendable {
    let path: String
    private let clock: any DeviceClock
    private let origin: Duration
    // Guarded by `lock`: the engine's tasks record concurrently (`upgrade --all`, hotplug pumps).
    private let lock = NSLock()
    private var descriptor: Int32
    private var failure: RecordingError?
    private var handles = 0
    private var subscriptions = 0

    init(path: String, clock: any DeviceClock, header: RecordingHeader) throws(RecordingError) {
        self.path = path
        self.clock = clock
        origin = clock.now()
        descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            let reason = errno == EEXIST ? "it already exists (a recording is never overwritten)" : String(cString: strerror(errno))
            throw RecordingError(file: path, "cannot create the recording: \(reason)")
        }
        emit(Self.line(header))
        if let failure { throw failure }
    }

    deinit { if descriptor >= 0 { close(descriptor) } }

    static func line(_ value: some Encodable) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Every type written here is plain data; encoding it cannot fail.
        return String(decoding: (try? encoder.encode(value)) ?? Data("{}".utf8), as: UTF8.self)
    }

    func nextHandle() -> Int {
        lock.withLock {
            handles += 1
            return handles
        }
    }

    func nextSubscription() -> Int {
        lock.withLock {
            subscriptions += 1
            return subscriptions
        }
    }

    /// Stamps `record` with the clock's time now and writes it.
    func append(_ record: Record) {
        var record = record
        lock.withLock {
            record.t = (clock.now() - origin).recordedMicroseconds
            emitLocked(Self.line(record))
        }
    }

    /// Writes the closing `result` line and closes the file; the first write failure, if any.
    func finish(_ line: (Int64) -> String) -> RecordingError? {
        lock.withLock {
            emitLocked(line((clock.now() - origin).recordedMicroseconds))
            if descriptor >= 0 {
                if fsync(descriptor) != 0, failure == nil {
                    failure = RecordingError(file: path, "cannot sync: \(String(cString: strerror(errno)))")
                }
                close(descriptor)
                descriptor = -1
            }
            return failure
        }
    }

    private func emit(_ line: String) { lock.withLock { emitLocked(line) } }

    private func emitLocked(_ line: String) {
        guard descriptor >= 0, failure == nil else { return }
        let bytes = Array((line + "\n").utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            if written < 0, errno == EINTR { continue }
            guard written > 0 else {
                failure = RecordingError(file: path, "cannot write: \(String(cString: strerror(errno)))")
                return
            }
            offset += written
        }
    }
}
