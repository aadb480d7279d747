import FirmwareImage
import HexFormat

/// What was looked for and not found (`UpgradeError.Kind.noUnit`), as data: a front end words it its own way.
public enum UnitSought: Sendable, Hashable, CustomStringConvertible {
    /// Any unit, nothing named: the bus shows none.
    case any
    /// A unit in its ROM bootloader (`inROM`) or running its application, named `name` (nil: any).
    case showing(inROM: Bool, name: String?)
    /// The unit a name (not a port) names: nothing on the bus shows it, and the journal knows no such unit.
    case named(String)
    /// Any unit on this port (named, or the journal's): none shows there and no BOOT0 path can ask for it.
    case atPort(String)
    /// Any unit, nothing named: devices show, none of them a unit.
    case amongOthers

    public var description: String {
        switch self {
        case .any: "no unit is connected"
        case .showing(let inROM, let name):
            "no \(inROM ? "unit in DFU mode" : "running application on dfuhop's HID usage page")"
                + (name.map { " matching \"\($0)\"" } ?? "") + " is connected"
        case .named(let name): "no unit matches the name \(name)"
        case .atPort(let port): "no unit shows at \(port)"
        case .amongOthers: "no unit on the bus matches"
        }
    }
}

/// One of several units a name matches (`UpgradeError.Kind.ambiguous`): what it shows, and where.
public struct UnitMatch: Sendable, Hashable, CustomStringConvertible {
    /// What tells it apart: its ROM serial, or the state it is in ("programmed unit").
    public var shows: String
    public var port: String?

    public init(shows: String, port: String?) {
        self.shows = shows
        self.port = port
    }

    public var description: String { "\(shows) at \(port ?? "?")" }
}

/// Why only the BOOT0 path can reach the unit's ROM, or why it did not (`UpgradeError.Kind.needsBoot0`).
public enum Boot0Need: Sendable, Hashable, CustomStringConvertible {
    /// No application answers (at `port`); `pathSetUp` false: and no BOOT0 path is set up.
    case noApplication(port: String?, pathSetUp: Bool)
    /// On this part line the application cannot jump to its ROM (AN2606: such a jump goes back to user flash).
    case applicationCannotJump(family: String)
    /// The BOOT0 path (`path`) was asked, and no ROM showed up (at `port`) within `timeout`; `elsewhere`: the
    /// port a ROM with the expected serial (`serial`) shows at instead.
    case romDidNotShow(port: String?, timeout: Duration, path: String, serial: String?, elsewhere: String?)
    /// The BOOT0 path (`path`) failed to do `action` (`problem`: what it reported).
    case pathFailed(path: String, action: String, problem: String)

    public var description: String {
        switch self {
        case .noApplication(let port, let pathSetUp):
            "no application answers\(port.map { " at \($0)" } ?? "")" + (pathSetUp ? "" : ", and no BOOT0 path is set up")
        case .applicationCannotJump(let family):
            "on \(family) the application cannot jump to its ROM (AN2606: such a jump goes back to user flash)"
        case .romDidNotShow(let port, let timeout, let path, let serial, let elsewhere):
            "no ROM showed up\(port.map { " at \($0)" } ?? "") within \(timeout) of the BOOT0 request (\(path))"
                + (elsewhere.map { "; a ROM with serial \(serial ?? "") is at \($0)" } ?? "")
        case .pathFailed(let path, let action, let problem): "the BOOT0 path (\(path)) failed to \(action): \(problem)"
        }
    }
}

/// What the unit did or answered instead of coming back as expected (`UpgradeError.Kind.notConfirmed`).
public enum Unconfirmed: Sendable, Hashable, CustomStringConvertible {
    /// After ENTER_BOOTLOADER the ROM (`serial`: the one its UID predicts) did not show up at `port` within
    /// `timeout`; `elsewhere`: the port a ROM with that serial shows at instead (the cable was moved).
    case romDidNotShow(port: String, serial: String?, timeout: Duration, elsewhere: String?)
    /// The option bytes read `read` after the write, not `wanted` (by name).
    case optionBytes(read: [String: UInt32], wanted: [String: UInt32])
    /// The application did not show up at `port` within `timeout` of leaving DFU.
    case applicationDidNotShow(port: String, timeout: Duration)
    /// The application at `port` answered with unique ID `uid`: another unit than `expected`.
    case otherUnit(port: String, uid: String, expected: String)
    /// The application at `port` answered with unique ID `uid`, whose ROM serial is not `serial`, the one the
    /// (blank) unit's ROM showed.
    case otherROMSerial(port: String, uid: String, serial: String)
    /// The application reports version `running` (nil: an image without a descriptor), not `expected`.
    case otherVersion(running: FirmwareVersion?, expected: FirmwareVersion)

    public var description: String {
        switch self {
        case .romDidNotShow(let port, let serial, let timeout, let elsewhere):
            "\(serial.map { "the ROM (serial \($0))" } ?? "the ROM") did not show up at \(port) within \(timeout)"
                + (elsewhere.map { "; a ROM with that serial is at \($0) (was the cable moved?)" } ?? "")
        case .optionBytes(let read, let wanted):
            "the option bytes read \(Self.shown(read)) after the write, not \(Self.shown(wanted))"
        case .applicationDidNotShow(let port, let timeout):
            "the application did not show up at \(port) within \(timeout) of leaving DFU"
        case .otherUnit(let port, let uid, let expected): "the application at \(port) is unit \(uid), not \(expected)"
        case .otherROMSerial(let port, let uid, let serial):
            "the application at \(port) is unit \(uid), whose ROM serial is not \(serial)"
        case .otherVersion(let running, let expected):
            "the unit runs \(running.map { "version \($0)" } ?? "an image without a descriptor"), not \(expected)"
        }
    }

    /// Option-byte values as "NAME=value", in name order.
    static func shown(_ values: [String: UInt32]) -> String {
        values.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ")
    }
}

/// Why the unit's read protection stops the run (`UpgradeError.Kind.readProtected`).
public enum ReadProtectionStop: Sendable, Hashable, CustomStringConvertible {
    /// The ROM at `port` refuses every read and write of the flash: read protection `level` (from the byte
    /// `rdp`), or level 1 or 2 when the byte cannot be read (nil).
    case unitProtected(port: String, level: Int?, rdp: UInt8?)
    /// The option bytes to write would leave read protection other than level 0 (`rdp`: the byte they hold).
    case writeWouldProtect(rdp: UInt8)

    public var description: String {
        switch self {
        case .unitProtected(let port, let level, let rdp):
            "the unit at \(port) has read protection "
                + (level.map { "level \($0)" + (rdp.map { " (RDP=0x\(Hex.digits($0, width: 2)))" } ?? "") } ?? "level 1 or 2")
                + ": its ROM refuses every read and write of the flash"
        case .writeWouldProtect(let rdp):
            "the option bytes read RDP=0x\(Hex.digits(rdp, width: 2)); dfuhop writes option bytes only on a unit at read protection level 0"
        }
    }
}

/// Why the image is not trusted (`UpgradeError.Kind.untrusted`; docs/packages.md).
public enum Distrust: Sendable, Hashable, CustomStringConvertible {
    /// The station's policy writes only signed firmware, and `source` is not a package signed by a trusted key.
    case stationRequiresSignature(source: String)
    /// `source` is an unsigned image for a product (`product`, its id and profile) whose profile requires
    /// signed packages.
    case profileRequiresSignature(source: String, product: String, productID: UInt32, profile: String)
    /// `source` reads as `flashed` on this part and as `other` where the write unit is `granularity` bytes
    /// (nil: no image descriptor): one file, two readings.
    case twoReadings(source: String, flashed: ImageDescriptor?, other: ImageDescriptor?, granularity: Int)

    public var description: String {
        switch self {
        case .stationRequiresSignature(let source):
            "\(source) is not a package signed by a trusted key, and this station writes only signed firmware"
        case .profileRequiresSignature(let source, let product, let productID, let profile):
            "\(source) is an unsigned image for \(product) (product \(Refusal.product(productID)), profile \(profile)), "
                + "whose profile requires signed packages"
        case .twoReadings(let source, let flashed, let other, let granularity):
            "\(source) reads as \(Self.reading(flashed)) on this part, but as \(Self.reading(other)) where the write unit is "
                + "\(granularity) bytes: one file, two readings"
        }
    }

    static func reading(_ descriptor: ImageDescriptor?) -> String {
        descriptor.map { "product \(Refusal.product($0.productID)) version \($0.version)" } ?? "no image descriptor"
    }
}

/// A request malformed on its face (`UpgradeError.Kind.invalidRequest`): nothing was looked at.
public enum InvalidRequest: Sendable, Hashable, CustomStringConvertible {
    /// The unit's name is empty (or only white space).
    case emptyUnitName

    public var description: String {
        switch self {
        case .emptyUnitName: "the unit's name is empty"
        }
    }
}
