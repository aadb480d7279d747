import AppLink
import DeviceProfiles
import Foundation

/// The journal and the per-unit locks, as the phases use them. A unit is keyed by its 96-bit UID; only a
/// unit whose UID is not known yet (it shows nothing) is keyed by its port until its ROM tells the UID.
extension UpgradeEngine {
    /// The key of the unit this run works on.
    func journalKey(_ run: Run) -> String? {
        if let uid = run.before.uid { return uid.description }
        return run.before.portPath.map { "port-" + $0 }
    }

    /// The entry of an interrupted upgrade of this unit: by its UID when it is known. A unit that shows
    /// nothing is matched by port (or, with no port, the only entry) as a candidate that its ROM must
    /// prove before the entry counts.
    func adoptJournal(for found: Found, _ run: Run) throws {
        guard let journal = run.options.journal else { return }
        if let uid = found.description.uid {
            run.journalAskedByUID = true
            run.resumed = try journal.entry(for: uid.description)
            if let entry = run.resumed { onEvent(.resuming(entry)) }
            return
        }
        guard case .boot0(let port) = found.reach else { return }
        run.candidateEntry = try journal.entry(forPort: port)
        if let entry = run.candidateEntry, port == nil { run.before.portPath = entry.portPath }
    }

    /// One process per unit, and a journal entry before anything changes (unwritable: nothing touched).
    func claim(_ target: Target, _ run: Run) async throws {
        guard let key = journalKey(run) else { return }
        try await lock(key, run)
        try record(.planned, run, target: target)
    }

    func lock(_ key: String, _ run: Run) async throws {
        guard let journal = run.options.journal, !run.lockedKeys.contains(key) else { return }
        guard let held = try await journal.lock(key, patience: .milliseconds(500)) else {
            throw UpgradeError(
                .busy(unit: key), phase: .plan,
                hint: "nothing was touched; wait for it to finish, then run again")
        }
        run.locks.append(held)
        run.lockedKeys.insert(key)
    }

    /// Writes the entry for this step, under the unit's UID once it is known (a port entry is then dropped).
    /// What the unit held before is the interrupted upgrade's record while that write is still under way: the
    /// flash now holds a mix, not a "before".
    func record(_ step: JournalEntry.Step, _ run: Run, target: Target) throws {
        guard let journal = run.options.journal, let key = journalKey(run) else { return }
        let unit = run.before
        let underWay = run.resumed.flatMap { $0.step == .flashing ? $0 : nil }
        let entry = JournalEntry(
            key: key, dfuSerial: unit.dfuSerial, uid: unit.uid?.description, portPath: unit.portPath ?? "",
            family: target.family.id, classificationBefore: underWay?.classificationBefore ?? unit.classification.rawValue,
            productID: underWay?.productID ?? unit.productID ?? run.resumed?.productID,
            oldVersion: underWay?.oldVersion ?? unit.version?.description ?? run.resumed?.oldVersion, image: run.source,
            imageDigest: target.digest, inputDigest: run.options.inputDigest, newVersion: target.version.description,
            sectors: target.plan.erasedSectors.map(\.start), step: step, updated: Date())
        try journal.write(entry)
        // An entry keyed by port alone was written before its run read the UID in the ROM: it records no write
        // (`proveIdentity`), and this unit's entry, keyed by its UID, replaces it.
        if unit.uid != nil, let port = unit.portPath { try journal.remove("port-" + port) }
    }

    /// The upgrade is confirmed (or the unit found up to date): its entry goes.
    func forget(_ run: Run) throws {
        guard let journal = run.options.journal else { return }
        if let key = journalKey(run) { try journal.remove(key) }
        if let entry = run.resumed, entry.key != journalKey(run) { try journal.remove(entry.key) }
    }
}
