// Upgrades a virtual STM32G474 running the demo application v1.0.0 to the image given (default: the
// repository's demo v2.0.0) through dfuhop's library, printing the engine's events and the result.
// On hardware, `DfuHop.usbBus()` replaces `DfuHop.virtualBus(...)`: the engine is the same.
import DfuHop
import Foundation

let defaultImage = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
    "../../../../protocols/examples/demo-g474-v2.hex"
).standardizedFileURL.path
let imagePath = CommandLine.arguments.dropFirst().first ?? defaultImage

/// What the engine reports, one line each (the library never prints; its caller decides).
func describe(_ event: UpgradeEvent) -> String? {
    switch event {
    case .phaseStarted(let phase): "phase \(phase.rawValue)"
    case .found(let unit): "found a \(unit.classification.rawValue) \(unit.familyID) at \(unit.portPath ?? "?")"
    case .planned(let plan, _): "plan: \(plan.blockCount) blocks to write"
    case .classified(let classification): "in the ROM: \(classification.rawValue)"
    case .note(let text): text
    default: nil
    }
}

do {
    // A virtual unit on a virtual bus, in virtual time: no USB, no waiting.
    let bus = try DfuHop.virtualBus("g474:programmed")
    let engine = DfuHop.engine(on: bus) { event in
        if let line = describe(event) { print("  \(line)") }
    }
    let result = try await engine.upgrade(try DfuHop.readImage(imagePath), source: imagePath)
    let from = result.before.version.map { "\($0)" } ?? "nothing"
    let to = result.newVersion.map { "\($0)" } ?? "?"
    print("\(result.outcome.rawValue): \(from) -> \(to)")
} catch {
    print("embed-upgrade: \(error)")
    exit(1)
}
