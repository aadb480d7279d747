import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// SIGINT and SIGTERM stop a command at a safe point instead of killing it: the first signal cancels the
/// command's task (the engine finishes the transfer in flight, updates the journal, and the command ends
/// with its result and exit 85) and stops any BOOT0 hook's process group; a second one exits at once.
enum SignalStop {
    static func run<T: Sendable>(_ body: sending @escaping () async throws -> T) async throws -> T {
        // The handler is in place before the body starts, so a hook started by the body cannot outlive a signal.
        let target = SignalWatch.shared.register()
        defer { SignalWatch.shared.unregister(target) }
        let task = Task { try await body() }
        target.set { task.cancel() }
        return try await task.value
    }
}

/// A plain `sigaction` handler that writes the signal's number into a pipe, and a thread of its own, which never
/// blocks the two signals, that reads it and acts. Whichever thread the kernel delivers the signal to runs the
/// handler, and there is always one that takes it, so no signal is lost.
/// (A Dispatch signal source depends on libdispatch re-raising the signal to the thread that read its
/// signalfd: under load a SIGINT during a BOOT0 hook went unseen and the run finished, exit 0.)
private final class SignalWatch: Sendable {
    static let shared = SignalWatch()

    private struct State {
        var targets: [ObjectIdentifier: Target] = [:]
        var seen = 0
    }
    private let state = Mutex(State())

    private init() {
        var ends: [Int32] = [0, 0]
        precondition(pipe(&ends) == 0, "a pipe for signals: \(String(cString: strerror(errno)))")
        for end in ends { _ = fcntl(end, F_SETFD, FD_CLOEXEC) } // not inherited by BOOT0 hooks
        _ = fcntl(ends[1], F_SETFL, O_NONBLOCK) // a full pipe drops a byte rather than block the handler
        signalPipeWriteEnd = ends[1]
        Thread { [self, readEnd = ends[0]] in
            // The one thread guaranteed to take SIGINT and SIGTERM: Dispatch's threads block them, and dfuhop may
            // have inherited them blocked (a parent that spawned it from such a thread, e.g. a test runner, where
            // the SIGINT of a test stayed pending and the run finished, exit 0). A signal pending while it was
            // blocked everywhere is delivered here as soon as this unblocks it.
            var signals = sigset_t()
            sigemptyset(&signals)
            for number in [SIGINT, SIGTERM] { sigaddset(&signals, number) }
            pthread_sigmask(SIG_UNBLOCK, &signals, nil)
            listen(readEnd)
        }.start()
    }

    /// The first registration installs the handlers; the last one to leave restores the default action.
    func register() -> Target {
        let target = Target()
        state.withLock { state in
            if state.targets.isEmpty {
                state.seen = 0
                for number in [SIGINT, SIGTERM] { install(number, handler: writeSignalNumber) }
            }
            state.targets[ObjectIdentifier(target)] = target
        }
        return target
    }

    func unregister(_ target: Target) {
        state.withLock { state in
            state.targets[ObjectIdentifier(target)] = nil
            if state.targets.isEmpty { for number in [SIGINT, SIGTERM] { install(number, handler: nil) } }
        }
    }

    private func install(_ number: Int32, handler: (@convention(c) (Int32) -> Void)?) {
        var action = sigaction()
        #if canImport(Glibc)
            action.__sigaction_handler.sa_handler = handler ?? SIG_DFL
        #else
            action.__sigaction_u.__sa_handler = handler ?? SIG_DFL
        #endif
        action.sa_flags = SA_RESTART
        sigemptyset(&action.sa_mask)
        sigaction(number, &action, nil)
    }

    /// Blocks its own thread in read: the first signal cancels every running command and kills the hooks'
    /// groups (cancel first: a simulated unit runs in virtual time, so a killed hook followed by a late
    /// cancellation let a whole upgrade finish); a second one exits at once.
    private func listen(_ readEnd: Int32) {
        var byte: UInt8 = 0
        while true {
            let count = read(readEnd, &byte, 1)
            if count < 0, errno == EINTR { continue }
            guard count == 1 else { return }
            let (targets, seen) = state.withLock { state in
                state.seen += 1
                return (Array(state.targets.values), state.seen)
            }
            if seen > 1 { _exit(128 + Int32(byte)) }
            for target in targets { target.cancel() }
            HookProcess.killAll()
        }
    }

    /// The command's task, once it exists; a signal before that cancels it as soon as it does.
    final class Target: Sendable {
        private struct State {
            var cancelTask: (@Sendable () -> Void)?
            var cancelled = false
        }
        private let state = Mutex(State())

        func set(_ cancel: @escaping @Sendable () -> Void) {
            let now = state.withLock { state in
                state.cancelTask = cancel
                return state.cancelled
            }
            if now { cancel() }
        }

        func cancel() {
            let task = state.withLock { state in
                state.cancelled = true
                return state.cancelTask
            }
            task?()
        }
    }
}

/// The pipe's write end, for the handler: set once, before any handler is installed, and only read after.
nonisolated(unsafe) private var signalPipeWriteEnd: Int32 = -1

/// The signal handler: async-signal-safe (one write(2); errno kept for the interrupted code).
private func writeSignalNumber(_ number: Int32) {
    let saved = errno
    var byte = UInt8(truncatingIfNeeded: number)
    _ = write(signalPipeWriteEnd, &byte, 1)
    errno = saved
}
