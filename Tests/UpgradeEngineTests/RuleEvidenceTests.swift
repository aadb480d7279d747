import DeviceProfiles
import FirmwareImage
import Foundation
import HexFormat
import Testing
import USBTransport
import UpgradeEngine

@testable import VirtualDevice

/// Issue 26: each rule compared on every field it names, and each finding of the ROM asserted, so that a
/// rule that looks at less (the major version only, no CRC, no UID) fails a test here, at the engine.
/// Judged by the unit's own flash and the engine's result, on virtual units (virtual clock).
@Suite("Rules compare every field they name")
struct RuleEvidenceTests {
    /// A unit at 1-1 holding other firmware over 64 KiB and the demo image `version` at its base, a journal
    /// of its own, and options whose BOOT0 jig acts on whichever unit is at 1-1 when it is asked.
    final class Bench: @unchecked Sendable {
        let clock = VirtualClock()
        let family: McuFamily
        var bus: VirtualBus
        let journal = FileManager.default.temporaryDirectory.appendingPathComponent("dfuhop-rules-\(UUID())")
        var events: [UpgradeEvent] { lock.withLock { recorded } }
        private let lock = NSLock()
        private var recorded: [UpgradeEvent] = []

        init(_ family: McuFamily = .f407, holding version: FirmwareVersion? = FirmwareVersion(major: 1, minor: 0, patch: 0)) throws {
            self.family = family
            let unit = VirtualUnit(family: family, uid: VirtualUnit.uid(index: 1), portPath: "1-1", clock: clock)
            if let version { unit.programDirectly(flashHolding(try Self.image(family, version).segments[0].bytes), at: family.flashBase) }
            unit.powerCycle()
            unit.resetCounters()
            bus = VirtualBus(units: [unit])
        }

        deinit { try? FileManager.default.removeItem(at: journal) }

        var target: VirtualUnit { bus.unit(at: "1-1")! }

        static func image(_ family: McuFamily, _ version: FirmwareVersion, product: UInt32? = nil) throws -> FirmwareImage {
            let normalized = try DemoImage.make(family: family, version: version, size: 12 * 1024, productID: product)
            return FirmwareImage(format: .binary, segments: normalized.segments)
        }

        func image(_ version: FirmwareVersion) throws -> FirmwareImage { try Self.image(family, version) }

        var options: UpgradeEngine.Options {
            var options = UpgradeEngine.Options()
            options.unit = "1-1"
            options.family = family
            options.journal = JournalStore(directory: journal)
            options.reenumerationTimeout = .seconds(2)
            let bus = self.bus
            options.boot0 = Boot0Path(description: "virtual jig", arrivalTimeout: .seconds(2)) { request in
                guard let unit = bus.unit(at: "1-1") else { return }
                unit.setBoot0(request.action == .enterROM)
                unit.powerCycle()
                unit.setBoot0(false)
            }
            return options
        }

        func upgrade(
            _ file: FirmwareImage, options: UpgradeEngine.Options? = nil, cancelAt: (@Sendable (UpgradeEvent) -> Bool)? = nil
        ) async -> Result<UpgradeResult, UpgradeError> {
            await upgradeInOwnTask(file, source: "image.hex", options: options ?? self.options, discovery: bus, clock: clock) { event in
                self.lock.withLock { self.recorded.append(event) }
                if let cancelAt, cancelAt(event) { cancelCurrentRun() }
            }
        }

        func clearEvents() { lock.withLock { recorded.removeAll() } }
    }

    static func v(_ major: UInt16, _ minor: UInt16, _ patch: UInt16, _ build: UInt16 = 0) -> FirmwareVersion {
        FirmwareVersion(major: major, minor: minor, patch: patch, build: build)
    }

    /// `#expect` on a plain Bool: a failing `#expect` shows each operand, and a unit, a result or the flash
    /// shown in full makes a failing run (a mutant's) take minutes.
    static func expect(_ condition: Bool, _ message: @autoclosure () -> String = "", sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(condition, "\(message())", sourceLocation: sourceLocation)
    }

    /// A run's result in one line: a full result holds the plan, too long (and slow) for a failure message.
    static func text(_ result: Result<UpgradeResult, UpgradeError>) -> String {
        switch result {
        case .success(let done): "\(done.outcome.rawValue) \(done.newVersion.map { "\($0)" } ?? "-")"
        case .failure(let error): "\(error)"
        }
    }

    static func isRefusal(_ result: Result<UpgradeResult, UpgradeError>) -> Bool {
        guard case .failure(let error) = result, case .refused = error.kind else { return false }
        return true
    }

    /// Whether the flash is as it was (a Bool: `#expect` would print both megabytes when it fails).
    static func unchanged(_ unit: VirtualUnit, since before: [UInt8]) -> Bool { unit.flashContents().bytes == before }

    /// Whether the unit's flash holds exactly `file`'s bytes at the base.
    static func holds(_ unit: VirtualUnit, _ file: FirmwareImage) -> Bool {
        let bytes = file.segments[0].bytes
        return Array(unit.flashContents().bytes.prefix(bytes.count)) == bytes
    }

    // MARK: The downgrade rule compares major, minor, patch and build

    static let installed = v(1, 4, 2, 7)
    static let olderVersions = [v(1, 2, 9, 9), v(1, 3, 0, 0), v(1, 4, 1, 9), v(1, 4, 2, 6), v(0, 9, 9, 9)]

    @Test(
        "an image older in any one component (minor, patch, build as well as major) is refused, flash unchanged",
        arguments: [false, true])
    func downgradeComparesFullVersions(silent: Bool) async throws {
        let bench = try Bench()
        guard case .success = await bench.upgrade(try bench.image(Self.installed)) else { throw Failure("installing 1.4.2.7") }
        bench.target.powerCycle()
        if silent { bench.target.unplug() }
        let before = bench.target.flashContents().bytes
        for older in Self.olderVersions {
            bench.target.resetCounters()
            let result = await bench.upgrade(try bench.image(older))
            Self.expect(Self.isRefusal(result), "\(older) over \(Self.installed)\(silent ? " (silent)" : ""): \(Self.text(result))")
            Self.expect(wroteNothing(bench.target), "\(older) was written")
            Self.expect(Self.unchanged(bench.target, since: before), "\(older) changed the flash")
            if silent { bench.target.unplug() } else { bench.target.powerCycle() }
        }
    }

    @Test("an image newer in any one component is taken: the downgrade rule is not wider than the order")
    func newerInAnyComponentIsTaken() async throws {
        let bench = try Bench()
        var installed = Self.v(1, 0, 0)
        for newer in [Self.v(1, 0, 0, 1), Self.v(1, 0, 1, 0), Self.v(1, 1, 0, 0), Self.v(2, 0, 0, 0)] {
            let file = try bench.image(newer)
            let result = await bench.upgrade(file)
            guard case .success(let done) = result else { throw Failure("\(newer) over \(installed): \(Self.text(result))") }
            #expect(done.outcome == .upgraded && done.newVersion == newer, "\(newer) over \(installed)")
            Self.expect(Self.holds(bench.target, file))
            installed = newer
        }
    }

    @Test("--allow-downgrade takes an image older in the minor version")
    func allowDowngradeTakesOlderMinor() async throws {
        let bench = try Bench(holding: Self.v(1, 4, 0))
        var options = bench.options
        options.allowDowngrade = true
        let file = try bench.image(Self.v(1, 2, 0))
        guard case .success(let done) = await bench.upgrade(file, options: options) else { throw Failure("1.2.0 with --allow-downgrade") }
        #expect(done.outcome == .upgraded)
        Self.expect(Self.holds(bench.target, file))
    }

    // MARK: Up to date means the exact image: product, version, size and CRC

    /// The demo image of `version` with one payload byte changed and stamped again: same product, version
    /// and size, another CRC (another build of the same version).
    static func otherBuild(_ family: McuFamily, _ version: FirmwareVersion) throws -> FirmwareImage {
        var file = try Bench.image(family, version)
        file.targets[0].segments[0].bytes[0x1000] ^= 0x5A
        return try file.stamped(
            productID: ApplicationIdentity.demoImageProductID(for: family), version: version,
            name: "dfuhop-demo-\(family.id)", file: "other build")
    }

    @Test("another build of the installed version (same product, version, size; other CRC) is not up to date")
    func upToDateComparesTheImageCRC() async throws {
        let bench = try Bench()
        let installed = try bench.image(Self.v(1, 0, 0))
        let other = try Self.otherBuild(bench.family, Self.v(1, 0, 0))
        #expect(other.segments[0].bytes.count == installed.segments[0].bytes.count)
        #expect(other.segments[0].bytes != installed.segments[0].bytes)
        let before = bench.target.flashContents().bytes
        let refused = await bench.upgrade(other)
        Self.expect(Self.isRefusal(refused), "another build without --allow-downgrade: \(Self.text(refused))")
        Self.expect(Self.unchanged(bench.target, since: before), "the flash changed")
        var options = bench.options
        options.allowDowngrade = true
        bench.target.powerCycle()
        guard case .success(let done) = await bench.upgrade(other, options: options) else { throw Failure("another build, allowed") }
        #expect(done.outcome == .upgraded, "another build is written, not called up to date")
        Self.expect(Self.holds(bench.target, other))
        bench.target.powerCycle()
        guard case .success(let again) = await bench.upgrade(other) else { throw Failure("the same build again") }
        #expect(again.outcome == .upToDate, "the exact build it now holds is up to date")
    }

    @Test(
        "an ECC part in its ROM, whose span is not read, holds the build its descriptor names: another build of that version is refused",
        arguments: McuFamily.all.filter(\.eccFlash).map(\.id))
    func unreadSpanIsNotCorrupted(id: String) async throws {
        let family = try #require(McuFamily.named(id))
        let bench = try Bench(family)
        bench.target.setBoot0(true)
        bench.target.powerCycle() // in its ROM: no application to report the build, and only the head is read
        let other = try Self.otherBuild(family, Self.v(1, 0, 0))
        let before = bench.target.flashContents().bytes
        let refused = await bench.upgrade(other)
        Self.expect(Self.isRefusal(refused), "\(id): another build of the version its descriptor names: \(Self.text(refused))")
        Self.expect(Self.unchanged(bench.target, since: before), "\(id): the flash changed")
        var options = bench.options
        options.allowDowngrade = true
        guard case .success(let done) = await bench.upgrade(other, options: options) else { throw Failure("\(id): allowed") }
        #expect(done.outcome == .upgraded)
    }

    // MARK: What the ROM finds: blank, programmed in DFU, corrupted

    @Test("through its ROM a unit is classified blank, programmed-in-dfu or corrupted, as its flash shows")
    func classificationThroughTheROM() async throws {
        let v2 = Self.v(2, 0, 0)
        // Programmed, held in its ROM by BOOT0 at power-on: the span's CRC proves the image.
        let inDFU = try Bench()
        inDFU.target.setBoot0(true)
        inDFU.target.powerCycle()
        inDFU.target.setBoot0(false)
        guard case .success(let programmed) = await inDFU.upgrade(try inDFU.image(v2)) else { throw Failure("in DFU") }
        #expect(programmed.before.classification == .programmedInDFU)
        #expect(programmed.before.version == Self.v(1, 0, 0))
        // One byte inside the span changed: its application does not start, the CRC fails.
        let corrupted = try Bench()
        corrupted.target.programDirectly([corrupted.target.flashContents().bytes[0x1000] ^ 0x5A], at: corrupted.family.flashBase + 0x1000)
        corrupted.target.powerCycle()
        guard case .success(let broken) = await corrupted.upgrade(try corrupted.image(v2)) else { throw Failure("corrupted") }
        #expect(broken.before.classification == .corrupted)
        // Nothing in flash at all.
        let blank = try Bench(holding: nil)
        guard case .success(let empty) = await blank.upgrade(try blank.image(v2)) else { throw Failure("blank") }
        #expect(empty.before.classification == .blank)
        for (bench, expected) in [(inDFU, UnitDescription.Classification.programmedInDFU), (corrupted, .corrupted), (blank, .blank)] {
            let classified = bench.events.compactMap { if case .classified(let found) = $0 { found } else { nil } }
            #expect(classified == [expected], "the classified event: \(classified)")
        }
    }

    @Test("an erased vector table in front of data is corrupted, not blank: another product's image is refused")
    func erasedHeadInFrontOfDataIsNotBlank() async throws {
        let bench = try Bench(holding: nil)
        // Sector 0 erased (the first byte of every 64 KiB piece reads 0xFF), other firmware from 0x4000 to 64 KiB.
        let data = (0x4000..<0x10000).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 13) | 0x01 }
        bench.target.programDirectly(data, at: bench.family.flashBase + 0x4000)
        bench.target.powerCycle()
        let before = bench.target.flashContents().bytes
        let other = await bench.upgrade(try Bench.image(bench.family, Self.v(2, 0, 0), product: 0x0BAD_F00D))
        Self.expect(Self.isRefusal(other), "another product's image on a unit that is not blank: \(Self.text(other))")
        Self.expect(wroteNothing(bench.target), "it was written")
        Self.expect(Self.unchanged(bench.target, since: before), "the flash changed")
        let classified = bench.events.compactMap { if case .classified(let found) = $0 { found } else { nil } }
        #expect(classified == [.corrupted], "the ROM's finding: \(classified)")
    }

    @Test("the ROM that shows up after ENTER_BOOTLOADER is another unit (same port, a constant ROM serial): refused, neither written")
    func romOfAnotherUnitIsRefused() async throws {
        let bench = try Bench(.h753)
        let unitA = bench.target
        let unitB = VirtualUnit(family: .h753, uid: VirtualUnit.uid(index: 6), portPath: "1-1", clock: bench.clock)
        unitB.unplug()
        bench.bus = VirtualBus(units: [unitA, unitB])
        let beforeA = unitA.flashContents().bytes
        let beforeB = unitB.flashContents().bytes
        // A resets into nothing; B, held in its ROM, is plugged into the same port just before ENTER_BOOTLOADER
        // is sent (the engine already watches the bus for the ROM).
        unitA.setFaults(FaultPlan(neverReturnAfterReset: true))
        var options = bench.options
        options.boot0 = nil
        options.nonceHook = { _, nonce in
            unitB.setBoot0(true)
            unitB.plug()
            unitB.setBoot0(false)
            return nonce
        }
        let result = await bench.upgrade(try bench.image(Self.v(2, 0, 0)), options: options)
        Self.expect(Self.isRefusal(result), "a ROM with another UID: \(Self.text(result))")
        Self.expect(wroteNothing(unitB) && wroteNothing(unitA), "a unit was written")
        Self.expect(Self.unchanged(unitA, since: beforeA) && Self.unchanged(unitB, since: beforeB), "a flash changed")
    }

    @Test("a corrupted unit offered the very build its descriptor names is rewritten, not called up to date (the span CRC counts)")
    func spanCRCDecidesInstalled() async throws {
        let bench = try Bench()
        let v1 = try bench.image(Self.v(1, 0, 0))
        bench.target.programDirectly([bench.target.flashContents().bytes[0x1000] ^ 0x5A], at: bench.family.flashBase + 0x1000)
        bench.target.powerCycle()
        #expect(!Self.holds(bench.target, v1))
        guard case .success(let done) = await bench.upgrade(v1) else { throw Failure("the corrupted unit's own build") }
        #expect(done.outcome == .upgraded, "a span whose CRC fails holds no installed image")
        Self.expect(Self.holds(bench.target, v1), "the flash holds the image again")
        Self.expect(bench.target.currentMode == .application)
    }

    // MARK: The journal: the downgrade rule on the resume path, and the entry's unit proven by its UID

    /// Unit 1-1 at `holding`, its upgrade to 3.0.0 stopped once its vector-table sector is erased: the flash
    /// head then tells nothing, and only the journal entry (step "flashing") knows what the unit held.
    static func interrupted(holding: FirmwareVersion) async throws -> Bench {
        let bench = try Bench(holding: holding)
        let base = bench.family.flashBase
        let first = await bench.upgrade(try bench.image(Self.v(3, 0, 0))) { event in
            if case .flash(.sectorErased(let sector, _, _)) = event, sector.start == base { return true }
            return false
        }
        guard case .failure = first else { throw Failure("the first run should stop mid-flash: \(Self.text(first))") }
        let entry = try #require(try JournalStore(directory: bench.journal).entries().first)
        #expect(entry.step == .flashing)
        #expect(entry.oldVersion == holding.description)
        Self.expect(bench.target.flashContents().bytes.prefix(8).allSatisfy { $0 == 0xFF }, "the head reads erased")
        bench.target.powerCycle()
        bench.target.resetCounters()
        bench.clearEvents()
        return bench
    }

    @Test("resuming from an entry that exists: an image older than the entry's version (minor, patch) is refused")
    func downgradeRuleOnTheResumePath() async throws {
        for older in [Self.v(1, 2, 0), Self.v(1, 4, 0, 0), Self.v(1, 3, 9, 9)] {
            let bench = try await Self.interrupted(holding: Self.v(1, 4, 1))
            let before = bench.target.flashContents().bytes
            let result = await bench.upgrade(try bench.image(older))
            Self.expect(Self.isRefusal(result), "\(older) after an interrupted upgrade from 1.4.1: \(Self.text(result))")
            Self.expect(wroteNothing(bench.target), "\(older) was written")
            Self.expect(Self.unchanged(bench.target, since: before), "the flash changed")
            Self.expect(bench.events.contains { if case .resuming = $0 { true } else { false } }, "the entry was resumed")
        }
    }

    @Test("resuming from an entry that exists: the interrupted image, or a newer one, finishes")
    func resumeFinishesNewer() async throws {
        let bench = try await Self.interrupted(holding: Self.v(1, 4, 1))
        let file = try bench.image(Self.v(3, 0, 0))
        guard case .success(let done) = await bench.upgrade(file) else { throw Failure("resume") }
        #expect(done.newVersion == Self.v(3, 0, 0))
        Self.expect(Self.holds(bench.target, file))
        #expect(try JournalStore(directory: bench.journal).entries().isEmpty)
    }

    @Test("another unit on the interrupted unit's port is not resumed: its UID differs, the entry is kept for its own unit")
    func resumeComparesTheUID() async throws {
        let bench = try await Self.interrupted(holding: Self.v(1, 0, 0))
        let unitA = bench.target
        let keyA = Hex.string(unitA.uid)
        // A blank unit B, showing nothing, on the same port: only its ROM can tell who it is.
        let unitB = VirtualUnit(family: bench.family, uid: VirtualUnit.uid(index: 5), portPath: "1-1", clock: bench.clock)
        unitB.powerCycle()
        unitA.unplug()
        bench.bus = VirtualBus(units: [unitB])
        let file = try bench.image(Self.v(1, 0, 0))
        guard case .success(let done) = await bench.upgrade(file) else { throw Failure("unit B") }
        #expect(done.before.classification == .blank, "B is judged by its own flash")
        Self.expect(Self.holds(unitB, file))
        Self.expect(!bench.events.contains { if case .resuming = $0 { true } else { false } }, "B resumed A's entry")
        #expect(try JournalStore(directory: bench.journal).entries().map(\.uid) == [keyA], "A's entry is kept")
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }
}
