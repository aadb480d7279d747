import Dispatch
import Foundation

/// SIGINT and SIGTERM stop a command at a safe point instead of killing it: the first signal cancels the
/// command's task (the engine finishes the transfer in flight, updates the journal, and the command ends
/// with its result and exit 85) and stops any BOOT0 hook's process group; a second one exits at once.
enum SignalStop {
    static func run<T: Sendable>(_ body: sending @escaping () async throws -> T) async throws -> T {
        // The handlers are in place before the body starts: a signal that came before them would be lost
        // (SIG_IGN), and a hook started by the body would then run to its time limit. `resume()` only asks
        // for that: on Linux libdispatch installs its handler later, on a thread of its own (seen under load as
        // a SIGINT during a BOOT0 hook that was ignored, exit 0), so the body waits for the registrations.
        let target = Target()
        let registered = DispatchGroup()
        let sources = [SIGINT, SIGTERM].map { number -> DispatchSourceSignal in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            let seen = Counter()
            source.setEventHandler {
                if seen.increment() > 1 { _exit(128 + number) }
                // Cancel first, then stop the hooks: a simulated unit runs in virtual time, so the moment between
                // a killed hook and a late cancellation was enough for the whole upgrade to finish (exit 0).
                target.cancel()
                HookProcess.killAll()
            }
            registered.enter()
            source.setRegistrationHandler { registered.leave() }
            source.resume()
            return source
        }
        await withCheckedContinuation { continuation in registered.notify(queue: .global()) { continuation.resume() } }
        defer {
            for source in sources { source.cancel() }
            for number in [SIGINT, SIGTERM] { signal(number, SIG_DFL) }
        }
        let task = Task { try await body() }
        target.set { task.cancel() }
        return try await task.value
    }

    /// The command's task, once it exists; a signal before that cancels it as soon as it does.
    private final class Target: @unchecked Sendable {
        // Guarded by `lock`: the signal handler runs on a Dispatch queue.
        private let lock = NSLock()
        private var cancelTask: (@Sendable () -> Void)?
        private var cancelled = false

        func set(_ cancel: @escaping @Sendable () -> Void) {
            let now = lock.withLock {
                cancelTask = cancel
                return cancelled
            }
            if now { cancel() }
        }

        func cancel() {
            let task = lock.withLock {
                cancelled = true
                return cancelTask
            }
            task?()
        }
    }

    private final class Counter: @unchecked Sendable {
        // Touched only from the signal source's handler, which Dispatch runs one at a time per source.
        private var count = 0
        func increment() -> Int {
            count += 1
            return count
        }
    }
}
