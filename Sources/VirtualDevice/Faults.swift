import AppLink
import DfuSeWire
import FirmwareImage
import USBTransport

/// Faults to inject into one virtual unit, as values: deterministic, so a failing case replays exactly.
/// Counters are 1-based and count from the unit's creation (or from `VirtualUnit.resetCounters()`).
public struct FaultPlan: Sendable, Hashable, Codable {
    /// Power is lost during the Nth flash operation (sector erase, mass erase, or one programmed block):
    /// the operation is left half done (torn) and the unit is off until `powerCycle()`.
    public var powerLossAtFlashOperation: Int?
    /// The cable is pulled at the Nth control transfer: the unit is off until `plug()`.
    public var disconnectAtTransfer: Int?
    /// Starting at the Nth control transfer, `stallCount` transfers in a row are stalled.
    public var stallAtTransfer: Int?
    public var stallCount: Int
    /// The data block with this wBlockNum (the first time it is sent) fails with `status`.
    public var statusErrorAtBlock: BlockStatusError?
    /// After the next reset or leave, the unit never shows up again (until `powerCycle()`).
    public var neverReturnAfterReset: Bool
    /// H7 rev V: the Nth programmed block leaves the ROM stuck in dfuDNBUSY until CLRSTATUS is sent as
    /// often as the family's `stuckInDownloadBusy` quirk says (the block itself is written).
    public var stuckBusyAtFlashOperation: Int?
    /// After the next reset or jump, the unit shows up only this much later (device time).
    public var returnDelay: Duration?
    /// After the next reset or jump, the unit shows up at this port (someone replugged it elsewhere).
    public var returnPort: String?
    /// The ROM's bwPollTimeout is this many times the real duration of the operation (0.1: understated,
    /// 10: overstated). The ROM still answers a GETSTATUS that comes early only once the operation is done.
    public var pollTimeoutScale: Double?
    /// The application's GET_INFO reports this version, whatever its image descriptor says (a firmware
    /// whose version constant was not bumped).
    public var reportedVersion: FirmwareVersion?
    /// A worn flash cell: bit 0 of the byte at this address stays 0 whatever is erased or written, so
    /// read-back differs there every time (a unit no rewrite can fix).
    public var stuckBitAt: UInt32?
    /// The ROM also acts out the quirks its family data marks unverified (no public log behind them: the
    /// L4 GETSTATUS stall during an erase). Off by default, so a client real ROMs accept never fails
    /// against a guess; on, to test that a client tolerates the guess too.
    public var unverifiedQuirks: Bool?
    /// The application answers ENTER_BOOTLOADER with BUSY (it is in the middle of its own work).
    public var applicationBusy: Bool?

    public struct BlockStatusError: Sendable, Hashable, Codable {
        public var block: Int
        public var status: UInt8
        public init(block: Int, status: DFUStatus) {
            self.block = block
            self.status = status.rawValue
        }
    }

    public init(
        powerLossAtFlashOperation: Int? = nil, disconnectAtTransfer: Int? = nil, stallAtTransfer: Int? = nil,
        stallCount: Int = 1, statusErrorAtBlock: BlockStatusError? = nil, neverReturnAfterReset: Bool = false,
        stuckBusyAtFlashOperation: Int? = nil, returnDelay: Duration? = nil, returnPort: String? = nil,
        pollTimeoutScale: Double? = nil, reportedVersion: FirmwareVersion? = nil, stuckBitAt: UInt32? = nil,
        unverifiedQuirks: Bool? = nil, applicationBusy: Bool? = nil
    ) {
        self.powerLossAtFlashOperation = powerLossAtFlashOperation
        self.disconnectAtTransfer = disconnectAtTransfer
        self.stallAtTransfer = stallAtTransfer
        self.stallCount = stallCount
        self.statusErrorAtBlock = statusErrorAtBlock
        self.neverReturnAfterReset = neverReturnAfterReset
        self.stuckBusyAtFlashOperation = stuckBusyAtFlashOperation
        self.returnDelay = returnDelay
        self.returnPort = returnPort
        self.pollTimeoutScale = pollTimeoutScale
        self.reportedVersion = reportedVersion
        self.stuckBitAt = stuckBitAt
        self.unverifiedQuirks = unverifiedQuirks
        self.applicationBusy = applicationBusy
    }

    public static let none = FaultPlan()
}

/// One control request a unit received, decoded, for tests that check "only the intended unit was
/// touched, and no forbidden request was sent".
public struct LoggedRequest: Sendable, Hashable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        case command(DfuSeCommand)
        case download(block: UInt16, address: UInt32, length: Int)
        case leave
        case upload(block: UInt16, length: Int)
        case getStatus, clearStatus, getState, abort, detach
        case selectAlternateSetting(UInt8)
        /// An output report to the application; the command byte.
        case hidReport(UInt8)
        case unknown(ControlRequest)
    }

    public var kind: Kind
    /// Which enumeration of the unit received it (changes on every reset).
    public var enumeration: Int

    public var description: String { "#\(enumeration) \(kind)" }

    /// Requests that may destroy more than the plan says or change the unit's configuration.
    public var isDestructive: Bool {
        switch kind {
        case .command(.massErase), .command(.readUnprotect): true
        default: false
        }
    }
}
