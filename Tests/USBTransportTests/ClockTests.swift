import Testing
import USBTransport

@Suite("Injected clocks", .timeLimit(.minutes(10)))
struct ClockTests {
    @Test("a virtual clock advances by exactly what is slept, at once")
    func virtualClockAdvances() async throws {
        let clock = VirtualClock()
        let wall = ContinuousClock.now
        try await clock.sleep(for: .seconds(30))
        try await clock.sleep(for: .milliseconds(5))
        #expect(clock.now() == .milliseconds(30_005))
        #expect(ContinuousClock.now - wall < .seconds(1))
    }

    @Test("negative and zero sleeps leave a virtual clock where it is")
    func virtualClockIgnoresNonPositive() async throws {
        let clock = VirtualClock(start: .seconds(1))
        try await clock.sleep(for: .zero)
        try await clock.sleep(for: .seconds(-3))
        #expect(clock.now() == .seconds(1))
    }

    @Test("a scaled clock's time is wall time times its factor, and its sleeps never end early")
    func scaledClock() async throws {
        let factor = 1000.0
        let clock = ScaledClock(factor: factor)
        let wallStart = ContinuousClock.now
        let start = clock.now()
        try await clock.sleep(for: .seconds(2))
        let elapsed = clock.now() - start
        let wall = ContinuousClock.now - wallStart
        #expect(elapsed >= .seconds(2))
        #expect(elapsed <= wall * factor)
    }

    @Test("a DFU functional descriptor survives bytes and back, and short input is refused")
    func functionalDescriptorRoundTrip() {
        let descriptor = DFUFunctionalDescriptor(attributes: 0x0B, detachTimeoutMs: 255, transferSize: 2048, dfuVersion: 0x011A)
        #expect(DFUFunctionalDescriptor.parse(descriptor.bytes) == descriptor)
        #expect(DFUFunctionalDescriptor.parse(Array(descriptor.bytes.prefix(8))) == nil)
        #expect(descriptor.isDfuSe && descriptor.canDownload && descriptor.canUpload && !descriptor.manifestationTolerant)
    }
}
