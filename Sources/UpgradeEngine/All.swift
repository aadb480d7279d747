import FirmwareImage

/// Every unit on the bus at once (`dfuhop upgrade --all`): which units, and one upgrade per unit, run
/// concurrently, each with its own engine, events and options naming its port.
extension UpgradeEngine {
    /// One unit's upgrade, for the caller to run inside its own bookkeeping: `onEvent` sees its events.
    public typealias UnitUpgrade =
        @Sendable (_ onEvent: @escaping @Sendable (UpgradeEvent) -> Void) async throws(UpgradeError) ->
        UpgradeResult

    /// The units an upgrade of every unit covers: those the survey finds on a port. A unit that shows nothing
    /// cannot be told from an empty port, so it is not among them. None: `.noUnit`, as for one unit.
    public func unitsForAll() async throws(UpgradeError) -> [UnitDescription] {
        let units = try await survey().filter { $0.portPath != nil && $0.classification != .absent }
        guard !units.isEmpty else {
            throw UpgradeError(
                .noUnit(.any), phase: .find,
                hint: "nothing was touched; plug the units in (blank ones with BOOT0 held), then run this again")
        }
        return units
    }

    /// Upgrades each of `units` to `file` concurrently; `run` is given the unit and its upgrade (with
    /// `options` naming the unit's port) and returns what the caller records. The outcomes come in port order.
    public func upgradeAll<Outcome: Sendable>(
        _ units: [UnitDescription], file: FirmwareImage, source: String, options: Options,
        run: @escaping @Sendable (UnitDescription, UnitUpgrade) async -> Outcome
    ) async -> [Outcome] {
        let (discovery, clock) = (self.discovery, self.clock)
        return await withTaskGroup(of: (String, Outcome).self) { group in
            for unit in units {
                let port = unit.portPath ?? ""
                var unitOptions = options
                unitOptions.unit = port
                group.addTask { [unitOptions] in
                    let outcome = await run(unit) { onEvent async throws(UpgradeError) -> UpgradeResult in
                        let engine = UpgradeEngine(discovery: discovery, clock: clock, onEvent: onEvent)
                        return try await engine.upgrade(file, source: source, options: unitOptions)
                    }
                    return (port, outcome)
                }
            }
            var collected: [(String, Outcome)] = []
            for await outcome in group { collected.append(outcome) }
            return collected.sorted { $0.0 < $1.0 }.map(\.1)
        }
    }
}
