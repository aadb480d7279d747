import Foundation
import DeviceProfiles

/// Where product profiles come from: `--profile PATH` (a file or a directory, repeatable), else the
/// installed set (`DFUHOP_PROFILES`, then `<prefix>/share/dfuhop/devices` next to the executable), else the
/// source checkout's `protocols/devices` (a build from a clone).
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
        let executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        directories.append(executable.deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("share/dfuhop/devices").path)
        // Sources/dfuhop/Profiles.swift → the checkout's protocols/devices.
        directories.append(URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("protocols/devices").path)
        return directories
    }
}
