/// Where a value sits in a JSON document: the keys and array indices from the root down. Errors name it
/// so a person can find the value in the file.
public struct JSONPath: Sendable, Hashable, CustomStringConvertible {
    public enum Component: Sendable, Hashable {
        case key(String)
        case index(Int)
    }

    public var components: [Component]

    public init(_ components: [Component] = []) { self.components = components }

    public static let root = JSONPath()

    public func appending(_ component: Component) -> JSONPath { JSONPath(components + [component]) }
    public func appending(key: String) -> JSONPath { appending(.key(key)) }
    public func appending(index: Int) -> JSONPath { appending(.index(index)) }

    /// JSONPath notation, as `jq` and JSON Schema tools print it: `$.images[0].size`; `$` for the root.
    /// A key that is not a plain identifier is quoted: `$["sector size"]`.
    public var description: String {
        components.reduce(into: "$") { text, component in
            switch component {
            case .index(let index): text += "[\(index)]"
            case .key(let key) where Self.isPlain(key): text += "." + key
            case .key(let key): text += "[\"\(key.prefix(40))\"]"
            }
        }
    }

    /// The dotted form the profile, family and manifest errors have always used: `images.0.size`; empty
    /// for the root.
    public var dotted: String {
        components.map { component in
            switch component {
            case .index(let index): "\(index)"
            case .key(let key): key
            }
        }.joined(separator: ".")
    }

    static func isPlain(_ key: String) -> Bool {
        guard let first = key.unicodeScalars.first, !("0"..."9").contains(first) else { return false }
        return key.unicodeScalars.allSatisfy { $0.properties.isAlphabetic && $0.isASCII || ("0"..."9").contains($0) || $0 == "_" }
    }
}
