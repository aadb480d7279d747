import Foundation
import Testing

@testable import dfuhop

#if canImport(Glibc)
    import Glibc
#endif

/// BOOT0 hooks as real processes: how a wait ends, and that nothing of the hook's process group is left.
/// Real processes, so a time limit; the hooks sleep far longer than any wait here, so a late machine cannot
/// turn a stopped hook into one that finished.
@Suite("BOOT0 hook processes", .timeLimit(.minutes(10)))
struct HookProcessTests {
    static func hook(_ script: String) throws -> HookProcess {
        try HookProcess.spawn(["/bin/sh", "-c", script], environment: ProcessInfo.processInfo.environment)
    }

    /// True once no process is left in the group (polled: the kernel reaps killed orphans on its own time).
    static func groupIsGone(_ pid: pid_t) async -> Bool {
        for _ in 0..<500 {
            if kill(-pid, 0) == -1, errno == ESRCH { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return false
    }

    @Test("an exit code comes back as it is")
    func exitCode() async throws {
        let hook = try Self.hook("exit 3")
        #expect(await hook.wait(limit: .seconds(600)) == .exited(3))
        #expect(await Self.groupIsGone(hook.pid))
    }

    @Test("a hook past its limit is stopped with its children, even one that ignores SIGTERM")
    func timeLimit() async throws {
        let hook = try Self.hook("trap '' TERM; (sleep 300) & sleep 300")
        #expect(await hook.wait(limit: .milliseconds(200)) == .timedOut)
        #expect(await Self.groupIsGone(hook.pid), "no process of the hook's group is left")
    }

    @Test("cancelling the waiting task stops the hook and its children")
    func cancelled() async throws {
        let hook = try Self.hook("(sleep 300) & sleep 300")
        let waiting = Task { await hook.wait(limit: .seconds(600)) }
        try await Task.sleep(for: .milliseconds(50))
        waiting.cancel()
        #expect(await waiting.value == .cancelled)
        #expect(await Self.groupIsGone(hook.pid))
    }

    @Test("waiting for more hooks than the pool has threads leaves the pool free")
    func poolStaysFree() async throws {
        let hooks = try (0..<(4 * ProcessInfo.processInfo.activeProcessorCount)).map { _ in try Self.hook("sleep 300") }
        let waits = hooks.map { hook in Task { await hook.wait(limit: .seconds(600)) } }
        // Work on the pool completes while every hook is still being waited for.
        let sum = await Task { (1...1000).reduce(0, +) }.value
        #expect(sum == 500_500)
        for hook in hooks { #expect(kill(hook.pid, 0) == 0, "hook \(hook.pid) still runs") }
        for wait in waits { wait.cancel() }
        for wait in waits { #expect(await wait.value == .cancelled) }
    }
}
