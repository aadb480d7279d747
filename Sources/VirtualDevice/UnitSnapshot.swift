import DeviceProfiles
import FirmwareImage
import Foundation
import HexFormat
import USBTransport

/// One virtual unit saved to a file (`--simulate-state FILE`), so a sequence of commands acts on one
/// unit as on hardware: flash (only the write units that are not erased), ECC state, option bytes,
/// backup registers, UID, BOOT0, and what it is running. The file is outside input: `load` checks it all.
public struct UnitSnapshot: Codable, Sendable, Hashable {
    /// Writes the snapshot as JSON through a temporary file renamed over `url`: a reader (or a second
    /// dfuhop after a SIGKILL) sees the old file or the new one, never half of one.
    public func write(to url: URL) throws(VirtualDeviceError) {
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(self).write(to: url, options: .atomic)
        } catch {
            throw VirtualDeviceError("cannot write the state file: \(error.localizedDescription)", source: url.path)
        }
    }

    public static let formatVersion = 1

    public var format: Int
    public var family: String
    public var uid: String
    public var portPath: String
    public var mode: UnitMode
    public var boot0: Bool
    public var emptyCheckLatchedROM: Bool
    public var optionBytes: String
    public var backupRegisters: [UInt32]
    /// Runs of programmed flash: offset from the flash base, and the bytes in base64.
    public var flash: [FlashRun]
    /// Write units that have been programmed since their last erase (including all-0xFF writes).
    public var writtenUnits: [ClosedRange<Int>]
    public var corruptedUnits: [Int]
    /// Faults armed for the next command that loads this file (a rehearsal of a failure from the command
    /// line: `dfuhop upgrade --simulate-state FILE` then meets it). Not saved back: it fires once.
    public var faults: FaultPlan?

    public struct FlashRun: Codable, Sendable, Hashable {
        public var offset: Int
        public var data: String
    }
}

extension VirtualUnit {
    public func snapshot() -> UnitSnapshot { lock.withLock { snapshotLocked() } }

    func snapshotLocked() -> UnitSnapshot {
        do {
            var runs: [UnitSnapshot.FlashRun] = []
            var ranges: [ClosedRange<Int>] = []
            let g = family.writeGranularity
            var index = 0
            while index < wordWritten.count {
                guard wordWritten[index] else {
                    index += 1
                    continue
                }
                let start = index
                while index < wordWritten.count, wordWritten[index] { index += 1 }
                ranges.append(start...(index - 1))
                runs.append(.init(offset: start * g, data: Data(flash[start * g..<index * g]).base64EncodedString()))
            }
            return UnitSnapshot(
                format: UnitSnapshot.formatVersion, family: family.id, uid: Hex.string(uid),
                portPath: portPath, mode: mode, boot0: boot0, emptyCheckLatchedROM: emptyCheckLatchedROM,
                optionBytes: Hex.string(optionBytes), backupRegisters: backupRegisters,
                flash: runs, writtenUnits: ranges, corruptedUnits: wordCorrupted.sorted())
        }
    }

    /// Rebuilds a unit from a snapshot, checking every field; `source` names the file in errors.
    public static func restore(_ snapshot: UnitSnapshot, clock: any DeviceClock, source: String) throws(VirtualDeviceError) -> VirtualUnit {
        func fail(_ problem: String) -> VirtualDeviceError { VirtualDeviceError(problem, source: source) }
        guard snapshot.format == UnitSnapshot.formatVersion else {
            throw fail("state file format \(snapshot.format) is not supported (expected \(UnitSnapshot.formatVersion))")
        }
        guard let family = McuFamily.named(snapshot.family) else { throw fail("unknown family \"\(snapshot.family)\"") }
        guard let uid = Hex.bytes(fromHex: snapshot.uid), uid.count == 12 else { throw fail("uid must be 24 hex digits") }
        let unit = VirtualUnit(family: family, uid: uid, portPath: snapshot.portPath, clock: clock)
        guard let options = Hex.bytes(fromHex: snapshot.optionBytes), options.count == unit.optionBytes.count else {
            throw fail("optionBytes must be \(unit.optionBytes.count) bytes in hex")
        }
        guard snapshot.backupRegisters.count == unit.backupRegisters.count else {
            throw fail("backupRegisters must hold \(unit.backupRegisters.count) values")
        }
        let g = family.writeGranularity
        var flash = unit.flash
        // Runs and ranges come in ascending order without overlap (as `snapshot` writes them), so restoring
        // costs at most one pass over the flash however the file repeats them. Offsets are compared by
        // subtraction: a huge offset must be refused, not overflow.
        var flashEnd = 0
        for run in snapshot.flash {
            guard let data = Data(base64Encoded: run.data) else { throw fail("flash run at offset \(run.offset) is not base64") }
            guard run.offset >= flashEnd, run.offset <= flash.count, data.count <= flash.count - run.offset, run.offset % g == 0 else {
                throw fail(
                    "flash run at offset \(run.offset) (\(data.count) bytes) is outside the \(flash.count)-byte flash, "
                        + "misaligned, or not after the previous run")
            }
            flash.replaceSubrange(run.offset..<run.offset + data.count, with: data)
            flashEnd = run.offset + data.count
        }
        var written = [Bool](repeating: false, count: unit.wordWritten.count)
        var writtenEnd = 0
        for range in snapshot.writtenUnits {
            guard range.lowerBound >= writtenEnd, range.upperBound < written.count else {
                throw fail("written unit range \(range) is outside the flash's \(written.count) units or not after the previous range")
            }
            for index in range { written[index] = true }
            writtenEnd = range.upperBound + 1
        }
        guard snapshot.corruptedUnits.allSatisfy({ $0 >= 0 && $0 < written.count }) else {
            throw fail("a corrupted unit index is outside the flash")
        }
        unit.lock.withLock {
            unit.flash = flash
            unit.wordWritten = written
            unit.wordCorrupted = Set(snapshot.corruptedUnits)
            unit.optionBytes = options
            unit.backupRegisters = snapshot.backupRegisters
            unit.boot0 = snapshot.boot0
            unit.emptyCheckLatchedROM = snapshot.emptyCheckLatchedROM
            unit.mode = snapshot.mode
            unit.enumeration = 1
        }
        if let faults = snapshot.faults { unit.setFaults(faults) }
        return unit
    }

    /// Saves the unit as JSON, atomically.
    public func save(to url: URL) throws(VirtualDeviceError) { try snapshot().write(to: url) }

    /// Saves the unit to `url` after every change a real unit would keep if the host died now (flash,
    /// option bytes, backup registers, BOOT0, what it runs): a `--simulate-state` file then holds what the
    /// unit holds even when dfuhop is killed mid-upgrade. A failed save is reported once through `onError`.
    public func saveEveryChange(to url: URL, onError: @escaping @Sendable (VirtualDeviceError) -> Void) {
        lock.withLock { persistence = Persistence(url: url, onError: onError) }
    }

    struct Persistence {
        let url: URL
        let onError: @Sendable (VirtualDeviceError) -> Void
        var failed = false
    }

    /// Called under the lock after each change that `saveEveryChange` keeps.
    func changedLocked() {
        guard let current = persistence, !current.failed else { return }
        do throws(VirtualDeviceError) { try snapshotLocked().write(to: current.url) } catch {
            persistence?.failed = true
            current.onError(error)
        }
    }

    /// Loads a unit saved with `save(to:)`.
    public static func load(from url: URL, clock: any DeviceClock) throws(VirtualDeviceError) -> VirtualUnit {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw VirtualDeviceError("cannot read the state file: \(error.localizedDescription)", source: url.path)
        }
        let snapshot: UnitSnapshot
        do { snapshot = try JSONDecoder().decode(UnitSnapshot.self, from: data) } catch {
            throw VirtualDeviceError("not a dfuhop virtual-unit state file: \(error)", source: url.path)
        }
        return try restore(snapshot, clock: clock, source: url.path)
    }
}
