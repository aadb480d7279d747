import ArgumentParser

@main
struct DfuHop: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dfuhop",
        abstract: "Upgrade STM32-based USB HID products through the ROM's DfuSe bootloader, without bricking them.",
        discussion: """
        dfuhop reads firmware images in every common format, talks to the product's application \
        over HID, jumps it into the STM32 ROM bootloader, flashes with its own DfuSe client \
        (erase only what changes, vector table last, verify), leaves DFU and confirms the new version.

        Every device command accepts --simulate FAMILY[:STATE] to run against a built-in virtual \
        STM32 instead of USB hardware.
        """,
        version: "0.1.0",
        subcommands: [
            UpgradeCommand.self, ListCommand.self, InfoCommand.self, EnterDFUCommand.self, FlashCommand.self, ReadCommand.self, LeaveCommand.self, EraseCommand.self,
            ImageCommand.self, JournalCommand.self, DoctorCommand.self, ExitCodesCommand.self,
            PackageCommand.self, KeyCommand.self,
        ])
}

/// `dfuhop exit-codes`: the fixed table, for scripts and technicians.
struct ExitCodesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exit-codes", abstract: "List dfuhop's exit codes and what each means.")

    @Flag(help: "One JSON object per line.") var json = false

    func run() {
        if json {
            var result = ResultLine(command: "exit-codes", outcome: "listed")
            result.exitCodes = ExitStatus.allCases.map { ExitCodeJSON(code: $0.rawValue, name: "\($0)", meaning: $0.meaning) }
            Output.emit(result)
            return
        }
        for status in ExitStatus.allCases {
            let code = String(status.rawValue)
            Output.print(String(repeating: " ", count: 3 - code.count) + code + "  " + status.meaning)
        }
    }
}
