import Foundation
import USBTransport

/// A `dfu-util -l` capture of a real ROM (protocols/families/fixtures/*.txt) as a discovery-only recording:
/// its `Found DFU:` lines give each device's ids, bcdDevice, serial, port and alternate settings, which is
/// everything `devices()` reports. It holds no transfer: dfu-util did not send dfuhop's requests.
public enum DfuUtilListing {
    /// The DFU devices the lines show: one per ids, port and device number, alternate settings in order.
    public static func devices(in text: String) -> [DiscoveredDevice] {
        var order: [String] = []
        var found: [String: (identity: USBDeviceIdentity, alternates: [DFUAlternateSetting])] = [:]
        for line in text.split(separator: "\n") {
            guard let entry = parse(line) else { continue }
            let key = "\(entry.identity.vidPid) \(entry.identity.portPath)"
            if found[key] == nil {
                order.append(key)
                found[key] = (entry.identity, [])
            }
            if found[key]?.identity.serialNumber == nil { found[key]?.identity.serialNumber = entry.identity.serialNumber }
            found[key]?.alternates.append(entry.alternate)
        }
        return order.compactMap { key in
            found[key].map { .dfu($0.identity, alternateSettings: $0.alternates.sorted { $0.number < $1.number }) }
        }
    }

    /// The recording: a header for `dfuhop list --json` with `coverage` `discovery`, and one snapshot.
    public static func recording(from text: String, origin: String) -> String {
        let header = RecordingHeader(
            dfuhop: "made from a dfu-util -l capture (not recorded by dfuhop)", command: ["list", "--json"], started: nil,
            clock: "none", coverage: .discovery, origin: origin)
        var snapshot = Record(.devices)
        snapshot.devices = devices(in: text).map(DeviceRecord.init)
        return RecordingLog.line(header) + "\n" + RecordingLog.line(snapshot) + "\n"
    }

    /// The `# origin:` comment of a capture file.
    public static func origin(of text: String) -> String? {
        text.split(separator: "\n").first { $0.hasPrefix("# origin:") }.map {
            $0.dropFirst("# origin:".count).trimmingCharacters(in: .whitespaces)
        }
    }

    /// `Found DFU: [0483:df11] ver=2200, devnum=19, cfg=1, intf=0, path="20-1", alt=1, name="…", serial="…"`.
    static func parse(_ line: Substring) -> (identity: USBDeviceIdentity, alternate: DFUAlternateSetting)? {
        guard let start = line.range(of: "Found DFU: [") else { return nil }
        let rest = line[start.upperBound...]
        let ids = rest.prefix { $0 != "]" }.split(separator: ":")
        guard ids.count == 2, let vendor = UInt16(ids[0], radix: 16), let product = UInt16(ids[1], radix: 16),
            let version = field(rest, "ver=", until: ",").flatMap({ UInt16($0, radix: 16) }),
            let alt = field(rest, "alt=", until: ",").flatMap({ UInt8($0) }), let name = field(rest, "name=\"", until: "\"")
        else { return nil }
        let port = field(rest, "path=\"", until: "\"") ?? "devnum-" + (field(rest, "devnum=", until: ",") ?? "?")
        let identity = USBDeviceIdentity(
            vendorID: vendor, productID: product, bcdDevice: version, serialNumber: field(rest, "serial=\"", until: "\""),
            portPath: port)
        return (identity, DFUAlternateSetting(number: alt, name: name))
    }

    static func field(_ line: Substring, _ key: String, until end: Character) -> String? {
        guard let range = line.range(of: key) else { return nil }
        let value = line[range.upperBound...]
        guard let stop = value.firstIndex(of: end) else { return nil }
        return String(value[..<stop])
    }
}
