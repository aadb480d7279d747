import DeviceProfiles
import DfuSeWire

/// The stages of a DfuSe session, as a progress display groups them.
public enum DfuSePhase: String, Sendable, Hashable, Codable, CustomStringConvertible {
    /// Bringing the device to dfuIDLE and checking the plan against it.
    case prepare
    /// Erasing and writing, in the plan's order.
    case program
    /// Reading back what was written and comparing.
    case verify
    /// An explicit erase of named sectors.
    case erase
    case read
    case massErase
    case readUnprotect
    case leave

    public var description: String { rawValue }
}

/// How a DfuSe leave ended (AN3156: the device manifests and drops off the bus).
public enum LeaveOutcome: String, Sendable, Hashable, Codable {
    /// The last GETSTATUS reported dfuMANIFEST.
    case manifesting
    /// The device left the bus before or while answering the last GETSTATUS: the normal way to go.
    case deviceLeftBus
}

/// ROM misbehaviour the client met and worked around, reported so a log shows it.
public enum QuirkEncounter: Sendable, Hashable, CustomStringConvertible {
    /// L4: GETSTATUS stalled during an erase and was retried.
    case statusStalledDuringErase(stall: Int, allowed: Int)
    /// F4: GETSTATUS failed before the mass erase's real duration had passed, and was retried.
    case massEraseStillRunning(elapsed: Duration, allowed: Duration)
    /// H7: the device hung in dfuDNBUSY and `clearStatusCount` CLRSTATUS brought it back.
    case recoveredStuckBusy(clearStatusCount: Int)

    public var description: String {
        switch self {
        case .statusStalledDuringErase(let stall, let allowed):
            "GETSTATUS stalled during erase (\(stall) of \(allowed) tolerated)"
        case .massEraseStillRunning(let elapsed, let allowed):
            "mass erase still running after \(elapsed) (allowed up to \(allowed))"
        case .recoveredStuckBusy(let count):
            "device hung in dfuDNBUSY; \(count) CLRSTATUS recovered it"
        }
    }
}

/// Progress of the DfuSe client, delivered to the caller's handler in order. The library never prints;
/// the CLI renders these (a bar on a terminal, JSON lines with --json).
public enum DfuSeEvent: Sendable, Hashable {
    case phaseStarted(DfuSePhase)
    case phaseFinished(DfuSePhase)
    /// The device was found in `state` and brought back to dfuIDLE.
    case returnedToIdle(from: DFUState)
    /// Sector `number` of `total` in this run is erased.
    case sectorErased(FlashLayout.Sector, number: Int, total: Int)
    /// `done` of `total` bytes are written; the last block ended at `address`.
    case bytesWritten(done: Int, total: Int, address: UInt32)
    /// `done` of `total` bytes are read back and match.
    case bytesVerified(done: Int, total: Int)
    /// `done` of `total` bytes are read (a plain read).
    case bytesRead(done: Int, total: Int)
    case quirk(QuirkEncounter)
    case massErased
    /// The read unprotect was accepted; `deviceReset` tells whether the device left the bus.
    case readUnprotected(deviceReset: Bool)
    case left(jumpTo: UInt32, outcome: LeaveOutcome)
}

public typealias DfuSeEventHandler = @Sendable (DfuSeEvent) -> Void
