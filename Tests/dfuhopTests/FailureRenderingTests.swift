import FirmwareImage
import Testing

@testable import DeviceProfiles
@testable import UpgradeEngine
@testable import dfuhop

/// Issue 23: the engine gives reasons as data and words them neutrally; dfuhop's Failure words them for the
/// command line, naming the flag that is the way out, and keeps each kind's exit status.
@Suite("Failure: the engine's reasons in dfuhop's words")
struct FailureRenderingTests {
    static let v1 = FirmwareVersion(major: 1, minor: 0, patch: 0)
    static let v2 = FirmwareVersion(major: 2, minor: 0, patch: 0)

    /// The flag (or command) dfuhop names for `reason`, nil where no flag is the way out and the engine's
    /// words stand. The switch has no default: a new reason does not compile until its rendering is decided.
    static func expectedWords(_ reason: Refusal) -> String? {
        switch reason {
        case .downgrade, .otherBuild: "--allow-downgrade"
        case .otherThanAssumedProduct, .assumedProductContradicted, .unknownProduct: "--assume-product"
        case .familyMismatch, .needsFamily: "--family"
        case .unknownFamily: "--profile"
        case .optionBytesNeedConsent(_, _, _, let allowed): allowed ? "--boot0-command" : "--write-option-bytes"
        case .otherTargets: "--write-option-bytes"
        case .noApplication: "dfuhop flash IMAGE --leave"
        case .alreadyInROM: "dfuhop flash"
        case .otherProduct, .belowMinimumVersion, .otherUnit, .imageForOtherFamily, .emptyImage, .otherApplicationBase,
            .imageCheckFailed, .romLayoutUnreadable, .noFlashAlternate, .addressInNoSector, .boot0PinIgnored, .noUniqueID,
            .romOfOtherFamily, .uncheckableOptionByte, .noOptionByteMemory, .noResetHandler:
            nil
        }
    }

    /// One sample of every reason (`everyReasonIsSampled` checks the count of distinct cases).
    static let samples: [Refusal] = [
        .downgrade(source: "v1.hex", from: v2, to: v1, seenIn: "the application's report"),
        .otherBuild(source: "v2.hex", version: v2),
        .otherProduct(source: "v2.hex", image: 0x1234_5678, unit: 0x0DF1_0474, seenIn: "the flash's descriptor"),
        .assumedProductContradicted(assumed: 0x1234_5678, unit: 0x0DF1_0474, seenIn: "the application's report"),
        .otherThanAssumedProduct(source: "v2.hex", image: 0x1234_5678, assumed: 0x0DF1_0474),
        .unknownProduct(image: 0x0DF1_0474),
        .familyMismatch(named: "f405", unit: ["STM32G47x/G48x"], port: "1-1"),
        .needsFamily(port: "1-1", candidates: [.l476, .g474], suggested: nil),
        .unknownFamily(source: "v2.hex"),
        .optionBytesNeedConsent(unit: ["nSWBOOT0=1"], product: "example", required: ["nSWBOOT0=0"], allowed: false),
        .optionBytesNeedConsent(unit: ["nSWBOOT0=1"], product: "example", required: ["nSWBOOT0=0"], allowed: true),
        .otherTargets(source: "v2.dfu", targets: ["alternate setting 1 (Option Bytes)"]),
        .noApplication(flashBase: 0x0800_0000, reset: 0xFFFF_FFFF),
        .belowMinimumVersion(source: "v2.dfuhop", minimum: v2, held: v1),
        .otherUnit(port: "1-1", seen: "0123456789ABCDEF01234567", expected: "76543210FEDCBA9876543210"),
        .imageForOtherFamily(source: "v2.hex", product: "example", productFamily: "STM32F405/407", unitFamily: "STM32G47x/G48x"),
        .alreadyInROM(port: "1-1"),
        .emptyImage(source: "empty.hex"),
        .otherApplicationBase(source: "v2.hex", base: 0x0800_4000, owner: "STM32G47x/G48x", expected: 0x0800_0000),
        .imageCheckFailed(
            source: "v2.hex", finding: ImageFinding(.error, at: 0x0800_0000, "the initial stack pointer is 0xFFFFFFFF"),
            family: "STM32G47x/G48x"),
        .romLayoutUnreadable(port: "1-1", error: FlashLayoutError(layout: "@Internal Flash /x", offset: 17, problem: "not an address")),
        .noFlashAlternate(port: "1-1"),
        .addressInNoSector(address: 0x0900_0000, layout: "@Internal Flash /0x08000000/128*2Kg"),
        .boot0PinIgnored(family: "STM32G0B1"),
        .noUniqueID(port: "1-1"),
        .romOfOtherFamily(port: "1-1", shown: "STM32F405/407", expected: "STM32G47x/G48x"),
        .uncheckableOptionByte(
            product: "example", requirement: ProductProfile.OptionByteRequirement(name: "nBOOT9", value: 2), family: "STM32G47x/G48x"),
        .noOptionByteMemory(port: "1-1", address: 0x1FFF_7800, alternates: []),
        .noResetHandler(owner: "v2.hex", family: "STM32H74x/H75x")
    ]

    @Test func everyReasonIsSampled() {
        let cases = Set(Self.samples.map { Mirror(reflecting: $0).children.first?.label ?? "\($0)" })
        #expect(cases.count == 28)
    }

    @Test("a refusal is exit 80, its flag named where one is the way out, else the engine's words", arguments: samples)
    func refusal(_ reason: Refusal) {
        let failure = Failure.from(UpgradeError(.refused(reason), phase: .plan, hint: reason.hint))
        #expect(failure.status == .refused && failure.status.rawValue == 80)
        let hint = failure.hint ?? ""
        #expect(hint.hasPrefix("nothing"), "\(hint)")
        if let words = Self.expectedWords(reason) {
            #expect((failure.message + " " + hint).contains(words), "\(reason): \(failure.message) / \(hint)")
        } else {
            #expect(failure.message == "plan: \(reason.description)")
            #expect(hint == reason.hint)
        }
    }

    @Test("a next step the engine names neutrally is dfuhop's flag or command in the hint")
    func nextSteps() {
        let steps: [(NextStep, String)] = [
            (.nameOneUnit(orAll: true), "--all"), (.nameOneUnit(orAll: false), "--unit"), (.nameAListedUnit, "dfuhop list"),
            (.connect(inROM: true), "dfuhop enter-dfu"), (.connect(inROM: false), "dfuhop list"), (.plugInOrBoot0, "--boot0-command"),
            (.readUnprotect, "--read-unprotect"), (.stateProduct, "--assume-product"), (.namePort("1-3"), "--unit 1-3"),
            (.checkDeviceAccess, "dfuhop doctor")
        ]
        for (step, words) in steps {
            let error = UpgradeError(.noUnit(.any), phase: .find, hint: "nothing was touched; \(step.clause)", next: step)
            let hint = Failure.from(error).hint ?? ""
            #expect(hint.contains(words), "\(step): \(hint)")
            #expect(hint != error.hint, "\(step): the engine's words stayed: \(hint)")
        }
    }

    /// The typed kinds keep their exit statuses (docs/guarantees.md).
    @Test("each typed kind keeps its exit status")
    func exitStatuses() {
        let kinds: [(UpgradeError.Kind, Int32)] = [
            (.noUnit(.any), 69), (.noUnit(.named("0123456789ABCDEF01234567")), 69), (.noUnit(.atPort("1-4")), 69),
            (.ambiguous([UnitMatch(shows: "programmed unit", port: "1-1"), UnitMatch(shows: "blank unit", port: "1-2")]), 84),
            (.needsBoot0(.noApplication(port: "1-1", pathSetUp: false)), 86),
            (.needsBoot0(.pathFailed(path: "hook", action: "enter-rom", problem: "exit status 1")), 86),
            (.notConfirmed(.applicationDidNotShow(port: "1-1", timeout: .seconds(10))), 83),
            (.notConfirmed(.otherVersion(running: nil, expected: Self.v2)), 83),
            (.busy(unit: "0123456789ABCDEF01234567"), 75), (.invalidRequest(.emptyUnitName), 64),
            (.readProtected(.unitProtected(port: "1-1", level: nil, rdp: nil)), 80), (.readProtected(.writeWouldProtect(rdp: 0xCC)), 80),
            (.untrusted(.stationRequiresSignature(source: "v2.hex")), 87)
        ]
        for (kind, status) in kinds {
            let failure = Failure.from(UpgradeError(kind, phase: .find, hint: "nothing was touched"))
            #expect(failure.status.rawValue == status, "\(kind): \(failure.status)")
            #expect(failure.message == UpgradeError(kind, phase: .find, hint: "").description)
        }
    }
}
