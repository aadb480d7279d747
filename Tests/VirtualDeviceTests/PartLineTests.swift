import AppLink
import DeviceProfiles
import DfuSe
import FirmwareImage
import Foundation
import Testing
import USBTransport

@testable import VirtualDevice

/// Every part line of protocols/families/: flashed through its ROM, left, and started.
@Suite("Every part line on the virtual device")
struct PartLineTests {
    static func flashSize(_ family: McuFamily) -> Int { Int(family.defaultFlashMode.layout.zones.reduce(0) { $0 + $1.size }) }

    /// A stamped demo image built for the family (vector table, descriptor, code-like filler), version `version`.
    static func stampedImage(_ family: McuFamily, version: FirmwareVersion) throws -> NormalizedImage {
        try DemoImage.make(family: family, version: version, size: min(24 * 1024, flashSize(family) / 4))
    }

    @Test("flash a stamped image through the ROM, leave, and the application starts and answers", arguments: McuFamily.all)
    func flashLeaveStart(family: McuFamily) async throws {
        let unit = unitInDFU(family)
        let image = try Self.stampedImage(family, version: FirmwareVersion(major: 2, minor: 0, patch: 0))
        let report = try await flash(image, to: unit)
        #expect(report.bytesVerified == image.payloadSize)
        #expect(unit.corruptedWords.isEmpty)
        let reset = try #require(image.word(at: family.flashBase + 4))
        _ = try await client(unit).leave(jumpTo: family.leaveJump == .vectorTable ? family.flashBase : reset)
        // An unverified quirk is acted out only as an opt-in fault (issue 25).
        if unit.enactedQuirks.leaveLocksUp {
            #expect(unit.currentMode == .hung, "this ROM's leave locks the core up")
            unit.powerCycle()
        }
        #expect(unit.currentMode == .application, "\(family.id): the application runs after the leave")
        let info = try await AppLinkClient(transport: try VirtualHIDTransport(unit: unit), clock: unit.clock).info()
        #expect(info.image?.version == FirmwareVersion(major: 2, minor: 0, patch: 0))
        #expect(info.deviceID == family.deviceID)
        unit.powerCycle()
        #expect(unit.currentMode == .application, "\(family.id): and after a power cycle")
    }

    @Test(
        "the ROM shows the modelled ROM version: bcdDevice, product, flash layout first, then the other alternates",
        arguments: McuFamily.all)
    func descriptors(family: McuFamily) throws {
        let transport = try VirtualDFUTransport(unit: unitInDFU(family))
        #expect(transport.identity.bcdDevice == family.romVersions[0].bcdDevice)
        #expect(transport.identity.product == family.romVersions[0].product)
        #expect(transport.alternateSettings.map(\.name) == [family.defaultFlashMode.layoutString] + family.romVersions[0].otherMemories)
        #expect(transport.functionalDescriptor.transferSize == family.rom.transferSize)
        if let fixed = family.romSerial.fixedSerial { #expect(transport.identity.serialNumber == fixed) }
    }

    @Test("a part line without USB DFU in its ROM is refused with the reason", arguments: McuFamily.unsupported)
    func refusedLine(line: UnsupportedPartLine) {
        #expect(McuFamily.named(line.id) == nil)
        #expect(throws: VirtualDeviceError.self) { try SimulationSpec(parsing: line.id + ":dfu") }
        do { _ = try SimulationSpec(parsing: line.id) } catch { #expect(error.problem.contains(line.reason)) }
    }

    @Test("BOOT0: G0's factory nBOOT_SEL ignores the pin; clearing it lets the pin reach the ROM; RDP level 2 disables the ROM")
    func boot0ByOptionBits() throws {
        let g0 = try #require(McuFamily.named("g0b1"))
        #expect(!g0.factoryBoot0PinReachesROM)
        // AN2606 pattern 11 (nBOOT_SEL = 1 from the factory): G0B1, and C071 and U073/083 carried over from it.
        #expect(McuFamily.all.filter { !$0.factoryBoot0PinReachesROM }.map(\.id) == ["c071", "g0b1", "u0"])
        let unit = try SimulationSpec(family: g0, state: .programmed).makeUnit(clock: VirtualClock())
        #expect(unit.currentMode == .application)
        unit.setBoot0(true)
        unit.powerCycle()
        #expect(unit.currentMode == .application, "nBOOT_SEL = 1 (factory): the BOOT0 pin is ignored")
        let selectBit = try #require(g0.boot0.pinIgnoredBit)
        unit.lock.withLock { setBit(&unit.optionBytes, selectBit, !g0.boot0.pinIgnoredWhenSet) }
        unit.powerCycle()
        #expect(unit.currentMode == .rom, "with nBOOT_SEL = 0 the pin reaches the ROM")

        let f407 = try SimulationSpec(family: .f407, state: .programmed).makeUnit(clock: VirtualClock())
        f407.lock.withLock { f407.optionBytes[McuFamily.f407.optionBytes.readProtectionByteOffset] = 0xCC }
        f407.setBoot0(true)
        f407.powerCycle()
        #expect(f407.currentMode == .application, "RDP level 2: BOOT0 no longer reaches the ROM")
    }
}
