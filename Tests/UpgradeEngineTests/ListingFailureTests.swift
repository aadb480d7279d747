import DeviceProfiles
import FirmwareImage
import Foundation
import Synchronization
import Testing
import USBTransport
import UpgradeEngine

@testable import VirtualDevice

/// A bus listing that fails is an error of its own at every point of a run: it never passes for "nothing
/// there yet", "no ROM showed up" or "the application did not come back" (whose hints send the operator
/// after the wrong fault), the flash holds the old image or the new one, and the next run finishes.
@Suite("A failed device listing is an error, never an empty bus")
struct ListingFailureTests {
    /// The virtual bus, with `devices()` failing on the listed calls (numbered from 1); counts every call.
    final class FailingListing: DeviceDiscovery, Sendable {
        let bus: VirtualBus
        let failing: Set<Int>
        private let calls = Mutex(0)
        static let operation = "list the bus (injected failure)"

        init(_ bus: VirtualBus, failing: Set<Int> = []) {
            self.bus = bus
            self.failing = failing
        }

        var count: Int { calls.withLock { $0 } }

        func devices() async throws(TransportError) -> [DiscoveredDevice] {
            let call = calls.withLock { calls in
                calls += 1
                return calls
            }
            if failing.contains(call) { throw TransportError(.other("EIO"), device: "bus", operation: Self.operation) }
            return try await bus.devices()
        }

        func events() -> AsyncStream<DiscoveryEvent> { bus.events() }
        func openDFU(_ identity: USBDeviceIdentity) async throws(TransportError) -> any DFUTransport { try await bus.openDFU(identity) }
        func openHID(_ info: HIDDeviceInfo) async throws(TransportError) -> any HIDTransport { try await bus.openHID(info) }
    }

    /// The two ways in: the application answers (HID entry), or nothing runs (the BOOT0 path).
    enum Entry: String, CaseIterable, Sendable {
        case application, boot0
    }

    struct Run {
        let result: Result<UpgradeResult, UpgradeError>
        let listings: Int
    }

    static func upgrade(_ bench: FailClosedTests.Bench, _ file: FirmwareImage, failing: Set<Int>) async -> Run {
        let discovery = FailingListing(bench.bus, failing: failing)
        let engine = UpgradeEngine(discovery: discovery, clock: bench.clock)
        let options = bench.options
        let result = await Task { () -> Result<UpgradeResult, UpgradeError> in
            do throws(UpgradeError) {
                return .success(try await engine.upgrade(file, source: "image.hex", options: options))
            } catch {
                return .failure(error)
            }
        }.value
        return Run(result: result, listings: discovery.count)
    }

    static func bench(_ entry: Entry) throws -> FailClosedTests.Bench {
        let bench = try FailClosedTests.Bench()
        if entry == .boot0 { bench.silence() }
        return bench
    }

    @Test(
        "a listing that fails at any call of a run: its own error, the old or new image, and the next run finishes",
        arguments: Entry.allCases)
    func everyListingFails(entry: Entry) async throws {
        let clean = try Self.bench(entry)
        let image = try clean.image(2)
        let cleanRun = await Self.upgrade(clean, image, failing: [])
        #expect((try? cleanRun.result.get())?.outcome == .upgraded, "the clean run: \(cleanRun.result)")
        #expect(cleanRun.listings >= 2, "the run lists the bus more than once (\(cleanRun.listings))")
        let after = clean.target.flashContents().bytes
        for call in 1...cleanRun.listings {
            let bench = try Self.bench(entry)
            let before = bench.target.flashContents().bytes
            let faulty = await Self.upgrade(bench, image, failing: [call])
            guard case .failure(let error) = faulty.result else {
                Issue.record("\(entry), listing \(call) failed: the run still succeeded (\(faulty.result))")
                continue
            }
            guard case .transport(let transport) = error.kind, transport.operation == FailingListing.operation else {
                Issue.record("\(entry), listing \(call) failed: reported as \(error.kind) in \(error.phase), not the listing's error")
                continue
            }
            let flash = bench.target.flashContents().bytes
            #expect(flash == before || flash == after, "\(entry), listing \(call): the flash holds neither image")
            let second = await Self.upgrade(bench, image, failing: [])
            #expect((try? second.result.get()) != nil, "\(entry), listing \(call): the next run did not finish: \(second.result)")
            #expect(bench.target.flashContents().bytes == after, "\(entry), listing \(call): the next run left another image")
        }
    }
}
