import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// One thread that ends every real-time sleep at its deadline, so sleeping neither blocks nor spins a thread of
/// the cooperative pool. It waits on a condition variable until the earliest deadline of CLOCK_MONOTONIC (on
/// Linux an absolute futex timeout: the kernel's high-resolution timer, no dispatch timer leeway) and then
/// resumes the sleepers that are due; a new earlier sleeper or a cancellation wakes it to look again.
///
/// It is also a `TaskExecutor`: `SystemClock` and `ScaledClock` sleep with a preference for it, so the thread that
/// ends a sleep runs the sleeper on at once, instead of waking a thread of the pool (on a loaded machine that
/// second wake-up cost milliseconds, 700 times per upgrade). The sleeper's code runs there until it next suspends.
/// A task that already runs here (a transfer loop over a virtual unit, whose transport prefers this thread)
/// sleeps without the preference scope: one wake-up per sleep, the least a timer can cost.
final class DeadlineThread: TaskExecutor, @unchecked Sendable {
    static let shared = DeadlineThread()

    private struct Sleeper {
        var id: UInt64
        var deadline: UInt64
        var continuation: UnsafeContinuation<Void, any Error>
    }

    // `sleepers`, `jobs` and `nextID` are guarded by `mutex`; `condition` wakes the thread. There are a few
    // sleepers at a time (one per unit being flashed), so a plain array scanned in place beats a heap or a
    // dictionary, and the loop allocates nothing per sleep.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var sleepers: [Sleeper] = []
    private var jobs: [UnownedJob] = []
    private var nextID: UInt64 = 0
    /// Set (non-nil) on the deadline thread only: `isCurrentThread`.
    private var threadKey = pthread_key_t()

    private init() {
        pthread_key_create(&threadKey, nil)
        pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        #if os(Linux)
            pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        #endif
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
        let thread = Thread { [self] in run() }
        thread.name = "dfuhop-deadline" // 15 bytes: Linux refuses longer thread names
        thread.start()
    }

    /// Whether the caller runs on the deadline thread (so a task there that prefers it needs no hop to sleep).
    var isCurrentThread: Bool { pthread_getspecific(threadKey) != nil }

    /// Nanoseconds of CLOCK_MONOTONIC.
    static func now() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }

    /// Returns once `duration` has passed on CLOCK_MONOTONIC (never earlier); throws CancellationError as soon
    /// as the task is cancelled.
    func sleep(for duration: Duration) async throws {
        guard duration > .zero else { return }
        // Rounded up to whole nanoseconds, so a sleep never ends early; capped at some 290 years.
        let (seconds, attoseconds) = min(duration, .seconds(Int64(1) << 33)).components
        let deadline = Self.now() + UInt64(seconds) * 1_000_000_000 + UInt64((attoseconds + 999_999_999) / 1_000_000_000)
        let id = locked { () -> UInt64 in
            nextID += 1
            return nextID
        }
        try await withTaskCancellationHandler {
            // Unsafe (no per-sleep canary allocation) and still resumed exactly once: whoever takes the sleeper
            // out of `sleepers` under the mutex (the thread at its deadline, or the cancellation) resumes it.
            try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<Void, any Error>) in
                locked {
                    if Task.isCancelled {
                        continuation.resume(throwing: CancellationError())
                    } else {
                        sleepers.append(Sleeper(id: id, deadline: deadline, continuation: continuation))
                        pthread_cond_signal(condition)
                    }
                }
            }
        } onCancel: {
            locked { removeSleeper(id) }?.continuation.resume(throwing: CancellationError())
        }
    }

    private func locked<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return body()
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        locked {
            jobs.append(job)
            pthread_cond_signal(condition)
        }
    }

    /// Takes the sleeper `id` out, if it is still waiting (the mutex held).
    private func removeSleeper(_ id: UInt64) -> Sleeper? {
        guard let index = sleepers.firstIndex(where: { $0.id == id }) else { return nil }
        sleepers.swapAt(index, sleepers.count - 1)
        return sleepers.removeLast()
    }

    private func run() {
        // Reused on every pass, so the loop allocates only while these grow.
        var ready: [UnownedJob] = []
        var due: [UnsafeContinuation<Void, any Error>] = []
        pthread_setspecific(threadKey, UnsafeRawPointer(mutex))
        pthread_mutex_lock(mutex)
        while true {
            if !jobs.isEmpty {
                swap(&ready, &jobs)
                pthread_mutex_unlock(mutex)
                for job in ready { job.runSynchronously(on: asUnownedTaskExecutor()) }
                ready.removeAll(keepingCapacity: true)
                pthread_mutex_lock(mutex)
                continue
            }
            guard let earliest = sleepers.lazy.map(\.deadline).min() else {
                pthread_cond_wait(condition, mutex)
                continue
            }
            let now = Self.now()
            guard now >= earliest else {
                wait(until: earliest, now: now)
                continue
            }
            var index = 0
            while index < sleepers.count {
                if sleepers[index].deadline <= now {
                    sleepers.swapAt(index, sleepers.count - 1)
                    due.append(sleepers.removeLast().continuation)
                } else {
                    index += 1
                }
            }
            pthread_mutex_unlock(mutex)
            for continuation in due { continuation.resume() }
            due.removeAll(keepingCapacity: true)
            pthread_mutex_lock(mutex)
        }
    }

    /// Waits on `condition` (the mutex held) until `deadline`, or until a sleeper comes or goes.
    private func wait(until deadline: UInt64, now: UInt64) {
        #if os(Linux)
            var time = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
            pthread_cond_timedwait(condition, mutex, &time)
        #else
            let remaining = deadline - now
            var time = timespec(tv_sec: Int(remaining / 1_000_000_000), tv_nsec: Int(remaining % 1_000_000_000))
            pthread_cond_timedwait_relative_np(condition, mutex, &time)
        #endif
    }
}
