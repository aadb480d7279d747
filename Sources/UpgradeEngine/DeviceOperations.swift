import AppLink
import DeviceProfiles
import DfuSe
import FirmwareImage
import HexFormat
import USBTransport

/// The single operations behind `dfuhop flash`, `read`, `leave`, `erase` and `info`: each opens its
/// transport through `withClient`/`withHID` (closed on every path), reports through `onEvent`, and uses
/// the same rules as `upgrade` (the plan with the descriptor's span, the family's leave jump). The unit
/// and its family are chosen by `selectDFU`/`selectApplication` (Select.swift); the CLI parses and renders.
extension UpgradeEngine {
    /// A unit in its ROM bootloader, chosen by the caller, and its family.
    public struct DFUUnit: Sendable {
        public var identity: USBDeviceIdentity
        public var alternateSettings: [DFUAlternateSetting]
        public var family: McuFamily

        public init(identity: USBDeviceIdentity, alternateSettings: [DFUAlternateSetting], family: McuFamily) {
            self.identity = identity
            self.alternateSettings = alternateSettings
            self.family = family
        }

        var rom: ROM { ROM(identity: identity, alternates: alternateSettings) }
    }

    public struct FlashOptions: Sendable {
        public var verify = true
        public var dryRun = false
        /// Leave DFU afterwards with the family's jump, so the application starts.
        public var leave = false
        /// For messages: the image's path.
        public var source = "image"
        /// Who vouches for the image; `flash` applies the same signing decision as `upgrade`.
        public var signing = SigningPolicy()
        /// Product profiles (their `signing` policies).
        public var profiles: [ProductProfile] = []
        public init() {}
    }

    public struct FlashOutcome: Sendable {
        public var plan: FlashPlan
        /// Nil for a dry run.
        public var report: FlashReport?
        public var jumpTo: UInt32?
        public var leave: LeaveOutcome?
    }

    public enum EraseRequest: Sendable, Hashable {
        /// The sectors holding these addresses.
        case sectors([UInt32])
        case massErase
        /// Read protection level 1 to 0: the MCU erases its whole flash and resets.
        case readUnprotect
    }

    public enum EraseOutcome: Sendable, Hashable {
        case sectors(Int)
        case massErased
        case readUnprotected(deviceReset: Bool)
    }

    /// Checks, plans and flashes `file` on `unit`: only the sectors it covers (its descriptor's whole span),
    /// the vector table sector last, verified; with `options.leave`, starts it.
    public func flash(_ file: FirmwareImage, on unit: DFUUnit, options: FlashOptions) async throws -> FlashOutcome {
        let family = unit.family
        let image = try file.normalized(granularity: family.writeGranularity)
        do { try checkImage(image, family: family, source: options.source) } catch var error as UpgradeError {
            error.hint = "nothing was written; check the image was built for \(family.name)"
            throw error
        }
        guard let layoutString = unit.alternateSettings.first(where: { $0.number == 0 })?.name else {
            let reason = Refusal.noFlashAlternate(port: unit.identity.portPath)
            throw UpgradeError(.refused(reason), phase: .plan, hint: reason.hint)
        }
        let layout = try FlashLayout(parsing: layoutString)
        let base = image.baseAddress ?? 0
        // An image with a descriptor owns its span: gaps are erased too, as its own CRC check counts them.
        let descriptor = Self.descriptorReading(file, granularity: family.writeGranularity)
        try Self.checkSingleReading(file, flashed: descriptor, source: options.source)
        try checkSigning(productID: descriptor?.productID, policy: options.signing, profiles: options.profiles, source: options.source)
        let span = descriptor.map { UInt64(base)..<max(UInt64(base) + UInt64($0.imageSize), image.end) }
        return try await withClient(unit.rom, family: family) { client in
            let plan = try FlashPlan(
                image: image, layout: layout, family: family,
                transferSize: Int(client.transport.functionalDescriptor.transferSize), span: span)
            guard !options.dryRun else { return FlashOutcome(plan: plan) }
            _ = try await client.prepare(alternateSetting: 0)
            let flashed = try await client.execute(plan, image: image, verify: options.verify)
            guard options.leave else { return FlashOutcome(plan: plan, report: flashed) }
            let vectorTable = image.baseAddress ?? family.flashBase
            let jump = try Self.leaveAddress(
                family: family, vectorTable: vectorTable, resetHandler: image.word(at: vectorTable + 4), of: options.source,
                phase: .leave)
            return FlashOutcome(plan: plan, report: flashed, jumpTo: jump, leave: try await client.leave(jumpTo: jump))
        }
    }

    /// Reads `length` bytes at `address` from the memory alternate setting `alternateSetting` shows.
    public func read(from unit: DFUUnit, address: UInt32, length: Int, alternateSetting: UInt8 = 0) async throws -> [UInt8] {
        try await withClient(unit.rom, family: unit.family) { client in
            _ = try await client.prepare(alternateSetting: alternateSetting)
            return try await client.read(address: address, length: length)
        }
    }

    /// Leaves DFU: to `address`, or to the jump the family's ROM needs for the application in flash. Refuses
    /// erased flash: the ROM would jump into 0xFFFFFFFF while the command claimed success.
    public func leave(_ unit: DFUUnit, address: UInt32? = nil) async throws -> (jumpTo: UInt32, outcome: LeaveOutcome) {
        let family = unit.family
        return try await withClient(unit.rom, family: family) { client in
            _ = try await client.prepare(alternateSetting: 0)
            var target = address
            if target == nil {
                let vectors = try await client.read(address: family.flashBase, length: 8)
                let reset = UInt32(littleEndianBytes: vectors[4..<8])
                if vectors.allSatisfy({ $0 == 0xFF }) {
                    let reason = Refusal.noApplication(flashBase: family.flashBase, reset: reset)
                    throw UpgradeError(.refused(reason), phase: .leave, hint: reason.hint)
                }
                target = try Self.leaveAddress(
                    family: family, vectorTable: family.flashBase, resetHandler: reset, of: "the application in flash", phase: .leave)
            }
            let jump = target ?? family.flashBase
            return (jump, try await client.leave(jumpTo: jump))
        }
    }

    /// Erases what `request` names; sectors the layout marks not erasable are refused before anything is sent.
    public func erase(_ unit: DFUUnit, _ request: EraseRequest) async throws -> EraseOutcome {
        try await withClient(unit.rom, family: unit.family) { client in
            switch request {
            case .readUnprotect:
                return .readUnprotected(deviceReset: try await client.readUnprotect(.operatorRequestedFullWipe))
            case .massErase:
                _ = try await client.prepare(alternateSetting: 0)
                try await client.massErase(.operatorRequestedMassErase)
                return .massErased
            case .sectors(let addresses):
                let layout = try await client.prepare(alternateSetting: 0)
                let starts = try Set(
                    addresses.map { address in
                        guard let sector = layout.sector(containing: address) else {
                            let reason = Refusal.addressInNoSector(address: address, layout: layout.render())
                            throw UpgradeError(.refused(reason), phase: .flash, hint: reason.hint)
                        }
                        return sector.start
                    })
                try await client.erase(sectorsAt: starts.sorted(), in: layout)
                return .sectors(starts.count)
            }
        }
    }

    /// What a running application says about itself: GET_INFO, and CHECK_IMAGE when it supports it.
    public func info(_ hid: HIDDeviceInfo) async throws -> (info: DeviceInfo, check: AppLink.ImageCheck?, family: McuFamily?) {
        try await withHID(hid) { link in
            let info = try await link.info()
            let check = info.capabilities.contains(.imageCheck) && info.descriptorState == .valid ? try await link.checkImage() : nil
            return (info, check, McuFamily.withDeviceID(info.deviceID))
        }
    }
}
