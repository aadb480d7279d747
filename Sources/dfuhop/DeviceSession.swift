import AppLink
import ArgumentParser
import DeviceProfiles
import DfuSe
import Foundation
import HIDAPIBackend
import Recording
import USBDiscovery
import USBTransport
import UpgradeEngine
import VirtualDevice

/// A virtual unit instead of USB hardware, for trying dfuhop out and for tests; shown apart in `--help`.
struct SimulationOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Run against a fresh virtual unit instead of USB: FAMILY[:STATE], e.g. g474:programmed.",
            discussion: "Families: \(McuFamily.all.map(\.id).joined(separator: ", ")) (g474-single for DBANK=0). "
                + "States: \(SimulationSpec.State.allCases.map(\.rawValue).joined(separator: ", ")).",
            valueName: "family[:state]"), completion: .simulations)
    var simulate: String?

    @Option(
        help: ArgumentHelp(
            "Keep one virtual unit in FILE across commands (flash, option bytes, registers, UID). Created from --simulate if FILE does not exist.",
            valueName: "file"), completion: .file(extensions: ["json"]))
    var simulateState: String?

    @Option(help: ArgumentHelp("With --simulate: this many identical units on the virtual bus (ports 1-1, 1-2, ...).", valueName: "n"))
    var simulateUnits: Int?

    @Option(
        help: ArgumentHelp(
            "Run the virtual unit in real time, N times faster than the datasheet's flash times (default: instant, virtual time).",
            discussion: "For watching progress, or for stopping dfuhop mid-upgrade on purpose (the state file follows every change).",
            valueName: "n"))
    var simulateSpeed: Double?

    @Option(
        help: ArgumentHelp(
            "Rehearse a failure on the virtual unit(s): \(FaultSpec.usage) (comma-separated or repeated; counts from this command's start).",
            valueName: "fault"))
    var simulateFault: [String] = []
    /// The virtual units on the bus: one unless --simulate-units says otherwise.
    var unitCount: Int { simulateUnits ?? 1 }

    /// The simulation options shape a virtual bus; without one they would silently scan real USB instead.
    func validate() throws {
        guard simulate == nil, simulateState == nil else { return }
        if simulateUnits != nil { throw ValidationError("--simulate-units needs --simulate") }
        if simulateSpeed != nil { throw ValidationError("--simulate-speed needs --simulate or --simulate-state") }
    }
}

/// How a device command finds its unit: real USB, or a virtual unit (`--simulate`, `--simulate-state`).
@dynamicMemberLookup
struct DeviceOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Which unit: its unique ID, USB serial number or port path (e.g. 1-2.3), any case. Needed when several are connected.",
            valueName: "uid|serial|port"))
    var unit: String?

    @Option(help: ArgumentHelp("The MCU family, when dfuhop cannot tell it from the ROM's memory layout.", valueName: "family"))
    var family: FamilyArgument?

    @OptionGroup var verbosity: VerbosityOptions

    @Option(
        help: ArgumentHelp(
            "Write every USB request, answer and re-enumeration of this command to FILE, a new file (docs/recordings.md).",
            valueName: "file"), completion: .file())
    var record: String?

    @OptionGroup(title: "Simulation (no hardware)") var simulation: SimulationOptions

    subscript<T>(dynamicMember path: KeyPath<SimulationOptions, T>) -> T { simulation[keyPath: path] }

    var isSimulated: Bool { simulation.simulate != nil || simulation.simulateState != nil }

    /// `--family`, parsed.
    func mcuFamily() throws -> McuFamily? { family?.family }
}

/// One command's connection to the bus, and the virtual unit behind it if simulated. The bus is wrapped,
/// innermost first, by the recorder (`--record`) and the tracer (`-vv`); `dfuhop replay` replaces it.
struct DeviceSession {
    var discovery: any DeviceDiscovery
    let clock: any DeviceClock
    let options: DeviceOptions
    /// The simulated unit, saved back to `--simulate-state` by `finish()`.
    let virtualUnit: VirtualUnit?
    /// The simulated bus, when simulated.
    var virtualBus: VirtualBus?
    /// `--record`: what writes the recording.
    var recorder: RecordingDiscovery?
    /// `dfuhop replay`: the recording this session's bus is served from.
    var replay: ReplayRun?

    /// Opens the bus for `options`. `inputs` is read only with `--record`: the files whose content decides
    /// what the command sends, embedded in the recording.
    static func open(_ options: DeviceOptions, inputs: () throws -> [RecordedInput] = { [] }) throws -> DeviceSession {
        let logger = options.verbosity.apply()
        var session = try ReplayRun.current?.session(options) ?? openBus(options)
        if let path = options.record { try session.startRecording(path, inputs: try inputs()) }
        if logger.logLevel <= .trace { session.discovery = TracingDiscovery(base: session.discovery, logger: logger) }
        return session
    }

    private static func openBus(_ options: DeviceOptions) throws -> DeviceSession {
        let session = try openVirtualOrUSB(options)
        guard !options.simulateFault.isEmpty else { return session }
        guard let units = session.virtualBus?.units, !units.isEmpty else {
            throw Failure(.usage, "--simulate-fault rehearses a failure on a virtual unit: give --simulate or --simulate-state")
        }
        let spec: FaultSpec
        do { spec = try FaultSpec(parsing: options.simulateFault) } catch { throw Failure(.usage, error.description) }
        // The first unit (port 1-1) is the one rehearsing; others stay healthy bystanders.
        units[0].resetCounters()
        units[0].setFaults(spec.plan)
        if spec.silent { units[0].unplug() }
        return session
    }

    private static func openVirtualOrUSB(_ options: DeviceOptions) throws -> DeviceSession {
        guard options.isSimulated else {
            let clock = SystemClock()
            let discovery = try USBDeviceDiscovery(hidMatches: [HIDMatch(usagePage: AppLinkProtocol.usagePage)], clock: clock)
            return DeviceSession(discovery: discovery, clock: clock, options: options, virtualUnit: nil)
        }
        // Virtual time: a 30 s mass erase costs nothing; the figures printed are the model's.
        let clock = try simulationClock(options)
        guard (1...64).contains(options.unitCount) else {
            throw Failure(.usage, "--simulate-units \(options.unitCount) is out of range (1 to 64)")
        }
        if options.unitCount > 1 { return try openIdenticalUnits(options, clock: clock) }
        let unit = try simulatedUnit(options, clock: clock)
        if let path = options.simulateState {
            unit.saveEveryChange(to: URL(fileURLWithPath: path)) { error in
                Output.error("dfuhop: warning: \(error.description)")
            }
        }
        let bus = VirtualBus(units: [unit])
        return DeviceSession(discovery: bus, clock: clock, options: options, virtualUnit: unit, virtualBus: bus)
    }

    /// `--simulate-units N`: N identical units made from `--simulate`, none of them kept in a state file.
    private static func openIdenticalUnits(_ options: DeviceOptions, clock: any DeviceClock) throws -> DeviceSession {
        guard options.simulateState == nil, let text = options.simulate else {
            throw Failure(.usage, "--simulate-units needs --simulate and cannot keep state (--simulate-state)")
        }
        do {
            let spec = try SimulationSpec(parsing: text)
            let units = try (1...options.unitCount).map { try spec.makeUnit(index: $0, clock: clock) }
            let bus = VirtualBus(units: units)
            return DeviceSession(discovery: bus, clock: clock, options: options, virtualUnit: nil, virtualBus: bus)
        } catch { throw Failure(.usage, "\(error)") }
    }

    /// The one simulated unit: loaded from `--simulate-state` when that file exists, else made from `--simulate`.
    private static func simulatedUnit(_ options: DeviceOptions, clock: any DeviceClock) throws -> VirtualUnit {
        if let path = options.simulateState, FileManager.default.fileExists(atPath: path) {
            if options.simulate != nil {
                throw Failure(
                    .usage, "--simulate-state \(path) already holds a unit; drop --simulate, or delete the file to start afresh")
            }
            do { return try VirtualUnit.load(from: URL(fileURLWithPath: path), clock: clock) } catch {
                throw Failure(.configuration, error.description)
            }
        }
        guard let spec = options.simulate else {
            throw Failure(
                .usage,
                "--simulate-state \(options.simulateState ?? "") does not exist yet: give --simulate FAMILY[:STATE] to create it")
        }
        do { return try SimulationSpec(parsing: spec).makeUnit(clock: clock) } catch {
            throw Failure(.usage, error.description)
        }
    }

    /// Virtual time, or scaled real time with `--simulate-speed`.
    private static func simulationClock(_ options: DeviceOptions) throws -> any DeviceClock {
        guard let speed = options.simulateSpeed else { return VirtualClock() }
        guard speed.isFinite, speed >= 0.01, speed <= 1_000_000 else {
            throw Failure(.usage, "--simulate-speed \(speed) is out of range (0.01 to 1000000)")
        }
        return ScaledClock(factor: speed)
    }

    /// Saves the virtual unit back to its state file.
    func finish() throws {
        guard let unit = virtualUnit, let path = options.simulateState else { return }
        // A rehearsed fault belongs to the command that named it; the unit it left behind is saved as it is.
        if !options.simulateFault.isEmpty { unit.setFaults(.none) }
        do { try unit.save(to: URL(fileURLWithPath: path)) } catch { throw Failure(.cannotWrite, error.description) }
    }

    /// Runs `body` and saves the virtual unit's state whatever happened (a failed flash leaves a unit too).
    func run<T>(_ body: () async throws -> T) async throws -> T {
        do {
            let value = try await body()
            try finish()
            return value
        } catch {
            try? finish()
            throw error
        }
    }

    /// The one DFU unit this command is for, with its family, as the engine selects it (`--unit`, `--family`)
    /// for every command.
    func dfuTarget() async throws -> UpgradeEngine.DFUUnit {
        try await UpgradeEngine(discovery: discovery, clock: clock).selectDFU(
            named: options.unit, family: options.family?.family, known: virtualUnit?.family ?? replay?.simulatedFamily)
    }

    /// The family `list` shows for a ROM: the one the engine would select, nil where it cannot tell.
    func family(alternateSettings: [DFUAlternateSetting], identity: USBDeviceIdentity) -> McuFamily? {
        try? UpgradeEngine.family(
            of: identity, alternateSettings: alternateSettings, named: options.family?.family,
            known: virtualUnit?.family ?? replay?.simulatedFamily)
    }

    /// An engine on this session's bus whose events `renderer` shows.
    func engine(_ renderer: EventRenderer) -> UpgradeEngine {
        UpgradeEngine(discovery: discovery, clock: clock) { renderer.render($0) }
    }

    /// The frame of a single-operation DFU command (flash, read, erase, option-bytes): opens the session for
    /// `options`, selects its one DFU unit and runs `body` with it, an engine whose events the renderer shows,
    /// and the renderer (for the body to finish before it prints). The renderer is finished however the command
    /// ends, and a virtual unit is saved whatever happened (`run`).
    static func withDFUTarget<T>(
        _ options: DeviceOptions, json: Bool, inputs: () throws -> [RecordedInput] = { [] },
        _ body: (UpgradeEngine.DFUUnit, UpgradeEngine, EventRenderer) async throws -> T
    ) async throws -> T {
        let session = try open(options, inputs: inputs)
        let renderer = EventRenderer(json: json)
        defer { renderer.finish() }
        return try await session.run {
            let unit = try await session.dfuTarget()
            return try await body(unit, session.engine(renderer), renderer)
        }
    }

    /// The engine's hook on ENTER_BOOTLOADER nonces: recorded with `--record`, the recorded ones in a replay.
    var nonceHook: (@Sendable (String, UInt32) throws -> UInt32)? {
        if let replay = replay?.discovery { return { port, _ in try replay.input(name: "nonce", port: port) } }
        guard let recorder else { return nil }
        return { port, nonce in
            recorder.recordInput(name: "nonce", port: port, value: nonce)
            return nonce
        }
    }
}
