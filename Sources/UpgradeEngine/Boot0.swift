import DeviceProfiles

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
