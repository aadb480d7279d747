import FirmwareImage

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
