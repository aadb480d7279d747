/// A firmware version as the image descriptor holds it (protocols/image-descriptor.md, offset 0x0C) and the
/// running application reports it (protocols/hid-app-protocol.md, GET_INFO): major, minor, patch, build,
/// 16 bits each, ordered component by component.
public struct FirmwareVersion: Sendable, Hashable, Codable, Comparable, CustomStringConvertible {
    public var major: UInt16
    public var minor: UInt16
    public var patch: UInt16
    public var build: UInt16

    public init(major: UInt16, minor: UInt16, patch: UInt16, build: UInt16 = 0) {
        self.major = major
        self.minor = minor
        self.patch = patch
        self.build = build
    }

    /// "A.B", "A.B.C" or "A.B.C.D" with decimal components of at most 65535; the missing ones are 0. Where a
    /// version is written by hand for an image or a package (`image stamp`, manifests), `minimumComponents`
    /// is 3, so that "2.1" is not taken for 2.1.0.
    public init?(parsing text: String, minimumComponents: Int = 2) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count >= minimumComponents, parts.count <= 4 else { return nil }
        var numbers: [UInt16] = []
        for part in parts {
            guard !part.isEmpty, part.utf8.allSatisfy({ (0x30...0x39).contains($0) }), let value = UInt16(part) else { return nil }
            numbers.append(value)
        }
        while numbers.count < 4 { numbers.append(0) }
        self.init(major: numbers[0], minor: numbers[1], patch: numbers[2], build: numbers[3])
    }

    /// Major, minor, patch, build: the order the descriptor and GET_INFO hold them in.
    public var components: [UInt16] { [major, minor, patch, build] }

    public static func < (lhs: FirmwareVersion, rhs: FirmwareVersion) -> Bool {
        lhs.components.lexicographicallyPrecedes(rhs.components)
    }

    /// "1.2.3", or "1.2.3.4" when the build number is not zero.
    public var description: String {
        let shown = build == 0 ? components.prefix(3) : components.prefix(4)
        return shown.map(String.init).joined(separator: ".")
    }

    /// All four components, "1.2.3.0": how descriptors are shown and package manifests write a version.
    public var fullDescription: String { components.map(String.init).joined(separator: ".") }
}
