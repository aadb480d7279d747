import FirmwareImage
import USBTransport

@testable import DeviceProfiles
@testable import UpgradeEngine

/// Samples of every reason the engine gives, shared by the engine's tests (the text names no flag) and the
/// command-line tool's (the text names the right flag, the exit status is kept), so both hold over one list.
public enum ReasonSamples {
    public static let v1 = FirmwareVersion(major: 1, minor: 0, patch: 0)
    public static let v2 = FirmwareVersion(major: 2, minor: 0, patch: 0)
    public static let layoutError = FlashLayoutError(layout: "@Internal Flash /0x08000000/x", offset: 28, problem: "not a count")

    /// At least one sample of every `Refusal` case (`caseIndex` proves it), with the facts varied where the text
    /// depends on them.
    public static let samples: [Refusal] = [
        .downgrade(source: "v1.hex", from: v2, to: v1, seenIn: "the application's report"),
        .otherBuild(source: "v2.hex", version: v2),
        .otherProduct(source: "v2.hex", image: 0x1234_5678, unit: 0x0DF1_0474, seenIn: "the flash's descriptor"),
        .assumedProductContradicted(assumed: 0x1234_5678, unit: 0x0DF1_0474, seenIn: "the application's report"),
        .otherThanAssumedProduct(source: "v2.hex", image: 0x1234_5678, assumed: 0x0DF1_0474),
        .unknownProduct(image: 0x0DF1_0474),
        .familyMismatch(named: "f405", unit: ["STM32G47x/G48x"], port: "1-1"),
        .familyMismatch(named: "f405", unit: ["STM32L476", "STM32L496"], port: nil),
        .needsFamily(port: "1-1", candidates: [.l476, .g474], suggested: nil),
        .needsFamily(port: "1-1", candidates: [], suggested: .g474),
        .unknownFamily(source: "v2.hex"),
        .optionBytesNeedConsent(unit: ["nSWBOOT0=1"], product: "example", required: ["nSWBOOT0=0"], allowed: false),
        .optionBytesNeedConsent(unit: ["nSWBOOT0=1"], product: "example", required: ["nSWBOOT0=0"], allowed: true),
        .otherTargets(source: "v2.dfu", targets: ["alternate setting 1 (Option Bytes)"]),
        .noApplication(flashBase: 0x0800_0000, reset: 0xFFFF_FFFF),
        .belowMinimumVersion(source: "v2.dfuhop", minimum: v1, held: nil),
        .belowMinimumVersion(source: "v2.dfuhop", minimum: v2, held: v1),
        .otherUnit(port: "1-1", seen: "0123456789ABCDEF01234567", expected: "76543210FEDCBA9876543210"),
        .imageForOtherFamily(source: "v2.hex", product: "example", productFamily: "STM32F405/407", unitFamily: "STM32G47x/G48x"),
        .alreadyInROM(port: "1-1"),
        .emptyImage(source: "empty.hex"),
        .otherApplicationBase(source: "v2.hex", base: 0x0800_4000, owner: "STM32G47x/G48x", expected: 0x0800_0000),
        .imageCheckFailed(
            source: "v2.hex", finding: ImageFinding(.error, at: 0x0800_0000, "the initial stack pointer is 0xFFFFFFFF"),
            family: "STM32G47x/G48x"),
        .romLayoutUnreadable(port: "1-1", error: layoutError),
        .noFlashAlternate(port: "1-1"),
        .addressInNoSector(address: 0x0900_0000, layout: "@Internal Flash /0x08000000/128*2Kg"),
        .boot0PinIgnored(family: "STM32G0B1"),
        .noUniqueID(port: "1-1"),
        .romOfOtherFamily(port: "1-1", shown: nil, expected: "STM32G47x/G48x"),
        .romOfOtherFamily(port: "1-1", shown: "STM32F405/407", expected: "STM32G47x/G48x"),
        .uncheckableOptionByte(
            product: "example", requirement: ProductProfile.OptionByteRequirement(name: "nBOOT9", value: 2), family: "STM32G47x/G48x"),
        .noOptionByteMemory(port: "1-1", address: 0x1FFF_7800, alternates: ["0 \"@Internal Flash /0x08000000/128*2Kg\""]),
        .noOptionByteMemory(port: "1-1", address: 0x1FFF_7800, alternates: []),
        .noResetHandler(owner: "v2.hex", family: "STM32H74x/H75x")
    ]

    /// Which case `reason` is. The switch has no default: a new case does not compile until it has an index here,
    /// and `everyCaseIsSampled` fails until `samples` holds one.
    public static func caseIndex(_ reason: Refusal) -> Int {
        switch reason {
        case .downgrade: 0
        case .otherBuild: 1
        case .otherProduct: 2
        case .assumedProductContradicted: 3
        case .otherThanAssumedProduct: 4
        case .unknownProduct: 5
        case .familyMismatch: 6
        case .needsFamily: 7
        case .unknownFamily: 8
        case .optionBytesNeedConsent: 9
        case .otherTargets: 10
        case .noApplication: 11
        case .belowMinimumVersion: 12
        case .otherUnit: 13
        case .imageForOtherFamily: 14
        case .alreadyInROM: 15
        case .emptyImage: 16
        case .otherApplicationBase: 17
        case .imageCheckFailed: 18
        case .romLayoutUnreadable: 19
        case .noFlashAlternate: 20
        case .addressInNoSector: 21
        case .boot0PinIgnored: 22
        case .noUniqueID: 23
        case .romOfOtherFamily: 24
        case .uncheckableOptionByte: 25
        case .noOptionByteMemory: 26
        case .noResetHandler: 27
        }
    }

    public static let caseCount = 28

    public static let steps: [NextStep] = [
        .nameOneUnit(orAll: false), .nameOneUnit(orAll: true), .nameAListedUnit, .connect(inROM: true), .connect(inROM: false),
        .plugInOrBoot0, .readUnprotect, .stateProduct, .namePort("1-3"), .checkDeviceAccess
    ]

    /// The other typed kinds: what was looked for, the candidates, why BOOT0 is needed, what the unit answered.
    public static let kinds: [UpgradeError.Kind] = [
        .noUnit(.any), .noUnit(.showing(inROM: true, name: nil)), .noUnit(.showing(inROM: false, name: "1-2")),
        .noUnit(.named("0123456789ABCDEF01234567")), .noUnit(.atPort("1-4")), .noUnit(.amongOthers),
        .ambiguous([UnitMatch(shows: "programmed unit", port: "1-1"), UnitMatch(shows: "blank unit", port: nil)]),
        .needsBoot0(.noApplication(port: "1-1", pathSetUp: false)), .needsBoot0(.noApplication(port: nil, pathSetUp: true)),
        .needsBoot0(.applicationCannotJump(family: "STM32L0x3")),
        .needsBoot0(.romDidNotShow(port: "1-1", timeout: .seconds(5), path: "hook", serial: "2051356B5430", elsewhere: "1-3")),
        .needsBoot0(.romDidNotShow(port: nil, timeout: .seconds(5), path: "hook", serial: nil, elsewhere: nil)),
        .needsBoot0(.pathFailed(path: "hook", action: "enter-rom", problem: "exit status 1")),
        .notConfirmed(.romDidNotShow(port: "1-1", serial: "2051356B5430", timeout: .seconds(10), elsewhere: "1-3")),
        .notConfirmed(.romDidNotShow(port: "1-1", serial: nil, timeout: .seconds(10), elsewhere: nil)),
        .notConfirmed(.optionBytes(read: ["nSWBOOT0": 1, "nBOOT0": 1], wanted: ["nSWBOOT0": 0, "nBOOT0": 1])),
        .notConfirmed(.applicationDidNotShow(port: "1-1", timeout: .seconds(10))),
        .notConfirmed(.otherUnit(port: "1-1", uid: "0123456789ABCDEF01234567", expected: "76543210FEDCBA9876543210")),
        .notConfirmed(.otherROMSerial(port: "1-1", uid: "0123456789ABCDEF01234567", serial: "2051356B5430")),
        .notConfirmed(.otherVersion(running: nil, expected: v2)), .notConfirmed(.otherVersion(running: v1, expected: v2)),
        .busy(unit: "0123456789ABCDEF01234567"), .invalidRequest(.emptyUnitName),
        .readProtected(.unitProtected(port: "1-1", level: nil, rdp: nil)),
        .readProtected(.unitProtected(port: "1-1", level: 1, rdp: 0x55)), .readProtected(.writeWouldProtect(rdp: 0xCC)),
        .untrusted(.stationRequiresSignature(source: "v2.hex")),
        .untrusted(.profileRequiresSignature(source: "v2.hex", product: "example", productID: 0x0DF1_0474, profile: "example-g474")),
        .untrusted(
            .twoReadings(
                source: "v2.hex", flashed: ImageDescriptor(productID: 1, version: v2, name: "a"), other: nil, granularity: 8))
    ]
}
