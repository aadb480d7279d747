import DeviceProfiles
import DfuSe
import FirmwareImage
import USBTransport

/// Phase 5, flash: the plan run by the DfuSe client (erase, write, vector-table sector last), then the
/// whole span read back. A failure the ROM survives is run once more from the first erase.
extension UpgradeEngine {
    func flash(_ rom: ROM, target: Target, run: Run) async throws -> (report: FlashReport, plan: FlashPlan) {
        try await withClient(rom, family: target.family) { client in
            let layout = try await client.prepare(alternateSetting: 0)
            var plan = target.plan
            if layout != plan.layout {
                // An option-byte write changed the organisation (G4 DBANK, seed 003): plan again for it.
                onEvent(.note("the ROM shows the flash as \"\(layout.render())\" now; planning again for it, without skipping sectors"))
                plan = try FlashPlan(
                    image: target.image, layout: layout, family: target.family, transferSize: plan.transferSize,
                    span: target.span)
            }
            try record(.flashing, run, target: target)
            run.flashStarted = true
            let report: FlashReport
            do {
                report = try await client.execute(plan, image: target.image, verify: run.options.verify)
            } catch let error as DfuSeError where Self.worthOneMoreTry(error) {
                if let smaller = Self.smallerBlocks(after: error, plan: plan) {
                    // Captures disagree on some ROMs' largest block (G431: 2048 failed, 1024 worked): a stalled
                    // block is written again at half the size, from the first erase (issue 22).
                    onEvent(.note("the ROM stalled a \(plan.transferSize)-byte block (\(error)); writing again in \(smaller)-byte blocks"))
                    plan = try FlashPlan(
                        image: target.image, layout: plan.layout, family: target.family, transferSize: smaller, span: target.span,
                        unchangedSectors: Set(plan.skippedSectors.map(\.start)))
                } else if case .verifyMismatch = error, !plan.skippedSectors.isEmpty {
                    // A sector reported unchanged is not: the application's CRCs were wrong. Trust the ROM.
                    onEvent(.note("read-back differs (\(error)); rewriting every sector of the image, skipping none"))
                    plan = try FlashPlan(
                        image: target.image, layout: plan.layout, family: target.family,
                        transferSize: plan.transferSize, span: target.span)
                } else {
                    onEvent(.note("the ROM failed the flash (\(error)); running the plan once more from the start"))
                }
                // Erase first again, so no flash word is written twice (seed 004); a second failure stands.
                report = try await client.execute(plan, image: target.image, verify: run.options.verify)
            }
            try record(.verified, run, target: target)
            return (report, plan)
        }
    }

    /// The block size to try after a stalled data block larger than 256 bytes: half of it. nil for any other failure.
    static func smallerBlocks(after error: DfuSeError, plan: FlashPlan) -> Int? {
        guard case .transport(let transport, let operation) = error, transport.kind == .stall,
            case .download(_, _, let length) = operation, length > 256, plan.transferSize > 256
        else { return nil }
        return plan.transferSize / 2
    }

    /// A flash (or leave) failure that a second try, in the same session, can get past: the device
    /// stalled or went quiet for a moment, reported a programming error that a fresh erase clears, or
    /// read back differently (a sector the application called unchanged is then rewritten too). Protection, a wrong address
    /// or a vanished device are not retried.
    static func worthOneMoreTry(_ error: DfuSeError) -> Bool {
        switch error {
        case .transport(let transport, _): transport.kind == .stall || transport.kind == .timeout
        case .tooManyStalls, .malformedStatus, .blockLeftIncomplete: true
        case .verifyMismatch: true // rewritten whole once; a second mismatch is the flash itself (UpgradeError.wrap)
        case .deviceStatus(let status, _, _, _):
            [.errCheckErased, .errProg, .errVerify, .errNotDone, .errUnknown, .errStalledPkt].contains(status)
        default: false
        }
    }
}
