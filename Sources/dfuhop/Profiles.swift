import DeviceProfiles
import Foundation

/// Where product profiles come from, first match wins:
/// 1. `--profile PATH` (a file or a directory, repeatable);
/// 2. `DFUHOP_PROFILES` (a directory);
/// 3. the installed set, `<prefix>/share/dfuhop/devices` beside the running executable's `<prefix>/bin`
///    (found from the executable's own path, symlinks resolved, so a moved or linked prefix still works);
/// 4. the source checkout's `protocols/devices`, only when the executable itself lives inside that checkout
///    (`swift build`, `swift run`, the tests), so an installed binary never reads a build tree.
enum Profiles {
    static func load(_ paths: [String]) throws -> [ProductProfile] {
        if !paths.isEmpty { return try paths.flatMap(loadPath) }
        for directory in defaultDirectories() where FileManager.default.fileExists(atPath: directory) {
            return try loadPath(directory)
        }
        return []
    }

    static func loadPath(_ path: String) throws -> [ProductProfile] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw Failure(.noInput, "--profile \(path) does not exist")
        }
        let url = URL(fileURLWithPath: path)
        return isDirectory.boolValue ? try ProductProfile.loadAll(in: url) : [try ProductProfile.load(contentsOf: url)]
    }

    static func defaultDirectories() -> [String] {
        var directories: [String] = []
        if let path = ProcessInfo.processInfo.environment["DFUHOP_PROFILES"], !path.isEmpty { directories.append(path) }
        guard let executable = executableURL() else { return directories }
        directories.append(
            executable.deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("share/dfuhop/devices").path)
        // This file is <checkout>/Sources/dfuhop/Profiles.swift.
        let checkout = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().resolvingSymlinksInPath()
        if executable.path.hasPrefix(checkout.path + "/") {
            directories.append(checkout.appendingPathComponent("protocols/devices").path)
        }
        return directories
    }

    /// The running executable's path with symlinks resolved: /proc/self/exe on Linux (argv[0] is only a name
    /// when the binary was found on PATH), Foundation's answer elsewhere.
    static func executableURL() -> URL? {
        #if os(Linux)
            if let path = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
                return URL(fileURLWithPath: path).resolvingSymlinksInPath()
            }
        #endif
        return Bundle.main.executableURL?.resolvingSymlinksInPath()
    }
}
