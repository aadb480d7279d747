import Foundation
import Testing

@testable import UpgradeEngine

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The journal and the per-unit locks (Journal.swift), on a scratch directory: entries keyed by UID or
/// "port-PATH", private files that no planted symlink redirects, one holder per unit, and a damaged entry
/// reported as such, never taken for "no upgrade in progress".
@Suite("Journal and unit locks", .timeLimit(.minutes(10)))
struct JournalTests {
    final class Scratch {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dfuhop-journal-\(UUID())")
        var store: JournalStore { JournalStore(directory: directory.appendingPathComponent("state")) }
        func path(_ name: String) -> String { store.directory.appendingPathComponent(name).path }
        deinit { try? FileManager.default.removeItem(at: directory) }
    }

    static let uid = "3A0027001251303233363938"

    static func entry(key: String, port: String = "1-3.2", step: JournalEntry.Step = .flashing) -> JournalEntry {
        JournalEntry(
            key: key, dfuSerial: "2061336E5056", uid: key.hasPrefix("port-") ? nil : key, portPath: port, family: "g474",
            classificationBefore: "programmed", productID: 0x0DF0_0474, oldVersion: "1.0.0", image: "v2.hex",
            imageDigest: String(repeating: "ab", count: 32), inputDigest: nil, newVersion: "2.0.0",
            sectors: [0x0800_0000, 0x0800_0800], step: step, updated: Date(timeIntervalSince1970: 1_764_590_400))
    }

    /// Permission bits and file type of `path` itself (lstat: a symlink is reported as one).
    static func mode(_ path: String) -> (bits: UInt32, isSymlink: Bool)? {
        var info = stat()
        guard lstat(path, &info) == 0 else { return nil }
        return (UInt32(info.st_mode) & 0o7777, (info.st_mode & S_IFMT) == S_IFLNK)
    }

    @Test("an entry keyed by UID reads back as written, from a file only its owner can read")
    func uidEntryRoundTrip() throws {
        let scratch = Scratch()
        let written = Self.entry(key: Self.uid)
        try scratch.store.write(written)
        #expect(try scratch.store.entry(for: Self.uid) == written)
        let file = scratch.path("unit-\(Self.uid).json")
        #expect(Self.mode(file)?.bits == 0o600)
        #expect(Self.mode(scratch.store.directory.path)?.bits == 0o700)
        #expect(try scratch.store.entry(for: "000000000000000000000000") == nil)
    }

    @Test("a unit known only by its port is keyed port-PATH, found by its port, and stays inside the directory")
    func portEntries() throws {
        let scratch = Scratch()
        try scratch.store.write(Self.entry(key: "port-1-3.2"))
        #expect(FileManager.default.fileExists(atPath: scratch.path("unit-port-1-3_2.json")))
        #expect(try scratch.store.entry(forPort: "1-3.2")?.key == "port-1-3.2")
        #expect(try scratch.store.entry(forPort: nil)?.key == "port-1-3.2", "the only entry there is")
        try scratch.store.write(Self.entry(key: Self.uid, port: "1-4"))
        #expect(try scratch.store.entry(forPort: nil) == nil, "two entries and no port: none is guessed")
        #expect(try scratch.store.entry(forPort: "1-4")?.key == Self.uid)
        #expect(try scratch.store.entries().map(\.key).sorted() == [Self.uid, "port-1-3.2"])
        #expect(scratch.store.entryURL("../../etc/passwd").deletingLastPathComponent() == scratch.store.directory)
    }

    @Test("a later step replaces the entry; remove deletes it, and removing nothing is no error")
    func replaceAndRemove() throws {
        let scratch = Scratch()
        try scratch.store.write(Self.entry(key: Self.uid, step: .flashing))
        try scratch.store.write(Self.entry(key: Self.uid, step: .verified))
        #expect(try scratch.store.entry(for: Self.uid)?.step == .verified)
        try scratch.store.remove(Self.uid)
        #expect(try scratch.store.entry(for: Self.uid) == nil)
        try scratch.store.remove(Self.uid)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: scratch.store.directory.path)
        #expect(leftovers.isEmpty, "no temporary file is left behind: \(leftovers)")
    }

    @Test("a symlink planted where the entry or its temporary file goes is replaced, never written through")
    func plantedSymlinksRedirectNothing() throws {
        let scratch = Scratch()
        try FileManager.default.createDirectory(at: scratch.store.directory, withIntermediateDirectories: true)
        let victim = scratch.directory.appendingPathComponent("victim").path
        try "keep me".write(toFile: victim, atomically: false, encoding: .utf8)
        let entryPath = scratch.path("unit-\(Self.uid).json")
        try FileManager.default.createSymbolicLink(atPath: entryPath, withDestinationPath: victim)
        try FileManager.default.createSymbolicLink(atPath: entryPath + ".tmp-\(getpid())", withDestinationPath: victim)
        try scratch.store.write(Self.entry(key: Self.uid))
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == "keep me")
        #expect(Self.mode(entryPath)?.isSymlink == false)
        #expect(Self.mode(entryPath)?.bits == 0o600)
        #expect(try scratch.store.entry(for: Self.uid)?.key == Self.uid)
    }

    @Test("a symlink planted where a unit's lock file goes is refused with the path, and the target is untouched")
    func plantedLockSymlinkIsRefused() throws {
        let scratch = Scratch()
        try FileManager.default.createDirectory(at: scratch.store.directory, withIntermediateDirectories: true)
        let victim = scratch.directory.appendingPathComponent("victim").path
        let lockPath = scratch.path("unit-\(Self.uid).lock")
        try FileManager.default.createSymbolicLink(atPath: lockPath, withDestinationPath: victim)
        #expect(throws: JournalError.self) { try scratch.store.lock(Self.uid) }
        do {
            _ = try scratch.store.lock(Self.uid)
        } catch {
            #expect(error.path == lockPath)
            #expect(error.problem.hasPrefix("cannot be opened"))
        }
        #expect(!FileManager.default.fileExists(atPath: victim), "the symlink's target was not created")
    }

    @Test("one holder per unit: a second holder gets nil until the first releases; other units are free")
    func lockContention() throws {
        let scratch = Scratch()
        let first = try #require(try scratch.store.lock(Self.uid))
        #expect(Self.mode(scratch.path("unit-\(Self.uid).lock"))?.bits == 0o600)
        // Another store on the same directory, as another dfuhop process would open it.
        let other = JournalStore(directory: scratch.store.directory)
        #expect(try other.lock(Self.uid) == nil)
        let neighbour = try #require(try other.lock("port-1-4"), "another unit's lock is independent")
        neighbour.release()
        first.release()
        let second = try #require(try other.lock(Self.uid), "released: the unit is free again")
        second.release()
        second.release() // releasing twice is harmless
    }

    /// A holder that lets go within the patience (as a child between fork and exec does) does not make the unit
    /// busy; one that keeps it does, once the patience has passed.
    @Test("a lock freed within the patience is taken; one held past it is busy")
    func lockPatience() async throws {
        let scratch = Scratch()
        let holder = try #require(try scratch.store.lock(Self.uid))
        let other = JournalStore(directory: scratch.store.directory)
        // Let go from a Dispatch thread, as another process would: on a loaded machine the cooperative pool can be
        // busy for many seconds with other suites' work, and the holder must not wait for it.
        // The patience is far longer than any test may run, so however late the waiter is scheduled, only the
        // release decides the outcome (the suite's time limit catches a waiter that never takes the lock).
        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(100)) { holder.release() }
        let taken = try await other.lock(Self.uid, patience: .seconds(3600))
        #expect(taken != nil, "released after 100 ms: taken within the patience")

        let started = ContinuousClock.now
        #expect(try await scratch.store.lock(Self.uid, patience: .milliseconds(200)) == nil, "still held: busy")
        #expect(ContinuousClock.now - started >= .milliseconds(200), "only after the patience")
        taken?.release()
    }

    @Test("a lock let go of without release() is freed with its holder")
    func lockFreedWithItsHolder() throws {
        let scratch = Scratch()
        var held: UnitLock? = try scratch.store.lock(Self.uid)
        #expect(held != nil)
        #expect(try scratch.store.lock(Self.uid) == nil)
        held = nil
        #expect(try scratch.store.lock(Self.uid) != nil)
    }

    @Test("a damaged entry is an error naming the file, for the unit and for the listing: a resume never starts blind")
    func corruptEntry() throws {
        let scratch = Scratch()
        try scratch.store.write(Self.entry(key: Self.uid))
        let file = scratch.path("unit-\(Self.uid).json")
        try Data("{\"key\": \"3A00".utf8).write(to: URL(fileURLWithPath: file))
        do {
            _ = try scratch.store.entry(for: Self.uid)
            Issue.record("a truncated entry was read")
        } catch {
            #expect(error.path == file)
            #expect(error.description.contains("is not a dfuhop journal entry"))
            #expect(error.unreadableKey == Self.uid)
            #expect(error.unreadableKey == Self.uid && error.hint.contains(Self.uid), "\(error.hint)")
        }
        #expect(throws: JournalError.self) { try scratch.store.entries() }
        #expect(throws: JournalError.self) { try scratch.store.entry(forPort: "1-3.2") }
    }

    /// One written entry, edited as text: a second `step` after the first, a field of a newer dfuhop, a null.
    static let edits: [(name: String, edit: @Sendable (String) -> String, path: String)] = [
        (
            "a key given twice",
            { $0.replacingOccurrences(of: "\"step\" : \"flashing\"", with: "\"step\" : \"flashing\", \"step\" : \"left\"") }, "$.step"
        ),
        (
            "a field this version does not know", { $0.replacingOccurrences(of: "{", with: "{ \"optionBytesPending\" : true,") },
            "$.optionBytesPending"
        ),
        ("a null", { $0.replacingOccurrences(of: "\"oldVersion\" : \"1.0.0\"", with: "\"oldVersion\" : null") }, "$.oldVersion")
    ]

    @Test(
        "an entry read two ways, or holding what this version does not know, is refused naming the field",
        arguments: edits.indices)
    func strictEntry(_ index: Int) throws {
        let (name, edit, path) = Self.edits[index]
        let scratch = Scratch()
        try scratch.store.write(Self.entry(key: Self.uid))
        let file = scratch.path("unit-\(Self.uid).json")
        let written = try String(contentsOfFile: file, encoding: .utf8)
        let edited = edit(written)
        #expect(edited != written, "\(name): the edit did not apply to \(written)")
        try edited.write(toFile: file, atomically: false, encoding: .utf8)
        do {
            _ = try scratch.store.entry(for: Self.uid)
            Issue.record("\(name): the entry was read")
        } catch {
            #expect(error.path == file)
            #expect(error.description.contains("is not a dfuhop journal entry") && error.description.contains(path), "\(name): \(error)")
            #expect(error.unreadableKey == Self.uid)
        }
    }

    /// `uidEntryRoundTrip` reads back an entry with the serial, product and old version given and no input digest;
    /// this one the other way round, so every optional field is read both given and left out.
    @Test("an entry with its optional fields the other way round reads back whole")
    func roundTripOptionals() throws {
        let scratch = Scratch()
        var entry = Self.entry(key: Self.uid)
        (entry.dfuSerial, entry.productID, entry.oldVersion, entry.inputDigest) = (nil, nil, nil, String(repeating: "cd", count: 32))
        try scratch.store.write(entry)
        #expect(try scratch.store.entry(for: Self.uid) == entry)
    }
}
