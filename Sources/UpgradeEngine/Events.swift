import AppLink
import DfuSe
import FirmwareImage

/// The workflow's phases, in order (field-safety.md; fwupd's detach → write → attach → reload).
public enum UpgradePhase: String, Sendable, Hashable, CaseIterable, Codable {
    case find, plan, enter, reenumerate, flash, leave, confirm
}

/// What the engine reports while it works; the CLI renders it, the engine never prints.
public enum UpgradeEvent: Sendable {
    case phaseStarted(UpgradePhase)
    case phaseFinished(UpgradePhase, Duration)
    /// The unit found, as the application described it.
    case found(UnitDescription)
    /// The plan, before anything on the unit changes.
    case planned(FlashPlan, skippedSectors: Int)
    /// Progress of the DfuSe client while flashing.
    case flash(DfuSeEvent)
    case note(String)
}

/// A unit as the engine knows it.
public struct UnitDescription: Sendable, Hashable {
    public enum Classification: String, Sendable, Hashable, Codable {
        /// The application answers over HID.
        case programmed
        /// Only the ROM's DFU is there (blank, corrupted, or an interrupted upgrade).
        case inDFU = "in-dfu"
    }

    public var classification: Classification
    public var uid: UniqueID?
    public var familyID: String
    public var portPath: String
    /// The serial number the ROM shows, predicted from the UID (dfuse-facts.md).
    public var dfuSerial: String?
    public var version: FirmwareVersion?
    public var productID: UInt32?
}

/// How an upgrade ended, for people and for `--json`.
public struct UpgradeResult: Sendable {
    public enum Outcome: String, Sendable, Codable {
        case upgraded
        /// The unit already runs the image's version: nothing was touched.
        case upToDate = "up-to-date"
        /// `dryRun`: the plan was made, nothing was touched.
        case planned
    }

    public var outcome: Outcome
    public var before: UnitDescription
    public var newVersion: FirmwareVersion?
    public var phases: [(phase: UpgradePhase, duration: Duration)]
    public var plan: FlashPlan?
    public var flashReport: FlashReport?
    public var skippedSectors: Int
}
