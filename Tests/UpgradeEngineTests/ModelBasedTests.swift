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
/// path (running, in DFU, corrupted, blank, silent through BOOT0, resumed after an interrupted upgrade killed
/// mid-flash with its journal entry in place, resumed at another station with no journal, a swapped unit), every
/// version relation (same build, same version of another build, older, newer, another product; versions that
/// differ in the major, minor, patch or build component), a product profile that requires signatures or none, and a stall
/// or a pulled cable at a random transfer of the first run. The oracle computes what the flash must hold
/// from the generated segments alone — not from FirmwareImage's normalisation or the plan — and judges by
/// the unit's flash bytes and request log:
/// - success: the span holds exactly the image (gaps 0xFF), the application answers with its version;
/// - refusal: not one byte of flash changed and no erase or download was sent;
/// - failure: its hint, followed (power-cycle and run again; `--assume-product` where it says so), reaches
///   success or a refusal within three more runs;
/// - never: another product's image, an older version, another build of the version the unit holds intact, or
///   an unsigned image of a product whose profile requires signatures ends up in the flash (fail closed, issues
///   20 and 26), judged from the case and the flash whatever the runs returned, and never a success;
/// - always: nothing outside the sectors of the span changed; a bystander unit received nothing.
/// The cases run in parallel chunks. `DFUHOP_MODEL_SEED=N` replays one case; `DFUHOP_MODEL_CASES=N` sets the
/// count (`scripts/model-test`); every failure prints its seed and the command that replays it.
@Suite("Model-based upgrade", .timeLimit(.minutes(15)))
struct ModelBasedTests {
    enum Path: String, CaseIterable, Sendable {
        case running
        case inDFU = "in-dfu"
        case corrupted, blank, silent, resumed
        case otherStation = "other-station"
        case swapped
    }
    enum Relation: String, CaseIterable, Sendable {
        case newer, same, older
        case otherBuild = "same-version-other-build"
        case otherProduct = "other-product"
        /// Another product, whose profile names another part line: refused even on a blank unit.
        case otherFamily = "other-family"
    }
    /// A fault in the first run, at a control transfer counted from its start.
    enum FirstRunFault: Sendable, CustomStringConvertible {
        case none
        case stall(transfer: Int, count: Int)
        case disconnect(transfer: Int)
        var description: String {
            switch self {
            case .none: "no fault"
            case .stall(let transfer, let count): "stall@\(transfer)*\(count)"
            case .disconnect(let transfer): "disconnect@\(transfer)"
            }
        }
    }
    enum Outcome: String, Sendable {
        case upgraded
        case upToDate = "up-to-date"
        case refused
        case finishedBySecondRun = "finished-by-second-run"
        /// The resumed path, its second run judged with the first run's journal entry in place.
        case refusedWithEntry = "refused, its journal entry in place"
        case finishedWithEntry = "finished, its journal entry in place"
    }

    struct Case: CustomStringConvertible, Sendable {
        var seed: UInt64
        var family: McuFamily
        var path: Path
        var relation: Relation
        var segments: [Segment]
        var oldSize: Int
        var killAtEvent: Int
        /// The product's profile requires signed packages (every case writes a bare image).
        var signing: Bool
        var fault: FirstRunFault
        /// The unit's firmware, and the image's version (`relation` says how they compare).
        var oldVersion: FirmwareVersion
        var newVersion: FirmwareVersion
        var description: String {
            "seed \(seed): \(family.id) \(path.rawValue) \(relation.rawValue) \(oldVersion.fullDescription) -> "
                + "\(newVersion.fullDescription)\(signing ? " signing-required" : "") \(fault), "
                + "segments " + segments.map { "0x\(String($0.address, radix: 16))+\($0.bytes.count)" }.joined(separator: " ")
                + " — replay: DFUHOP_MODEL_SEED=\(seed) swift test --filter ModelBasedTests"
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
        let segments = layout(family: family, random: &random)
        let oldSize = 4096 + Int(random.next() % UInt64(max(1, min(60, flash / 1024 / 4)))) * 1024
        let killAtEvent = 1 + Int(random.next() % 40)
        let signing = random.next() % 8 == 0
        let fault: FirstRunFault =
            switch random.next() % 6 {
            case 0: .stall(transfer: 1 + Int(random.next() % 60), count: random.next() % 2 == 0 ? 1 : 3)
            case 1: .disconnect(transfer: 1 + Int(random.next() % 60))
            default: .none
            }
        let (oldVersion, newVersion) = versions(relation, random: &random)
        return Case(
            seed: seed, family: family, path: path, relation: relation, segments: segments, oldSize: oldSize,
            killAtEvent: killAtEvent, signing: signing, fault: fault, oldVersion: oldVersion, newVersion: newVersion)
    }

    /// The unit's version and the image's, differing (for newer and older) in one component picked at random —
    /// major, minor, patch or build — with random lower components: a rule that compares fewer components
    /// than all four lets some older image through. A newer image is at least 2 builds past the old version,
    /// so it is newer than the resumed path's interrupted image too (`interruptedVersion`).
    static func versions(_ relation: Relation, random: inout SplitMix64) -> (FirmwareVersion, FirmwareVersion) {
        func draw(_ range: ClosedRange<UInt16>) -> UInt16 { range.lowerBound + UInt16(random.next() % UInt64(range.count)) }
        let old = [draw(1...3), draw(1...5), draw(1...5), draw(1...3)]
        let component = Int(random.next() % 4)
        var new = old
        switch relation {
        case .same, .otherBuild: break
        case .older:
            new[component] -= draw(1...old[component])
            for lower in (component + 1)..<4 { new[lower] = draw(0...9) }
        case .newer, .otherProduct, .otherFamily:
            new[component] += component == 3 ? draw(2...3) : draw(1...2)
            for lower in (component + 1)..<4 { new[lower] = draw(0...9) }
        }
        func version(_ parts: [UInt16]) -> FirmwareVersion {
            FirmwareVersion(major: parts[0], minor: parts[1], patch: parts[2], build: parts[3])
        }
        return (version(old), version(new))
    }

    /// The resumed path's first run writes this version (the old one, one build on) and is killed mid-flash, so
    /// the case's image meets a journal entry that exists.
    static func interruptedVersion(_ testCase: Case) -> FirmwareVersion {
        var version = testCase.oldVersion
        version.build += 1
        return version
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

    /// Runs one case and returns how it ended; every broken invariant is recorded with the case's seed.
    static func run(_ testCase: Case) async throws -> Outcome {
        let family = testCase.family
        let clock = VirtualClock()
        let oldImage = try DemoImage.make(family: family, version: testCase.oldVersion, size: testCase.oldSize, productID: product)
        let newVersion = testCase.newVersion
        let newProduct =
            switch testCase.relation {
            case .otherProduct: product ^ 0x10
            case .otherFamily: product ^ 0x20
            default: product
            }
        let stamped: FirmwareImage
        if testCase.relation == .same {
            stamped = FirmwareImage(format: .binary, segments: oldImage.segments)
        } else if testCase.relation == .otherBuild {
            // The old image with one byte past its descriptor changed, stamped again: same product, version and
            // size, another CRC (only the CRC tells it from the build the unit holds).
            var bytes = oldImage.segments[0].bytes
            bytes[0x100 + Int(testCase.seed % UInt64(bytes.count - 0x100))] ^= 0x5A
            stamped = try FirmwareImage(format: .binary, segments: [Segment(address: family.flashBase, bytes: bytes)])
                .stamped(productID: product, version: newVersion, name: "dfuhop-demo-\(family.id)", file: "model")
        } else {
            stamped = try FirmwareImage(format: .binary, segments: testCase.segments)
                .stamped(productID: newProduct, version: newVersion, name: "model", file: "model")
        }
        let spanSize = Int(stamped.segments.map(\.end).max()! - UInt64(family.flashBase))

        let (target, bystander) = prepareUnits(testCase, oldImage: oldImage, clock: clock)
        if testCase.path == .silent { target.unplug() }
        let before = target.flashContents().bytes
        let bystanderBefore = bystander.flashContents().bytes
        let journal = FileManager.default.temporaryDirectory.appendingPathComponent("dfuhop-model-\(testCase.seed)-\(UUID())")
        defer { try? FileManager.default.removeItem(at: journal) }
        var setup = Setup(
            bus: VirtualBus(units: [target, bystander]), journal: journal, family: family, clock: clock,
            profiles: (testCase.signing ? [signingProfile(family)] : [])
                + (testCase.relation == .otherFamily ? [otherFamilyProfile(family)] : []))
        switch testCase.fault {
        case .none: break
        case .stall(let transfer, let count): target.setFaults(FaultPlan(stallAtTransfer: transfer, stallCount: count))
        case .disconnect(let transfer): target.setFaults(FaultPlan(disconnectAtTransfer: transfer))
        }

        var result: Result<UpgradeResult, UpgradeError>
        var judgedFrom = before
        var entryExisted = false
        if testCase.path == .resumed {
            // An upgrade to the interrupted image, killed mid-flash; then the case's image meets its entry.
            let interrupted = try FirmwareImage(format: .binary, segments: testCase.segments)
                .stamped(productID: product, version: interruptedVersion(testCase), name: "interrupted", file: "interrupted")
            // Every other case is killed once the vector-table sector is erased: then only the entry tells the old version.
            let first = await killedRun(
                interrupted, setup, at: testCase.killAtEvent,
                afterErasing: testCase.killAtEvent.isMultiple(of: 2) ? family.flashBase : nil)
            target.setFaults(.none)
            if case .failure(let error) = first, !isRefusal(error) { target.powerCycle() }
            entryExisted = !(try JournalStore(directory: setup.journal).entries().isEmpty)
            judgedFrom = target.flashContents().bytes
            target.resetCounters()
            result = await upgrade(stamped, setup)
        } else if [.otherStation, .swapped].contains(testCase.path) {
            result = await killedRun(stamped, setup, at: testCase.killAtEvent)
            if case .failure(let error) = result, !isRefusal(error) {
                target.setFaults(.none)
                target.powerCycle()
                if testCase.path == .swapped {
                    return try await swapped(testCase, stamped, setup, oldImage: oldImage, bystander: bystander, spanSize: spanSize)
                }
                if testCase.path == .otherStation { setup.journal = journal.appendingPathComponent("other-station") }
                result = await upgrade(stamped, setup)
            }
        } else {
            result = await upgrade(stamped, setup)
        }
        // Every hint is a promise: power-cycle and run again, naming the unit's product where the hint says so.
        // --assume-product is what an operator does when a refusal asks for it, or when the same failure comes
        // back after a power cycle; they name the product the unit is (a blank unit's: the image's).
        var followed = 0
        var failedBefore = false
        while case .failure(let error) = result, followed < 3,
            !isRefusal(error) || (asksForProduct(error) && setup.assumedProduct == nil)
        {
            if ProcessInfo.processInfo.environment["DFUHOP_MODEL_VERBOSE"] != nil { print("run failed: \(error) — \(error.hint)") }
            target.setFaults(.none)
            target.powerCycle()
            if asksForProduct(error), isRefusal(error) || failedBefore {
                setup.assumedProduct = testCase.path == .blank ? newProduct : product
            }
            failedBefore = !isRefusal(error)
            result = await upgrade(stamped, setup)
            followed += 1
        }
        let bystanderUnchanged = same(bystander.flashContents().bytes[...], bystanderBefore[...])
        #expect(bystanderUnchanged, "the bystander's flash changed: \(testCase)")
        #expect(bystander.requestLog.isEmpty, "the bystander received requests: \(testCase)")
        let outcome = try judge(
            result, target: target, testCase, stamped.segments, spanSize: spanSize, judgedFrom: judgedFrom,
            oldImage: oldImage, followed: followed)
        guard entryExisted else { return outcome }
        return outcome == .refused ? .refusedWithEntry : .finishedWithEntry
    }

    /// What the rules forbid for this case, from its own facts and what the unit's flash held before the run
    /// that decides (`flash`), whatever dfuhop returns: another product's image (on a unit not verified blank;
    /// another part line's, anywhere), an older version, an unsigned image of a product whose profile requires
    /// signatures, and another build of the version the unit holds intact — on every path: an ECC part that does
    /// not answer has only its head read (a torn word would hang its ROM: `InROM.Depth`), and a descriptor
    /// whose span was not read counts as intact, since unknown is not corrupted.
    static func forbidden(_ testCase: Case, flash: [UInt8], oldImage: NormalizedImage) -> Bool {
        let old = oldImage.segments[0].bytes
        let holdsOldIntact = flash.count >= old.count && same(flash[0..<old.count], old[...])
        // The profile that requires signatures is the unit's product's: another product's image is unsigned
        // but has no profile, and only a verified-blank unit may take it.
        return (testCase.signing && ![.otherProduct, .otherFamily].contains(testCase.relation))
            || (testCase.path != .blank && [.older, .otherProduct].contains(testCase.relation))
            || testCase.relation == .otherFamily
            || (testCase.relation == .otherBuild && holdsOldIntact)
    }

    /// A forbidden image: not one erase or write was sent, and the flash is as it was (`flash`).
    static func expectUntouched(_ unit: VirtualUnit, flash: [UInt8], _ result: Result<UpgradeResult, UpgradeError>, _ testCase: Case) {
        let sent = wrote(unit)
        let unchanged = same(unit.flashContents().bytes[...], flash[...])
        #expect(!sent, "a forbidden image was written: \(outcomeText(result)) — \(testCase)")
        #expect(unchanged, "a forbidden image changed the flash: \(testCase)")
    }

    /// What the runs left, against what must hold whatever they returned.
    /// `judgedFrom`: the flash before the run that decides (the resumed path's second run; else the case's
    /// start). Forbidden outcomes are judged first, from the case and the flash alone.
    static func judge(
        _ result: Result<UpgradeResult, UpgradeError>, target: VirtualUnit, _ testCase: Case, _ segments: [Segment],
        spanSize: Int, judgedFrom: [UInt8], oldImage: NormalizedImage, followed: Int
    ) throws -> Outcome {
        let forbidden = forbidden(testCase, flash: judgedFrom, oldImage: oldImage)
        if forbidden {
            expectUntouched(target, flash: judgedFrom, result, testCase)
            if case .success = result { Issue.record("a forbidden image succeeded: \(outcomeText(result)) — \(testCase)") }
        }
        switch result {
        case .success:
            return try check(result, on: target, testCase, segments, spanSize: spanSize, before: judgedFrom, followed: followed)
        case .failure(let error) where isRefusal(error):
            let boot0Pin = error.description.contains("BOOT0 pin") && !testCase.family.factoryBoot0PinReachesROM
            // The resumed path's interrupted image (old + 1 build), where it was completed, is newer than the old one.
            let olderThanInterrupted = testCase.path == .resumed && testCase.relation == .same
            #expect(
                forbidden || testCase.relation == .otherBuild || boot0Pin || olderThanInterrupted,
                "refused though nothing forbids it: \(error) — \(testCase)")
            if [.running].contains(testCase.path), followed == 0 {
                #expect(target.currentMode == .application, "a unit that ran its application was not given back to it: \(testCase)")
            }
            return .refused
        case .failure(let error):
            Issue.record("still failing after following the hint \(followed) times: \(error) — \(error.hint) — \(testCase)")
            return .refused
        }
    }

    /// Another unit, running the old firmware, is put on the killed unit's port; the killed unit's entry is kept.
    static func swapped(
        _ testCase: Case, _ stamped: FirmwareImage, _ setup: Setup, oldImage: NormalizedImage, bystander: VirtualUnit, spanSize: Int
    ) async throws -> Outcome {
        let family = testCase.family
        let target = setup.bus.unit(at: "1-1")!
        let other = VirtualUnit(family: family, uid: VirtualUnit.uid(index: 7), portPath: "1-1", clock: setup.clock)
        for segment in oldImage.segments { other.programDirectly(segment.bytes, at: segment.address) }
        other.powerCycle()
        target.unplug()
        let hadEntry = (try JournalStore(directory: setup.journal).entries()).contains { $0.uid == Hex.string(target.uid) }
        var second = setup
        second.bus = VirtualBus(units: [other, bystander])
        let otherBefore = other.flashContents().bytes
        other.resetCounters()
        let result = await upgrade(stamped, second)
        if case .failure(let error) = result, isRefusal(error) {
            _ = try judge(
                result, target: other, testCase, stamped.segments, spanSize: spanSize, judgedFrom: otherBefore,
                oldImage: oldImage, followed: 0)
        } else {
            if forbidden(testCase, flash: otherBefore, oldImage: oldImage) {
                expectUntouched(other, flash: otherBefore, result, testCase)
                Issue.record("a forbidden image succeeded on the swapped unit: \(outcomeText(result)) — \(testCase)")
            }
            try check(result, on: other, testCase, stamped.segments, spanSize: spanSize, before: nil, followed: 0)
        }
        if hadEntry {
            #expect(
                try JournalStore(directory: setup.journal).entries().contains { $0.uid == Hex.string(target.uid) },
                "the killed unit's entry is kept: \(testCase)")
        }
        return .finishedBySecondRun
    }

    /// A run's result in one line (the full result holds the plan and is too long for a failure message).
    static func outcomeText(_ result: Result<UpgradeResult, UpgradeError>) -> String {
        switch result {
        case .success(let done):
            "\(done.outcome.rawValue) (before: \(done.before.classification.rawValue) \(done.before.version.map { "\($0)" } ?? "-"))"
        case .failure(let error): "\(error) — hint: \(error.hint)"
        }
    }

    /// Byte-for-byte equality at memcmp speed (debug builds compare slices element by element).
    static func same(_ a: ArraySlice<UInt8>, _ b: ArraySlice<UInt8>) -> Bool {
        a.count == b.count && a.withUnsafeBytes { x in b.withUnsafeBytes { y in memcmp(x.baseAddress!, y.baseAddress!, a.count) == 0 } }
    }

    /// The failure asks the caller to state the unit's product: the refusal says nothing tells it, or a torn
    /// word must not be read.
    static func asksForProduct(_ error: UpgradeError) -> Bool {
        if case .refused(.unknownProduct) = error.kind { return true }
        return error.nextStep == .stateProduct
    }

    static func isRefusal(_ error: UpgradeError) -> Bool {
        switch error.kind {
        case .refused, .readProtected, .untrusted: true
        default: false
        }
    }

    /// Whether the unit was sent an erase or a write.
    static func wrote(_ target: VirtualUnit) -> Bool {
        target.requestLog.contains { (request: LoggedRequest) -> Bool in
            switch request.kind {
            case .download(let block, _, _): block >= 2
            case .command(.erase), .command(.massErase), .command(.readUnprotect): true
            default: false
            }
        }
    }

    /// Success: the span holds exactly the image, the application reports the new version, and nothing
    /// outside the span's sectors changed.
    @discardableResult
    static func check(
        _ result: Result<UpgradeResult, UpgradeError>, on unit: VirtualUnit, _ testCase: Case, _ segments: [Segment],
        spanSize: Int, before: [UInt8]?, followed: Int
    ) throws -> Outcome {
        guard case .success(let outcome) = result else {
            Issue.record("the run failed: \(outcomeText(result)) — \(testCase)")
            return .refused
        }
        let flash = unit.flashContents().bytes
        let expected = expectedSpan(segments, base: testCase.family.flashBase, size: spanSize)
        let holdsImage = same(flash[0..<spanSize], expected[...])
        #expect(holdsImage, "the span does not hold exactly the image: \(testCase)")
        #expect(unit.currentMode == .application, "the unit does not run its application: \(testCase)")
        if let before {
            let layout = unit.flashMode.layout
            let spanEnd = UInt64(testCase.family.flashBase) + UInt64(spanSize)
            let lastSector = layout.sector(containing: UInt32(spanEnd - 1))!
            let untouchedFrom = Int(lastSector.end - UInt64(testCase.family.flashBase))
            let beyondUnchanged = same(flash[untouchedFrom...], before[untouchedFrom...])
            #expect(beyondUnchanged, "flash beyond the span's sectors changed: \(testCase)")
        }
        if followed > 0 || [.resumed, .otherStation, .swapped].contains(testCase.path) { return .finishedBySecondRun }
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

    /// What the runs of one case share: the bus, the station's journal, the profiles, the operator's statement.
    struct Setup: Sendable {
        var bus: VirtualBus
        var journal: URL
        var family: McuFamily
        var clock: VirtualClock
        var profiles: [ProductProfile]
        var assumedProduct: UInt32?
    }

    static func options(_ setup: Setup) -> UpgradeEngine.Options {
        var options = UpgradeEngine.Options()
        options.unit = "1-1"
        options.family = setup.family
        options.journal = JournalStore(directory: setup.journal)
        options.reenumerationTimeout = .seconds(2)
        options.profiles = setup.profiles
        options.assumedProduct = setup.assumedProduct
        let bus = setup.bus
        options.boot0 = Boot0Path(description: "virtual jig", arrivalTimeout: .seconds(2)) { request in
            guard let target = bus.unit(at: "1-1") else { return }
            #expect(request.port == "1-1", "a BOOT0 request without the unit's port")
            target.setBoot0(request.action == .enterROM)
            target.powerCycle()
            target.setBoot0(false)
        }
        return options
    }

    static func upgrade(_ file: FirmwareImage, _ setup: Setup) async -> Result<UpgradeResult, UpgradeError> {
        do throws(UpgradeError) {
            return .success(
                try await UpgradeEngine(discovery: setup.bus, clock: setup.clock).upgrade(
                    file, source: "model.hex", options: options(setup)))
        } catch {
            return .failure(error)
        }
    }

    /// The host dies at the `at`-th flash event: the upgrade's task is cancelled there.
    /// `afterErasing`: instead, once the sector starting there is erased.
    static func killedRun(
        _ file: FirmwareImage, _ setup: Setup, at: Int, afterErasing: UInt32? = nil
    ) async -> Result<UpgradeResult, UpgradeError> {
        let counter = Counter()
        let handle = TaskHandle()
        let task = Task { () -> Result<UpgradeResult, UpgradeError> in
            let engine = UpgradeEngine(discovery: setup.bus, clock: setup.clock) { event in
                if let afterErasing {
                    if case .flash(.sectorErased(let sector, _, _)) = event, sector.start == afterErasing { handle.cancel() }
                } else if case .flash = event, counter.increment() == at {
                    handle.cancel()
                }
            }
            do throws(UpgradeError) {
                return .success(try await engine.upgrade(file, source: "model.hex", options: options(setup)))
            } catch {
                return .failure(error)
            }
        }
        handle.set(task)
        return await task.value
    }

    /// A profile for the other-family relation's product on a part line other than `family` (no signing).
    static func otherFamilyProfile(_ family: McuFamily) -> ProductProfile {
        let other = McuFamily.all.first { $0.id != family.id && $0.flashBase == family.flashBase }!
        let json = """
            {"format": 1, "id": "model-other-family", "name": "Model product on \(other.id)", "family": "\(other.id)",
             "application": {"usbVendorID": "0x1209", "usbProductID": "0x0002", "hidUsagePage": "0xFFDF",
                             "hidUsage": "0x0001", "protocol": "dfuhop", "imageProductID": "0x\(Hex.digits(product ^ 0x20, width: 8))"},
             "dfu": {"usbVendorID": "0x0483", "usbProductID": "0xDF11"},
             "boot0": {"method": "prompt", "instructions": "Hold BOOT0 and replug."}, "reenumerationTimeoutMs": 2000}
            """
        // The JSON above is fixed; a failure to read it is a bug in this test.
        return try! ProductProfile.decode(Data(json.utf8), file: "model-other-family")
    }

    /// A profile for the model's product on `family` that requires signed packages (the cases write bare images).
    static func signingProfile(_ family: McuFamily) -> ProductProfile {
        let json = """
            {"format": 1, "id": "model-signed", "name": "Model product (signed)", "family": "\(family.id)",
             "application": {"usbVendorID": "0x1209", "usbProductID": "0x0001", "hidUsagePage": "0xFFDF",
                             "hidUsage": "0x0001", "protocol": "dfuhop", "imageProductID": "0x\(Hex.digits(product, width: 8))"},
             "dfu": {"usbVendorID": "0x0483", "usbProductID": "0xDF11"},
             "boot0": {"method": "prompt", "instructions": "Hold BOOT0 and replug."}, "reenumerationTimeoutMs": 2000,
             "signing": {"required": true, "publicKeys": ["11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="]}}
            """
        // The JSON above is fixed; a failure to read it is a bug in this test.
        return try! ProductProfile.decode(Data(json.utf8), file: "model-signed")
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

    static var caseCount: Int { Int(ProcessInfo.processInfo.environment["DFUHOP_MODEL_CASES"] ?? "") ?? 10_000 }
    static let chunks = 16

    /// The seeds of chunk `index` (the cases split into `chunks` parallel tests), or the one replayed.
    static func seeds(chunk index: Int) -> [UInt64] {
        let environment = ProcessInfo.processInfo.environment
        if let replay = environment["DFUHOP_MODEL_SEED"].flatMap({ UInt64($0) }) { return index == 0 ? [replay] : [] }
        let start = UInt64(environment["DFUHOP_MODEL_START"] ?? "") ?? 1
        let count = caseCount
        let per = (count + chunks - 1) / chunks
        let range = min(count, index * per)..<min(count, (index + 1) * per)
        return range.map { start &+ UInt64($0) }
    }

    @Test("every generated case keeps the invariants; the table of outcomes is printed", arguments: 0..<chunks)
    func generatedCases(chunk: Int) async throws {
        let seeds = Self.seeds(chunk: chunk)
        guard !seeds.isEmpty else { return }
        var table: [String: Int] = [:]
        let began = ContinuousClock.now
        for seed in seeds {
            let testCase = Self.makeCase(seed: seed)
            let outcome = try await Self.run(testCase)
            table["\(testCase.path.rawValue) / \(testCase.relation.rawValue) → \(outcome.rawValue)", default: 0] += 1
        }
        let seconds = (ContinuousClock.now - began).components.seconds
        var lines = [
            "model-based upgrade, chunk \(chunk): seeds \(seeds.first!)...\(seeds.last!), \(seeds.count) cases in \(seconds) s; replay one with DFUHOP_MODEL_SEED=N"
        ]
        for (row, count) in table.sorted(by: { $0.key < $1.key }) { lines.append(String(format: "  %5d  ", count) + row) }
        print(lines.joined(separator: "\n"))
    }
}
