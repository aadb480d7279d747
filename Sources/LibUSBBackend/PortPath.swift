/// Where a device sits: its bus and the chain of hub ports from the root hub, written the way Linux
/// names USB devices in sysfs and dfu-util prints them ("1-2.3": bus 1, root port 2, hub port 3).
/// The path survives re-enumeration on the same port, the address does not.
public struct USBPortPath: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var bus: UInt8
    /// Port numbers from the root hub down; empty for a root hub itself.
    public var ports: [UInt8]

    /// USB 3.2 §10.1.3: at most 7 tiers below the root, so at most 7 port numbers.
    public static let maxDepth = 7

    public init(bus: UInt8, ports: [UInt8]) {
        self.bus = bus
        self.ports = ports
    }

    /// Parses "1-2.3" (or "usb1" for a root hub). Rejects port 0, more than 7 levels, and anything else.
    public init?(_ text: String) {
        if text.hasPrefix("usb") {
            guard let bus = Self.number(Substring(text.dropFirst(3))) else { return nil }
            self.init(bus: bus, ports: [])
            return
        }
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, let bus = Self.number(parts[0]) else { return nil }
        let ports = parts[1].split(separator: ".", omittingEmptySubsequences: false).map { Self.number($0) }
        guard (1...Self.maxDepth).contains(ports.count) else { return nil }
        var values: [UInt8] = []
        for port in ports {
            guard let port, port > 0 else { return nil }
            values.append(port)
        }
        self.init(bus: bus, ports: values)
    }

    public var description: String {
        ports.isEmpty ? "usb\(bus)" : "\(bus)-" + ports.map { String($0) }.joined(separator: ".")
    }

    public static func < (lhs: USBPortPath, rhs: USBPortPath) -> Bool {
        lhs.bus != rhs.bus ? lhs.bus < rhs.bus : lhs.ports.lexicographicallyPrecedes(rhs.ports)
    }

    private static func number(_ text: Substring) -> UInt8? {
        guard !text.isEmpty, text.count <= 3, text.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return UInt8(text)
    }
}
