import Foundation
import PackagePlugin

/// Writes `BuildInfo.swift` (the git commit the binary was built from) before every build of the target
/// it is applied to, so `dfuhop --version` names the commit in a `swift build` of a fresh clone and in
/// `scripts/install` alike. `build-info.sh` rewrites the file only when the commit changed, so an
/// unchanged tree recompiles nothing. `DFUHOP_COMMIT` overrides git (a source tarball has no .git).
@main
struct BuildInfoPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let output = context.pluginWorkDirectoryURL.appendingPathComponent("generated")
        let script = context.package.directoryURL.appendingPathComponent("Plugins/BuildInfo/build-info.sh")
        var environment: [String: String] = [:]
        if let commit = ProcessInfo.processInfo.environment["DFUHOP_COMMIT"] { environment["DFUHOP_COMMIT"] = commit }
        return [
            .prebuildCommand(
                displayName: "Recording the git commit in BuildInfo.swift",
                executable: URL(fileURLWithPath: "/bin/sh"),
                arguments: [script.path, context.package.directoryURL.path, output.appendingPathComponent("BuildInfo.swift").path],
                environment: environment,
                outputFilesDirectory: output)
        ]
    }
}
