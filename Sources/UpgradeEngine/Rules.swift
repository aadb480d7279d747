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
                .refused(.noResetHandler(owner: owner, family: family.name)), phase: phase,
                hint: phase <= .plan ? "nothing was touched; check the image's vector table" : "nothing was sent to leave DFU")
        }
        return address
    }

    /// What the unit holds, from every source that could tell (docs/guarantees.md, "fail closed"): each
    /// product and version seen is a constraint, so more evidence can only narrow what is allowed, and a
    /// source that knows little removes no rule.
    struct Holding {
        var products: [(id: UInt32, seenIn: String)] = []
        var versions: [(version: FirmwareVersion, seenIn: String)] = []
        /// The exact complete image: the application's report, or a descriptor whose span's CRC was proven.
        var installed: Installed?
        /// A descriptor whose span was not read (an ECC part that does not answer: `InROM.Depth`): neither
        /// proven intact nor proven corrupted, so another build of its version is refused as for an intact one.
        var unproven: Installed?
        /// Nothing to protect: the whole flash read erased, or the journal shows it was when writing began.
        var blank = false
        /// Its application answered (an application without a descriptor is still this product's).
        var answered = false

        mutating func add(_ image: Installed, seenIn: String) {
            products.append((image.productID, seenIn))
            versions.append((image.version, seenIn))
        }
    }

    /// Everything known about what the unit holds: the application's report, what the ROM read (`view`, in
    /// the ROM) or what `find` read of a unit in DFU, and the journal entry of a write under way.
    func holding(_ found: Found, view: ROMView?, run: Run) -> Holding {
        var held = Holding()
        if found.hadApplicationAnswer {
            held.answered = true
            held.installed = found.installed
            if let reported = found.installed { held.add(reported, seenIn: "its application's report") }
            if let view {
                // The application checked the image it started from: its descriptor stands for the image.
                held.installed = view.headImage
                if let image = view.headImage { held.add(image, seenIn: "its flash's descriptor") }
            }
        } else if let view {
            if let image = view.headImage { held.add(image, seenIn: "its flash's descriptor") }
            held.installed = view.proven
            if view.spanIntact == nil { held.unproven = view.headImage }
            held.blank = view.blankVerified
        } else if let image = found.seen {
            held.add(image, seenIn: "its flash's descriptor")
        }
        // Only an entry that shows a write under way speaks for the flash; one at "planned" or "in-rom" wrote
        // nothing, and one past "verified" left a complete image that the ROM reads for itself.
        if let entry = run.resumed, entry.step == .flashing {
            let seenIn = "the journal entry of its interrupted upgrade"
            if let product = entry.productID { held.products.append((product, seenIn)) }
            if let version = entry.oldVersion.flatMap({ FirmwareVersion(parsing: $0) }) { held.versions.append((version, seenIn)) }
            if entry.classificationBefore == UnitDescription.Classification.blank.rawValue { held.blank = true }
        }
        return held
    }

    /// Product, version and up-to-date; throws a refusal, or marks the target up to date. `final`: the ROM
    /// has been read, so a product nothing can tell is refused rather than left to later.
    func applyRules(_ target: inout Target, holding held: Holding, run: Run, final: Bool) throws {
        let source = run.source
        try checkResumeDigest(target, run: run)
        try checkProduct(target, held, run: run, final: final)
        target.upToDate = false
        if let installed = held.installed, installed.matches(target) {
            // --force-full rewrites the exact build the unit holds; it is not "another build".
            if !run.options.forceFull { target.upToDate = true }
            return
        }
        if let minimum = run.options.minimumRunningVersion {
            if final, held.versions.isEmpty, !held.blank, !held.answered {
                let reason = Refusal.belowMinimumVersion(source: source, minimum: minimum, held: nil)
                throw UpgradeError(.refused(reason), phase: .plan, hint: reason.hint)
            }
            if let older = held.versions.first(where: { $0.version < minimum }) {
                let reason = Refusal.belowMinimumVersion(source: source, minimum: minimum, held: older.version)
                throw UpgradeError(.refused(reason), phase: .plan, hint: reason.hint)
            }
        }
        guard !run.options.allowDowngrade else { return }
        if let newer = held.versions.filter({ target.version < $0.version }).max(by: { $0.version < $1.version }) {
            let reason = Refusal.downgrade(source: source, from: newer.version, to: target.version, seenIn: newer.seenIn)
            throw UpgradeError(.refused(reason), phase: .plan, hint: reason.hint)
        }
        // Unknown is not corrupted: a descriptor whose span could not be read counts as the build it names.
        if let installed = held.installed ?? held.unproven, installed.version == target.version, !installed.matches(target) {
            let reason = Refusal.otherBuild(source: source, version: installed.version)
            throw UpgradeError(.refused(reason), phase: .plan, hint: reason.hint)
        }
    }

    /// Another product's image is refused, whoever saw the unit's product. A unit whose product nothing
    /// can tell (it did not answer, its flash holds no readable descriptor and is not blank) is refused
    /// unless the operator names its product, and a statement that contradicts what was seen is refused.
    func checkProduct(_ target: Target, _ held: Holding, run: Run, final: Bool) throws {
        let assumed = run.options.assumedProduct
        if let seen = held.products.first(where: { $0.id != target.productID }) {
            let reason = Refusal.otherProduct(source: run.source, image: target.productID, unit: seen.id, seenIn: seen.seenIn)
            throw UpgradeError(.refused(reason), phase: .plan, hint: reason.hint)
        }
        if let assumed, let seen = held.products.first(where: { $0.id != assumed }) {
            let reason = Refusal.assumedProductContradicted(assumed: assumed, unit: seen.id, seenIn: seen.seenIn)
            throw UpgradeError(.refused(reason), phase: .plan, hint: reason.hint)
        }
        guard final, held.products.isEmpty, !held.blank, !held.answered else { return }
        guard let assumed else {
            let reason = Refusal.unknownProduct(image: target.productID)
            throw UpgradeError(.refused(reason), phase: .plan, hint: reason.hint)
        }
        guard assumed == target.productID else {
            let reason = Refusal.otherThanAssumedProduct(source: run.source, image: target.productID, assumed: assumed)
            throw UpgradeError(.refused(reason), phase: .plan, hint: reason.hint)
        }
        onEvent(.note("the unit is taken to be product \(Self.productName(assumed)), as stated: nothing on the unit tells it"))
    }

    /// A product id as every message prints it.
    static func productName(_ id: UInt32) -> String { "0x\(Hex.digits(id, width: 8))" }

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
