import ArgumentParser
import Foundation
import UpgradeEngine

/// `dfuhop journal`: the interrupted upgrades the journal remembers, and a way to drop one.
struct JournalCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "journal",
        abstract: "List interrupted upgrades the journal remembers, or forget one.",
        discussion: """
            An entry is written before an upgrade touches a unit and removed once the new firmware is \
            confirmed, so an entry means an upgrade stopped part-way. Running the same upgrade again \
            finishes it. Forget an entry only for a unit that is gone for good (or was recovered otherwise).

            Examples:
              dfuhop journal
              dfuhop journal --json
              dfuhop journal forget 3A0029000C51353532383234
            """,
        subcommands: [JournalList.self, JournalForget.self], defaultSubcommand: JournalList.self)
}

struct JournalOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Journal and lock directory (default: $XDG_STATE_HOME/dfuhop or ~/.local/state/dfuhop).",
            valueName: "dir"), completion: .directory) var stateDir: String?

    var store: JournalStore { JournalStore(directory: stateDir.map { URL(fileURLWithPath: $0) } ?? JournalStore.defaultDirectory()) }
}

struct JournalList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List the journal's entries.")
    @OptionGroup var journal: JournalOptions
    @Flag(help: "One JSON object per entry, then a result object.") var json = false

    func run() async throws {
        let store = journal.store
        let asJSON = json
        try await runCommand("journal list", json: asJSON) {
            let (entries, unreadable) = store.entriesAndUnreadable()
            var result = ResultLine("listed")
            result.entries = entries.map {
                JournalEntryJSON(
                    unit: $0.key, uid: $0.uid, port: $0.portPath, family: $0.family, image: $0.image,
                    newVersion: $0.newVersion, step: $0.step.rawValue, updated: JSONContract.time($0.updated))
            }
            for entry in entries {
                if !asJSON {
                    Output.print(
                        "\(entry.key)  at \(entry.portPath.isEmpty ? "?" : entry.portPath)  \(entry.family)  to \(entry.newVersion) "
                            + "(\(entry.image))  stopped after \"\(entry.step.rawValue)\"")
                }
            }
            if !asJSON, entries.isEmpty, unreadable.isEmpty { Output.print("no interrupted upgrade in \(store.directory.path)") }
            // Readable entries are listed all the same; an unreadable one fails the command (exit 78) and names its key.
            if let first = unreadable.first {
                throw Failure(
                    .configuration, unreadable.map(\.description).joined(separator: "; "), hint: Failure.journalHint(first))
            }
            return result
        }
    }
}

struct JournalForget: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "forget", abstract: "Drop one unit's entry (its UID or port-PATH key).")
    @OptionGroup var journal: JournalOptions
    @Argument(help: "The entry's unit, as `dfuhop journal` shows it.") var unit: String
    @Flag(help: "A JSON result object instead of text.") var json = false

    func run() async throws {
        let store = journal.store
        let key = JournalStore.key(naming: unit)
        let asJSON = json
        try await runCommand("journal forget", json: asJSON) {
            guard !key.allSatisfy(\.isWhitespace) else { throw Failure(.usage, "the unit's name is empty") }
            // An unreadable entry can be forgotten too: that is the way out its error names.
            guard store.hasEntry(for: key) else {
                throw Failure(
                    .noDevice, "the journal in \(store.directory.path) has no entry for \(key)",
                    hint: "`dfuhop journal` lists the entries")
            }
            try store.remove(key)
            if !asJSON { Output.print("forgot the interrupted upgrade of \(key)") }
            return ResultLine("forgotten")
        }
    }
}
