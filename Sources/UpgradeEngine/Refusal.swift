import DeviceProfiles
import FirmwareImage
import HexFormat

/// Why the engine will not do what was asked, as data (issue 23): an embedder words it its own way, and
/// `description` is a neutral sentence that names no command-line flag. The dfuhop command turns each
/// reason into its own sentence and names its flags (dfuhop/Failure.swift).
public enum Refusal: Sendable, Hashable, CustomStringConvertible {
    /// The image is older than a version the unit holds (`seenIn`: where that version was seen).
    case downgrade(source: String, from: FirmwareVersion, to: FirmwareVersion, seenIn: String)
    /// The unit holds another build of the image's version.
    case otherBuild(source: String, version: FirmwareVersion)
    /// The image is for another product than the unit holds.
    case otherProduct(source: String, image: UInt32, unit: UInt32, seenIn: String)
    /// The caller's statement of the unit's product contradicts the product the unit holds.
    case assumedProductContradicted(assumed: UInt32, unit: UInt32, seenIn: String)
    /// The image is for another product than the caller says the unit is.
    case otherThanAssumedProduct(source: String, image: UInt32, assumed: UInt32)
    /// Nothing tells the unit's product: it did not answer, and its flash holds no readable descriptor but
    /// is not blank. `image`: the image's product, which the caller may state the unit is.
    case unknownProduct(image: UInt32)
    /// The family the caller named contradicts the unit's (`unit`: the part lines its ROM or application shows).
    case familyMismatch(named: String, unit: [String], port: String?)
    /// A ROM several part lines share (or none dfuhop knows), and nothing names one: the caller must.
    /// `suggested`: a family a product profile or the journal named that is not among them.
    case needsFamily(port: String, candidates: [McuFamily], suggested: McuFamily?)
    /// The unit does not answer, and nothing tells its MCU: the caller must name the family or the product.
    case unknownFamily(source: String)
    /// The unit's option bytes differ from what its product needs (`unit`: "NAME=value" as read, `required`:
    /// as the profile names them), and the write is not allowed (`allowed` false), or is but no BOOT0 path can
    /// bring the unit back after the reset it causes.
    case optionBytesNeedConsent(unit: [String], product: String, required: [String], allowed: Bool)
    /// The image holds other targets than the internal flash (option bytes, OTP), which an upgrade does not write.
    case otherTargets(source: String, targets: [String])
    /// Leaving DFU for the application in flash, which holds none (`reset`: its reset vector).
    case noApplication(flashBase: UInt32, reset: UInt32)
    /// The image (a package's) installs only over `minimum` or later; the unit holds `held` (nil: cannot be told).
    case belowMinimumVersion(source: String, minimum: FirmwareVersion, held: FirmwareVersion?)
    /// The ROM on the unit's port is another unit (its unique ID, hex) than the one the run started with.
    case otherUnit(port: String, seen: String, expected: String)
    /// The image's product has a profile for another part line than the unit's.
    case imageForOtherFamily(source: String, product: String, productFamily: String, unitFamily: String)
    /// Asked to send the unit into its ROM bootloader, which it already runs.
    case alreadyInROM(port: String)
    /// The image holds no data.
    case emptyImage(source: String)
    /// The image starts at `base`; the application of `owner` (the product, else the part line) starts at `expected`.
    case otherApplicationBase(source: String, base: UInt32, owner: String, expected: UInt32)
    /// The image check (`ImageCheck`) found an error against the memory of `family`: the image cannot be right.
    case imageCheckFailed(source: String, finding: ImageFinding, family: String)
    /// The ROM (at `port`) shows a flash layout that does not parse: a plan for a guessed layout could erase
    /// sectors the ROM lays out otherwise.
    case romLayoutUnreadable(port: String, error: FlashLayoutError)
    /// The ROM at `port` shows no alternate setting 0 (its internal flash).
    case noFlashAlternate(port: String)
    /// An address asked to be erased lies in no sector of the layout the ROM shows (`layout`, rendered).
    case addressInNoSector(address: UInt32, layout: String)
    /// On this part line the factory option bytes make the MCU ignore the BOOT0 pin (AN2606, pattern 11), so a
    /// unit whose application does not answer cannot be started in its ROM.
    case boot0PinIgnored(family: String)
    /// The application (at `port`) did not report its unique ID, which entering its ROM needs.
    case noUniqueID(port: String)
    /// The ROM the run reached shows the flash of another part line (`shown`, nil: none dfuhop knows) than planned.
    case romOfOtherFamily(port: String, shown: String?, expected: String)
    /// The product profile requires an option-byte value this part line's option-byte map cannot check.
    case uncheckableOptionByte(product: String, requirement: ProductProfile.OptionByteRequirement, family: String)
    /// The ROM at `port` shows no option-byte memory at `address` (`alternates`: the alternate settings it shows).
    case noOptionByteMemory(port: String, address: UInt32, alternates: [String])
    /// The vector table of `owner` has no Thumb reset handler at word 1, which `family`'s ROM needs to leave DFU.
    case noResetHandler(owner: String, family: String)

    public var description: String {
        switch self {
        case .downgrade(let source, let from, let to, let seenIn):
            "\(source) holds version \(to), older than the \(from) the unit holds (\(seenIn))"
        case .otherBuild(let source, let version):
            "the unit holds a different build of version \(version) than \(source)"
        case .otherProduct(let source, let image, let unit, let seenIn):
            "\(source) is for product \(Self.product(image)); the unit holds product \(Self.product(unit)) (\(seenIn))"
        case .assumedProductContradicted(let assumed, let unit, let seenIn):
            "the unit was said to be product \(Self.product(assumed)); it holds product \(Self.product(unit)) (\(seenIn))"
        case .otherThanAssumedProduct(let source, let image, let assumed):
            "\(source) is for product \(Self.product(image)); the unit was said to be product \(Self.product(assumed))"
        case .unknownProduct:
            "cannot tell which product the unit holds: it did not answer, and its flash holds no readable image "
                + "descriptor but is not blank"
        case .familyMismatch(let named, let unit, let port):
            "the unit\(port.map { " at \($0)" } ?? "") is \(unit.joined(separator: " or ")), not the \(named) named"
        case .needsFamily(let port, let candidates, let suggested):
            "the ROM at \(port) could be "
                + (candidates.isEmpty ? "no part line dfuhop knows" : candidates.map(\.name).joined(separator: " or "))
                + (suggested.map { ", not \($0.name)" } ?? "")
        case .unknownFamily(let source):
            "cannot tell which MCU the unit has: it does not answer and \(source)'s product has no profile"
        case .optionBytesNeedConsent(let unit, let product, let required, _):
            "the unit has \(unit.joined(separator: ", ")); \(product) needs \(required.joined(separator: ", "))"
        case .otherTargets(let source, let targets):
            "\(source) also holds \(targets.joined(separator: ", ")), which an upgrade does not write"
        case .noApplication(let base, let reset):
            "the flash at \(Hex.word(base)) holds no application (reset vector \(Hex.word(reset)))"
        case .alreadyInROM(let port): "the unit at \(port) is already in DFU mode"
        case .belowMinimumVersion(let source, let minimum, let held):
            "\(source) upgrades units that hold \(minimum) or later; "
                + (held.map { "the unit holds \($0)" } ?? "what the unit holds cannot be told")
        case .otherUnit(let port, let seen, let expected): "the ROM at \(port) is unit \(seen), not \(expected)"
        case .imageForOtherFamily(let source, let product, let productFamily, let unitFamily):
            "\(source) is for \(product), an \(productFamily); the unit is an \(unitFamily)"
        case .emptyImage(let source): "\(source) is empty"
        case .otherApplicationBase(let source, let base, let owner, let expected):
            "\(source) starts at \(Hex.word(base)), but \(owner)'s application starts at \(Hex.word(expected)): "
                + "it was linked for another place"
        case .imageCheckFailed(let source, let finding, _): "\(source): \(finding)"
        case .romLayoutUnreadable(let port, let error):
            "the ROM at \(port) shows its flash as \"\(error.layout)\", which is not a DfuSe layout: \(error)"
        case .noFlashAlternate(let port): "the unit at \(port) has no alternate setting 0 (internal flash)"
        case .addressInNoSector(let address, let layout): "\(Hex.word(address)) is in no sector of \(layout)"
        case .boot0PinIgnored(let family):
            "on \(family) the factory option bytes make the MCU ignore the BOOT0 pin (AN2606, pattern 11), "
                + "so a unit whose application does not answer cannot be started in its ROM"
        case .noUniqueID(let port): "the unit at \(port) did not report its unique ID"
        case .romOfOtherFamily(let port, let shown, let expected):
            "the ROM at \(port) shows the flash of \(shown ?? "an unknown part"), not of \(expected)"
        case .uncheckableOptionByte(let product, let requirement, let family):
            "\(product) requires \(requirement), which dfuhop cannot check on \(family)"
        case .noOptionByteMemory(let port, let address, let alternates):
            "the ROM at \(port) shows no option-byte memory at \(Hex.word(address)) (its alternate settings: "
                + (alternates.isEmpty ? "none" : alternates.joined(separator: ", ")) + ")"
        case .noResetHandler(let owner, let family):
            "\(owner) has no Thumb reset handler at word 1 of its vector table, which \(family)'s ROM needs to leave DFU"
        }
    }

    /// The next step, neutrally worded: what an embedder's caller can do (nothing on the unit was written).
    public var hint: String {
        switch self {
        case .downgrade: "nothing was written; allow a downgrade if you mean it"
        case .otherBuild: "nothing was written; allow a downgrade to replace it with this build"
        case .otherProduct, .otherThanAssumedProduct: "nothing was written; pick the image built for this product"
        case .assumedProductContradicted: "nothing was written; do not state the product: the unit tells it"
        case .unknownProduct(let image):
            "nothing was written; if you know the unit is a \(Self.product(image)) unit, state that product and run again"
        case .familyMismatch: "nothing was touched; do not name the family: the unit shows it"
        case .needsFamily(_, let candidates, _):
            "nothing was touched; name the family (\((candidates.isEmpty ? McuFamily.all : candidates).map(\.id).joined(separator: ", ")))"
        case .unknownFamily: "nothing was touched; name the family or give the product's profile"
        case .optionBytesNeedConsent(_, _, _, let allowed):
            allowed
                ? "nothing was written; the write resets the unit, and only a BOOT0 path can bring it back: configure one"
                : "nothing was written; allow the option-byte write and run again (the write resets the unit; it is reached again)"
        case .otherTargets:
            "nothing was touched; put option bytes the product needs in its profile (\"requiredOptionBytes\"), "
                + "and give the flash image only"
        case .noApplication: "nothing was sent; flash an application first"
        case .alreadyInROM: "nothing to do: it is ready to be flashed"
        case .belowMinimumVersion(_, _, let held):
            held == nil
                ? "nothing was written; upgrade a unit whose version can be read"
                : "nothing was written; install an intermediate release first"
        case .otherUnit: "nothing was written to either unit; check which unit is on that port, then run again"
        case .imageForOtherFamily: "nothing was touched; pick the image built for this unit"
        case .emptyImage: "nothing was touched; check the image file"
        case .otherApplicationBase(_, _, _, let expected):
            "nothing was touched; link the image for \(Hex.word(expected)) "
                + "(or name the base in the product profile's \"applicationBase\")"
        case .imageCheckFailed(_, _, let family): "nothing was touched; was the image built for \(family)?"
        case .romLayoutUnreadable:
            "nothing was written; a unit whose ROM shows this layout is not one dfuhop can flash safely (is it an ST ROM bootloader?)"
        case .noFlashAlternate: "nothing was written"
        case .addressInNoSector: "nothing was erased"
        case .boot0PinIgnored:
            "nothing was written; recover the unit through its debug port (SWD), "
                + "or give its product option bytes that let BOOT0 select the ROM (nBOOT_SEL = 0)"
        case .noUniqueID: "nothing was touched"
        case .romOfOtherFamily: "nothing was written; pick the image built for this unit's MCU"
        case .uncheckableOptionByte: "nothing was written; fix the product profile"
        case .noOptionByteMemory: "nothing was sent to the unit"
        case .noResetHandler: "nothing was touched; check the image's vector table"
        }
    }

    /// A product id as every message prints it.
    static func product(_ id: UInt32) -> String { "0x\(Hex.digits(id, width: 8))" }
}

/// What the caller can do next, as data, where the step is one a front end names its own way (a flag, a
/// command): `UpgradeError.hint` says it neutrally, and the dfuhop command words it (dfuhop/Failure.swift).
public enum NextStep: Sendable, Hashable {
    /// Several units match: name one, or (`orAll`) take every unit.
    case nameOneUnit(orAll: Bool)
    /// The name matches nothing on the bus: list the units and name one by its port.
    case nameAListedUnit
    /// Nothing in the state the command needs is connected: the unit in its ROM (`inROM`), or its application.
    case connect(inROM: Bool)
    /// Nothing shows and no BOOT0 path is set up: plug the unit in; a blank one shows nothing until BOOT0.
    case plugInOrBoot0
    /// Read protection level 1: only a read-unprotect from the unit's ROM clears it (erasing the whole flash).
    case readUnprotect
    /// Reading the flash may hang an ECC part's ROM (a torn word): stating the unit's product reads none.
    case stateProduct
    /// The unit shows at another port than the one the run watched: name it by that port.
    case namePort(String)
    /// The OS refused the device: its permissions (udev rules) must let this user open it.
    case checkDeviceAccess

    /// The words of `UpgradeError.hint` that say this step, which a front end replaces with its own.
    public var clause: String {
        switch self {
        case .nameOneUnit(let orAll): "name one by its port, serial or unique ID" + (orAll ? ", or upgrade every unit" : "")
        case .nameAListedUnit: "list the units and their ports, and name one by its port"
        case .connect(inROM: true):
            "put the unit in its ROM bootloader (from its application, or hold BOOT0 while plugging it in), then run this again"
        case .connect(inROM: false): "is the unit plugged in and running its application?"
        case .plugInOrBoot0: "set up a BOOT0 path"
        case .readUnprotect: "enter the unit's ROM, read-unprotect it"
        case .stateProduct: "stating the product the unit is, which reads no flash"
        case .namePort(let port): "naming the unit by its port \(port)"
        case .checkDeviceAccess: "check the device's permissions (udev rules) for this user"
        }
    }
}
