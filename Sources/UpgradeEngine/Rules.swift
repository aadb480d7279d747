import AppLink
import DeviceProfiles
import DfuSe
import FirmwareImage
import HexFormat

/// The rules an image must pass against what the unit holds, in one place, applied on every path: before
/// the ROM is entered (what the application reports) and again in the ROM (what the flash holds, read
/// through the ROM). A unit whose flash holds no complete image is judged by its journal entry, if any.
extension UpgradeEngine {
    /// Where the ROM must jump to start the application whose vector table is at `vectorTable`: the family's
    /// leave rule (`McuFamily.leaveAddress`, seed 001), refused when that ROM jumps straight to a Thumb reset
    /// handler and word 1 holds none. `owner` names the vector table's image in the message.
    static func leaveAddress(
        family: McuFamily, vectorTable: UInt32, resetHandler: UInt32?, of owner: String, phase: UpgradePhase
    ) throws(UpgradeError) -> UInt32 {
        guard let address = family.leaveAddress(vectorTable: vectorTable, resetHandler: resetHandler) else {
            throw UpgradeError(
                .refused(
                    "\(owner) has no Thumb reset handler at word 1 of its vector table, which \(family.name)'s ROM needs to leave DFU"),
                phase: phase,
                hint: phase <= .plan ? "nothing was touched; check the image's vector table" : "nothing was sent to leave DFU")
        }
        return address
    }

    /// What the unit held before, as far as anything tells: its image, else the interrupted upgrade's record.
    struct Holding {
        var productID: UInt32?
        var version: FirmwareVersion?
        /// The exact image (descriptor CRC and size) when it is complete.
        var installed: Installed?
    }

    func holding(_ installed: Installed?, run: Run) -> Holding {
        if let installed { return Holding(productID: installed.productID, version: installed.version, installed: installed) }
        let entry = run.resumed ?? run.candidateEntry
        return Holding(productID: entry?.productID, version: entry?.oldVersion.flatMap { FirmwareVersion(parsing: $0) }, installed: nil)
    }

    /// Product, version and up-to-date; throws a refusal, or marks the target up to date.
    func applyRules(_ target: inout Target, installed: Installed?, run: Run, skipAllowed: Bool) throws {
        let held = holding(installed, run: run)
        let source = run.source
        try checkResumeDigest(target, run: run)
        if let product = held.productID, product != target.productID {
            throw UpgradeError(
                .refused(
                    "\(source) is for product 0x\(Hex.digits(target.productID, width: 8)); the unit holds product 0x\(Hex.digits(product, width: 8))"
                ),
                phase: .plan, hint: "nothing was written; pick the image built for this product")
        }
        if let installed = held.installed, installed.matches(target), !run.options.forceFull {
            target.upToDate = true
            return
        }
        target.upToDate = false
        if let minimum = run.options.minimumRunningVersion, let running = held.version, running < minimum {
            throw UpgradeError(
                .refused("\(source) upgrades units that hold \(minimum) or later; the unit holds \(running)"),
                phase: .plan, hint: "nothing was written; install an intermediate release first")
        }
        guard let running = held.version, !run.options.allowDowngrade else { return }
        if target.version < running {
            throw UpgradeError(
                .refused("\(source) holds version \(target.version), older than the \(running) the unit holds"),
                phase: .plan, hint: "nothing was written; pass --allow-downgrade if you mean it")
        }
        if target.version == running, held.installed != nil {
            throw UpgradeError(
                .refused("the unit holds a different build of version \(running) than \(source)"),
                phase: .plan, hint: "nothing was written; pass --allow-downgrade to replace it with this build")
        }
    }

    /// A resume continues an interrupted upgrade only with the same file; with another, the journal's
    /// record of the old firmware still judges it (above), and the operator is told.
    func checkResumeDigest(_ target: Target, run: Run) throws {
        guard let entry = run.resumed else { return }
        let given = run.options.inputDigest ?? target.digest
        let recorded = run.options.inputDigest == nil ? entry.imageDigest : (entry.inputDigest ?? entry.imageDigest)
        if given != recorded {
            onEvent(
                .note(
                    "the interrupted upgrade was to \(entry.image) (\(entry.newVersion)); writing \(run.source) instead, "
                        + "checked against the firmware the unit held before (\(entry.oldVersion ?? "unknown"))"))
        }
    }
}

extension UpgradeEngine.Installed {
    /// The unit holds exactly the target image: same product, version, size and CRC, at the same base.
    func matches(_ target: UpgradeEngine.Target) -> Bool {
        productID == target.productID && version == target.version && imageSize == target.imageSize
            && imageCRC == target.imageCRC && base == target.base
    }
}
