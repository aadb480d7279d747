import Foundation
import DeviceProfiles
import UpgradeEngine
import VirtualDevice

/// The BOOT0 path the CLI offers the engine: a hook command (`--boot0-command`, or the profile's), an
/// operator prompt on a terminal, or for simulated units the virtual jig. nil: none (the engine then says
/// what the operator must do).
enum Boot0Hooks {
    static func path(command: String?, profile: ProductProfile?, session: DeviceSession, timeout: Duration?) -> Boot0Path? {
        if let bus = session.virtualBus {
            return Boot0Path(description: "virtual jig", arrivalTimeout: timeout ?? .seconds(5)) { request in
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
        if let command {
            return Boot0Path(description: "hook `\(command)`", arrivalTimeout: timeout ?? .seconds(15)) { request in
                try run(["/bin/sh", "-c", command], request: request, shown: command)
            }
        }
        if case .command(let arguments)? = profile?.boot0 {
            let shown = arguments.joined(separator: " ")
            return Boot0Path(description: "profile hook `\(shown)`", arrivalTimeout: timeout ?? .seconds(15)) { request in
                let filled = arguments.map {
                    $0.replacingOccurrences(of: "{port}", with: request.port ?? "").replacingOccurrences(of: "{uid}", with: request.uid ?? "")
                }
                try run(filled, request: request, shown: shown)
            }
        }
        guard Output.standardErrorIsTerminal, isatty(STDIN_FILENO) == 1 else { return nil }
        let instructions: String
        if case .prompt(let text)? = profile?.boot0 { instructions = text } else {
            instructions = "Hold the BOOT0 pin high, press RESET (or replug the USB cable), then release BOOT0."
        }
        return Boot0Path(description: "operator prompt", arrivalTimeout: timeout ?? .seconds(120)) { request in
            switch request.action {
            case .enterROM:
                Output.message("\n>>> The unit\(request.port.map { " at \($0)" } ?? "") must be started in its ROM bootloader.\n>>> \(instructions)\n>>> Waiting for it...")
            case .startApplication:
                Output.message("\n>>> Release BOOT0 and press RESET (or replug the unit\(request.port.map { " at \($0)" } ?? "")) so the new firmware starts.\n>>> Waiting for it...")
            }
        }
    }

    /// Runs a hook with `DFUHOP_BOOT0` (1: start the ROM, 0: start the application), `DFUHOP_ACTION`,
    /// `DFUHOP_PORT`, `DFUHOP_UID`; its output goes to stderr. A non-zero exit is an error.
    static func run(_ arguments: [String], request: Boot0Path.Request, shown: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: arguments[0].hasPrefix("/") ? arguments[0] : "/usr/bin/env")
        process.arguments = arguments[0].hasPrefix("/") ? Array(arguments.dropFirst()) : arguments
        var environment = ProcessInfo.processInfo.environment
        environment["DFUHOP_BOOT0"] = request.action == .enterROM ? "1" : "0"
        environment["DFUHOP_ACTION"] = request.action.rawValue
        environment["DFUHOP_PORT"] = request.port ?? ""
        environment["DFUHOP_UID"] = request.uid ?? ""
        process.environment = environment
        process.standardOutput = FileHandle.standardError
        do { try process.run() } catch {
            throw Failure(.usage, "the BOOT0 hook `\(shown)` cannot be started: \(error.localizedDescription)")
        }
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw Failure(.notConfirmed, "the BOOT0 hook `\(shown)` (\(request.action.rawValue)) exited with status \(process.terminationStatus)",
                          hint: "check the jig; the unit is recoverable: run the same command again")
        }
    }
}
