import Foundation
import Testing

/// docs/dfuhop-output.schema.json, and the check every `--json` run of the tests goes through
/// (`Dfuhop.run` calls it): a line that does not validate fails the test that printed it.
enum OutputSchema {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let file = repository.appendingPathComponent("docs/dfuhop-output.schema.json")

    struct LoadError: Error, CustomStringConvertible {
        var description: String
    }

    static let validator: Result<JSONSchemaValidator, LoadError> = {
        do { return .success(try JSONSchemaValidator(schema: String(contentsOf: file, encoding: .utf8))) } catch {
            return .failure(LoadError(description: "\(file.path): \(error)"))
        }
    }()

    /// Options after which stdout is text even with `--json` (docs/json.md: "`--help` and `--version` print text").
    static let textOptions: Set<String> = ["--help", "-h", "--version", "help"]

    /// Every line of `stdout` validates against the schema; the lines of a run whose arguments ask for text are skipped.
    static func check(_ stdout: String, of arguments: [String], sourceLocation: SourceLocation = #_sourceLocation) throws {
        guard textOptions.isDisjoint(with: arguments) else { return }
        let validator = try validator.get()
        for line in stdout.split(separator: "\n") {
            let problems: [String]
            do { problems = validator.errors(try JSONValue.parse(String(line))) } catch { problems = ["not JSON: \(error)"] }
            if !problems.isEmpty {
                let message =
                    "dfuhop \(arguments.joined(separator: " ")) printed a line that does not validate against "
                    + "docs/dfuhop-output.schema.json:\n\(line)\n\(problems.joined(separator: "\n"))"
                Issue.record(Comment(rawValue: message), sourceLocation: sourceLocation)
            }
        }
    }
}
