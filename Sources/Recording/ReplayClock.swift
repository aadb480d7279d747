import Foundation
import USBTransport

/// A replay's time: the virtual clock the replay moves to each answered request's recorded time. A sleep
/// first lets subscribers take hotplug events that just became due (`ReplayDiscovery.settle`): in the
/// recorded run they had them before the wait ran out, and a wait that races an arrival must end as it did.
public struct ReplayClock: DeviceClock {
    let replay: ReplayDiscovery

    public func now() -> Duration { replay.time.now() }

    public func sleep(for duration: Duration) async throws(CancellationError) {
        await replay.settle()
        try await replay.time.sleep(for: duration)
    }
}

/// One `events()` stream of a replay. Its subscriber pulls events one at a time, so the replay knows when
/// an event handed over has been dealt with (the subscriber asks for the next) or is still being. Events
/// wait as the recording's line indices and are decoded when taken (`resolve`).
final class ReplaySubscription: @unchecked Sendable {
    private let resolve: @Sendable (Int32) -> DiscoveryEvent?
    // Guarded by the replay's lock.
    private var buffer: [Int32] = []
    private var taken = 0
    private var waiter: CheckedContinuation<DiscoveryEvent?, Never>?
    /// When the subscriber last got an event, or when undelivered ones became due.
    private var since: ContinuousClock.Instant?
    private(set) var finished = false

    init(resolve: @escaping @Sendable (Int32) -> DiscoveryEvent?) { self.resolve = resolve }

    /// Hands over the event at `index` (one `ReplayState.dueHotplug` found it can show).
    func deliverLocked(_ index: Int32) {
        guard !finished else { return }
        since = .now
        if let waiter, let event = resolve(index) {
            self.waiter = nil
            waiter.resume(returning: event)
        } else {
            buffer.append(index)
        }
    }

    /// The next buffered event, decoded.
    private func takeLocked() -> DiscoveryEvent? {
        while taken < buffer.count {
            defer { taken += 1 }
            if let event = resolve(buffer[taken]) { return event }
        }
        return nil
    }

    /// Whether events wait; releases the buffer's storage once every one is taken.
    private func hasBufferedLocked() -> Bool {
        if taken == buffer.count, taken > 0 { (buffer, taken) = ([], 0) }
        return taken < buffer.count
    }

    /// An event is due and not taken, or was just handed over and the subscriber has not come back.
    func busyLocked(grace: Duration) -> Bool {
        guard !finished, waiter == nil, let since else { return false }
        return ContinuousClock.now - since < grace
    }

    /// The next event; nil once the subscriber's task is cancelled.
    func next(lock: NSLock) async -> DiscoveryEvent? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<DiscoveryEvent?, Never>) in
                lock.withLock {
                    since = hasBufferedLocked() ? .now : nil
                    if let event = takeLocked() {
                        continuation.resume(returning: event)
                    } else if finished {
                        continuation.resume(returning: nil)
                    } else {
                        waiter = continuation
                    }
                }
            }
        } onCancel: {
            let waiting = lock.withLock { () -> CheckedContinuation<DiscoveryEvent?, Never>? in
                finished = true
                defer { waiter = nil }
                return waiter
            }
            waiting?.resume(returning: nil)
        }
    }
}
