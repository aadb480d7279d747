import ArgumentParser
import Foundation
import UpdatePackage

/// `dfuhop key …`: the Ed25519 key pair that signs update packages (docs/packages.md).
struct KeyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "key",
        abstract: "Make the key pair that signs update packages.",
        discussion: """
            KEY holds the private key (mode 0600): keep it offline or in the CI's secret store, never in the \
            repository. KEY.pub holds the public key as one line, the base64 of the raw 32-byte Ed25519 key; \
            it goes in the product profile's "signing": { "publicKeys": [...] }. Neither file is ever \
            replaced (a symbolic link at either name counts as a file), and a failure leaves neither behind. \
            `package create` refuses a private key that group or others can read (chmod 600 KEY).

            Example:
              dfuhop key generate --out release-2026.key
            """,
        subcommands: [KeyGenerateCommand.self])
}

struct KeyGenerateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate", abstract: "Make a new Ed25519 key pair: KEY (private, 0600) and KEY.pub (never overwrites).")

    @Option(
        help: ArgumentHelp("The private key file; the public key goes to the same name with .pub.", valueName: "KEY"), completion: .file())
    var out: String
    @Option(help: ArgumentHelp("A comment after the public key (default: the key file's name).", valueName: "text")) var comment: String?
    @Flag(help: "Print the public key as a JSON object.") var json = false

    func run() async throws {
        try await runCommand("key generate", json: json) {
            let key = try SigningKeys.generate(privateKeyPath: out, comment: comment ?? URL(fileURLWithPath: out).lastPathComponent)
            var result = ResultLine("generated")
            result.key = KeyJSON(privateKey: out, publicKeyFile: out + ".pub", publicKey: key.base64)
            if !json {
                Output.print("private key: \(out) (mode 0600; keep it safe)")
                Output.print("public key:  \(out).pub")
                Output.print("  \(key.base64)")
                Output.print("add it to the product profile: \"signing\": { \"publicKeys\": [\"\(key.base64)\"], \"required\": true }")
            }
            return result
        }
    }
}
