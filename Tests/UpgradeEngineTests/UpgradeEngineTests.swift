import AppLink
import DeviceProfiles
import DfuSe
import FirmwareImage
import Foundation
import Synchronization
import Testing
import USBTransport
import UpgradeEngine

@testable import VirtualDevice

/// The workflow end to end on virtual units (virtual clock: no test sleeps).
@Suite("Upgrade engine on the virtual device")
struct UpgradeEngineTests {
    static func image(_ family: McuFamily, _ major: UInt16, size: Int = 24 * 1024) throws -> FirmwareImage {
        let normalized = try DemoImage.make(family: family, version: FirmwareVersion(major: major, minor: 0, patch: 0), size: size)
        return FirmwareImage(format: .binary, segments: normalized.segments)
    }

    static func programmed(_ family: McuFamily) throws -> (VirtualUnit, VirtualBus, VirtualClock) {
        let clock = VirtualClock()
        let unit = try SimulationSpec(family: family, state: .programmed).makeUnit(clock: clock)
        return (unit, VirtualBus(units: [unit]), clock)
    }

    final class Recorder: @unchecked Sendable {
        let lock = NSLock()
        var phases: [UpgradePhase] = []
        func record(_ event: UpgradeEvent) {
            if case .phaseStarted(let phase) = event { lock.withLock { phases.append(phase) } }
        }
    }

    @Test("a programmed unit is upgraded and confirmed, phases in order, nothing destructive sent", arguments: McuFamily.all)
    func upgradesEveryFamily(family: McuFamily) async throws {
        let (unit, bus, clock) = try Self.programmed(family)
        let recorder = Recorder()
        let engine = UpgradeEngine(discovery: bus, clock: clock, onEvent: recorder.record)
        // A jig, as on a production line: some ROMs (H5) lock up after a leave and need a reset with BOOT0 low.
        var options = UpgradeEngine.Options()
        options.boot0 = Boot0Path(description: "virtual jig", arrivalTimeout: .seconds(5)) { request in
            unit.setBoot0(request.action == .enterROM)
            unit.powerCycle()
            unit.setBoot0(false)
        }
        let result = try await engine.upgrade(try Self.image(family, 2), source: "v2", options: options)
        #expect(result.outcome == .upgraded)
        #expect(result.before.version == FirmwareVersion(major: 1, minor: 0, patch: 0))
        #expect(result.newVersion == FirmwareVersion(major: 2, minor: 0, patch: 0))
        #expect(recorder.phases == [.find, .plan, .enter, .flash, .leave, .confirm])
        #expect(unit.currentMode == .application)
        #expect(!unit.requestLog.contains { $0.isDestructive })
        #expect(unit.corruptedWords.isEmpty)
    }

    @Test("a run with no earlier entry resumes nothing: the entry it wrote itself is not an interrupted upgrade")
    func ownEntryIsNotResumed() async throws {
        let (_, bus, clock) = try Self.programmed(.g474)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dfuhop-own-entry-\(UUID())")
        defer { try? FileManager.default.removeItem(at: directory) }
        let resumings = Mutex(0)
        let engine = UpgradeEngine(discovery: bus, clock: clock) { event in
            if case .resuming = event { resumings.withLock { $0 += 1 } }
        }
        var options = UpgradeEngine.Options()
        options.journal = JournalStore(directory: directory)
        let result = try await engine.upgrade(try Self.image(.g474, 2), source: "v2", options: options)
        #expect(result.outcome == .upgraded)
        #expect(result.resumed == nil, "the result names no interrupted upgrade")
        #expect(resumings.withLock { $0 } == 0, "no 'finishing an earlier upgrade' event")
    }

    @Test("a re-run on an upgraded unit touches nothing")
    func upToDate() async throws {
        let (unit, bus, clock) = try Self.programmed(.g474)
        let engine = UpgradeEngine(discovery: bus, clock: clock)
        _ = try await engine.upgrade(try Self.image(.g474, 2), source: "v2")
        unit.resetCounters()
        let again = try await engine.upgrade(try Self.image(.g474, 2), source: "v2")
        #expect(again.outcome == .upToDate)
        #expect(unit.controlTransfers == 0)
        #expect(!unit.requestLog.contains { if case .hidReport(0x10) = $0.kind { true } else { false } }, "no ENTER_BOOTLOADER")
    }

    @Test("an empty image is refused as such, the unit untouched")
    func emptyImage() async throws {
        let (unit, bus, clock) = try Self.programmed(.g474)
        unit.resetCounters()
        let engine = UpgradeEngine(discovery: bus, clock: clock)
        do throws(UpgradeError) {
            _ = try await engine.upgrade(FirmwareImage(format: .binary, segments: []), source: "empty.bin")
            Issue.record("an empty image was accepted")
        } catch {
            #expect(error.kind.refusal == .emptyImage(source: "empty.bin"), "\(error)")
            #expect(error.phase == .plan && error.unitUntouched)
        }
        #expect(unit.currentMode == .application)
        #expect(!unit.requestLog.contains { $0.isDestructive })
    }

    @Test("a downgrade and another product's image are refused before anything changes")
    func refusals() async throws {
        let (unit, bus, clock) = try Self.programmed(.f407)
        let engine = UpgradeEngine(discovery: bus, clock: clock)
        _ = try await engine.upgrade(try Self.image(.f407, 3), source: "v3")
        unit.resetCounters()
        await #expect(throws: UpgradeError.self) { _ = try await engine.upgrade(try Self.image(.f407, 2), source: "v2") }
        let other = try DemoImage.make(family: .f407, version: FirmwareVersion(major: 9, minor: 0, patch: 0), productID: 0x1234_5678)
        await #expect(throws: UpgradeError.self) {
            _ = try await engine.upgrade(FirmwareImage(format: .binary, segments: other.segments), source: "other")
        }
        #expect(unit.controlTransfers == 0)
        #expect(unit.currentMode == .application)
    }

    @Test("only changed sectors are rewritten when the application reports sector CRCs")
    func skipsUnchangedSectors() async throws {
        let (_, bus, clock) = try Self.programmed(.g474)
        let engine = UpgradeEngine(discovery: bus, clock: clock)
        let v2 = try Self.image(.g474, 2, size: 256 * 1024)
        let first = try await engine.upgrade(v2, source: "v2")
        // v3 differs from v2 only in the vector-table sector (version and CRC in the descriptor).
        let v3 = try Self.image(.g474, 3, size: 256 * 1024)
        var changed = v3
        changed.targets[0].segments[0].bytes.replaceSubrange(0x800..<(256 * 1024), with: v2.segments[0].bytes[0x800...])
        let restamped = try changed.stamped(
            productID: ApplicationIdentity.demoImageProductID(for: .g474),
            version: FirmwareVersion(major: 3, minor: 0, patch: 0), name: "dfuhop-demo-g474", file: "v3")
        let second = try await engine.upgrade(restamped, source: "v3")
        #expect(second.outcome == .upgraded)
        #expect(second.skippedSectors == 127)
        #expect((second.flashReport?.erasedSectors ?? 99) == 1)
        let full = first.phases.reduce(Duration.zero) { $0 + $1.duration }
        let partial = second.phases.reduce(Duration.zero) { $0 + $1.duration }
        #expect(partial < full / 4, "one changed sector of 256 KiB takes under 25 % of a full upgrade")
    }

    @Test("a blank unit in DFU is classified in its ROM and programmed")
    func resumesFromDFU() async throws {
        let clock = VirtualClock()
        let unit = try SimulationSpec(family: .l476, state: .dfu).makeUnit(clock: clock)
        let bus = VirtualBus(units: [unit])
        // L476 and L496 ROMs show the same memories: the operator names the part line, as the refusal asks.
        let engine = UpgradeEngine(discovery: bus, clock: clock)
        await #expect(throws: UpgradeError.self, "an ambiguous ROM is not guessed") {
            _ = try await engine.upgrade(try Self.image(.l476, 2), source: "v2")
        }
        var options = UpgradeEngine.Options()
        options.family = .l476
        let result = try await engine.upgrade(try Self.image(.l476, 2), source: "v2", options: options)
        #expect(result.before.classification == .blank)
        #expect(result.newVersion == FirmwareVersion(major: 2, minor: 0, patch: 0))
    }

    @Test("an application that never comes back is reported, not claimed as success")
    func notConfirmed() async throws {
        let (unit, bus, clock) = try Self.programmed(.g474)
        let engine = UpgradeEngine(discovery: bus, clock: clock) { event in
            if case .flash(.phaseFinished(.verify)) = event { unit.setFaults(FaultPlan(neverReturnAfterReset: true)) }
        }
        do {
            _ = try await engine.upgrade(try Self.image(.g474, 2), source: "v2")
            Issue.record("an upgrade whose unit never came back must not succeed")
        } catch let error as UpgradeError {
            #expect(error.phase == .confirm)
            guard case .notConfirmed = error.kind else {
                Issue.record("expected notConfirmed, got \(error)")
                return
            }
        }
    }

    @Test("two units and no --unit: refused, none touched")
    func ambiguous() async throws {
        let clock = VirtualClock()
        let units = try (1...2).map { try SimulationSpec(family: .g474, state: .programmed).makeUnit(index: $0, clock: clock) }
        let engine = UpgradeEngine(discovery: VirtualBus(units: units), clock: clock)
        await #expect(throws: UpgradeError.self) { _ = try await engine.upgrade(try Self.image(.g474, 2), source: "v2") }
        #expect(units.allSatisfy { $0.controlTransfers == 0 && $0.currentMode == .application })
        var options = UpgradeEngine.Options()
        options.unit = units[1].portPath
        let result = try await engine.upgrade(try Self.image(.g474, 2), source: "v2", options: options)
        #expect(result.newVersion == FirmwareVersion(major: 2, minor: 0, patch: 0))
        #expect(units[0].controlTransfers == 0, "only the named unit was touched")
    }
}

extension UpgradeError.Kind {
    /// The refusal's reason; nil for any other kind.
    var refusal: Refusal? { if case .refused(let reason) = self { reason } else { nil } }
}
