import Foundation

/// dfuhop's udev rules (udev/70-dfuhop.rules in the source tree; a test keeps the two identical), and
/// where udev looks for rules files (udev(7)).
public enum UdevRules {
    public static let fileName = "70-dfuhop.rules"

    /// udev(7): /etc overrides /run overrides the vendor directories.
    public static let directories = ["/etc/udev/rules.d", "/run/udev/rules.d", "/lib/udev/rules.d", "/usr/lib/udev/rules.d"]

    /// What the rules cover: a node kind and a VID:PID.
    public struct Match: Sendable, Hashable, CustomStringConvertible {
        public enum Node: String, Sendable, Hashable {
            /// /dev/bus/usb/BBB/DDD (libusb).
            case usb
            /// /dev/hidrawN (hidapi).
            case hidraw
        }

        public var node: Node
        public var vendorID: UInt16
        public var productID: UInt16

        public init(node: Node, vendorID: UInt16, productID: UInt16) {
            self.node = node
            self.vendorID = vendorID
            self.productID = productID
        }

        public var description: String {
            "\(node) \(String(format: "%04x:%04x", vendorID, productID))"
        }
    }

    /// The devices a rules text grants access to with TAG+="uaccess" (only lines of the form dfuhop writes).
    public static func matches(in text: String) -> [Match] {
        text.split(separator: "\n").compactMap { line -> Match? in
            let line = line.trimmingCharacters(in: .whitespaces)
            guard !line.hasPrefix("#"), line.contains("TAG+=\"uaccess\""),
                let vendor = value(of: "idVendor", in: line).flatMap({ UInt16($0, radix: 16) }),
                let product = value(of: "idProduct", in: line).flatMap({ UInt16($0, radix: 16) })
            else { return nil }
            let node: Match.Node = line.contains("SUBSYSTEM==\"hidraw\"") ? .hidraw : .usb
            return Match(node: node, vendorID: vendor, productID: product)
        }
    }

    /// The value of ATTR{key}=="..." or ATTRS{key}=="..." in a rules line.
    private static func value(of key: String, in line: String) -> String? {
        for prefix in ["ATTR{\(key)}==\"", "ATTRS{\(key)}==\""] {
            guard let start = line.range(of: prefix) else { continue }
            let rest = line[start.upperBound...]
            guard let end = rest.firstIndex(of: "\"") else { return nil }
            return String(rest[..<end])
        }
        return nil
    }

    /// The rules text, as shipped.
    public static let text = """
        # dfuhop: USB access for the user at the computer, without root, to the STM32 ROM bootloader and
        # to the HID interfaces of the products dfuhop upgrades. No MODE here: nothing becomes world-writable.
        #
        # TAG+="uaccess" makes systemd-logind give the user of the active local session an ACL on the
        # device node; 73-seat-late.rules applies the tag, so this file must sort before it (70-).
        # Install (or print this file with `dfuhop doctor --print-rules`):
        #   sudo cp 70-dfuhop.rules /etc/udev/rules.d/
        #   sudo udevadm control --reload-rules && sudo udevadm trigger
        # then unplug and replug the unit. `dfuhop doctor` checks the result.

        # STM32 ROM bootloader in DFU mode (AN2606: VID 0x0483, PID 0xDF11), /dev/bus/usb/BBB/DDD.
        SUBSYSTEM=="usb", ENV{DEVTYPE}=="usb_device", ATTR{idVendor}=="0483", ATTR{idProduct}=="df11", TAG+="uaccess"

        # Product applications: their HID interface (/dev/hidrawN), one line per product profile's
        # application.usbVendorID:usbProductID (protocols/devices/*.json). The 1209 (pid.codes) ids are the
        # demo products; a product with its own ids adds its line here.
        SUBSYSTEM=="hidraw", KERNEL=="hidraw*", ATTRS{idVendor}=="1209", ATTRS{idProduct}=="0001", TAG+="uaccess"
        SUBSYSTEM=="hidraw", KERNEL=="hidraw*", ATTRS{idVendor}=="1209", ATTRS{idProduct}=="0002", TAG+="uaccess"
        SUBSYSTEM=="hidraw", KERNEL=="hidraw*", ATTRS{idVendor}=="1209", ATTRS{idProduct}=="0003", TAG+="uaccess"

        """
}
