import Foundation

/// The time source every layer is given instead of reading the system clock or sleeping itself,
/// so that a 30 s mass erase costs nothing in a test (docs/architecture.md: "time is injected").
public protocol DeviceClock: Sendable {
    /// Monotonic time since this clock's origin.
    func now() -> Duration
    /// Suspends for `duration` of this clock's time. Typed: a sleep ends early only when its task is
    /// cancelled, so callers map that one outcome to their own error kind without a catch-all.
    func sleep(for duration: Duration) async throws(CancellationError)
    /// Where code that mostly sleeps on this clock should run (SE-0417 task executor preference): the
    /// thread that ends a real-time sleep, so a loop of sleeps runs in place instead of hopping to it and
    /// back on every sleep. nil (the default): anywhere.
    var preferredExecutor: (any TaskExecutor)? { get }
}

extension DeviceClock {
    public var preferredExecutor: (any TaskExecutor)? { nil }

    /// Measures `body` in this clock's time.
    public func measure<T>(_ body: () async throws -> T) async rethrows -> (T, Duration) {
        let start = now()
        let value = try await body()
        return (value, now() - start)
    }

    /// A transport's wait: cancellation comes out as `TransportError.cancelled`, naming the device and the step.
    public func sleep(for duration: Duration, device: String, operation: String) async throws(TransportError) {
        do { try await sleep(for: duration) } catch { throw TransportError(.cancelled, device: device, operation: operation) }
    }
}

/// Wall-clock time.
public struct SystemClock: DeviceClock {
    private let origin = ContinuousClock.now

    public init() {}

    public func now() -> Duration { ContinuousClock.now - origin }

    public var preferredExecutor: (any TaskExecutor)? { DeadlineThread.shared }

    public func sleep(for duration: Duration) async throws(CancellationError) {
        guard duration > .zero else { return }
        try await cancellableSleep(for: duration)
    }
}

/// Virtual time: `sleep` advances the clock at once and returns. Shared by a test's host side and
/// its virtual devices, so poll timeouts and flash timings are honoured without any waiting.
public final class VirtualClock: DeviceClock, @unchecked Sendable {
    private let lock = NSLock()
    private var current: Duration
    private var scheduled: [(due: Duration, action: @Sendable () -> Void)] = []

    public init(start: Duration = .zero) { current = start }

    public func now() -> Duration { lock.withLock { current } }

    public func sleep(for duration: Duration) async throws(CancellationError) {
        if Task.isCancelled { throw CancellationError() }
        advance(by: duration)
    }

    /// Moves time forward without a sleeper (e.g. a device that works while the host is idle), running
    /// what was scheduled up to the new time, in order.
    public func advance(by duration: Duration) {
        guard duration > .zero else { return }
        let due = lock.withLock { () -> [@Sendable () -> Void] in
            current += duration
            let ready = scheduled.enumerated().filter { $0.element.due <= current }
                .sorted { ($0.element.due, $0.offset) < ($1.element.due, $1.offset) }
            scheduled.removeAll { $0.due <= current }
            return ready.map(\.element.action)
        }
        for action in due { action() }
    }

    /// Runs `action` once time has moved `delay` past now (something a device does on its own, such as
    /// appearing on the bus late): when a sleeper or `advance` gets there.
    public func schedule(after delay: Duration, _ action: @escaping @Sendable () -> Void) {
        lock.withLock { scheduled.append((current + delay, action)) }
    }
}

/// Real time running `factor` times faster: 1 s of device time takes 1/factor s of wall time.
/// For benchmarks that must include real scheduling and host overhead but not hours of flash time.
public struct ScaledClock: DeviceClock {
    public let factor: Double
    private let origin = ContinuousClock.now

    public init(factor: Double) {
        precondition(factor > 0, "a time scale factor must be positive")
        self.factor = factor
    }

    public func now() -> Duration {
        let elapsed = ContinuousClock.now - origin
        return factor == 1 ? elapsed : elapsed * factor // Duration * Double goes through Int128: not at 1x
    }

    public var preferredExecutor: (any TaskExecutor)? { DeadlineThread.shared }

    public func sleep(for duration: Duration) async throws(CancellationError) {
        guard duration > .zero else { return }
        try await cancellableSleep(for: factor == 1 ? duration : duration / factor)
    }
}

/// Waits `duration` of real time; its only error is cancellation. A `Task.sleep` resumes 0.4–0.5 ms late on the
/// 2-core CI machine (a dispatch timer with leeway, then a pool thread to wake), and an upgrade waits a poll
/// timeout some 700 times, so that alone cost 5–8 % over the device-bound minimum (`dfuhop-bench upgrade`).
/// The deadline thread ends the sleep on a kernel timer of its own instead, and no pool thread spins meanwhile.
private func cancellableSleep(for duration: Duration) async throws(CancellationError) {
    let deadlines = DeadlineThread.shared
    do {
        // A task already on the deadline thread (a client loop that prefers it) sleeps in place: no preference
        // to push and pop on every one of an upgrade's 2,000 sleeps.
        if deadlines.isCurrentThread {
            try await deadlines.sleep(for: duration)
        } else {
            try await withTaskExecutorPreference(deadlines) { try await deadlines.sleep(for: duration) }
        }
    } catch { throw CancellationError() }
}
