import DeviceProfiles
import FirmwareImage
import Foundation
import USBTransport

/// The one error type of the virtual device layer: bad `--simulate` specs and bad state files.
public struct VirtualDeviceError: Error, Sendable, Equatable, CustomStringConvertible {
    public var problem: String
    /// The file or flag the problem is in.
    public var source: String

    public init(_ problem: String, source: String) {
        self.problem = problem
        self.source = source
    }

    public var description: String { "\(source): \(problem)" }
}

/// `--simulate FAMILY[:STATE]`: which virtual unit to start.
public struct SimulationSpec: Sendable, Hashable, CustomStringConvertible {
    public enum State: String, Sendable, Hashable, CaseIterable {
        /// The ROM bootloader's DFU mode, flash erased (reached through BOOT0, which is then released).
        case dfu
        /// Flash erased, BOOT0 low: a non-empty-check part shows nothing; an empty-check part boots the ROM.
        case blank
        /// The demo application v1.0.0 runs and answers over HID.
        case programmed
        /// The demo application with one flash word changed after stamping: its start-up check refuses
        /// to run it, so nothing shows on the bus.
        case corrupted
    }

    public var family: McuFamily
    /// Index into `family.flashModes` (e.g. `g474-single` → single bank).
    public var flashModeIndex: Int
    public var state: State

    public init(family: McuFamily, flashModeIndex: Int = 0, state: State = .dfu) {
        self.family = family
        self.flashModeIndex = flashModeIndex
        self.state = state
    }

    public static let usage =
        "FAMILY[:STATE] with FAMILY one of \(McuFamily.all.map(\.id).joined(separator: ", ")) "
        + "(g474-single for DBANK=0) and STATE one of \(State.allCases.map(\.rawValue).joined(separator: ", "))"

    public init(parsing text: String) throws(VirtualDeviceError) {
        let parts = text.lowercased().split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        var familyName = parts[0]
        var modeIndex = 0
        if familyName.hasSuffix("-single") {
            familyName.removeLast("-single".count)
            modeIndex = 1
        }
        if let refused = McuFamily.refusal(for: familyName) {
            throw VirtualDeviceError("\(refused.name) cannot be used: \(refused.reason)", source: "--simulate \(text)")
        }
        guard let family = McuFamily.named(familyName) else {
            throw VirtualDeviceError("unknown family \"\(parts[0])\"; expected \(Self.usage)", source: "--simulate \(text)")
        }
        guard family.flashModes.indices.contains(modeIndex) else {
            throw VirtualDeviceError("\(family.id) has only one flash organisation", source: "--simulate \(text)")
        }
        var state = State.dfu
        if parts.count == 2 {
            guard let parsed = State(rawValue: parts[1]) else {
                throw VirtualDeviceError("unknown state \"\(parts[1])\"; expected \(Self.usage)", source: "--simulate \(text)")
            }
            state = parsed
        }
        self.init(family: family, flashModeIndex: modeIndex, state: state)
    }

    public var description: String {
        family.id + (flashModeIndex == 1 ? "-single" : "") + ":" + state.rawValue
    }

    /// A powered unit in this state, unit number `index` on the bus.
    public func makeUnit(index: Int = 1, clock: any DeviceClock) throws(VirtualDeviceError) -> VirtualUnit {
        let unit = VirtualUnit(
            family: family, uid: VirtualUnit.uid(index: index), portPath: "1-\(index)", clock: clock,
            flashModeIndex: flashModeIndex)
        switch state {
        case .dfu:
            unit.setBoot0(true)
            unit.powerCycle()
            unit.setBoot0(false)
        case .blank:
            unit.powerCycle()
        case .programmed, .corrupted:
            let image: NormalizedImage
            do { image = try DemoImage.make(family: family, version: FirmwareVersion(major: 1, minor: 0, patch: 0)) } catch {
                throw VirtualDeviceError("cannot build the demo image: \(error)", source: "--simulate \(self)")
            }
            for segment in image.segments { unit.programDirectly(segment.bytes, at: segment.address) }
            if state == .corrupted {
                // Flip bits in an already-written word the way a torn upgrade would leave it.
                unit.lock.withLock { unit.flash[0x1000] ^= 0xFF }
            }
            unit.powerCycle()
        }
        return unit
    }
}
