import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A child process in its own process group (a BOOT0 hook and whatever it starts), waited for without blocking
/// or polling on the cooperative pool, and killed as a group when it overstays, when the waiting task is
/// cancelled, or when dfuhop itself is stopped by SIGINT/SIGTERM (`killAll`).
final class HookProcess: Sendable {
    enum Status: Sendable, Equatable {
        case exited(Int32)
        case signalled(Int32)
        case timedOut, cancelled
    }

    let pid: pid_t
    private let exitWatch: ExitWatch
    private static let running = Mutex<Set<pid_t>>([])

    private init(pid: pid_t) {
        self.pid = pid
        exitWatch = ExitWatch(pid: pid)
    }

    /// Starts `arguments` (an absolute path, or a name looked up in PATH) with `environment`; its standard
    /// output goes to dfuhop's standard error, so JSON on standard output stays clean.
    static func spawn(_ arguments: [String], environment: [String: String]) throws -> HookProcess {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Its own group; no signal blocked and SIGINT/SIGTERM at their defaults, whatever the spawning thread had
        // (Dispatch's threads block them): `stop()` ends it with SIGTERM first.
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        posix_spawnattr_setpgroup(&attributes, 0)
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attributes, &none)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for number in [SIGINT, SIGTERM, SIGPIPE] { sigaddset(&defaults, number) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, STDERR_FILENO, STDOUT_FILENO)
        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for pointer in argv + envp { free(pointer) } }
        var pid: pid_t = 0
        let result = posix_spawnp(&pid, arguments[0], &actions, &attributes, argv, envp)
        guard result == 0 else { throw HookError(description: String(cString: strerror(result))) }
        running.withLock { _ = $0.insert(pid) }
        return HookProcess(pid: pid)
    }

    /// Waits for the exit (reaped by a thread of its own); kills the group at `limit` or on cancellation.
    func wait(limit: Duration) async -> Status {
        /// How the wait ended: the raw wait status, or the reason the group was stopped.
        enum Ending: Sendable {
            case exited(Int32)
            case timedOut, cancelled
        }
        let ending = await withTaskGroup(of: Ending.self) { group in
            group.addTask { .exited(await self.exitWatch.status()) }
            group.addTask {
                do { try await Task.sleep(for: limit) } catch { return .cancelled }
                return .timedOut
            }
            let first = await group.next() ?? .cancelled
            if case .exited = first {
                group.cancelAll()
                return first
            }
            // SIGTERM, then SIGKILL 100 ms later if the hook is still there; the exit task ends with it.
            stop()
            for await _ in group {}
            return first
        }
        // Nothing the hook started outlives it: whatever is left in its group (a background job, or a child
        // forked while the group was being killed) goes too.
        kill(-pid, SIGKILL)
        Self.running.withLock { _ = $0.remove(pid) }
        let status: Int32
        switch ending {
        case .timedOut: return .timedOut
        case .cancelled: return .cancelled
        case .exited(let raw): status = raw
        }
        let signal = status & 0x7F
        // Killed because dfuhop itself is stopping (SIGINT/SIGTERM): that is a cancellation.
        if signal != 0, Task.isCancelled || HookProcess.stopping.withLock({ $0 }) { return .cancelled }
        return signal == 0 ? .exited((status >> 8) & 0xFF) : .signalled(signal)
    }

    private func stop() {
        kill(-pid, SIGTERM)
        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(100)) { [pid, exitWatch] in
            if !exitWatch.hasEnded { kill(-pid, SIGKILL) }
        }
    }

    /// Set once dfuhop is stopping on a signal.
    private static let stopping = Mutex(false)

    /// Kills every hook group still running (dfuhop is exiting on a signal).
    static func killAll() {
        stopping.withLock { $0 = true }
        for pid in running.withLock({ Array($0) }) { kill(-pid, SIGKILL) }
    }
}

struct HookError: Error, CustomStringConvertible { var description: String }

/// Reaps one child on a thread of its own, blocked in waitpid, so no thread of the cooperative pool blocks or
/// polls; any number of tasks may await the status.
private final class ExitWatch: Sendable {
    private struct State {
        var status: Int32?
        var waiting: [CheckedContinuation<Int32, Never>] = []
    }
    private let state = Mutex(State())

    init(pid: pid_t) {
        Thread { [self] in reap(pid) }.start()
    }

    /// Blocks its own thread in waitpid until the child exits, then wakes every waiting task.
    private func reap(_ pid: pid_t) {
        var raw: Int32 = 0
        var result = waitpid(pid, &raw, 0)
        while result == -1, errno == EINTR { result = waitpid(pid, &raw, 0) }
        // A child that cannot be waited for (ECHILD: reaped elsewhere) has no status to trust: fail closed.
        let status = result == pid ? raw : Self.unknown
        let waiting = state.withLock { state in
            state.status = status
            defer { state.waiting = [] }
            return state.waiting
        }
        for continuation in waiting { continuation.resume(returning: status) }
    }

    /// The status reported when waitpid fails: exit code 255, a failed hook.
    static let unknown: Int32 = 0xFF << 8

    var hasEnded: Bool { state.withLock { $0.status != nil } }

    /// The raw wait status, once the child has exited.
    func status() async -> Int32 {
        await withCheckedContinuation { continuation in
            let status = state.withLock { state in
                if state.status == nil { state.waiting.append(continuation) }
                return state.status
            }
            if let status { continuation.resume(returning: status) }
        }
    }
}
