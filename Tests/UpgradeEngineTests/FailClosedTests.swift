import DeviceProfiles
import FirmwareImage
import Foundation
import HexFormat
import SeededRandom
import Testing
import USBTransport
import UpgradeEngine

@testable import VirtualDevice

/// Issue 20's findings, each reproduced from outside and judged by the unit's own flash: what dfuhop cannot
/// prove about a unit never widens what it writes (docs/guarantees.md, "fail closed").
@Suite("Fail closed: knowing less never allows more")
struct FailClosedTests {
    static let otherProduct: UInt32 = 0x0BAD_F00D

    /// A target at 1-1 holding v1 of the demo product (a bystander at 1-2), a journal of its own, and images.
    final class Bench: @unchecked Sendable {
        let clock = VirtualClock()
        let family: McuFamily
        let target: VirtualUnit
        let bus: VirtualBus
        let journal = FileManager.default.temporaryDirectory.appendingPathComponent("dfuhop-failclosed-\(UUID())")

        init(_ family: McuFamily = .g474) throws {
            self.family = family
            (target, _, bus) = try FaultCampaignTests.bench(family, clock: clock)
        }

        deinit { try? FileManager.default.removeItem(at: journal) }

        func image(_ major: UInt16, product: UInt32? = nil) throws -> FirmwareImage {
            let normalized = try DemoImage.make(
                family: family, version: FirmwareVersion(major: major, minor: 0, patch: 0), size: 12 * 1024, productID: product)
            return FirmwareImage(format: .binary, segments: normalized.segments)
        }

        var options: UpgradeEngine.Options {
            var options = FaultCampaignTests.options(bus, journal: journal)
            options.family = family
            return options
        }

        /// Nothing on the bus: a unit whose application does not run, reached only through BOOT0.
        func silence() { target.unplug() }

        func upgrade(
            _ file: FirmwareImage, options: UpgradeEngine.Options? = nil, cancelAt: (@Sendable (UpgradeEvent) -> Bool)? = nil
        ) async -> Result<UpgradeResult, UpgradeError> {
            await upgradeInOwnTask(file, source: "image.hex", options: options ?? self.options, discovery: bus, clock: clock) { event in
                if let cancelAt, cancelAt(event) { cancelCurrentRun() }
            }
        }
    }

    static func isRefusal(_ result: Result<UpgradeResult, UpgradeError>) -> Bool {
        guard case .failure(let error) = result else { return false }
        switch error.kind {
        case .refused, .untrusted: return true
        default: return false
        }
    }

    /// The refusal's reason, nil for anything else.
    static func reason(_ result: Result<UpgradeResult, UpgradeError>) -> Refusal? {
        guard case .failure(let error) = result, case .refused(let reason) = error.kind else { return nil }
        return reason
    }

    /// A downgrade refusal from `from` to `to` (major versions).
    static func isDowngrade(_ result: Result<UpgradeResult, UpgradeError>, from: UInt16, to: UInt16) -> Bool {
        guard case .downgrade(_, let held, let given, _)? = reason(result) else { return false }
        return held.major == from && given.major == to
    }

    // MARK: 1. A read that fails during the inspection is read again, and never makes a unit "corrupted"

    static let stalledInspection: [(transfer: Int, count: Int)] = (1...40).flatMap { [($0, 1), ($0, 3)] }

    @Test(
        "a stall while a silent unit's ROM is read: an older or another product's image is refused, flash unchanged",
        arguments: stalledInspection)
    func stallDuringInspection(transfer: Int, count: Int) async throws {
        for image in [(0 as UInt16, nil as UInt32?), (2, Self.otherProduct)] {
            let bench = try Bench()
            let before = bench.target.flashContents().bytes
            bench.silence()
            bench.target.setFaults(FaultPlan(stallAtTransfer: transfer, stallCount: count))
            var options = bench.options
            options.writeOptionBytes = true
            let result = await bench.upgrade(try bench.image(image.0, product: image.1), options: options)
            if case .success(let done) = result { Issue.record("stall at \(transfer)×\(count): \(done.outcome) \(image)") }
            #expect(wroteNothing(bench.target), "stall at \(transfer)×\(count) wrote")
            #expect(bench.target.flashContents().bytes == before, "stall at \(transfer)×\(count) changed the flash")
        }
    }

    @Test("a ROM entered from the application that shows a flash layout dfuhop cannot read: refused, nothing written")
    func unreadableROMLayoutIsRefused() async throws {
        let clock = VirtualClock()
        let unit = VirtualUnit(
            family: .g474, uid: VirtualUnit.uid(index: 1), portPath: "1-1", clock: clock,
            firmwareLayout: "@Internal Flash  /0x08000000/not*a*layout")
        let image = try UpgradeEngineTests.image(.g474, 1)
        for segment in image.segments { unit.programDirectly(segment.bytes, at: segment.address) }
        unit.powerCycle()
        unit.resetCounters()
        let before = unit.flashContents().bytes
        do {
            _ = try await UpgradeEngine(discovery: VirtualBus(units: [unit]), clock: clock).upgrade(
                try UpgradeEngineTests.image(.g474, 2), source: "v2")
            Issue.record("the upgrade went ahead on a guessed layout")
        } catch let error as UpgradeError {
            guard case .romLayoutUnreadable(let port, _)? = error.kind.refusal else {
                Issue.record("refused as \(error.kind), not as the ROM's unreadable layout")
                return
            }
            #expect(port == "1-1")
            #expect(error.hint.contains("nothing was written"), "\(error.hint)")
        }
        #expect(!unit.requestLog.contains { $0.isDestructive }, "an erase or write was sent")
        #expect(unit.flashContents().bytes == before)
    }

    @Test("after a stall during the inspection, the same unit takes a newer build of its own product")
    func stallThenNewer() async throws {
        let bench = try Bench()
        bench.silence()
        bench.target.setFaults(FaultPlan(stallAtTransfer: 20, stallCount: 3))
        let result = await bench.upgrade(try bench.image(2))
        guard case .success(let done) = result else { throw Failure("\(result)") }
        #expect(done.outcome == .upgraded && done.newVersion == FirmwareVersion(major: 2, minor: 0, patch: 0))
    }

    // MARK: 2a. A journal entry that knows little removes no rule

    @Test("a cable pulled during the first run's inspection: the second run still refuses the older image", arguments: [5, 12, 21, 30, 45])
    func pulledDuringInspection(transfer: Int) async throws {
        let bench = try Bench()
        let before = bench.target.flashContents().bytes
        bench.target.setBoot0(true)
        bench.target.powerCycle()
        bench.target.resetCounters()
        bench.target.setFaults(FaultPlan(disconnectAtTransfer: transfer))
        let older = try bench.image(0)
        _ = await bench.upgrade(older)
        bench.target.setFaults(.none)
        bench.target.powerCycle() // BOOT0 still held: back in its ROM
        let second = await bench.upgrade(older)
        #expect(Self.isRefusal(second), "pulled at \(transfer): \(second)")
        #expect(bench.target.flashContents().bytes == before)
    }

    // MARK: 2b. An entry found by port that its unit cannot prove stays, and decides nothing

    @Test("a silent unit that never came back leaves a port entry; another product's image is then refused, no write recorded")
    func neverReturnedThenOtherProduct() async throws {
        let bench = try Bench()
        let before = bench.target.flashContents().bytes
        bench.silence()
        bench.target.setFaults(FaultPlan(neverReturnAfterReset: true))
        let first = await bench.upgrade(try bench.image(2))
        guard case .failure = first else { throw Failure("the first run should fail: \(first)") }
        bench.target.setFaults(.none)
        bench.silence()
        let second = await bench.upgrade(try bench.image(3, product: Self.otherProduct))
        #expect(Self.isRefusal(second), "\(second)")
        #expect(bench.target.flashContents().bytes == before)
        let entries = try JournalStore(directory: bench.journal).entries()
        #expect(entries.allSatisfy { $0.step == .planned || $0.step == .inROM }, "\(entries.map { "\($0.key) \($0.step)" })")
    }

    // MARK: 3. Judged against what the unit holds now

    @Test("interrupted after verify at 3.0.0: a second run with 2.0.0 is refused as older than 3.0.0")
    func interruptedAfterVerify() async throws {
        let bench = try Bench()
        let first = await bench.upgrade(try bench.image(3)) { event in
            if case .phaseStarted(.leave) = event { return true }
            return false
        }
        guard case .failure = first else { throw Failure("the first run should stop before leave: \(first)") }
        let entry = try JournalStore(directory: bench.journal).entries().first
        #expect(entry?.step == .verified)
        let after = bench.target.flashContents().bytes
        bench.target.powerCycle()
        let second = await bench.upgrade(try bench.image(2))
        #expect(Self.isDowngrade(second, from: 3, to: 2), "\(second)")
        #expect(bench.target.flashContents().bytes == after)
    }

    @Test("interrupted here, finished to 3.0.0 at another station, back silent: 2.0.0 is refused as older than 3.0.0")
    func finishedElsewhereComesBackSilent() async throws {
        let bench = try Bench()
        // Station A: the write is under way (its entry says "flashing", with 1.0.0 before) when power is lost.
        bench.target.setFaults(FaultPlan(powerLossAtFlashOperation: 2))
        _ = await bench.upgrade(try bench.image(3))
        #expect(try JournalStore(directory: bench.journal).entries().first?.step == .flashing)
        bench.target.setFaults(.none)
        bench.target.powerCycle()
        // Station B finishes it.
        var stationB = bench.options
        stationB.journal = JournalStore(directory: bench.journal.appendingPathComponent("station-b"))
        guard case .success = await bench.upgrade(try bench.image(3), options: stationB) else { throw Failure("station B failed") }
        let after = bench.target.flashContents().bytes
        // Back at station A, showing nothing: its entry still says 1.0.0, but the flash says 3.0.0.
        bench.silence()
        let result = await bench.upgrade(try bench.image(2))
        #expect(Self.isDowngrade(result, from: 3, to: 2), "\(result)")
        #expect(bench.target.flashContents().bytes == after)
    }

    // MARK: 4. A corrupted unit's own product counts

    @Test("a corrupted unit whose descriptor names its product refuses another product's image, even with --family")
    func corruptedKeepsItsProduct() async throws {
        for family in [McuFamily.g474, .f407] {
            let bench = try Bench(family)
            // One byte inside v1's span changed: its CRC fails, its application does not start.
            let address = family.flashBase + 0x1000
            let byte = bench.target.flashContents().bytes[0x1000]
            bench.target.programDirectly([byte ^ 0x5A], at: address)
            bench.target.powerCycle()
            let before = bench.target.flashContents().bytes
            let other = await bench.upgrade(try bench.image(2, product: Self.otherProduct))
            guard case .otherProduct(_, Self.otherProduct, let unit, _)? = Self.reason(other) else {
                throw Failure("\(family.id): expected another product's refusal, got \(other)")
            }
            #expect(unit != Self.otherProduct)
            let older = await bench.upgrade(try bench.image(0))
            #expect(Self.isDowngrade(older, from: 1, to: 0), "\(family.id): \(older)")
            #expect(bench.target.flashContents().bytes == before)
            let own = await bench.upgrade(try bench.image(2))
            guard case .success(let done) = own else { throw Failure("\(family.id): \(own)") }
            #expect(done.outcome == .upgraded)
        }
    }

    // MARK: 5. A torn ECC word and no journal here: never read, and finished

    @Test(
        "power lost at flash operation 2 at one station; another station with no journal finishes it", arguments: ["l476", "g474", "h753"])
    func tornAtAnotherStation(familyID: String) async throws {
        let bench = try Bench(McuFamily.named(familyID)!)
        let v2 = try bench.image(2)
        bench.target.setFaults(FaultPlan(powerLossAtFlashOperation: 2))
        _ = await bench.upgrade(v2)
        bench.target.setFaults(.none)
        bench.target.powerCycle()
        var elsewhere = bench.options
        elsewhere.journal = JournalStore(directory: bench.journal.appendingPathComponent("other-station"))
        var result = await bench.upgrade(v2, options: elsewhere)
        if case .failure(let error) = result {
            // A torn word in what must be read hangs the ROM: the hint names the way that reads no flash.
            #expect(error.nextStep == .stateProduct, "\(familyID): \(error) — \(error.hint)")
            bench.target.powerCycle()
            elsewhere.assumedProduct = ApplicationIdentity.demoImageProductID(for: bench.family)
            result = await bench.upgrade(v2, options: elsewhere)
        }
        guard case .success(let done) = result else { throw Failure("\(familyID): \(result)") }
        #expect(done.newVersion == FirmwareVersion(major: 2, minor: 0, patch: 0))
        #expect(bench.target.corruptedWords.isEmpty)
    }

    @Test(
        "an operator statement reads no flash: the run writes without touching a torn word, and is refused if the image is another product's"
    )
    func assumedProduct() async throws {
        let bench = try Bench(.l476)
        bench.target.setFaults(FaultPlan(powerLossAtFlashOperation: 2))
        _ = await bench.upgrade(try bench.image(2))
        bench.target.setFaults(.none)
        bench.target.powerCycle()
        var statement = bench.options
        statement.journal = JournalStore(directory: bench.journal.appendingPathComponent("other-station"))
        statement.assumedProduct = Self.otherProduct
        let wrong = await bench.upgrade(try bench.image(2), options: statement)
        #expect(Self.isRefusal(wrong), "\(wrong)")
        statement.assumedProduct = ApplicationIdentity.demoImageProductID(for: .l476)
        let right = await bench.upgrade(try bench.image(2), options: statement)
        guard case .success = right else { throw Failure("\(right)") }
    }

    // MARK: 6. --force-full with the exact build the unit holds

    @Test("--force-full rewrites the exact build the unit holds instead of calling it another build")
    func forceFullSameBuild() async throws {
        let bench = try Bench()
        var options = bench.options
        options.forceFull = true
        let result = await bench.upgrade(try bench.image(1), options: options)
        guard case .success(let done) = result else { throw Failure("\(result)") }
        #expect(done.outcome == .upgraded)
    }

    // MARK: Signing on the reading that is flashed (issue 21)

    @Test("one file whose data starts off a word reads as two products: refused as ambiguous")
    func twoReadings() throws {
        let file = try Self.twoReadingImage()
        #expect(UpgradeEngine.descriptorReading(file, granularity: 2)?.productID == Self.otherProduct)
        #expect(UpgradeEngine.descriptorReading(file, granularity: 8)?.productID == 0x0DF0_0474)
        #expect(throws: UpgradeError.self) {
            try UpgradeEngine.checkSingleReading(file, flashed: UpgradeEngine.descriptorReading(file, granularity: 8), source: "decoy.hex")
        }
        let plain = try Bench().image(2)
        try UpgradeEngine.checkSingleReading(plain, flashed: UpgradeEngine.descriptorReading(plain, granularity: 8), source: "plain.hex")
    }

    @Test("an unsigned image of a product whose profile requires signatures is refused on every path; the station policy refuses any")
    func signingPolicy() async throws {
        for silent in [false, true] {
            let bench = try Bench()
            let before = bench.target.flashContents().bytes
            if silent { bench.silence() }
            var options = bench.options
            options.profiles = [try Self.signingProfile()]
            let refused = await bench.upgrade(try bench.image(2), options: options)
            guard case .failure(let error) = refused, case .untrusted = error.kind else { throw Failure("\(refused)") }
            options.profiles = []
            options.signing.stationRequiresSignature = true
            let station = await bench.upgrade(try bench.image(2), options: options)
            guard case .failure(let stationError) = station, case .untrusted = stationError.kind else { throw Failure("\(station)") }
            #expect(bench.target.flashContents().bytes == before)
        }
    }

    /// The signing decision as a property (issue 21): random part lines, images whose data starts at 0 to 6
    /// bytes past the flash base, read as one product or as two (the signing product on the flashed reading or
    /// on the other), written to a blank unit (where the image alone decides). Judged by what the unit's own flash
    /// holds afterwards: never an image of the product whose profile requires signatures.
    @Test("no unsigned image of a signing product ever reaches the flash, whichever reading the part makes", arguments: 0..<8)
    func signingProperty(chunk: Int) async throws {
        var random = SplitMix64(seed: 0x5161_0000 &+ UInt64(chunk))
        var accepted = 0
        for _ in 0..<24 {
            let family = McuFamily.all[Int(random.next() % UInt64(McuFamily.all.count))]
            let signingProduct: UInt32 = 0x0DF0_0474
            let offset = [0, 2, 4, 6][Int(random.next() % 4)]
            let shape = random.next() % 4
            let file: FirmwareImage
            switch shape {
            case 0: file = try Self.readingsImage(family, offset: offset, aligned: signingProduct, shifted: Self.otherProduct)
            case 1: file = try Self.readingsImage(family, offset: offset, aligned: Self.otherProduct, shifted: signingProduct)
            case 2: file = try Self.plainImage(family, offset: offset, product: signingProduct)
            default: file = try Self.plainImage(family, offset: offset, product: Self.otherProduct)
            }
            let clock = VirtualClock()
            let unit = VirtualUnit(family: family, uid: VirtualUnit.uid(index: 1), portPath: "1-1", clock: clock)
            unit.powerCycle()
            let bus = VirtualBus(units: [unit])
            let journal = FileManager.default.temporaryDirectory.appendingPathComponent("dfuhop-signing-\(UUID())")
            defer { try? FileManager.default.removeItem(at: journal) }
            var options = FaultCampaignTests.options(bus, journal: journal)
            options.family = family
            options.profiles = [try Self.signingProfile(family: family)]
            let result: Result<UpgradeResult, UpgradeError>
            do throws(UpgradeError) {
                result = .success(try await UpgradeEngine(discovery: bus, clock: clock).upgrade(file, source: "p.hex", options: options))
            } catch { result = .failure(error) }
            let flashed = try? ImageDescriptor.validate(unit.flashContents(), base: family.flashBase, source: "flash")
            #expect(flashed?.productID != signingProduct, "\(family.id) offset \(offset) shape \(shape): \(result)")
            if case .success = result { accepted += 1 }
        }
        // Not vacuous: the plain images of the product without a profile, at least, are written.
        #expect(accepted > 0)
    }

    /// A stamped image of `product` whose data starts `offset` bytes past the family's flash base.
    static func plainImage(_ family: McuFamily, offset: Int, product: UInt32) throws -> FirmwareImage {
        let image = try DemoImage.make(family: family, version: FirmwareVersion(major: 2, minor: 0, patch: 0), size: 4096)
        let base = family.flashBase + UInt32(offset)
        var bytes = image.segments[0].bytes
        // Word 8 moves with the table: it points at a word-aligned descriptor area past the (shifted) table.
        let pointer = family.flashBase + 0x48
        for index in 0..<4 { bytes[0x20 + index] = UInt8(truncatingIfNeeded: pointer >> (8 * index)) }
        for index in 0..<64 { bytes[Int(pointer - base) + index] = 0xFF }
        return try FirmwareImage(format: .binary, segments: [Segment(address: base, bytes: bytes)])
            .stamped(productID: product, version: FirmwareVersion(major: 2, minor: 0, patch: 0), name: "p", file: "p")
    }

    /// Data from base + `offset` that reads as `aligned` once padded down to the base, and as `shifted` where the
    /// part writes from base + `offset` (word 8 of each table points at a descriptor of its own).
    static func readingsImage(_ family: McuFamily, offset: Int, aligned: UInt32, shifted: UInt32) throws -> FirmwareImage {
        guard offset != 0 else { return try plainImage(family, offset: 0, product: aligned) }
        let base = family.flashBase
        var bytes = [UInt8](repeating: 0x11, count: 0x1000)
        func put(_ value: UInt32, at address: UInt32) {
            for index in 0..<4 { bytes[Int(address - base) - offset + index] = UInt8(truncatingIfNeeded: value >> (8 * index)) }
        }
        let sp = UInt32(truncatingIfNeeded: family.ramRegions[0].end)
        put(sp, at: base + UInt32(offset))
        put(base + 0x101, at: base + UInt32(offset) + 4)
        // The aligned reading's word 8 (at base + 0x20) and the shifted one's (at base + offset + 0x20) overlap
        // when offset < 4: there the aligned pointer's high half is the shifted pointer's low half.
        let alignedPointer = base + 0x100
        let shiftedPointer = offset == 2 ? (base & 0xFFFF_0000) | (alignedPointer >> 16) : base + 0x800
        put(alignedPointer, at: base + 0x20)
        put(shiftedPointer, at: base + UInt32(offset) + 0x20)
        for index in 0..<64 {
            bytes[Int(alignedPointer - base) - offset + index] = 0xFF
            bytes[Int(shiftedPointer - base) - offset + index] = 0xFF
        }
        let head = FirmwareImage(
            format: .binary,
            segments: [Segment(address: base, bytes: [UInt8](repeating: 0xFF, count: offset) + bytes[0..<(0x400 - offset)])])
        let stampedA = try head.stamped(productID: aligned, version: FirmwareVersion(major: 6, minor: 6, patch: 6), name: "a", file: "a")
        bytes.replaceSubrange(0..<(0x400 - offset), with: stampedA.segments[0].bytes.dropFirst(offset))
        let whole = FirmwareImage(format: .binary, segments: [Segment(address: base + UInt32(offset), bytes: bytes)])
        return try whole.stamped(productID: shifted, version: FirmwareVersion(major: 1, minor: 0, patch: 0), name: "b", file: "b")
    }

    /// A profile for the demo G474 product that requires signed packages.
    static func signingProfile(family: McuFamily = .g474) throws -> ProductProfile {
        let json = """
            {"format": 1, "id": "demo-signed", "name": "Demo (signed)", "family": "\(family.id)",
             "application": {"usbVendorID": "0x1209", "usbProductID": "0x0001", "hidUsagePage": "0xFFDF",
                             "hidUsage": "0x0001", "protocol": "dfuhop", "imageProductID": "0x0DF00474"},
             "dfu": {"usbVendorID": "0x0483", "usbProductID": "0xDF11"},
             "boot0": {"method": "prompt", "instructions": "Hold BOOT0 and replug."}, "reenumerationTimeoutMs": 10000,
             "signing": {"required": true, "publicKeys": ["11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="]}}
            """
        return try ProductProfile.decode(Data(json.utf8), file: "test")
    }

    /// Data from 0x08000002: with a 2-byte write unit the vector table is there and names product
    /// `otherProduct`; padded to 8 bytes it starts at 0x08000000, whose word 8 points elsewhere, at a
    /// descriptor of product 0x0DF00474 version 6.6.6 (issue 21, finding 1).
    static func twoReadingImage() throws -> FirmwareImage {
        let base: UInt32 = 0x0800_0000
        var bytes = [UInt8](repeating: 0x11, count: 0x1000) // from 0x08000002
        func put(_ value: UInt32, at address: UInt32) {
            for index in 0..<4 { bytes[Int(address - base - 2) + index] = UInt8(truncatingIfNeeded: value >> (8 * index)) }
        }
        // Reading A (from 0x08000000): SP, reset, word 8 at 0x08000020 -> 0x08000100.
        // Reading B (from 0x08000002): word 8 at 0x08000022 -> 0x08000800 (its low half shares A's high half).
        put(0x0800_0101, at: base + 4)
        put(0x0800_0100, at: base + 0x20)
        bytes[0x22] = 0x00
        bytes[0x23] = 0x08
        for offset in 0..<64 { bytes[0x100 - 2 + offset] = 0xFF }
        for offset in 0..<64 { bytes[0x800 - 2 + offset] = 0xFF }
        // A is stamped over its first 1 KiB only, so B's descriptor lies outside A's span.
        let head = FirmwareImage(format: .binary, segments: [Segment(address: base, bytes: [0xFF, 0xFF] + bytes[0..<0x3FE])])
        let stampedA = try head.stamped(
            productID: 0x0DF0_0474, version: FirmwareVersion(major: 6, minor: 6, patch: 6), name: "a", file: "a")
        bytes.replaceSubrange(0..<0x3FE, with: stampedA.segments[0].bytes.dropFirst(2))
        let whole = FirmwareImage(format: .binary, segments: [Segment(address: base + 2, bytes: bytes)])
        return try whole.stamped(productID: otherProduct, version: FirmwareVersion(major: 1, minor: 0, patch: 0), name: "b", file: "b")
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }
}
