import DeviceProfiles
import Foundation
import StrictJSON
import UpgradeEngine

/// The station's own rule, whatever the product profiles say (docs/packages.md, "station policy"): with
/// `DFUHOP_REQUIRE_SIGNED=1`, or `{"requireSignedPackages": true}` in `policy.json` in the state directory,
/// every write on this station needs a package signed by a key a profile trusts, blank units included.
enum StationPolicy {
    static let environmentVariable = "DFUHOP_REQUIRE_SIGNED"
    static let fileName = "policy.json"

    static func requiresSignature(stateDirectory: URL, environment: [String: String] = ProcessInfo.processInfo.environment) throws
        -> Bool
    {
        if let value = environment[environmentVariable], !value.isEmpty {
            guard ["0", "1"].contains(value) else {
                throw Failure(.usage, "\(environmentVariable)=\(value): it must be 1 (require signed firmware) or 0")
            }
            if value == "1" { return true }
        }
        let path = stateDirectory.appendingPathComponent(fileName).path
        guard FileManager.default.fileExists(atPath: path) else { return false }
        return try readFile(path)
    }

    /// `policy.json`: one object, whose one key `requireSignedPackages` is a boolean; anything else is refused.
    static func readFile(_ path: String) throws -> Bool {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw Failure(.configuration, "\(path) cannot be read (\(error.localizedDescription))")
        }
        let value: JSONValue
        do { value = try JSONValue.parse(data) } catch {
            throw Failure(.configuration, "\(path) is not valid JSON: \(error)")
        }
        guard case .object(let members) = value, members.count == 1, case .bool(let required)? = members["requireSignedPackages"]
        else {
            throw Failure(.configuration, "\(path) must be {\"requireSignedPackages\": true|false} and nothing else")
        }
        return required
    }
}
