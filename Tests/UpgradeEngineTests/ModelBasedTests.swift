import AppLink
import DeviceProfiles
import DfuSe
import FirmwareImage
import Foundation
import HexFormat
import SeededRandom
import Testing
import USBTransport
import UpgradeEngine

@testable import VirtualDevice

/// The engine against a model of what must hold, on generated cases: random image layouts (segments,
/// gaps, tails, odd lengths), prior flash holding other firmware everywhere, every family, every entry
/// path (running, in DFU, corrupted, blank, resumed after a kill, a swapped unit) and every version
/// relation. The oracle computes what the flash must hold from the generated segments alone — not from
/// FirmwareImage's normalisation or the plan — and judges by the unit's flash bytes and request log:
/// - success: the span holds exactly the image (gaps 0xFF), the application answers with its version;
/// - refusal: not one byte of flash changed and no erase or download was sent;
/// - failure: a second run finishes it;
/// - always: nothing outside the sectors of the span changed; a bystander unit received nothing.
/// `DFUHOP_MODEL_SEED=N` replays one case; `DFUHOP_MODEL_CASES=N` sets the count (`scripts/model-test`).
@Suite("Model-based upgrade", .timeLimit(.minutes(10)))
struct ModelBasedTests {
    enum Path: String, CaseIterable, Sendable {
        case running
        case inDFU = "in-dfu"
        case corrupted, blank, resumed, swapped
    }
    enum Relation: String, CaseIterable, Sendable {
        case newer, same, older
        case otherProduct = "other-product"
    }
    enum Outcome: String, Sendable {
        case upgraded
        case upToDate = "up-to-date"
        case refused
        case finishedBySecondRun = "finished-by-second-run"
    }

    struct Case: CustomStringConvertible, Sendable {
        var seed: UInt64
        var family: McuFamily
        var path: Path
        var relation: Relation
        var segments: [Segment]
        var oldSize: Int
        var killAtEvent: Int
        var description: String {
            "seed \(seed): \(family.id) \(path.rawValue) \(relation.rawValue), segments "
                + segments.map { "0x\(String($0.address, radix: 16))+\($0.bytes.count)" }.joined(separator: " ")
        }
    }

    static let product: UInt32 = 0x0DF0_7E57

    /// A case from its seed alone, so a printed seed replays it exactly.
    static func makeCase(seed: UInt64) -> Case {
        var random = SplitMix64(seed: seed)
        let family = McuFamily.all[Int(random.next() % UInt64(McuFamily.all.count))]
        let path = Path.allCases[Int(random.next() % UInt64(Path.allCases.count))]
        let relation = Relation.allCases[Int(random.next() % UInt64(Relation.allCases.count))]
        let flash = Int(family.defaultFlashMode.layout.sectors.last.map { $0.end - UInt64(family.flashBase) } ?? 0)
        return Case(
            seed: seed, family: family, path: path, relation: relation,
            segments: layout(family: family, random: &random),
            oldSize: 4096 + Int(random.next() % UInt64(max(1, min(60, flash / 1024 / 4)))) * 1024,
            killAtEvent: 1 + Int(random.next() % 40))
    }

    /// The new image's raw segments: a head with the vector table and a reserved descriptor, then up to
    /// three more segments after gaps of up to 48 KiB, odd lengths and odd offsets included.
    static func layout(family: McuFamily, random: inout SplitMix64) -> [Segment] {
        let base = family.flashBase
        func le(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }
        var head = le(UInt32(truncatingIfNeeded: family.ramRegions[0].end)) + le(base + 0x101)
        for _ in 2..<8 { head += le(base + 0x181) }
        head += le(base + 0x40)
        for _ in 9..<16 { head += le(base + 0x181) }
        head += [UInt8](repeating: 0, count: 64)
        head += (0..<(0x200 + Int(random.next() % 6000))).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        var segments = [Segment(address: base, bytes: head)]
        var cursor = UInt64(base) + UInt64(head.count)
        // Spans stay within the part's flash, and within the 192 KiB of prior firmware the units hold.
        let flashEnd = family.defaultFlashMode.layout.sectors.last?.end ?? UInt64(base)
        let limit = min(flashEnd, UInt64(base) + 192 * 1024)
        let maxGap = max(UInt64(1), (limit - cursor) / 8)
        for _ in 0..<Int(random.next() % 4) {
            let length = 1 + Int(random.next() % 5000)
            let gap = 1 + random.next() % maxGap
            guard cursor + gap + UInt64(length) <= limit else { break }
            cursor += gap
            segments.append(Segment(address: UInt32(cursor), bytes: (0..<length).map { _ in UInt8(truncatingIfNeeded: random.next()) }))
            cursor += UInt64(length)
        }
        return segments
    }

    /// What the flash must hold over the image's span, from the raw segments: 0xFF, then each segment.
    static func expectedSpan(_ segments: [Segment], base: UInt32, size: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0xFF, count: size)
        for segment in segments {
            let offset = Int(segment.address - base)
            bytes.replaceSubrange(offset..<offset + segment.bytes.count, with: segment.bytes)
        }
        return bytes
    }

    /// Runs one case and returns how it ended; throws an `Issue`-recorded failure through `#expect`.
    static func run(_ testCase: Case) async throws -> Outcome {
        let family = testCase.family
        let clock = VirtualClock()
        let oldVersion = FirmwareVersion(major: 1, minor: 4, patch: 0)
        let oldImage = try DemoImage.make(family: family, version: oldVersion, size: testCase.oldSize, productID: product)
        let newVersion: FirmwareVersion =
            switch testCase.relation {
            case .newer, .otherProduct: FirmwareVersion(major: 2, minor: 0, patch: 1)
            case .older: FirmwareVersion(major: 1, minor: 2, patch: 0)
            case .same: oldVersion
            }
        let newProduct = testCase.relation == .otherProduct ? product ^ 0x10 : product
        let stamped: FirmwareImage
        if testCase.relation == .same {
            stamped = FirmwareImage(format: .binary, segments: oldImage.segments)
        } else {
            stamped = try FirmwareImage(format: .binary, segments: testCase.segments)
                .stamped(productID: newProduct, version: newVersion, name: "model", file: "model")
        }
        let stampedSegments = stamped.segments
        let base = family.flashBase
        let spanSize = Int(stampedSegments.map(\.end).max()! - UInt64(base))

        let (target, bystander) = prepareUnits(testCase, oldImage: oldImage, clock: clock)
        let before = target.flashContents().bytes
        let bystanderBefore = bystander.flashContents().bytes
        let journal = FileManager.default.temporaryDirectory.appendingPathComponent("dfuhop-model-\(testCase.seed)-\(UUID())")
        defer { try? FileManager.default.removeItem(at: journal) }

        var bus = VirtualBus(units: [target, bystander])
        var first: Result<UpgradeResult, UpgradeError>
        if testCase.path == .resumed || testCase.path == .swapped {
            first = await killedRun(stamped, bus: bus, journal: journal, family: family, clock: clock, at: testCase.killAtEvent)
            if case .failure(let error) = first, !isRefusal(error) {
                target.powerCycle()
                if testCase.path == .swapped {
                    // Another unit, running the old firmware, is put on the killed unit's port.
                    let other = VirtualUnit(family: family, uid: VirtualUnit.uid(index: 7), portPath: "1-1", clock: clock)
                    for segment in oldImage.segments { other.programDirectly(segment.bytes, at: segment.address) }
                    other.powerCycle()
                    target.unplug()
                    let hadEntry = (try JournalStore(directory: journal).entries()).contains { $0.uid == Hex.string(target.uid) }
                    bus = VirtualBus(units: [other, bystander])
                    let second = await upgrade(stamped, bus: bus, journal: journal, family: family, clock: clock)
                    try check(second, on: other, testCase, stampedSegments, spanSize: spanSize, before: nil)
                    let entries = try JournalStore(directory: journal).entries()
                    if hadEntry {
                        #expect(entries.contains { $0.uid == Hex.string(target.uid) }, "the killed unit's entry is kept: \(testCase)")
                    }
                    return .finishedBySecondRun
                }
            }
        } else {
            first = await upgrade(stamped, bus: bus, journal: journal, family: family, clock: clock)
        }
        #expect(same(bystander.flashContents().bytes[...], bystanderBefore[...]), "the bystander's flash changed: \(testCase)")
        #expect(bystander.requestLog.isEmpty, "the bystander received requests: \(testCase)")
        if case .failure(let error) = first, isRefusal(error) {
            return try checkRefusal(error, target: target, before: before, testCase)
        }
        if case .failure(let error) = first {
            if ProcessInfo.processInfo.environment["DFUHOP_MODEL_VERBOSE"] != nil { print("first run: \(error) — \(testCase)") }
            target.powerCycle()
            let second = await upgrade(stamped, bus: bus, journal: journal, family: family, clock: clock)
            try check(second, on: target, testCase, stampedSegments, spanSize: spanSize, before: before)
            return .finishedBySecondRun
        }
        return try check(first, on: target, testCase, stampedSegments, spanSize: spanSize, before: before)
    }

    /// Byte-for-byte equality at memcmp speed (debug builds compare slices element by element).
    static func same(_ a: ArraySlice<UInt8>, _ b: ArraySlice<UInt8>) -> Bool {
        a.count == b.count && a.withUnsafeBytes { x in b.withUnsafeBytes { y in memcmp(x.baseAddress!, y.baseAddress!, a.count) == 0 } }
    }

    static func isRefusal(_ error: UpgradeError) -> Bool {
        switch error.kind {
        case .refused, .readProtected: true
        default: false
        }
    }

    /// A refusal wrote nothing, sent nothing destructive, and is what the relation calls for.
    static func checkRefusal(_ error: UpgradeError, target: VirtualUnit, before: [UInt8], _ testCase: Case) throws -> Outcome {
        let wrote = target.requestLog.contains { (request: LoggedRequest) -> Bool in
            switch request.kind {
            case .download(let block, _, _): block >= 2
            case .command(.erase), .command(.massErase), .command(.readUnprotect): true
            default: false
            }
        }
        #expect(!wrote, "a refusal sent an erase or a write: \(testCase)")
        #expect(same(target.flashContents().bytes[...], before[...]), "a refusal changed the flash: \(testCase)")
        let expectedRefusal =
            // A corrupted unit's descriptor still names its product and version (issue 20): its rules hold too.
            ([.older, .otherProduct].contains(testCase.relation)
                && [.running, .inDFU, .resumed, .swapped, .corrupted].contains(testCase.path))
            || (testCase.path == .corrupted && !testCase.family.factoryBoot0PinReachesROM && error.description.contains("BOOT0 pin"))
        #expect(expectedRefusal, "refused though nothing forbids it: \(error) — \(testCase)")
        if [.running, .resumed].contains(testCase.path) {
            #expect(target.currentMode == .application, "a unit that ran its application was not given back to it: \(testCase)")
        }
        return .refused
    }

    /// Success: the span holds exactly the image, the application reports the new version, and nothing
    /// outside the span's sectors changed.
    @discardableResult
    static func check(
        _ result: Result<UpgradeResult, UpgradeError>, on unit: VirtualUnit, _ testCase: Case, _ segments: [Segment],
        spanSize: Int, before: [UInt8]?
    ) throws -> Outcome {
        guard case .success(let outcome) = result else {
            if case .failure(let error) = result, isRefusal(error), [.older, .otherProduct].contains(testCase.relation) {
                return .refused
            }
            Issue.record("the run failed: \(result) — \(testCase)")
            return .refused
        }
        let flash = unit.flashContents().bytes
        let expected = expectedSpan(segments, base: testCase.family.flashBase, size: spanSize)
        #expect(same(flash[0..<spanSize], expected[...]), "the span does not hold exactly the image: \(testCase)")
        #expect(unit.currentMode == .application, "the unit does not run its application: \(testCase)")
        if let before {
            let layout = unit.flashMode.layout
            let spanEnd = UInt64(testCase.family.flashBase) + UInt64(spanSize)
            let lastSector = layout.sector(containing: UInt32(spanEnd - 1))!
            let untouchedFrom = Int(lastSector.end - UInt64(testCase.family.flashBase))
            #expect(same(flash[untouchedFrom...], before[untouchedFrom...]), "flash beyond the span's sectors changed: \(testCase)")
        }
        return outcome.outcome == .upToDate ? .upToDate : .upgraded
    }

    static func prepareUnits(_ testCase: Case, oldImage: NormalizedImage, clock: VirtualClock) -> (VirtualUnit, VirtualUnit) {
        let family = testCase.family
        var random = SplitMix64(seed: testCase.seed ^ 0xA5A5)
        let units = (1...2).map { VirtualUnit(family: family, uid: VirtualUnit.uid(index: $0), portPath: "1-\($0)", clock: clock) }
        for unit in units {
            // Other firmware everywhere in the first 192 KiB (past every span), then the old image over it.
            let flashSize = Int(family.defaultFlashMode.layout.sectors.last.map { $0.end - UInt64(family.flashBase) } ?? 0)
            var bytes = [UInt8](repeating: 0, count: min(192 * 1024, flashSize))
            for index in stride(from: 0, to: bytes.count, by: 8) {
                withUnsafeBytes(of: random.next() | 0x0101_0101_0101_0101) { bytes.replaceSubrange(index..<index + 8, with: $0) }
            }
            let old = oldImage.segments[0]
            bytes.replaceSubrange(0..<old.bytes.count, with: old.bytes)
            if unit === units[0] {
                switch testCase.path {
                case .corrupted: bytes[old.bytes.count - 9] ^= 0x5A
                case .blank: bytes = []
                default: break
                }
            }
            if !bytes.isEmpty { unit.programDirectly(bytes, at: family.flashBase) }
            unit.powerCycle()
        }
        if testCase.path == .inDFU {
            units[0].setBoot0(true)
            units[0].powerCycle()
            units[0].setBoot0(false)
        }
        for unit in units { unit.resetCounters() }
        return (units[0], units[1])
    }

    static func options(_ bus: VirtualBus, journal: URL, family: McuFamily) -> UpgradeEngine.Options {
        var options = UpgradeEngine.Options()
        options.unit = "1-1"
        options.family = family
        options.journal = JournalStore(directory: journal)
        options.reenumerationTimeout = .seconds(2)
        options.boot0 = Boot0Path(description: "virtual jig", arrivalTimeout: .seconds(2)) { request in
            guard let target = bus.unit(at: "1-1") else { return }
            #expect(request.port == "1-1", "a BOOT0 request without the unit's port")
            target.setBoot0(request.action == .enterROM)
            target.powerCycle()
            target.setBoot0(false)
        }
        return options
    }

    static func upgrade(
        _ file: FirmwareImage, bus: VirtualBus, journal: URL, family: McuFamily,
        clock: VirtualClock
    ) async -> Result<UpgradeResult, UpgradeError> {
        do throws(UpgradeError) {
            return .success(
                try await UpgradeEngine(discovery: bus, clock: clock)
                    .upgrade(file, source: "model.hex", options: options(bus, journal: journal, family: family)))
        } catch {
            return .failure(error)
        }
    }

    /// The host dies at the `at`-th flash event: the upgrade's task is cancelled there.
    static func killedRun(
        _ file: FirmwareImage, bus: VirtualBus, journal: URL, family: McuFamily, clock: VirtualClock,
        at: Int
    ) async -> Result<UpgradeResult, UpgradeError> {
        let counter = Counter()
        let handle = TaskHandle()
        let task = Task { () -> Result<UpgradeResult, UpgradeError> in
            let engine = UpgradeEngine(discovery: bus, clock: clock) { event in
                if case .flash = event, counter.increment() == at { handle.cancel() }
            }
            do throws(UpgradeError) {
                return .success(
                    try await engine.upgrade(file, source: "model.hex", options: options(bus, journal: journal, family: family)))
            } catch {
                return .failure(error)
            }
        }
        handle.set(task)
        return await task.value
    }

    final class TaskHandle: @unchecked Sendable {
        private let lock = NSLock()
        private var cancelled = false
        private var canceller: (@Sendable () -> Void)?
        func set<T: Sendable>(_ task: Task<T, Never>) {
            lock.withLock {
                canceller = { task.cancel() }
                if cancelled { task.cancel() }
            }
        }
        func cancel() {
            lock.withLock {
                cancelled = true
                canceller?()
            }
        }
    }

    final class Counter: @unchecked Sendable {
        private let lock = NSLock()
        private var count = 0
        func increment() -> Int {
            lock.withLock {
                count += 1
                return count
            }
        }
    }

    static var caseCount: Int { Int(ProcessInfo.processInfo.environment["DFUHOP_MODEL_CASES"] ?? "") ?? 2000 }

    @Test("every generated case keeps the invariants; the table of outcomes is printed")
    func generatedCases() async throws {
        let environment = ProcessInfo.processInfo.environment
        let seeds: [UInt64]
        if let replay = environment["DFUHOP_MODEL_SEED"].flatMap({ UInt64($0) }) {
            seeds = [replay]
        } else {
            let start = UInt64(environment["DFUHOP_MODEL_START"] ?? "") ?? 1
            seeds = (0..<UInt64(Self.caseCount)).map { start &+ $0 }
        }
        var table: [String: Int] = [:]
        let began = ContinuousClock.now
        for seed in seeds {
            let testCase = Self.makeCase(seed: seed)
            let outcome = try await Self.run(testCase)
            table["\(testCase.path.rawValue) / \(testCase.relation.rawValue) → \(outcome.rawValue)", default: 0] += 1
        }
        let seconds = (ContinuousClock.now - began).components.seconds
        print(
            "model-based upgrade: \(seeds.count) cases in \(seconds) s (\(seconds > 0 ? seeds.count / Int(seconds) : seeds.count) cases/s); "
                + "replay one with DFUHOP_MODEL_SEED=N")
        for (row, count) in table.sorted(by: { $0.key < $1.key }) { print(String(format: "  %5d  ", count) + row) }
    }
}
