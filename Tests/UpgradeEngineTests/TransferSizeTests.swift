import DeviceProfiles
import FirmwareImage
import Foundation
import Testing
import USBTransport
import UpgradeEngine

@testable import VirtualDevice

/// Issue 22: where captures disagree on a ROM's largest data block (a G431 ROM failed with 2048-byte writes and
/// worked with 1024), the default is the size every capture supports, and a ROM that stalls a larger block is
/// written again at half the size, from the first erase, with no word written twice.
@Suite("Transfer size: a stalled large block is written again smaller")
struct TransferSizeTests {
    @Test("a G431 planned with 2048-byte blocks stalls the first one; the upgrade finishes in 1024-byte blocks")
    func stalledLargeBlock() async throws {
        let g431 = try #require(McuFamily.named("g431"))
        #expect(g431.rom.transferSize == 1024, "the default is the size every capture supports")
        #expect(g431.writeLimits.maxBytes == 1024)
        let clock = VirtualClock()
        // A ROM that reports wTransferSize 2048 but stalls blocks over 1024 bytes (the G431 report).
        var reports2048 = g431
        reports2048.rom.transferSize = 2048
        let unit = VirtualUnit(family: reports2048, uid: VirtualUnit.uid(index: 1), portPath: "1-1", clock: clock)
        unit.setBoot0(true)
        unit.powerCycle()
        let image = try DemoImage.make(family: g431, version: FirmwareVersion(major: 2, minor: 0, patch: 0), size: 12 * 1024)
        let journal = FileManager.default.temporaryDirectory.appendingPathComponent("dfuhop-transfer-\(UUID())")
        defer { try? FileManager.default.removeItem(at: journal) }
        var options = FaultCampaignTests.options(VirtualBus(units: [unit]), journal: journal)
        // A product profile raises the block size to 2048 bytes, which this ROM stalls (the model's G431 limit).
        options.profiles = [try Self.profile(transferSize: 2048)]
        let notes = Notes()
        let engine = UpgradeEngine(discovery: VirtualBus(units: [unit]), clock: clock) { event in
            if case .note(let text) = event { notes.add(text) }
        }
        let result = try await engine.upgrade(FirmwareImage(format: .binary, segments: image.segments), source: "v2", options: options)
        #expect(result.outcome == .upgraded)
        #expect(result.plan?.transferSize == 1024)
        #expect(notes.all.contains { $0.contains("stalled a 2048-byte block") }, "\(notes.all)")
        #expect(unit.corruptedWords.isEmpty)
        let flash = unit.flashContents()
        let expected = image.segments[0]
        #expect(flash.bytes[0..<expected.bytes.count].elementsEqual(expected.bytes))
    }

    static func profile(transferSize: Int) throws -> ProductProfile {
        let json = """
            {"format": 1, "id": "g431-large-blocks", "name": "G431 product", "family": "g431",
             "application": {"usbVendorID": "0x1209", "usbProductID": "0x0001", "hidUsagePage": "0xFFDF",
                             "hidUsage": "0x0001", "protocol": "dfuhop",
                             "imageProductID": "0x\(String(ApplicationIdentity.demoImageProductID(for: McuFamily.named("g431")!), radix: 16))"},
             "dfu": {"usbVendorID": "0x0483", "usbProductID": "0xDF11"},
             "boot0": {"method": "prompt", "instructions": "Hold BOOT0 and replug."}, "reenumerationTimeoutMs": 10000,
             "dfuTransferSize": \(transferSize)}
            """
        return try ProductProfile.decode(Data(json.utf8), file: "g431-large-blocks")
    }

    final class Notes: @unchecked Sendable {
        private let lock = NSLock()
        private var texts: [String] = []
        func add(_ text: String) { lock.withLock { texts.append(text) } }
        var all: [String] { lock.withLock { texts } }
    }
}
