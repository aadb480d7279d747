import Testing
import USBTransport

@Suite("Injected clocks", .timeLimit(.minutes(10)))
struct ClockTests {
    @Test("a virtual clock advances by exactly what is slept, at once")
    func virtualClockAdvances() async throws {
        let clock = VirtualClock()
        let wall = ContinuousClock.now
        try await clock.sleep(for: .seconds(36_000))
        try await clock.sleep(for: .milliseconds(5))
        #expect(clock.now() == .milliseconds(36_000_005))
        // Only that the 10 hours were not waited for real: a bound no loaded machine comes near (a test's task
        // has been seen unscheduled for 30 s).
        #expect(ContinuousClock.now - wall < .seconds(3600))
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

    @Test("real-time sleeps, many at once, each last at least their duration")
    func systemClockSleepsAtLeast() async throws {
        let clock = SystemClock()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for milliseconds in [5, 1, 3, 2, 4, 1, 0, 7] {
                group.addTask {
                    let start = clock.now()
                    try await clock.sleep(for: .milliseconds(milliseconds))
                    #expect(clock.now() - start >= .milliseconds(milliseconds))
                }
            }
            try await group.waitForAll()
        }
    }

    @Test("a cancelled real-time sleep of an hour ends with CancellationError")
    func systemClockSleepCancelled() async throws {
        let sleeper = Task { () async -> Bool in
            do {
                try await SystemClock().sleep(for: .seconds(3600))
                return false
            } catch {
                return true
            }
        }
        try await Task.sleep(for: .milliseconds(10))
        sleeper.cancel()
        #expect(await sleeper.value, "the sleep ended by cancellation")
        let cancelledFirst = Task { () async -> Bool in
            withUnsafeCurrentTask { $0?.cancel() }
            do {
                try await SystemClock().sleep(for: .seconds(3600))
                return false
            } catch {
                return true
            }
        }
        #expect(await cancelledFirst.value, "a task cancelled before it sleeps does not sleep")
    }

    @Test("a DFU functional descriptor survives bytes and back, and short input is refused")
    func functionalDescriptorRoundTrip() {
        let descriptor = DFUFunctionalDescriptor(attributes: 0x0B, detachTimeoutMs: 255, transferSize: 2048, dfuVersion: 0x011A)
        #expect(DFUFunctionalDescriptor.parse(descriptor.bytes) == descriptor)
        #expect(DFUFunctionalDescriptor.parse(Array(descriptor.bytes.prefix(8))) == nil)
        #expect(descriptor.isDfuSe && descriptor.canDownload && descriptor.canUpload && !descriptor.manifestationTolerant)
    }
}
