import Foundation
import HIDAPIBackend
import LibUSBBackend
import USBTransport

/// One result of `USBDoctor.diagnose`: what was checked, how it stands, and what to do about it.
public struct DoctorFinding: Sendable, Equatable, CustomStringConvertible {
    public enum Status: String, Sendable, Equatable {
        case ok
        case warning
        case problem
    }

    /// "libusb", "hidapi", "udev rules", "usb device", "hid device".
    public var check: String
    public var status: Status
    public var detail: String
    /// A command or step a person can carry out, when something is wrong.
    public var fix: String?
    /// The device node or file the finding is about.
    public var subject: String?

    public init(check: String, status: Status, detail: String, fix: String? = nil, subject: String? = nil) {
        self.check = check
        self.status = status
        self.detail = detail
        self.fix = fix
        self.subject = subject
    }

    public var description: String { "\(check): \(status.rawValue): \(detail)" }
}

/// What the OS says about a device node.
public struct NodeAccess: Sendable, Equatable {
    public var exists: Bool
    public var readable: Bool
    public var writable: Bool
    /// Permission bits, e.g. 0o664.
    public var mode: UInt32
    public var owner: String
    public var group: String

    public init(exists: Bool, readable: Bool, writable: Bool, mode: UInt32 = 0, owner: String = "", group: String = "") {
        self.exists = exists
        self.readable = readable
        self.writable = writable
        self.mode = mode
        self.owner = owner
        self.group = group
    }

    /// stat(2) and access(2) of `path` (access honours ACLs, which is how uaccess grants access).
    public static func of(_ path: String) -> NodeAccess {
        var info = stat()
        guard stat(path, &info) == 0 else { return NodeAccess(exists: false, readable: false, writable: false) }
        let owner = getpwuid(info.st_uid).flatMap { $0.pointee.pw_name.map { String(cString: $0) } } ?? "\(info.st_uid)"
        let group = getgrgid(info.st_gid).flatMap { $0.pointee.gr_name.map { String(cString: $0) } } ?? "\(info.st_gid)"
        return NodeAccess(
            exists: true, readable: access(path, R_OK) == 0, writable: access(path, W_OK) == 0,
            mode: UInt32(info.st_mode) & 0o7777, owner: owner, group: group)
    }

    /// As ls and chmod write it: "0664", "0000", "04755".
    public var modeText: String {
        let digits = String(mode & 0o7777, radix: 8)
        return "0" + String(repeating: "0", count: max(0, 3 - digits.count)) + digits
    }
}

/// Everything the doctor looks at, replaceable in tests.
public struct DoctorEnvironment: Sendable {
    public var libusbVersion: @Sendable () -> String
    public var hidapiVersion: @Sendable () -> String
    /// The devices libusb sees (throws when libusb cannot start).
    public var usbDevices: @Sendable () async throws -> [LibUSBDeviceRecord]
    /// The HID interfaces hidapi sees (throws when hidapi cannot start).
    public var hidDevices: @Sendable () async throws -> [HIDDeviceInfo]
    public var readFile: @Sendable (String) -> String?
    public var nodeAccess: @Sendable (String) -> NodeAccess
    public var isRoot: Bool

    public init(
        libusbVersion: @escaping @Sendable () -> String, hidapiVersion: @escaping @Sendable () -> String,
        usbDevices: @escaping @Sendable () async throws -> [LibUSBDeviceRecord],
        hidDevices: @escaping @Sendable () async throws -> [HIDDeviceInfo],
        readFile: @escaping @Sendable (String) -> String?, nodeAccess: @escaping @Sendable (String) -> NodeAccess,
        isRoot: Bool
    ) {
        self.libusbVersion = libusbVersion
        self.hidapiVersion = hidapiVersion
        self.usbDevices = usbDevices
        self.hidDevices = hidDevices
        self.readFile = readFile
        self.nodeAccess = nodeAccess
        self.isRoot = isRoot
    }

    /// This machine.
    public static let live = DoctorEnvironment(
        libusbVersion: { LibUSBContext.libraryVersion },
        hidapiVersion: { HIDAPIBackend.libraryVersion },
        usbDevices: { try await LibUSBBackend().scan() },
        hidDevices: { try await HIDAPIBackend().devices() },
        readFile: { path in FileManager.default.contents(atPath: path).map { String(decoding: $0, as: UTF8.self) } },
        nodeAccess: NodeAccess.of,
        isRoot: getuid() == 0)
}

/// What a diagnosis comes to, for the exit status: every finding that is not `ok` needs a person's attention,
/// warnings included (the help promises a non-zero status for anything it warns about).
public enum DoctorVerdict: Sendable, Equatable {
    /// Every check passed.
    case healthy
    /// libusb or hidapi cannot start: nothing else could be checked properly.
    case libraryFailure
    /// A problem or a warning: rules missing or outdated, a device node this user cannot open, a busy unit.
    case needsAttention
}

/// `dfuhop doctor`'s diagnosis of USB access: the libraries, the udev rules, and the permissions of
/// every device node dfuhop would use. Returns findings; the CLI renders them.
public enum USBDoctor {
    /// The command that installs the rules from the running binary.
    public static let installCommand =
        "dfuhop doctor --print-rules | sudo tee /etc/udev/rules.d/\(UdevRules.fileName) >/dev/null"
        + " && sudo udevadm control --reload-rules && sudo udevadm trigger"

    public static func diagnose(_ environment: DoctorEnvironment = .live) async -> [DoctorFinding] {
        var findings: [DoctorFinding] = []
        let rules = rulesFinding(environment)
        let rulesInstalled = rules.status != .problem
        let covered = UdevRules.matches(in: UdevRules.text)

        do {
            let records = try await environment.usbDevices()
            findings.append(
                DoctorFinding(
                    check: "libusb", status: .ok,
                    detail: "libusb \(environment.libusbVersion()) sees \(records.count) USB devices"))
            findings.append(rules)
            for record in records
            where !record.dfuInterfaces.isEmpty
                || covered.contains(
                    UdevRules.Match(node: .usb, vendorID: record.descriptor.vendorID, productID: record.descriptor.productID))
            {
                findings.append(
                    nodeFinding(
                        check: "usb device", name: "\(record.identity.description)", path: record.devicePath,
                        access: environment.nodeAccess(record.devicePath), rulesInstalled: rulesInstalled,
                        isRoot: environment.isRoot, openError: record.openError))
            }
        } catch {
            findings.append(
                DoctorFinding(
                    check: "libusb", status: .problem,
                    detail: "libusb \(environment.libusbVersion()) cannot list devices: \(error)",
                    fix: "check that /dev/bus/usb exists (in a container: pass the USB bus through)"))
            findings.append(rules)
        }

        do {
            let interfaces = try await environment.hidDevices().filter { info in
                covered.contains(UdevRules.Match(node: .hidraw, vendorID: info.usb.vendorID, productID: info.usb.productID))
            }
            findings.append(
                DoctorFinding(
                    check: "hidapi", status: .ok,
                    detail: "hidapi \(environment.hidapiVersion()) sees \(interfaces.count) product HID interfaces"))
            for info in interfaces {
                findings.append(
                    nodeFinding(
                        check: "hid device", name: "\(info.usb.vidPid) at \(info.usb.portPath)", path: info.path,
                        access: environment.nodeAccess(info.path), rulesInstalled: rulesInstalled,
                        isRoot: environment.isRoot, openError: nil))
            }
        } catch {
            findings.append(
                DoctorFinding(
                    check: "hidapi", status: .problem,
                    detail: "hidapi \(environment.hidapiVersion()) cannot list HID devices: \(error)"))
        }
        return findings
    }

    public static func verdict(_ findings: [DoctorFinding]) -> DoctorVerdict {
        if findings.contains(where: { $0.status == .problem && ($0.check == "libusb" || $0.check == "hidapi") }) {
            return .libraryFailure
        }
        return findings.allSatisfy { $0.status == .ok } ? .healthy : .needsAttention
    }

    /// Whether dfuhop's rules file is installed, and current.
    static func rulesFinding(_ environment: DoctorEnvironment) -> DoctorFinding {
        let installed = UdevRules.directories.map { "\($0)/\(UdevRules.fileName)" }.compactMap { path in
            environment.readFile(path).map { (path, $0) }
        }
        guard let (path, text) = installed.first else {
            return DoctorFinding(
                check: "udev rules", status: environment.isRoot ? .warning : .problem,
                detail: "\(UdevRules.fileName) is not installed in \(UdevRules.directories.joined(separator: ", "))"
                    + (environment.isRoot ? " (root needs no rules, but the units' users will)" : ""),
                fix: installCommand)
        }
        let missing = Set(UdevRules.matches(in: UdevRules.text)).subtracting(UdevRules.matches(in: text))
        guard missing.isEmpty else {
            return DoctorFinding(
                check: "udev rules", status: .warning,
                detail: "\(path) is older than this dfuhop: it lacks \(missing.map(\.description).sorted().joined(separator: ", "))",
                fix: installCommand, subject: path)
        }
        return DoctorFinding(check: "udev rules", status: .ok, detail: "\(path) is installed", subject: path)
    }

    static func nodeFinding(
        check: String, name: String, path: String, access: NodeAccess, rulesInstalled: Bool, isRoot: Bool,
        openError: LibUSBError?
    ) -> DoctorFinding {
        guard access.exists else {
            return DoctorFinding(
                check: check, status: .warning, detail: "\(name): \(path) does not exist (the device left?)",
                subject: path)
        }
        let permissions = "mode \(access.modeText), owner \(access.owner), group \(access.group)"
        if access.readable && access.writable {
            if let openError, openError.code != .access {
                return DoctorFinding(
                    check: check, status: .warning, detail: "\(name): \(path) is accessible but opening it failed: \(openError)",
                    fix: openError.code == .busy ? "close the other program using the unit (dfu-util, STM32CubeProgrammer)" : nil,
                    subject: path)
            }
            return DoctorFinding(check: check, status: .ok, detail: "\(name): \(path) read/write (\(permissions))", subject: path)
        }
        let fix: String
        if !rulesInstalled {
            fix = "install the udev rules: \(installCommand); then replug the unit"
        } else if isRoot {
            fix = "even root cannot open it: check for a security module (SELinux, AppArmor) or a container without device access"
        } else {
            fix =
                "replug the unit so the rules apply; uaccess only serves the user of the active local session"
                + " (over SSH or as a service, add GROUP=\"plugdev\", MODE=\"0660\" to the rules line and join that group)"
        }
        return DoctorFinding(
            check: check, status: .problem, detail: "\(name): no read/write access to \(path) (\(permissions))",
            fix: fix, subject: path)
    }
}
