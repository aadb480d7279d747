import ArgumentParser
import Foundation

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
        version: Version.text,
        subcommands: [
            UpgradeCommand.self, ListCommand.self, InfoCommand.self, EnterDFUCommand.self, FlashCommand.self, ReadCommand.self,
            OptionBytesCommand.self, LeaveCommand.self, EraseCommand.self,
            ImageCommand.self, JournalCommand.self, HistoryCommand.self, DoctorCommand.self, ExitCodesCommand.self,
            PackageCommand.self, KeyCommand.self, FamiliesCommand.self, ReplayCommand.self
        ])

    static func main() async {
        // No command is a usage error, as in git and apt: the help on stderr, exit 64 (not 0: nothing was done).
        if CommandLine.arguments.count == 1 {
            FileHandle.standardError.write(Data((helpMessage() + "\n").utf8))
            Foundation.exit(ExitStatus.usage.rawValue)
        }
        if let mistyped = CommandLine.arguments.dropFirst().first, let message = suggestion(for: mistyped) {
            Output.message("error: \(message)")
            Foundation.exit(ExitStatus.usage.rawValue)
        }
        if let repeated = repeatedOption(in: CommandLine.arguments.dropFirst()) {
            Output.message(
                "error: \(repeated) is given more than once; give it once (only \(repeatableOptions.sorted().joined(separator: ", ")) repeat)"
            )
            Foundation.exit(ExitStatus.usage.rawValue)
        }
        await main(nil)
    }

    /// The long options that may be given more than once: the lists, and the verbosity count.
    static let repeatableOptions: Set<String> = ["--key", "--profile", "--sector", "--simulate-fault", "--verbose"]

    /// The first other long option given twice. ArgumentParser keeps the last value silently, so a hurried
    /// `--unit A --unit B` would act on B alone and `--family` twice on whichever came last: refused instead.
    static func repeatedOption(in arguments: some Sequence<String>) -> String? {
        var seen: Set<Substring> = []
        for argument in arguments {
            if argument == "--" { break } // what follows is arguments, not options
            guard argument.hasPrefix("--"), let name = argument.split(separator: "=", maxSplits: 1).first else { continue }
            if !repeatableOptions.contains(String(name)), !seen.insert(name).inserted { return String(name) }
        }
        return nil
    }

    /// "did you mean" for a first argument that is no command but close to one (at most 2 edits, or a prefix).
    static func suggestion(for word: String) -> String? {
        let names = configuration.subcommands.compactMap { $0.configuration.commandName } + ["help"]
        guard !word.hasPrefix("-"), !names.contains(word) else { return nil }
        let close = names.map { ($0, editDistance(word.lowercased(), $0)) }.filter { $0.1 <= 2 || $0.0.hasPrefix(word.lowercased()) }
            .sorted { $0.1 < $1.1 }
        guard let best = close.first else { return nil }
        return "'\(word)' is not a dfuhop command; did you mean '\(best.0)'? (`dfuhop --help` lists them)"
    }

    /// Levenshtein distance: the insertions, deletions and substitutions that turn `a` into `b`.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let (a, b) = (Array(a), Array(b))
        var row = Array(0...b.count)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            var previous = row[0]
            row[0] = i
            for j in stride(from: 1, through: b.count, by: 1) {
                let current = row[j]
                row[j] = min(row[j] + 1, row[j - 1] + 1, previous + (a[i - 1] == b[j - 1] ? 0 : 1))
                previous = current
            }
        }
        return a.isEmpty ? b.count : row[b.count]
    }
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
