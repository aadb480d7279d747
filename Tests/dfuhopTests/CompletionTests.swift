import Foundation
import TestSupport
import Testing

/// The bash completion script dfuhop generates, run in bash as the shell runs it (COMP_WORDS, COMP_CWORD,
/// then the function `complete -F` names): file names where a file goes, the fixed values where there are some.
@Suite("CLI: shell completions", .timeLimit(.minutes(5)))
struct CompletionTests {
    /// What bash offers for the last word of `words`, run in `directory`.
    static func complete(_ words: [String], script: String, in directory: TemporaryDirectory) async throws -> [String] {
        let quoted = words.map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }
        let line = words.joined(separator: " ")
        let program = """
            source \(script)
            COMP_WORDS=(\(quoted.joined(separator: " ")))
            COMP_CWORD=\(words.count - 1)
            COMP_LINE='\(line.replacingOccurrences(of: "'", with: "'\\''"))'
            COMP_POINT=${#COMP_LINE}
            COMPREPLY=()
            _dfuhop dfuhop "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
            printf '%s\\n' "${COMPREPLY[@]}"
            """
        let result = try await ProcessRunner.run(
            URL(fileURLWithPath: "/bin/bash"), ["--norc", "--noprofile", "-c", program], directory: directory.url)
        return result.standardOutput.split(separator: "\n").map(String.init).sorted()
    }

    @Test func bashCompletesFilesAndValues() async throws {
        let directory = try TemporaryDirectory()
        let generated = try await Dfuhop.run(["--generate-completion-script", "bash"])
        #expect(generated.status == 0)
        let script = try directory.write("dfuhop.bash", Array(generated.stdout.utf8))
        for name in ["app.hex", "line-3.csv", "line-3.jsonl", "notes.txt", "unit.json"] { _ = try directory.write(name, []) }
        try FileManager.default.createDirectory(atPath: directory.path("reports"), withIntermediateDirectories: true)
        let files = ["app.hex", "dfuhop.bash", "line-3.csv", "line-3.jsonl", "notes.txt", "reports", "unit.json"]

        #expect(try await Self.complete(["dfuhop", "upgrade", ""], script: script, in: directory) == files, "the image argument")
        #expect(try await Self.complete(["dfuhop", "upgrade", "app"], script: script, in: directory) == ["app.hex"])
        #expect(
            try await Self.complete(["dfuhop", "upgrade", "app.hex", "--report", ""], script: script, in: directory)
                == ["line-3.csv", "line-3.jsonl", "reports"], "--report: .csv, .jsonl and directories")
        #expect(
            try await Self.complete(["dfuhop", "info", "--simulate-state", ""], script: script, in: directory) == ["reports", "unit.json"])
        #expect(try await Self.complete(["dfuhop", "upgrade", "app.hex", "--state-dir", ""], script: script, in: directory) == ["reports"])
        #expect(try await Self.complete(["dfuhop", "flash", ""], script: script, in: directory) == files)
        #expect(try await Self.complete(["dfuhop", "image", "info", "a"], script: script, in: directory) == ["app.hex"])
        #expect(try await Self.complete(["dfuhop", "read", "-o", "n"], script: script, in: directory) == ["notes.txt"])

        #expect(try await Self.complete(["dfuhop", "read", "--format", ""], script: script, in: directory) == ["bin", "dfu", "hex", "srec"])
        #expect(try await Self.complete(["dfuhop", "image", "convert", "--format", "s"], script: script, in: directory) == ["srec"])
        #expect(
            try await Self.complete(["dfuhop", "info", "--simulate", "g474:p"], script: script, in: directory) == ["g474:programmed"])
        #expect(try await Self.complete(["dfuhop", "info", "--simulate", "f40"], script: script, in: directory).contains("f407:dfu"))
        // Every part line whose id starts so, as `dfuhop families` lists them.
        #expect(try await Self.complete(["dfuhop", "flash", "--family", "g4"], script: script, in: directory) == ["g431", "g474", "g491"])
        #expect(
            try await Self.complete(["dfuhop", "image", "info", "--family", "h5"], script: script, in: directory) == [
                "h503", "h523", "h563"
            ])
    }

    /// zsh: the image argument completes files (`_files`), and --simulate offers its values.
    @Test func zshCompletesTheImageArgument() async throws {
        let generated = try await Dfuhop.run(["--generate-completion-script", "zsh"])
        #expect(generated.status == 0)
        let upgrade = try #require(generated.stdout.components(separatedBy: "_dfuhop_upgrade() {").dropFirst().first)
        let body = try #require(upgrade.components(separatedBy: "\n}\n").first)
        #expect(body.contains(":image:_files"), "\(body)")
        #expect(body.contains("g474\\:programmed") || body.contains("g474:programmed"), "\(body)")
    }
}
