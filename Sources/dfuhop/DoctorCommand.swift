import ArgumentParser
import USBDiscovery

/// `dfuhop doctor`: why dfuhop cannot reach a unit, and what to do about it. The diagnosis is
/// `USBDoctor` (USBDiscovery); this only renders it and picks the exit status.
struct DoctorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Check USB access: the libraries, the udev rules, and the permissions of every unit's device node.",
        discussion: """
            Lists what libusb and hidapi see of the STM32 ROM bootloader (0483:df11) and of the products' \
            HID interfaces, whether dfuhop's udev rules (\(UdevRules.fileName)) are installed, and whether \
            this user may open each device node. Every problem comes with the command that fixes it.

            Exit status 0 when every check passed; 74 when libusb or hidapi cannot start; 77 when anything \
            else needs attention, warnings included (rules missing or outdated, a device node this user \
            cannot open, a unit another program holds).

            Examples:
              dfuhop doctor
              dfuhop doctor --json
              dfuhop doctor --print-rules | sudo tee /etc/udev/rules.d/\(UdevRules.fileName)
            """)

    @Flag(help: "One JSON object per finding, then a summary object.") var json = false
    @Flag(help: "Print dfuhop's udev rules file and exit.") var printRules = false

    func run() async throws {
        if printRules {
            Output.print(String(UdevRules.text.dropLast())) // the text ends with its own newline
            return
        }
        let findings = await USBDoctor.diagnose()
        let status = Self.exitStatus(findings)
        let problems = findings.filter { $0.status == .problem }.count
        let warnings = findings.filter { $0.status == .warning }.count
        if json {
            // The outcome follows the exit status: "ok" only when nothing needs attention.
            var result = ResultLine(command: "doctor", outcome: status == .success ? "ok" : "problems", exitCode: status.rawValue)
            result.findings = findings.map {
                FindingJSON(
                    check: $0.check, status: $0.status.rawValue, detail: $0.detail, fix: $0.fix,
                    subject: $0.subject)
            }
            Output.emit(result)
            if status != .success { throw ExitCode(status.rawValue) }
            return
        }
        for finding in findings { render(finding) }
        // The verdict says what the exit status says: "No problems found." only with exit 0.
        if status == .success {
            Output.print(lines: ["", "No problems found."])
        } else {
            Output.print("")
            Output.print(
                "\(problems) problem\(problems == 1 ? "" : "s") and \(warnings) warning\(warnings == 1 ? "" : "s") found;"
                    + " see the fixes above.")
        }
        if status != .success { throw ExitCode(status.rawValue) }
    }

    private func render(_ finding: DoctorFinding) {
        let mark: String
        switch finding.status {
        case .ok: mark = "ok     "
        case .warning: mark = "warning"
        case .problem: mark = "PROBLEM"
        }
        Output.print("\(mark)  \(finding.check.padding(toLength: 11, withPad: " ", startingAt: 0))  \(finding.detail)")
        if let fix = finding.fix { Output.print("         fix: \(fix)") }
    }

    /// 74 when a library cannot start, 77 when anything else needs attention (warnings too), 0 when all is well.
    static func exitStatus(_ findings: [DoctorFinding]) -> ExitStatus {
        switch USBDoctor.verdict(findings) {
        case .healthy: .success
        case .libraryFailure: .usbError
        case .needsAttention: .permission
        }
    }
}
