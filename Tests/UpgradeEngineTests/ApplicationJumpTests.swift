import DeviceProfiles
import FirmwareImage
import Foundation
import Testing
import UpgradeEngine

@testable import VirtualDevice

/// Where the application cannot jump to its ROM (AN2606: F04x/F070x6, L0). F04x/F070x6 enter by erasing the
/// application's first page (the empty check then starts the ROM); L0 has no entry: ENTER takes the BOOT0 path,
/// or is refused before anything is sent.
@Suite("Entry where the application cannot jump", .timeLimit(.minutes(10)))
struct ApplicationJumpTests {
    static let noEntry = McuFamily.all.filter { $0.applicationEntry == .none }
    static let boot0First = McuFamily.all.filter { [.none, .eraseFirstPage].contains($0.applicationEntry) }

    final class Notes: @unchecked Sendable {
        let lock = NSLock()
        var texts: [String] = []
        func record(_ event: UpgradeEvent) {
            if case .note(let text) = event { lock.withLock { texts.append(text) } }
        }
    }

    static func enterSent(_ unit: VirtualUnit) -> Bool {
        unit.requestLog.contains { if case .hidReport(0x10) = $0.kind { true } else { false } }
    }

    @Test("no entry, no BOOT0 path: needsBoot0 naming AN2606, and no ENTER_BOOTLOADER sent", arguments: noEntry)
    func refused(family: McuFamily) async throws {
        let (unit, bus, clock) = try UpgradeEngineTests.programmed(family)
        let engine = UpgradeEngine(discovery: bus, clock: clock)
        do {
            _ = try await engine.upgrade(try UpgradeEngineTests.image(family, 2), source: "v2")
            Issue.record("the upgrade went ahead")
        } catch let error as UpgradeError {
            guard case .needsBoot0(.applicationCannotJump(let named)) = error.kind else {
                Issue.record("expected needsBoot0(.applicationCannotJump), got \(error)")
                return
            }
            #expect(named == family.name)
            #expect(error.description.contains("AN2606") && error.description.contains("cannot jump"))
        }
        #expect(!Self.enterSent(unit))
        #expect(unit.currentMode == .application)
    }

    @Test("with a BOOT0 path: upgraded through it, no ENTER_BOOTLOADER sent, nothing erased first", arguments: boot0First)
    func upgradedByBoot0(family: McuFamily) async throws {
        let (unit, bus, clock) = try UpgradeEngineTests.programmed(family)
        var options = UpgradeEngine.Options()
        options.boot0 = Boot0Path(description: "virtual jig", arrivalTimeout: .seconds(5)) { request in
            unit.setBoot0(request.action == .enterROM)
            unit.powerCycle()
            unit.setBoot0(false)
        }
        let result = try await UpgradeEngine(discovery: bus, clock: clock).upgrade(
            try UpgradeEngineTests.image(family, 2), source: "v2", options: options)
        #expect(result.outcome == .upgraded)
        #expect(!Self.enterSent(unit))
        #expect(unit.currentMode == .application)
    }

    @Test("F042 without a BOOT0 path: ENTER, the application erases its first page, the ROM starts, upgraded")
    func upgradedByErasingTheFirstPage() async throws {
        let f042 = try #require(McuFamily.named("f042"))
        let (unit, bus, clock) = try UpgradeEngineTests.programmed(f042)
        let notes = Notes()
        let result = try await UpgradeEngine(discovery: bus, clock: clock, onEvent: notes.record).upgrade(
            try UpgradeEngineTests.image(f042, 2), source: "v2")
        #expect(result.outcome == .upgraded)
        #expect(Self.enterSent(unit))
        #expect(notes.texts.contains { $0.contains("erases its first flash page") }, "the operator is told of the erase")
        #expect(unit.currentMode == .application)
        unit.powerCycle()
        #expect(unit.currentMode == .application, "the vector table is back: a power-on reset starts the new image")
    }

    /// The journal (as `dfuhop upgrade` keeps it) is what tells the second run the unit's product: the erased page
    /// held the vector table, and with it the pointer to the image descriptor.
    @Test("F042 losing power after the erase stays in its ROM, and a second run finishes the upgrade")
    func secondRunFinishes() async throws {
        let f042 = try #require(McuFamily.named("f042"))
        let (unit, bus, clock) = try UpgradeEngineTests.programmed(f042)
        let image = try UpgradeEngineTests.image(f042, 2)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dfuhop-f042-\(UUID())")
        defer { try? FileManager.default.removeItem(at: directory) }
        var faults = FaultPlan.none
        faults.neverReturnAfterReset = true // the erase is done; the reset that should bring the ROM never comes back
        unit.setFaults(faults)
        var options = UpgradeEngine.Options()
        options.journal = JournalStore(directory: directory)
        options.reenumerationTimeout = .seconds(2)
        do {
            _ = try await UpgradeEngine(discovery: bus, clock: clock).upgrade(image, source: "v2", options: options)
            Issue.record("the first run went through")
        } catch {
            #expect(error.hint.contains("erased its first page") && !error.hint.contains("nothing was written"))
        }
        #expect(try JournalStore(directory: directory).entries().first?.step == .flashing, "the journal says the flash is a mix")
        #expect(unit.flashContents().bytes.prefix(1024).allSatisfy { $0 == 0xFF }, "the application's first page is gone")
        unit.setFaults(.none)
        unit.unplug()
        unit.plug()
        #expect(unit.currentMode == .rom, "the empty check starts the ROM at power-on")
        unit.powerCycle()
        #expect(unit.currentMode == .rom, "and keeps doing so until a run completes the unit")
        let result = try await UpgradeEngine(discovery: bus, clock: clock).upgrade(image, source: "v2", options: options)
        #expect(result.outcome == .upgraded)
        #expect(unit.currentMode == .application)
        #expect(try JournalStore(directory: directory).entries().isEmpty, "the finished run forgets the unit")
        unit.powerCycle()
        #expect(unit.currentMode == .application)
    }

    /// Power lost at any flash operation of an F042 upgrade entered by the erase: at the next power-on the empty check
    /// starts the ROM (the page was erased, and the plan writes the vector table last), and the next run, told the
    /// product by the journal, finishes the unit. The exception is the last operation, the vector-table block itself:
    /// torn, its first word is programmed and the rest is not, so the part boots a broken image and only BOOT0 reaches
    /// the ROM again (the same window exists on every empty-check part; PORTING.md, "The trade-off").
    @Test("F042 entered by the erase: power lost at any flash operation, the next run finishes the unit")
    func powerLossAnywhere() async throws {
        let f042 = try #require(McuFamily.named("f042"))
        let image = try UpgradeEngineTests.image(f042, 2, size: 6 * 1024)
        let operations = try await Self.flashOperations(f042, image)
        #expect(operations > 6)
        for operation in 1...operations {
            let (unit, bus, clock) = try UpgradeEngineTests.programmed(f042)
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dfuhop-f042-\(UUID())")
            defer { try? FileManager.default.removeItem(at: directory) }
            var options = UpgradeEngine.Options()
            options.journal = JournalStore(directory: directory)
            options.reenumerationTimeout = .seconds(2)
            unit.resetCounters()
            unit.setFaults(FaultPlan(powerLossAtFlashOperation: operation))
            await #expect(throws: UpgradeError.self, "power lost at flash operation \(operation)") {
                _ = try await UpgradeEngine(discovery: bus, clock: clock).upgrade(image, source: "v2", options: options)
            }
            unit.setFaults(.none)
            unit.powerCycle()
            if operation == operations {
                #expect(unit.currentMode == .hung, "a torn vector-table block: a broken image boots")
                unit.setBoot0(true)
                unit.powerCycle()
                unit.setBoot0(false)
            }
            #expect(unit.currentMode == .rom, "after power loss at flash operation \(operation)")
            let result = try await UpgradeEngine(discovery: bus, clock: clock).upgrade(image, source: "v2", options: options)
            #expect(result.outcome == .upgraded)
            unit.powerCycle()
            #expect(unit.currentMode == .application, "finished after power loss at flash operation \(operation)")
        }
    }

    /// The flash operations of a clean F042 upgrade entered by the erase.
    static func flashOperations(_ family: McuFamily, _ image: FirmwareImage) async throws -> Int {
        let (unit, bus, clock) = try UpgradeEngineTests.programmed(family)
        unit.resetCounters()
        _ = try await UpgradeEngine(discovery: bus, clock: clock).upgrade(image, source: "v2")
        return unit.flashOperations
    }
}
