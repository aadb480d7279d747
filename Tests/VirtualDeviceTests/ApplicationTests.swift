import AppLink
import DeviceProfiles
import DfuSe
import FirmwareImage
import Foundation
import Testing
import USBTransport

@testable import VirtualDevice

@Suite("Virtual application over HID")
struct ApplicationTests {
    func programmed(_ family: McuFamily, clock: VirtualClock = VirtualClock()) throws -> (VirtualUnit, VirtualBus) {
        let unit = try SimulationSpec(family: family, state: .programmed).makeUnit(clock: clock)
        return (unit, VirtualBus(units: [unit]))
    }

    @Test("a programmed unit answers GET_INFO with its UID, DEV_ID and the descriptor's version", arguments: McuFamily.all)
    func getInfo(family: McuFamily) async throws {
        let (unit, bus) = try programmed(family)
        guard case .hid(let hid)? = try await bus.devices().first else {
            Issue.record("a programmed unit should present a HID interface")
            return
        }
        #expect(hid.usagePage == AppLinkProtocol.usagePage)
        let link = AppLinkClient(transport: try await bus.openHID(hid), clock: unit.clock)
        let info = try await link.info()
        #expect(info.uid.bytes == unit.uid)
        #expect(info.deviceID == family.deviceID)
        #expect(info.descriptorState == .valid)
        #expect(info.image?.version == FirmwareVersion(major: 1, minor: 0, patch: 0))
        #expect(info.image?.productID == ApplicationIdentity.demoImageProductID(for: family))
        #expect(try await link.checkImage().result == .intact)
    }

    @Test("sector CRCs match what the host computes from the same bytes")
    func sectorCRCs() async throws {
        let (unit, bus) = try programmed(.g474)
        let hid = try #require(try await bus.devices().first.flatMap { if case .hid(let info) = $0 { info } else { nil } })
        let link = AppLinkClient(transport: try await bus.openHID(hid), clock: unit.clock)
        let crcs = try await link.sectorCRCs(address: 0x0800_0000, size: 2048, count: 4)
        let flash = unit.flashContents()
        #expect(crcs == (0..<4).map { CRC32.zlib(flash.read(0x0800_0000 + UInt32($0 * 2048), count: 2048)!) })
    }

    @Test("seed 000: ENTER_BOOTLOADER is answered, then the same unit shows up as the ROM with the predicted serial")
    func enterBootloader() async throws {
        let (unit, bus) = try programmed(.g474)
        let events = bus.events()
        let hid = try #require(try await bus.devices().first.flatMap { if case .hid(let info) = $0 { info } else { nil } })
        let link = AppLinkClient(transport: try await bus.openHID(hid), clock: unit.clock)
        let info = try await link.info()
        _ = try await link.enterBootloader(uid: info.uid, nonce: 0x5EED_1234)
        #expect(unit.currentMode == .rom)
        var iterator = events.makeAsyncIterator()
        #expect(await iterator.next() == .left(.hid(hid)))
        guard case .arrived(.dfu(let identity, _))? = await iterator.next() else {
            Issue.record("the ROM should arrive")
            return
        }
        #expect(identity.serialNumber == McuFamily.g474.romSerial.serial(uid: info.uid.bytes))
        #expect(identity.portPath == hid.usb.portPath)
    }

    @Test("ENTER_BOOTLOADER naming another unit's UID is refused and nothing resets")
    func wrongUnit() async throws {
        let (unit, bus) = try programmed(.f407)
        let hid = try #require(try await bus.devices().first.flatMap { if case .hid(let info) = $0 { info } else { nil } })
        let link = AppLinkClient(transport: try await bus.openHID(hid), clock: unit.clock)
        await #expect(throws: AppLinkError.self) {
            _ = try await link.enterBootloader(uid: UniqueID(VirtualUnit.uid(index: 9))!, nonce: 1)
        }
        #expect(unit.currentMode == .application)
    }

    @Test("the applicationBusy fault: ENTER_BOOTLOADER is answered BUSY and nothing resets")
    func busyApplication() async throws {
        let (unit, bus) = try programmed(.f407)
        unit.setFaults(FaultPlan(applicationBusy: true))
        let hid = try #require(try await bus.devices().first.flatMap { if case .hid(let info) = $0 { info } else { nil } })
        let link = AppLinkClient(transport: try await bus.openHID(hid), clock: unit.clock)
        do {
            _ = try await link.enterBootloader(uid: UniqueID(unit.uid)!, nonce: 1)
            Issue.record("a busy application must refuse ENTER_BOOTLOADER")
        } catch {
            guard case .refused(.busy) = error.kind else { throw error }
        }
        #expect(unit.currentMode == .application)
    }

    @Test("a corrupted image does not start: nothing on the bus, but BOOT0 still reaches the ROM")
    func corruptedUnit() async throws {
        let unit = try SimulationSpec(family: .g474, state: .corrupted).makeUnit(clock: VirtualClock())
        #expect(unit.presence == nil)
        unit.setBoot0(true)
        unit.powerCycle()
        #expect(unit.currentMode == .rom)
    }

    @Test("after a flash with the new version and a leave, the application reports the new version")
    func upgradeByHand() async throws {
        let (unit, bus) = try programmed(.f407)
        unit.applicationRequestsBootloader()
        let v2 = try DemoImage.make(family: .f407, version: FirmwareVersion(major: 2, minor: 0, patch: 0))
        try await flash(v2, to: unit)
        _ = try await client(unit).leave(jumpTo: 0x0800_0000)
        let hid = try #require(try await bus.devices().first.flatMap { if case .hid(let info) = $0 { info } else { nil } })
        let info = try await AppLinkClient(transport: try await bus.openHID(hid), clock: unit.clock).info()
        #expect(info.image?.version == FirmwareVersion(major: 2, minor: 0, patch: 0))
    }

    @Test("the demo identities agree with the shipped product profiles")
    func demoProfilesAgree() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        for (file, family) in [("dfuhop-demo-g474.json", McuFamily.g474), ("dfuhop-demo-f407.json", .f407)] {
            let profile = try ProductProfile.load(contentsOf: root.appendingPathComponent("protocols/devices/\(file)"))
            let identity = ApplicationIdentity.demo(for: family)
            #expect(profile.application.vendorID == identity.vendorID)
            #expect(profile.application.productID == identity.productID)
            #expect(profile.application.usagePage == identity.usagePage)
        }
    }
}
