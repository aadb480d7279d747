import DeviceProfiles
import Testing
import USBTransport
import UpgradeEngine

@testable import VirtualDevice

/// `readOptionBytes`: the ROM's option-byte memory, read with uploads only, on every part line's virtual ROM.
@Suite("Reading option bytes")
struct OptionBytesReadTests {
    /// A unit of `family` in its ROM (BOOT0 held at power-on), alone on a virtual bus.
    static func unitInROM(_ family: McuFamily) async throws -> (VirtualUnit, UpgradeEngine.DFUUnit, UpgradeEngine) {
        let clock = VirtualClock()
        let unit = VirtualUnit(family: family, uid: VirtualUnit.uid(index: 1), portPath: "1-1", clock: clock)
        unit.setBoot0(true)
        unit.powerCycle()
        let bus = VirtualBus(units: [unit])
        let found = try await bus.devices().compactMap { device -> UpgradeEngine.DFUUnit? in
            guard case .dfu(let identity, let alternates) = device else { return nil }
            return UpgradeEngine.DFUUnit(identity: identity, alternateSettings: alternates, family: family)
        }
        let dfu = try #require(found.first, "\(family.id): no ROM on the bus")
        unit.resetCounters()
        return (unit, dfu, UpgradeEngine(discovery: bus, clock: clock) { _ in })
    }

    /// Nothing but address pointers and uploads: no data download, no erase, no option-byte load.
    static func onlyReads(_ unit: VirtualUnit) -> Bool {
        unit.requestLog.allSatisfy { request in
            switch request.kind {
            case .download, .leave, .detach, .hidReport: false
            case .command(let command): if case .setAddress = command { true } else { false }
            default: true
            }
        }
    }

    static let familiesWithOptionBytes = McuFamily.all.filter { $0.otherMemories.contains { $0.hasPrefix("@Option Bytes") } }

    @Test(
        "every part line: the whole first option-byte memory, as the unit holds it, and nothing written", arguments: familiesWithOptionBytes
    )
    func readsWithoutWriting(family: McuFamily) async throws {
        let (unit, dfu, engine) = try await Self.unitInROM(family)
        let before = unit.snapshot()
        let read = try await engine.readOptionBytes(from: dfu)
        let alternate = try #require(family.otherMemories.first { $0.hasPrefix("@Option Bytes") })
        let zone = try #require(try FlashLayout(parsing: alternate).zones.first)
        #expect(read.address == zone.start && read.bytes.count == Int(zone.size))
        #expect(Array(read.bytes.prefix(family.optionBytes.factoryBytes.count)) == family.optionBytes.factoryBytes)
        #expect(read.alternateName == alternate)
        #expect(Self.onlyReads(unit), "\(family.id): \(unit.requestLog.map(\.description))")
        #expect(unit.requestLog.contains { if case .upload = $0.kind { true } else { false } })
        #expect(unit.snapshot() == before, "\(family.id): the unit changed")
    }

    @Test("a ROM without an option-byte alternate is refused before anything is sent")
    func noAlternateRefused() async throws {
        let family = try #require(
            McuFamily.all.first { !$0.otherMemories.contains { $0.hasPrefix("@Option Bytes") } && $0.optionBytes.address >= 0x4000_0000 })
        let (unit, dfu, engine) = try await Self.unitInROM(family)
        do {
            _ = try await engine.readOptionBytes(from: dfu)
            Issue.record("\(family.id): read option bytes from a ROM that shows none")
        } catch let error as UpgradeError {
            let shown = dfu.alternateSettings.map { "\($0.number) \"\($0.name)\"" }
            let expected = Refusal.noOptionByteMemory(port: dfu.identity.portPath, address: family.optionBytes.address, alternates: shown)
            #expect(error.kind.refusal == expected, "\(error)")
        }
        #expect(unit.requestLog.isEmpty)
    }

    @Test("an option-byte alternate whose layout does not parse is refused as unreadable, nothing sent")
    func unparseableAlternateRefused() async throws {
        let family = try #require(McuFamily.all.first { $0.otherMemories.contains { $0.hasPrefix("@Option Bytes") } })
        let (unit, listed, engine) = try await Self.unitInROM(family)
        var dfu = listed
        let index = try #require(dfu.alternateSettings.firstIndex { $0.name.hasPrefix("@Option Bytes") })
        dfu.alternateSettings[index].name = "@Option Bytes  /0x1FFF7800/one sector"
        do {
            _ = try await engine.readOptionBytes(from: dfu)
            Issue.record("\(family.id): read option bytes through a layout that does not parse")
        } catch let error as UpgradeError {
            guard case .romLayoutUnreadable(let port, _)? = error.kind.refusal else {
                Issue.record("\(family.id): refused as \(error.kind), not as an unreadable layout")
                return
            }
            #expect(port == dfu.identity.portPath)
        }
        #expect(unit.requestLog.isEmpty)
    }
}
