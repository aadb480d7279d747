import FirmwareImage
import USBTransport
import UpgradeEngine

@testable import VirtualDevice

/// One upgrade in a task of its own, so that a cancellation (`cancelCurrentRun()` from `onEvent`) ends this
/// run only, as Ctrl-C ends one process; its error is returned as a value.
func upgradeInOwnTask(
    _ file: FirmwareImage, source: String, options: UpgradeEngine.Options, discovery: any DeviceDiscovery,
    clock: any DeviceClock, onEvent: @escaping @Sendable (UpgradeEvent) -> Void
) async -> Result<UpgradeResult, UpgradeError> {
    let engine = UpgradeEngine(discovery: discovery, clock: clock, onEvent: onEvent)
    return await Task { () -> Result<UpgradeResult, UpgradeError> in
        do throws(UpgradeError) {
            return .success(try await engine.upgrade(file, source: source, options: options))
        } catch {
            return .failure(error)
        }
    }.value
}

/// Called from an engine's event handler: cancels the task the run is in (`upgradeInOwnTask`'s).
func cancelCurrentRun() { withUnsafeCurrentTask { $0?.cancel() } }

/// 64 KiB of flash: `image` at its start and other firmware (not erased) beyond it, so that erasing or
/// writing a sector the plan does not name shows.
func flashHolding(_ image: [UInt8]) -> [UInt8] {
    var flash = [UInt8](repeating: 0, count: 64 * 1024)
    for index in flash.indices { flash[index] = UInt8(truncatingIfNeeded: index &* 2_654_435_761 >> 13) | 0x01 }
    flash.replaceSubrange(0..<image.count, with: image)
    return flash
}

/// True when `unit` was sent no download past the command block, no erase and no read-unprotect.
func wroteNothing(_ unit: VirtualUnit) -> Bool {
    !unit.requestLog.contains { request in
        switch request.kind {
        case .download(let block, _, _): block >= 2
        case .command(.erase), .command(.massErase), .command(.readUnprotect): true
        default: false
        }
    }
}
