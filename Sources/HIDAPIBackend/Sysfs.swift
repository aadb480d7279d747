import Foundation

/// Linux sysfs facts about hidraw nodes: which USB port and interface a node belongs to, and its
/// report descriptor. hidapi 0.13 gives neither (and its hid_get_*_string calls need fstat, which
/// umockdev 0.17 does not wrap), so dfuhop reads them here.
public enum HIDRawSysfs {
    /// "/dev/hidraw3" → "hidraw3", or nil for anything else.
    public static func nodeName(_ path: String) -> String? {
        let name = (path as NSString).lastPathComponent
        guard path.hasPrefix("/dev/"), name.hasPrefix("hidraw"), name.dropFirst(6).allSatisfy(\.isNumber),
            name.count > 6
        else { return nil }
        return name
    }

    /// The USB port path and interface number in a resolved sysfs path such as
    /// "/sys/devices/pci0000:00/0000:00:14.0/usb1/1-2/1-2.3/1-2.3:1.0/0003:1209:0001.0004/hidraw/hidraw3":
    /// ("1-2.3", 0). The deepest "BUS-PORT[.PORT]:CONFIG.INTERFACE" component decides.
    public static func usbLocation(inSysfsPath path: String) -> (portPath: String, interfaceNumber: Int)? {
        for component in path.split(separator: "/").reversed() {
            let halves = component.split(separator: ":", omittingEmptySubsequences: false)
            guard halves.count == 2, isPortPath(halves[0]) else { continue }
            let configInterface = halves[1].split(separator: ".", omittingEmptySubsequences: false)
            guard configInterface.count == 2, Int(configInterface[0]) != nil, let interface = Int(configInterface[1]) else { continue }
            return (String(halves[0]), interface)
        }
        return nil
    }

    /// "BUS-PORT[.PORT]..." with decimal numbers, ports 1...255, at most 7 levels (USB 3.2 §10.1.3).
    static func isPortPath(_ text: Substring) -> Bool {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, let bus = Int(parts[0]), (1...255).contains(bus), parts[0].allSatisfy(\.isNumber) else { return false }
        let ports = parts[1].split(separator: ".", omittingEmptySubsequences: false)
        return (1...7).contains(ports.count)
            && ports.allSatisfy { $0.count <= 3 && $0.allSatisfy(\.isNumber) && (1...255).contains(Int($0) ?? 0) }
    }

    /// Where the hidraw node `path` sits on USB, read from /sys/class/hidraw/NAME/device.
    public static func usbLocation(ofNode path: String) -> (portPath: String, interfaceNumber: Int)? {
        guard let name = nodeName(path) else { return nil }
        let link = "/sys/class/hidraw/\(name)/device"
        guard let resolved = realpath(link, nil) else { return nil }
        defer { free(resolved) }
        return usbLocation(inSysfsPath: String(cString: resolved))
    }

    /// The raw report descriptor of the hidraw node `path` (sysfs attribute report_descriptor).
    public static func reportDescriptor(ofNode path: String) -> [UInt8]? {
        guard let name = nodeName(path),
            let data = FileManager.default.contents(atPath: "/sys/class/hidraw/\(name)/device/report_descriptor")
        else { return nil }
        return [UInt8](data)
    }
}
