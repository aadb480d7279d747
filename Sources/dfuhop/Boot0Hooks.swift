import DeviceProfiles
import Foundation
import UpgradeEngine
import VirtualDevice

/// The BOOT0 path the CLI offers the engine: a hook command (`--boot0-command`, or the profile's), an
/// operator prompt on a terminal, or for simulated units the virtual jig. nil: none (the engine then says
/// what the operator must do).
enum Boot0Hooks {
    static func path(command: String?, profile: ProductProfile?, session: DeviceSession, timeout: Duration?) -> Boot0Path? {
        if let bus = session.virtualBus {
            // A hook given on the command line still runs (a rehearsal of the real jig's script); the virtual
            // jig then does what a real jig would have done to the unit.
            return Boot0Path(
                description: command.map { "hook `\($0)` on the virtual jig" } ?? "virtual jig",
                arrivalTimeout: timeout ?? .seconds(5)
            ) { request in
                if let command {
                    try await run(["/bin/sh", "-c", command], request: request, shown: command, limit: timeout ?? .seconds(15))
                }
                for unit in bus.units where request.port == nil || unit.portPath == request.port {
                    switch request.action {
                    case .enterROM:
                        unit.setBoot0(true)
                        unit.powerCycle()
                        unit.setBoot0(false)
                    case .startApplication:
                        unit.setBoot0(false)
                        unit.powerCycle()
                    }
                }
            }
        }
        // The engine decides which path; this runs it.
        let canPrompt = Output.standardErrorIsTerminal && isatty(STDIN_FILENO) == 1
        switch Boot0Path.choice(command: command, profile: profile, canPrompt: canPrompt) {
        case nil: return nil
        case .command(let command):
            return Boot0Path(description: "hook `\(command)`", arrivalTimeout: timeout ?? .seconds(15)) { request in
                try await run(["/bin/sh", "-c", command], request: request, shown: command, limit: timeout ?? .seconds(15))
            }
        case .profileHook(let arguments, let directory):
            let shown = arguments.joined(separator: " ")
            return Boot0Path(description: "profile hook `\(shown)`", arrivalTimeout: timeout ?? .seconds(15)) { request in
                let filled = Boot0Path.hookArguments(arguments, for: request, profileDirectory: directory)
                try await run(filled, request: request, shown: shown, limit: timeout ?? .seconds(15))
            }
        case .prompt(let instructions):
            return prompt(instructions, timeout: timeout)
        }
    }

    /// A person at the bench, asked on the terminal.
    static func prompt(_ instructions: String, timeout: Duration?) -> Boot0Path {
        Boot0Path(description: "operator prompt", arrivalTimeout: timeout ?? .seconds(120)) { request in
            switch request.action {
            case .enterROM:
                Output.message(lines: [
                    "", ">>> The unit\(request.port.map { " at \($0)" } ?? "") must be started in its ROM bootloader.",
                    ">>> \(instructions)", ">>> Waiting for it..."
                ])
            case .startApplication:
                Output.message(lines: [
                    "",
                    ">>> Release BOOT0 and press RESET (or replug the unit\(request.port.map { " at \($0)" } ?? "")) so the new firmware starts.",
                    ">>> Waiting for it..."
                ])
            }
        }
    }

    /// Runs a hook with `DFUHOP_BOOT0` (1: start the ROM, 0: start the application), `DFUHOP_ACTION`,
    /// `DFUHOP_PORT`, `DFUHOP_UID`; its output goes to stderr. A non-zero exit is an error, and so is a
    /// hook still running after `limit`: it runs in its own process group, which is killed then, when the
    /// upgrade is cancelled, or when dfuhop is stopped by a signal. Waiting never blocks a thread.
    static func run(_ arguments: [String], request: Boot0Path.Request, shown: String, limit: Duration) async throws {
        var environment = ProcessInfo.processInfo.environment
        environment["DFUHOP_BOOT0"] = request.action == .enterROM ? "1" : "0"
        environment["DFUHOP_ACTION"] = request.action.rawValue
        environment["DFUHOP_PORT"] = request.port ?? ""
        environment["DFUHOP_UID"] = request.uid ?? ""
        let hook: HookProcess
        do { hook = try HookProcess.spawn(arguments, environment: environment) } catch {
            throw Failure(.usage, "the BOOT0 hook `\(shown)` cannot be started: \(error)")
        }
        let status = await hook.wait(limit: limit)
        switch status {
        case .exited(0): return
        case .exited(let code):
            throw Failure(
                .notConfirmed, "the BOOT0 hook `\(shown)` (\(request.action.rawValue)) exited with status \(code)",
                hint: "fix the jig or hook; the unit is recoverable: run the same command again")
        case .signalled(let signal):
            throw Failure(
                .notConfirmed, "the BOOT0 hook `\(shown)` (\(request.action.rawValue)) was killed by signal \(signal)",
                hint: "fix the jig or hook; the unit is recoverable: run the same command again")
        case .timedOut:
            throw Failure(
                .notConfirmed,
                "the BOOT0 hook `\(shown)` (\(request.action.rawValue)) did not finish within \(limit); "
                    + "it was stopped", hint: "fix the hook so it returns, or raise --boot0-timeout; then run the same command again")
        case .cancelled:
            throw CancellationError()
        }
    }
}
