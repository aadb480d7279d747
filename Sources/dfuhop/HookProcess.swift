import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A child process in its own process group (a BOOT0 hook and whatever it starts), waited for without
/// blocking a thread, and killed as a group when it overstays, when the waiting task is cancelled, or
/// when dfuhop itself is stopped by SIGINT/SIGTERM (`killAll`).
final class HookProcess: Sendable {
    enum Status: Sendable, Equatable {
        case exited(Int32)
        case signalled(Int32)
        case timedOut, cancelled
    }

    let pid: pid_t
    private static let running = Mutex<Set<pid_t>>([])

    private init(pid: pid_t) { self.pid = pid }

    /// Starts `arguments` (an absolute path, or a name looked up in PATH) with `environment`; its standard
    /// output goes to dfuhop's standard error, so JSON on standard output stays clean.
    static func spawn(_ arguments: [String], environment: [String: String]) throws -> HookProcess {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
        posix_spawnattr_setpgroup(&attributes, 0)
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

    /// Polls for the exit every 20 ms on the task's own time; kills the group at `limit` or on cancellation.
    func wait(limit: Duration) async -> Status {
        let deadline = ContinuousClock.now + limit
        while true {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid {
                // Nothing the hook started outlives it: whatever is left in its group (a background job, or a
                // child forked while the group was being killed) goes too.
                kill(-pid, SIGKILL)
                Self.running.withLock { _ = $0.remove(pid) }
                let signal = status & 0x7F
                // Killed because dfuhop itself is stopping (SIGINT/SIGTERM): that is a cancellation.
                if signal != 0, Task.isCancelled || HookProcess.stopping.withLock({ $0 }) { return .cancelled }
                return signal == 0 ? .exited((status >> 8) & 0xFF) : .signalled(signal)
            }
            if Task.isCancelled { return stop(.cancelled) }
            if ContinuousClock.now >= deadline { return stop(.timedOut) }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    private func stop(_ status: Status) -> Status {
        kill(-pid, SIGTERM)
        usleep(100_000)
        kill(-pid, SIGKILL)
        var ignored: Int32 = 0
        waitpid(pid, &ignored, 0)
        kill(-pid, SIGKILL)
        Self.running.withLock { _ = $0.remove(pid) }
        return status
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
