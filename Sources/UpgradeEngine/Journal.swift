import Foundation
import StrictJSON

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// What the host remembers about an upgrade in progress, one file per unit (docs/guarantees.md: "a journal on
/// the host records the unit's identity, the plan and the last completed step, so a second run resumes
/// instead of starting blind"). Written before the unit is touched and after every step; removed once the
/// new firmware is confirmed.
public struct JournalEntry: Sendable, Hashable, Codable {
    public enum Step: String, Sendable, Hashable, Codable, Comparable {
        /// Nothing on the unit has changed yet; the next step sends it to its ROM.
        case planned
        /// The unit is in its ROM, proven to be this unit.
        case inROM = "in-rom"
        case optionBytesWritten = "option-bytes-written"
        /// Erasing and writing started: the flash holds a mix until `verified`.
        case flashing
        case verified
        /// DFU was left; the application has not been confirmed yet.
        case left

        static let order: [Step] = [.planned, .inROM, .optionBytesWritten, .flashing, .verified, .left]
        public static func < (a: Step, b: Step) -> Bool { order.firstIndex(of: a)! < order.firstIndex(of: b)! }
    }

    /// What names the unit: its 96-bit UID (hex), or "port-PATH" while the UID is not known.
    public var key: String
    /// The serial number its ROM showed, if it was reached: a ROM serial can collide or be constant, so
    /// it is a note, not the key.
    public var dfuSerial: String?
    public var uid: String?
    public var portPath: String
    public var family: String
    public var classificationBefore: String
    /// The product id of the firmware the unit held before, if known.
    public var productID: UInt32?
    public var oldVersion: String?
    public var image: String
    /// SHA-256 of the normalised image, hex: a resumed run knows whether it writes the same image.
    public var imageDigest: String
    /// SHA-256 of the exact file given (an image or a signed package), when the caller supplied it.
    public var inputDigest: String?
    public var newVersion: String
    public var sectors: [UInt32]
    public var step: Step
    public var updated: Date

    /// The fields an entry holds (the synthesized coding uses them); a field outside them is refused on reading.
    enum CodingKeys: String, CodingKey, CaseIterable {
        case key, dfuSerial, uid, portPath, family, classificationBefore, productID, oldVersion, image, imageDigest
        case inputDigest, newVersion, sectors, step, updated
    }

    /// Reads an entry strictly: the bytes go through the strict JSON reader first, so a key given twice, a field
    /// this version does not know (an entry written by a newer dfuhop, at this station or another) or a `null`
    /// is refused by name instead of being read one way here and another way there. A resume rests on what the
    /// entry says; an entry that cannot be read exactly is no entry to rest on.
    static func decode(_ bytes: Data) throws(StrictJSONError) -> JournalEntry {
        let members: [String: JSONValue]
        do { members = try JSONValue.parse(bytes).objectMembers() } catch {
            throw StrictJSONError(path: error.path, problem: "is not valid JSON: \(error.problem) at byte \(error.offset)")
        }
        let known = Set(CodingKeys.allCases.map(\.rawValue))
        for name in members.keys.sorted() {
            guard known.contains(name) else {
                throw StrictJSONError(path: JSONPath.root.appending(key: name), problem: "is not a field this dfuhop knows")
            }
            if members[name] == .null { throw StrictJSONError(path: JSONPath.root.appending(key: name), problem: "is null") }
        }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        do { return try decoder.decode(JournalEntry.self, from: bytes) } catch {
            throw StrictJSONError(path: .root, problem: "\(error)")
        }
    }
}

extension JSONValue {
    /// The members of an object; a syntax error at the top when the document is something else.
    fileprivate func objectMembers() throws(JSONValue.SyntaxError) -> [String: JSONValue] {
        guard case .object(let members) = self else { throw JSONValue.SyntaxError(offset: 0, problem: "is not a JSON object") }
        return members
    }
}

/// The journal directory (`--state-dir`): entries and per-unit locks. Every failure is a
/// `JournalError` naming the file.
public struct JournalStore: Sendable {
    public let directory: URL

    public init(directory: URL) { self.directory = directory }

    /// `$XDG_STATE_HOME/dfuhop`, else `~/.local/state/dfuhop`.
    public static func defaultDirectory(environment: [String: String] = ProcessInfo.processInfo.environment) -> URL {
        if let state = environment["XDG_STATE_HOME"], state.hasPrefix("/") {
            return URL(fileURLWithPath: state).appendingPathComponent("dfuhop")
        }
        let home = environment["HOME"] ?? NSHomeDirectory()
        return URL(fileURLWithPath: home).appendingPathComponent(".local/state/dfuhop")
    }

    static func fileName(_ key: String) -> String {
        String(key.map { $0.isLetter || $0.isNumber || $0 == "-" ? $0 : "_" })
    }

    func entryURL(_ key: String) -> URL { directory.appendingPathComponent("unit-\(Self.fileName(key)).json") }

    func ensureDirectory() throws(JournalError) {
        do {
            try FileManager.default.createDirectory(
                at: directory, withIntermediateDirectories: true,
                attributes: [.posixPermissions: 0o700])
        } catch {
            throw JournalError(path: directory.path, problem: "cannot be created (\(error.localizedDescription))")
        }
    }

    /// The entry for the unit `key` names (its UID, or "port-PATH"), if an upgrade of it was interrupted. An entry
    /// that cannot be read is an error, not "no entry": a resume must not start blind.
    public func entry(for key: String) throws(JournalError) -> JournalEntry? {
        let url = entryURL(key)
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        let bytes: Data
        do { bytes = try Data(contentsOf: url) } catch {
            throw JournalError(path: url.path, problem: "cannot be read (\(error.localizedDescription))", unreadableKey: key)
        }
        do { return try JournalEntry.decode(bytes) } catch {
            throw JournalError(path: url.path, problem: "is not a dfuhop journal entry (\(error))", unreadableKey: key)
        }
    }

    /// Every entry: interrupted upgrades. An entry that cannot be read is an error.
    public func entries() throws(JournalError) -> [JournalEntry] {
        let listing = entriesAndUnreadable()
        if let first = listing.unreadable.first { throw first }
        return listing.entries
    }

    /// Every entry, and apart from them the entries that cannot be read (for `dfuhop journal` to show both).
    public func entriesAndUnreadable() -> (entries: [JournalEntry], unreadable: [JournalError]) {
        guard FileManager.default.fileExists(atPath: directory.path) else { return ([], []) }
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: directory.path) } catch {
            // A directory that cannot be listed hides its entries: an error, never "no interrupted upgrade".
            return ([], [JournalError(path: directory.path, problem: "cannot be listed (\(error.localizedDescription))")])
        }
        var found: [JournalEntry] = []
        var unreadable: [JournalError] = []
        for name in names.sorted() where name.hasPrefix("unit-") && name.hasSuffix(".json") {
            do throws(JournalError) {
                if let entry = try entry(for: String(name.dropFirst(5).dropLast(5))) { found.append(entry) }
            } catch { unreadable.append(error) }
        }
        return (found, unreadable)
    }

    /// The key of the entry `name` names, however it is typed: a UID in upper case, "port-PATH" with its
    /// prefix in lower case (the keys `write` uses).
    public static func key(naming name: String) -> String {
        if let uid = UnitName(text: name).uid { return uid }
        if name.lowercased().hasPrefix("port-") { return "port-" + name.dropFirst(5) }
        return name
    }

    /// Whether the unit has an entry file, readable or not.
    public func hasEntry(for key: String) -> Bool { FileManager.default.fileExists(atPath: entryURL(key).path) }

    /// The entry of an interrupted upgrade of the unit on `port` (a unit that now shows nothing is known
    /// only by its port), or with no port, the only entry there is; nil if none or several.
    public func entry(forPort port: String?) throws(JournalError) -> JournalEntry? {
        let found = try entries().filter { port == nil || $0.portPath == port }
        return found.count == 1 ? found[0] : nil
    }

    /// Writes atomically (temporary file, then rename), so a killed process leaves the old or the new entry.
    public func write(_ entry: JournalEntry) throws(JournalError) {
        try ensureDirectory()
        let url = entryURL(entry.key)
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data: Data
        do { data = try encoder.encode(entry) } catch {
            throw JournalError(path: url.path, problem: "cannot be encoded (\(error.localizedDescription))")
        }
        try PrivateFile.replace(url.path, with: data)
    }

    public func remove(_ key: String) throws(JournalError) {
        let url = entryURL(key)
        guard FileManager.default.fileExists(atPath: url.path) else { return }
        do { try FileManager.default.removeItem(at: url) } catch {
            throw JournalError(path: url.path, problem: "cannot be removed (\(error.localizedDescription))")
        }
    }

    /// Takes the unit's lock without waiting: one process per unit (flock(2), released when the process
    /// ends, however it ends). nil when another process holds it.
    public func lock(_ key: String) throws(JournalError) -> UnitLock? {
        try ensureDirectory()
        let path = directory.appendingPathComponent("unit-\(Self.fileName(key)).lock").path
        // Owner-only, and never through a symlink someone planted in the directory.
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard descriptor >= 0 else {
            throw JournalError(path: path, problem: "cannot be opened (\(String(cString: strerror(errno))))")
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let reason = errno
            close(descriptor)
            if reason == EWOULDBLOCK { return nil }
            throw JournalError(path: path, problem: "cannot be locked (\(String(cString: strerror(reason))))")
        }
        return UnitLock(descriptor: descriptor)
    }
}

extension JournalStore {
    /// `lock(_:)`, tried again for up to `patience` while it is busy: a lock this process released can stay held
    /// for a moment by a child another thread is starting (posix_spawn's child shares every open file, the lock's
    /// included, until its exec closes it), and a unit must not be called busy for that. nil: still busy.
    public func lock(_ key: String, patience: Duration) async throws(JournalError) -> UnitLock? {
        let deadline = ContinuousClock.now + patience
        while true {
            if let held = try lock(key) { return held }
            guard ContinuousClock.now < deadline else { return nil }
            // Real time, whatever the engine's clock: the holder is a real process.
            do { try await Task.sleep(for: .milliseconds(20)) } catch { return nil }
        }
    }
}

/// A held per-unit lock; `release()` (or the process ending) lets another process have the unit.
public final class UnitLock: @unchecked Sendable {
    private var descriptor: Int32?
    private let mutex = NSLock()

    init(descriptor: Int32) { self.descriptor = descriptor }

    public func release() {
        mutex.withLock {
            if let descriptor { close(descriptor) }
            descriptor = nil
        }
    }

    deinit { release() }
}

/// The journal directory or one of its files cannot be used.
public struct JournalError: Error, Sendable, Hashable, CustomStringConvertible {
    public var path: String
    public var problem: String
    /// The key of an entry that exists but cannot be read: `JournalStore.remove(KEY)` drops it.
    public var unreadableKey: String?
    public var description: String { "journal \(path) \(problem)" }

    public init(path: String, problem: String, unreadableKey: String? = nil) {
        self.path = path
        self.problem = problem
        self.unreadableKey = unreadableKey
    }

    /// What the operator can do about it, neutrally worded (the dfuhop command names its own commands).
    public var hint: String {
        guard let key = unreadableKey else { return "fix the journal directory" }
        return "if no upgrade of unit \(key) is in progress elsewhere, drop its journal entry"
    }
}

/// Journal files: written to an exclusively created temporary file (mode 0600, no symlink followed), then
/// renamed over the entry, so a killed process leaves the old or the new entry and a planted symlink
/// redirects nothing.
enum PrivateFile {
    static func replace(_ path: String, with data: Data) throws(JournalError) {
        let temporary = path + ".tmp-\(getpid())"
        unlink(temporary)
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw JournalError(path: path, problem: "cannot be written (\(String(cString: strerror(errno))))")
        }
        let written = data.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        let synced = fsync(descriptor) == 0
        close(descriptor)
        guard written == data.count, synced, rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw JournalError(path: path, problem: "cannot be written (\(reason))")
        }
    }
}
