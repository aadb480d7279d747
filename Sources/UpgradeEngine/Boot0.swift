import DeviceProfiles
import Foundation

/// The way to a unit's ROM when its application cannot be asked (blank, corrupted, or reset by an
/// option-byte write): the BOOT0 pin, sampled at reset (AN2606 "Bootloader activation"). The product
/// profile names how — a person at a bench, or a jig the host drives — and the engine only says what it
/// needs; it never drives pins or starts programs itself.
public struct Boot0Path: Sendable {
    public enum Action: String, Sendable, Hashable, Codable {
        /// Hold BOOT0 high through a reset (or replug), then release it: the ROM starts and shows DFU.
        case enterROM = "enter-rom"
        /// Reset (or replug) the unit with BOOT0 low: the application starts from its vector table.
        case startApplication = "start-application"
    }

    /// What the engine needs done, and what it knows about the unit.
    public struct Request: Sendable, Hashable {
        public var action: Action
        /// The unit's port path, when known.
        public var port: String?
        /// The unit's unique ID (hex), when known.
        public var uid: String?
        /// How the product's profile says BOOT0 is reached, if the image's product has a profile.
        public var method: ProductProfile.Boot0Method?
    }

    /// How the path works, for messages: "operator prompt", "hook `relay.sh`", "virtual jig".
    public var description: String
    /// How long a unit may take to appear after `perform` returns: a person needs longer than a relay.
    public var arrivalTimeout: Duration
    /// Does the request, or asks someone to; returns when done or asked, throws if it cannot.
    public var perform: @Sendable (Request) async throws -> Void

    public init(description: String, arrivalTimeout: Duration, perform: @escaping @Sendable (Request) async throws -> Void) {
        self.description = description
        self.arrivalTimeout = arrivalTimeout
        self.perform = perform
    }
}

extension Boot0Path {
    /// Where a run's BOOT0 requests go, as decided by `choice`; the front end runs the process or asks the
    /// person, and prints.
    public enum Choice: Sendable, Hashable {
        /// The caller's hook command, run by a shell.
        case command(String)
        /// The product profile's hook: `arguments` as the profile gives them (`hookArguments` fills them in).
        case profileHook(arguments: [String], profileDirectory: String?)
        /// A person at the bench, shown these instructions.
        case prompt(instructions: String)
    }

    /// What a person is told when the profile gives no instructions of its own (AN2606 "Bootloader activation").
    public static let generalInstructions = "Hold the BOOT0 pin high, press RESET (or replug the USB cable), then release BOOT0."

    /// The BOOT0 path for a run, decided once: the caller's hook command first, else the product profile's
    /// hook, else a person if one can be asked (`canPrompt`), with the profile's instructions or the general
    /// ones. nil: no BOOT0 path (the engine then says what must be done).
    public static func choice(command: String?, profile: ProductProfile?, canPrompt: Bool) -> Choice? {
        if let command { return .command(command) }
        if case .command(let arguments)? = profile?.boot0, !arguments.isEmpty {
            return .profileHook(arguments: arguments, profileDirectory: profile?.sourceDirectory)
        }
        guard canPrompt else { return nil }
        if case .prompt(let text)? = profile?.boot0 { return .prompt(instructions: text) }
        return .prompt(instructions: generalInstructions)
    }

    /// A profile hook's program and arguments for `request`: `{port}` and `{uid}` filled in (empty when not
    /// known), and a relative program path resolved next to the profile, never in the current directory.
    public static func hookArguments(_ arguments: [String], for request: Request, profileDirectory: String?) -> [String] {
        var filled = arguments.map {
            $0.replacingOccurrences(of: "{port}", with: request.port ?? "").replacingOccurrences(of: "{uid}", with: request.uid ?? "")
        }
        if let directory = profileDirectory, let program = filled.first, program.contains("/"), !program.hasPrefix("/") {
            filled[0] = URL(fileURLWithPath: directory).appendingPathComponent(program).standardizedFileURL.path
        }
        return filled
    }
}
