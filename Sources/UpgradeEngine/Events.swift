import AppLink
import DfuSe
import FirmwareImage

/// The workflow's phases, in order (docs/guarantees.md; fwupd's detach → write → attach → reload).
public enum UpgradePhase: String, Sendable, Hashable, CaseIterable, Codable {
    case find, plan, enter, reenumerate
    case optionBytes = "option-bytes"
    case flash, leave, confirm
}

/// What the engine reports while it works; the CLI renders it, the engine never prints.
public enum UpgradeEvent: Sendable {
    case phaseStarted(UpgradePhase)
    case phaseFinished(UpgradePhase, Duration)
    /// The unit found, as far as it is known before the ROM is reached.
    case found(UnitDescription)
    /// A journal entry shows an earlier upgrade of this unit stopped after `step`.
    case resuming(JournalEntry)
    /// The plan, before anything on the unit changes.
    case planned(FlashPlan, skippedSectors: Int)
    /// The BOOT0 path is asked to act (a prompt for a person, or a hook command).
    case boot0(Boot0Path.Request, path: String)
    /// The ROM is reached: what its flash showed (blank or corrupted, for units that did not answer).
    case classified(UnitDescription.Classification)
    /// A finding of the image check that does not stop the upgrade (errors refuse it).
    case warning(String)
    /// Option bytes read from the unit, and whether they had to be written.
    case optionBytes(found: [String: UInt32], required: [String: UInt32], written: Bool)
    /// Progress of the DfuSe client while flashing.
    case flash(DfuSeEvent)
    case note(String)
}

/// A unit as the engine knows it.
public struct UnitDescription: Sendable, Hashable {
    public enum Classification: String, Sendable, Hashable, Codable {
        /// The application answers over HID.
        case programmed
        /// Only the ROM shows (or only BOOT0 brings it), and the flash is erased.
        case blank
        /// The application does not answer (or nothing shows), and the flash is not erased.
        case corrupted
        /// The ROM shows DFU; what the flash holds is not read yet.
        case inDFU = "in-dfu"
        /// In its ROM, with a complete image (a valid descriptor whose CRC matches, read through the ROM).
        case programmedInDFU = "programmed-in-dfu"
        /// Nothing shows on the bus.
        case absent
    }

    public var classification: Classification
    public var uid: UniqueID?
    public var familyID: String
    public var portPath: String?
    /// The serial number the ROM shows, predicted from the UID (docs/silicon-sources.md).
    public var dfuSerial: String?
    public var version: FirmwareVersion?
    public var productID: UInt32?

    public init(
        classification: Classification, uid: UniqueID?, familyID: String, portPath: String?, dfuSerial: String?,
        version: FirmwareVersion?, productID: UInt32?
    ) {
        self.classification = classification
        self.uid = uid
        self.familyID = familyID
        self.portPath = portPath
        self.dfuSerial = dfuSerial
        self.version = version
        self.productID = productID
    }
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
    /// The journal entry this run resumed from, if any.
    public var resumed: JournalEntry?
}
