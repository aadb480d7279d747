import DeviceProfiles
import FirmwareImage
import Foundation
import UpgradeEngine

/// One unit's upgrade as the CLI saw it: what the survey or the engine found, how it ended, how long it
/// took on this station. The result lines, the `--all` summary and `--report` records come from it.
struct UnitRun: Sendable {
    var port: String?
    var found: UnitDescription?
    var result: Result<UpgradeResult, Failure>
    var started: Date
    var duration: Duration

    var exitCode: Int32 {
        switch result {
        case .success: 0
        case .failure(let failure): failure.status.rawValue
        }
    }

    var outcome: String {
        switch result {
        case .success(let done): done.outcome.rawValue
        case .failure: "failed"
        }
    }

    /// The best description of the unit: the result's, else what the engine reported finding.
    var unit: UnitDescription? {
        if case .success(let done) = result { return done.before }
        return found
    }

    /// The `"type":"unit"` line for this unit of `--all`.
    var unitLine: ResultLine {
        switch result {
        case .success(let done): return ResultLine(done, port: port)
        case .failure(let failure):
            var line = failure.result(command: "upgrade")
            line.type = "unit"
            line.unit = found.map(UnitJSON.init) ?? UnitJSON(port: port)
            return line
        }
    }
}

/// Remembers the unit the engine reported finding (its `found` event), for a run that then fails.
final class FoundUnit: @unchecked Sendable {
    // Guarded by `lock`: the engine calls its event handler from its own task.
    private let lock = NSLock()
    private var found: UnitDescription?

    func note(_ event: UpgradeEvent) {
        guard case .found(let unit) = event else { return }
        lock.withLock { found = unit }
    }

    var unit: UnitDescription? { lock.withLock { found } }
}

extension UpgradeCommand {
    /// Runs one unit's upgrade and records it, whatever happens; `CancellationError` and the like become failures.
    static func run(
        port: String?, survey: UnitDescription?, render: @escaping @Sendable (UpgradeEvent) -> Void,
        _ upgrade: (_ onEvent: @escaping @Sendable (UpgradeEvent) -> Void) async throws -> UpgradeResult
    ) async -> UnitRun {
        let found = FoundUnit()
        let started = Date()
        let clock = ContinuousClock()
        let start = clock.now
        let result: Result<UpgradeResult, Failure>
        do {
            result = .success(
                try await upgrade { event in
                    found.note(event)
                    render(event)
                })
        } catch {
            result = .failure(Failure.from(error))
        }
        return UnitRun(
            port: port ?? found.unit?.portPath, found: found.unit ?? survey, result: result, started: started,
            duration: clock.now - start)
    }

    /// `--all`: the engine picks the units and upgrades them concurrently; this records and renders each.
    func upgradeAll(
        _ file: FirmwareImage, source: String, session: DeviceSession,
        options: UpgradeEngine.Options
    ) async throws -> [UnitRun] {
        let engine = UpgradeEngine(discovery: session.discovery, clock: session.clock)
        let units = try await engine.unitsForAll()
        if !json { Output.message("upgrading \(units.count) unit(s): \(units.compactMap(\.portPath).joined(separator: ", "))") }
        let json = json
        let runs = await engine.upgradeAll(units, file: file, source: source, options: options) { unit, upgrade in
            let port = unit.portPath ?? ""
            return await Self.run(port: port, survey: unit, render: { Self.render($0, json: json, bar: nil, unit: port) }) { onEvent in
                try await upgrade(onEvent)
            }
        }
        for run in runs { Self.report(run, json: json) }
        return runs
    }

    /// The result of `--all`: counts, the failed ports, and the first failure's exit status.
    static func summary(_ runs: [UnitRun]) -> ResultLine {
        let failed = runs.filter { $0.exitCode != 0 }
        var line = ResultLine(command: "upgrade", outcome: failed.isEmpty ? "upgraded" : "failed", exitCode: failed.first?.exitCode ?? 0)
        line.summary = SummaryJSON(
            units: runs.count, upgraded: runs.filter { $0.outcome == "upgraded" }.count,
            upToDate: runs.filter { $0.outcome == "up-to-date" }.count,
            planned: runs.filter { $0.outcome == "planned" }.count,
            failed: failed.count, failedUnits: failed.map { $0.port ?? "?" })
        if case .failure(let failure)? = failed.first?.result {
            line.error = "\(failed.count) of \(runs.count) unit(s) failed; the first: \(failure.message)"
            line.hint = failure.hint
        }
        return line
    }

    /// "8 upgraded, 1 failed: 1-4", for people (stderr).
    static func summaryText(_ summary: SummaryJSON) -> String {
        var parts = ["\(summary.upgraded) upgraded"]
        if summary.upToDate > 0 { parts.append("\(summary.upToDate) up to date") }
        if summary.planned > 0 { parts.append("\(summary.planned) planned") }
        parts.append("\(summary.failed) failed" + (summary.failedUnits.isEmpty ? "" : ": " + summary.failedUnits.joined(separator: ", ")))
        return parts.joined(separator: ", ")
    }
}
