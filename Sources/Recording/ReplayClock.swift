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
/// an event handed over has been dealt with (the subscriber asks for the next) or is still being.
final class ReplaySubscription: @unchecked Sendable {
    // Guarded by the replay's lock.
    private var buffer: [DiscoveryEvent] = []
    private var waiter: CheckedContinuation<DiscoveryEvent?, Never>?
    /// When the subscriber last got an event, or when undelivered ones became due.
    private var since: ContinuousClock.Instant?
    private(set) var finished = false

    func deliverLocked(_ event: DiscoveryEvent) {
        guard !finished else { return }
        since = .now
        if let waiter {
            self.waiter = nil
            waiter.resume(returning: event)
        } else {
            buffer.append(event)
        }
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
                    since = buffer.isEmpty ? nil : .now
                    if !buffer.isEmpty {
                        continuation.resume(returning: buffer.removeFirst())
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
