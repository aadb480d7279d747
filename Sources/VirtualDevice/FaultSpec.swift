/// A fault to rehearse on a virtual unit, as an operator writes it (`--simulate-fault`, docs/guarantees.md
/// "rehearsing a failure"): a factory engineer rehearses a failure, a bug report reproduces one. Several,
/// comma-separated or repeated, combine into one `FaultPlan`. Transfer and flash-operation numbers count from
/// the start of the command, 1-based.
///
/// | spec | fault |
/// |---|---|
/// | `stall@N`, `stall@N*K` | control transfer N (and the K-1 after it) stalls |
/// | `disconnect@N` | the cable is pulled at control transfer N |
/// | `power-loss@flash-op:N` | power is lost during flash operation N (erase or programmed block): torn |
/// | `busy@flash-op:N` | the ROM sticks in dfuDNBUSY after flash operation N (H7 rev V) |
/// | `never-returns` | after the next reset or jump the unit never shows up again (until power-cycled) |
/// | `return-late@MS` | after the next reset or jump the unit shows up MS milliseconds later |
/// | `silent` | nothing on the bus when the command starts (only the BOOT0 path reaches the unit) |
public struct FaultSpec: Sendable, Hashable, CustomStringConvertible {
    public var plan = FaultPlan()
    /// The unit shows nothing when the command starts.
    public var silent = false
    public var description: String

    public static let usage =
        "stall@N[*K], disconnect@N, power-loss@flash-op:N, busy@flash-op:N, never-returns, return-late@MS, silent"

    public init(parsing specs: [String]) throws(VirtualDeviceError) {
        let items = specs.flatMap { $0.split(separator: ",", omittingEmptySubsequences: false) }.map { String($0) }
        description = items.joined(separator: ",")
        for item in items { try apply(item) }
    }

    private mutating func apply(_ item: String) throws(VirtualDeviceError) {
        let parts = item.split(separator: "@", maxSplits: 1).map(String.init)
        switch (parts.first ?? "", parts.count) {
        case ("silent", 1): silent = true
        case ("never-returns", 1): plan.neverReturnAfterReset = true
        case ("stall", 2):
            let counts = parts[1].split(separator: "*", maxSplits: 1).map(String.init)
            plan.stallAtTransfer = try Self.number(counts[0], in: item)
            plan.stallCount = counts.count == 2 ? try Self.number(counts[1], in: item) : 1
        case ("disconnect", 2): plan.disconnectAtTransfer = try Self.number(parts[1], in: item)
        case ("power-loss", 2): plan.powerLossAtFlashOperation = try Self.flashOperation(parts[1], in: item)
        case ("busy", 2): plan.stuckBusyAtFlashOperation = try Self.flashOperation(parts[1], in: item)
        case ("return-late", 2): plan.returnDelay = .milliseconds(try Self.number(parts[1], in: item))
        default:
            throw VirtualDeviceError("\"\(item)\" is not a fault; faults: \(Self.usage)", source: "--simulate-fault")
        }
    }

    private static func flashOperation(_ text: String, in item: String) throws(VirtualDeviceError) -> Int {
        guard text.hasPrefix("flash-op:") else {
            throw VirtualDeviceError("\"\(item)\": write the operation as flash-op:N", source: "--simulate-fault")
        }
        return try number(String(text.dropFirst("flash-op:".count)), in: item)
    }

    private static func number(_ text: String, in item: String) throws(VirtualDeviceError) -> Int {
        guard let value = Int(text), (1...10_000_000).contains(value) else {
            throw VirtualDeviceError("\"\(item)\": \"\(text)\" is not a number from 1 to 10000000", source: "--simulate-fault")
        }
        return value
    }
}
