import DeviceProfiles
import DfuSeWire
import FirmwareImage
import USBTransport

/// Explicit opt-in for `massErase`: it wipes the whole flash, including sectors the plan would keep.
public struct MassEraseConsent: Sendable {
    /// The operator asked for a mass erase with an explicit flag.
    public static let operatorRequestedMassErase = MassEraseConsent()
    private init() {}
}

/// Explicit opt-in for `readUnprotect`: it removes read protection by wiping the whole flash, and the
/// device resets afterwards.
public struct ReadUnprotectConsent: Sendable {
    /// The operator asked for a read unprotect (full wipe) with an explicit flag.
    public static let operatorRequestedFullWipe = ReadUnprotectConsent()
    private init() {}
}

/// Explicit opt-in for `writeOptionBytes`: option bytes change how the unit boots and how its flash is
/// organised, and the write resets it (seed 003); never done unless the operator asked (docs/guarantees.md).
public struct OptionByteConsent: Sendable {
    /// The operator asked for option bytes to be written with an explicit flag.
    public static let operatorRequestedOptionBytes = OptionByteConsent()
    private init() {}
}

/// Control transfers a client has made, for benchmarks (one set-address per run versus dfu-util's one per block).
public struct TransferStatistics: Sendable, Hashable, Codable {
    /// Every control transfer, SET_INTERFACE included.
    public var controlTransfers = 0
    /// Per request name ("DNLOAD", "GETSTATUS", ..., "SET_INTERFACE").
    public var requests: [String: Int] = [:]
    /// Time spent waiting on poll timeouts and quirk retries, in the client's clock.
    public var pollWait: Duration = .zero

    public init() {}

    public func count(_ request: DFURequest) -> Int { requests[request.description] ?? 0 }
}

/// What `execute` did.
public struct FlashReport: Sendable, Hashable, Codable {
    public var erasedSectors: Int
    public var bytesWritten: Int
    public var bytesVerified: Int
    public var controlTransfers: Int
    /// In the client's clock.
    public var duration: Duration
}

/// The DfuSe host client: the DFU 1.1 state machine with ST's extensions (AN3156), the ROM quirks of
/// the family, and execution of a `FlashPlan`. It knows only a `DFUTransport` and a `DeviceClock`.
///
/// One operation at a time: a call made while another is suspended on the device is refused with
/// `.concurrentCall` (the actor alone would interleave their transfers). Each public call leaves the
/// device in dfuIDLE or dfuDNLOAD-IDLE, or gone after `leave` and `readUnprotect`.
public actor DfuSeClient {
    public struct Options: Sendable, Hashable {
        /// Timeout of each control transfer.
        public var controlTimeout: Duration = .seconds(5)
        /// Longest a single command or block may keep the device in dfuDNBUSY (the slowest sector erase is
        /// a few seconds; mass erase gets at least the family's quirk allowance).
        public var maxBusyTime: Duration = .seconds(60)
        /// Answers of dfuDNBUSY with poll timeout 0 in a row after which the device counts as stuck.
        public var stuckZeroPollLimit = 100
        /// Wait before retrying a GETSTATUS a quirk tolerates, when the device gave no poll timeout.
        public var quirkRetryInterval: Duration = .milliseconds(100)

        public init() {}
    }

    public nonisolated let transport: any DFUTransport
    public nonisolated let transferSize: Int
    private let clock: any DeviceClock
    private let options: Options
    private let onEvent: DfuSeEventHandler
    private let interface: UInt16
    /// From the family's `RomQuirk`s.
    private let eraseStallAllowance: Int?
    private let massEraseAllowance: Duration?
    private let stuckBusyClearCount: Int?

    public private(set) var statistics = TransferStatistics()
    /// The state the device reported last, or nil when unknown (start, after leave or a failure).
    public private(set) var lastKnownState: DFUState?
    /// The layout used to name sectors in errors (set by `prepare` and `execute`).
    private var layoutContext: FlashLayout?
    /// The public call in progress.
    private var activeCall: String?

    /// - Parameters:
    ///   - quirks: the family's ROM quirks (`McuFamily.quirks`).
    ///   - onEvent: progress; called in order on the client's executor; must return quickly.
    /// - Throws: `.invalidTransferSize` or `.notDfuSe` when the functional descriptor rules DfuSe out.
    public init(
        transport: any DFUTransport, clock: any DeviceClock, quirks: [RomQuirk] = [],
        options: Options = Options(), onEvent: @escaping DfuSeEventHandler = { _ in }
    ) throws(DfuSeError) {
        let descriptor = transport.functionalDescriptor
        guard descriptor.transferSize > 0 else { throw .invalidTransferSize(Int(descriptor.transferSize)) }
        guard descriptor.isDfuSe else { throw .notDfuSe(bcdDFU: descriptor.dfuVersion) }
        self.transport = transport
        self.transferSize = Int(descriptor.transferSize)
        self.clock = clock
        self.options = options
        self.onEvent = onEvent
        self.interface = UInt16(transport.interfaceNumber)
        eraseStallAllowance = quirks.eraseStallAllowance
        massEraseAllowance = quirks.massEraseAllowance
        stuckBusyClearCount = quirks.stuckBusyClearCount
    }

    public var controlTransferCount: Int { statistics.controlTransfers }

    // MARK: - Session start and recovery

    /// Selects the alternate setting, parses its layout string and brings the device to dfuIDLE.
    @discardableResult
    public func prepare(alternateSetting: UInt8 = 0) async throws(DfuSeError) -> FlashLayout {
        try begin("prepare")
        defer { end() }
        guard let setting = transport.alternateSettings.first(where: { $0.number == alternateSetting }) else {
            throw .noSuchAlternateSetting(alternateSetting, available: transport.alternateSettings.map(\.number))
        }
        let layout: FlashLayout
        do { layout = try FlashLayout(parsing: setting.name) } catch { throw .badLayout(error, alternateSetting: alternateSetting) }
        count("SET_INTERFACE")
        do {
            try await transport.selectAlternateSetting(alternateSetting)
        } catch {
            throw wrap(error, during: .selectAlternateSetting(alternateSetting))
        }
        layoutContext = layout
        lastKnownState = nil
        try await returnToIdle()
        return layout
    }

    /// Brings the device to dfuIDLE from wherever it is: CLRSTATUS from dfuERROR, ABORT from the idle and
    /// sync states, waiting out dfuDNBUSY (DFU 1.1 §6.1.2, AN3156 §3). Returns the state it was found in.
    @discardableResult
    public func abortToIdle() async throws(DfuSeError) -> DFUState {
        try begin("abortToIdle")
        defer { end() }
        return try await returnToIdle()
    }

    @discardableResult
    private func returnToIdle() async throws(DfuSeError) -> DFUState {
        let started = clock.now()
        var found: DFUState?
        var transitions = 0
        var zeroPolls = 0
        var clearedStuckBusy = false
        var stalledStatus = 0
        while true {
            let report: DFUStatusReport
            do {
                report = try await getStatus(during: .returnToIdle)
            } catch  where error.transportError?.kind == .stall && stalledStatus < 2 {
                // A stalled request leaves the device in dfuERROR (DFU 1.1 §6.1.2, §A.1): CLRSTATUS, ask again.
                stalledStatus += 1
                try await send(.clearStatus, during: .returnToIdle)
                continue
            }
            let first = found ?? report.state
            found = first
            switch report.state {
            case .dfuIdle:
                if first != .dfuIdle { emit(.returnedToIdle(from: first)) }
                return first
            case .error:
                try await send(.clearStatus, during: .returnToIdle)
                transitions += 1
            case .downloadIdle, .uploadIdle, .downloadSync, .manifestSync:
                try await send(.abort, during: .returnToIdle)
                transitions += 1
            case .downloadBusy:
                zeroPolls = report.pollTimeout == .zero ? zeroPolls + 1 : 0
                let elapsed = clock.now() - started
                if zeroPolls >= options.stuckZeroPollLimit || elapsed > options.maxBusyTime {
                    // H7: a ROM found hung in dfuDNBUSY comes back with CLRSTATUS n times.
                    guard let clears = stuckBusyClearCount, !clearedStuckBusy else {
                        throw .stuckBusy(during: .returnToIdle, polls: zeroPolls, elapsed: elapsed)
                    }
                    for _ in 0..<clears { try await send(.clearStatus, during: .returnToIdle) }
                    emit(.quirk(.recoveredStuckBusy(clearStatusCount: clears)))
                    clearedStuckBusy = true
                    zeroPolls = 0
                    continue
                }
                try await sleep(boundedWait(report.pollTimeout, elapsed: elapsed, budget: options.maxBusyTime), during: .returnToIdle)
            case .appIdle, .appDetach:
                throw .notInDfuMode(report.state)
            case .manifest, .manifestWaitReset:
                throw .unexpectedState(report.state, expected: [.dfuIdle], during: .returnToIdle)
            }
            // ERROR → CLRSTATUS → IDLE takes one step; a device that needs more is not coming back.
            if transitions > 3 { throw .cannotReachIdle(lastState: report.state) }
        }
    }

    /// One GETSTATUS, as the device answers it: what a stalled request left behind (under read protection
    /// an UPLOAD stalls and the status reads errVENDOR, AN3156 §4.3; a passing fault leaves errSTALLEDPKT).
    public func status() async throws(DfuSeError) -> DFUStatusReport {
        try begin("status")
        defer { end() }
        return try await getStatus(during: .returnToIdle)
    }

    // MARK: - DfuSe commands

    /// The DfuSe commands the device supports, as it lists them on UPLOAD block 0 (a ROM: 00 21 41 92).
    public func getCommands() async throws(DfuSeError) -> [UInt8] {
        try begin("getCommands")
        defer { end() }
        try await ensureState([.dfuIdle], during: .getCommands)
        let answer = try await receive(.upload, value: 0, length: transferSize, during: .getCommands)
        lastKnownState = .uploadIdle
        guard answer.first == DfuSeCommand.getCommandsCode else { throw .malformedCommandList(answer) }
        try await ensureState([.dfuIdle], during: .getCommands)
        return answer
    }

    /// Sets the DfuSe address pointer (command 0x21).
    public func setAddress(_ address: UInt32) async throws(DfuSeError) {
        try begin("setAddress")
        defer { end() }
        try await command(.setAddress(address), during: .setAddress(address), kind: .command)
    }

    /// Erases the sectors starting at `addresses`, in the given order. Each must be the start of a sector of
    /// `layout` whose attribute allows erasing.
    public func erase(sectorsAt addresses: [UInt32], in layout: FlashLayout) async throws(DfuSeError) {
        try begin("erase")
        defer { end() }
        let line = layout.render()
        var sectors: [FlashLayout.Sector] = []
        for address in addresses {
            guard let sector = layout.sector(containing: address), sector.start == address else {
                throw .notASectorStart(address: address, layout: line)
            }
            guard sector.attributes.contains(.erasable) else { throw .notErasable(sector, layout: line) }
            sectors.append(sector)
        }
        layoutContext = layout
        emit(.phaseStarted(.erase))
        for (number, sector) in sectors.enumerated() {
            try await eraseSector(sector)
            emit(.sectorErased(sector, number: number + 1, total: sectors.count))
        }
        emit(.phaseFinished(.erase))
    }

    /// Erases the whole flash (command 0x41 alone). F4 ROMs understate its poll timeout; the family's quirk
    /// says how long to keep polling.
    public func massErase(_ consent: MassEraseConsent) async throws(DfuSeError) {
        try begin("massErase")
        defer { end() }
        emit(.phaseStarted(.massErase))
        try await command(.massErase, during: .massErase, kind: .massErase)
        emit(.massErased)
        emit(.phaseFinished(.massErase))
    }

    /// Removes read protection (command 0x92): the ROM wipes the flash and resets. Returns whether the
    /// device left the bus, which is the expected ending.
    @discardableResult
    public func readUnprotect(_ consent: ReadUnprotectConsent) async throws(DfuSeError) -> Bool {
        try begin("readUnprotect")
        defer { end() }
        emit(.phaseStarted(.readUnprotect))
        try await ensureState([.dfuIdle, .downloadIdle], during: .readUnprotect)
        try await send(.download, value: 0, data: DfuSeCommand.readUnprotect.bytes, during: .readUnprotect)
        lastKnownState = .downloadSync
        let reset: Bool
        do {
            _ = try await pollUntilDone(during: .readUnprotect, kind: .command, sector: nil, allowRecovery: false)
            reset = false
        } catch {
            guard let kind = error.transportError?.kind, Self.meansDeviceLeft(kind) else { throw error }
            lastKnownState = nil
            reset = true
        }
        emit(.readUnprotected(deviceReset: reset))
        emit(.phaseFinished(.readUnprotect))
        return reset
    }

    /// Writes the option-byte area (the caller has selected its alternate setting with `prepare`): set
    /// address, one DNLOAD, GETSTATUS. The ROM then loads the option bytes, which resets the MCU, so the
    /// device leaving the bus is the expected ending (AN3156 §6; seed 003). Returns whether it left. Only
    /// the write can make it leave: a failed SET_ADDRESS wrote nothing, and a stall there is the ROM refusing
    /// the address (`optionBytesAddressRefused`), never "it left".
    @discardableResult
    public func writeOptionBytes(_ bytes: [UInt8], at address: UInt32, _ consent: OptionByteConsent) async throws(DfuSeError) -> Bool {
        try begin("writeOptionBytes")
        defer { end() }
        let operation = DfuSeOperation.download(block: 2, address: address, length: bytes.count)
        do throws(DfuSeError) {
            try await command(.setAddress(address), during: .setAddress(address), kind: .command)
        } catch {
            if error.transportError?.kind == .stall { throw .optionBytesAddressRefused(address) }
            throw error
        }
        do throws(DfuSeError) {
            try await send(.download, value: 2, data: bytes, during: operation)
            lastKnownState = .downloadSync
            _ = try await pollUntilDone(during: operation, kind: .data, sector: nil, allowRecovery: false)
            return false
        } catch {
            guard let kind = error.transportError?.kind, Self.meansDeviceLeft(kind) else { throw error }
            lastKnownState = nil
            return true
        }
    }

    /// Leaves DFU: set address (the jump target), zero-length DNLOAD, GETSTATUS (AN3156). The device
    /// manifests and drops off the bus; a failed last GETSTATUS is that, not an error. Which target to
    /// use (vector base or reset handler) is the caller's choice (seed 001).
    @discardableResult
    public func leave(jumpTo address: UInt32) async throws(DfuSeError) -> LeaveOutcome {
        try begin("leave")
        defer { end() }
        let operation = DfuSeOperation.leave(jumpTo: address)
        emit(.phaseStarted(.leave))
        try await command(.setAddress(address), during: operation, kind: .command)
        let outcome: LeaveOutcome
        do throws(DfuSeError) {
            try await send(.download, value: 0, data: [], during: operation)
            lastKnownState = .manifestSync
            let report = try await getStatus(during: operation)
            if report.status != .ok || report.state == .error {
                throw .deviceStatus(
                    report.status, state: report.state, during: operation,
                    sector: layoutContext?.sector(containing: address))
            }
            guard [.manifestSync, .manifest, .manifestWaitReset].contains(report.state) else {
                throw .unexpectedState(report.state, expected: [.manifest], during: operation)
            }
            outcome = .manifesting
        } catch {
            guard let kind = error.transportError?.kind, Self.meansDeviceLeft(kind) else { throw error }
            outcome = .deviceLeftBus
        }
        lastKnownState = nil
        emit(.left(jumpTo: address, outcome: outcome))
        emit(.phaseFinished(.leave))
        return outcome
    }

    // MARK: - Memory

    /// Reads `length` bytes at `address`: set address, ABORT to dfuIDLE, UPLOAD blocks 2, 3, ... (AN3156 §6.2).
    /// Runs on the transport's preferred executor.
    public func read(address: UInt32, length: Int) async throws(DfuSeError) -> [UInt8] {
        try await withTaskExecutorPreference(transport.preferredExecutor) { () async throws(DfuSeError) -> [UInt8] in
            try await readOnTransport(address: address, length: length)
        }
    }

    private func readOnTransport(address: UInt32, length: Int) async throws(DfuSeError) -> [UInt8] {
        try begin("read")
        defer { end() }
        guard length >= 0, UInt64(address) + UInt64(length) <= 0x1_0000_0000 else {
            throw .addressRangeOverflow(address: address, length: length)
        }
        emit(.phaseStarted(.read))
        let bytes = try await upload(address: address, length: length) { done in
            emit(.bytesRead(done: done, total: length))
        }
        try await ensureState([.dfuIdle], during: .returnToIdle)
        emit(.phaseFinished(.read))
        return bytes
    }

    /// Writes `bytes` at `address` as one run: one set-address, then DNLOAD blocks 2, 3, ... of
    /// wTransferSize bytes. No erase and no checks: `execute(_:image:)` is the safe path.
    public func write(_ bytes: [UInt8], at address: UInt32) async throws(DfuSeError) {
        try begin("write")
        defer { end() }
        guard UInt64(address) + UInt64(bytes.count) <= 0x1_0000_0000 else {
            throw .addressRangeOverflow(address: address, length: bytes.count)
        }
        try await writeRun(bytes[...], at: address) { _, _ in }
    }

    /// Runs a plan: brings the device to dfuIDLE, erases and writes in the plan's order, then (unless
    /// `verify` is false) reads the span and every written byte back and compares them with the image.
    @discardableResult
    public func execute(_ plan: FlashPlan, image: NormalizedImage, verify: Bool = true) async throws(DfuSeError) -> FlashReport {
        try await withTaskExecutorPreference(transport.preferredExecutor) { () async throws(DfuSeError) -> FlashReport in
            try await executeOnTransport(plan, image: image, verify: verify)
        }
    }

    /// `execute` on the transport's preferred executor (one thread for the whole loop).
    private func executeOnTransport(_ plan: FlashPlan, image: NormalizedImage, verify: Bool) async throws(DfuSeError) -> FlashReport {
        try begin("execute")
        defer { end() }
        try plan.check(against: image)
        // Smaller blocks than the device's wTransferSize are allowed (a ROM that stalls its own announced size:
        // issue 22); larger ones are not (DFU 1.1 §4.1.3).
        guard plan.transferSize <= transferSize, plan.transferSize > 0 else {
            throw .planTransferSizeMismatch(plan: plan.transferSize, device: transferSize)
        }
        let started = clock.now()
        let transfersBefore = statistics.controlTransfers
        layoutContext = plan.layout

        emit(.phaseStarted(.prepare))
        try await returnToIdle()
        emit(.phaseFinished(.prepare))

        emit(.phaseStarted(.program))
        let eraseTotal = plan.erasedSectors.count
        let writeTotal = plan.bytesToWrite
        var erased = 0
        var written = 0
        for step in plan.steps {
            switch step {
            case .erase(let sector):
                try await eraseSector(sector)
                erased += 1
                emit(.sectorErased(sector, number: erased, total: eraseTotal))
            case .write(let write):
                guard let bytes = FlashPlan.bytes(of: write, in: image) else {
                    throw .planDoesNotMatchImage("the image has no bytes for \(write)")
                }
                try await writeRun(bytes, at: write.address, blockSize: plan.transferSize) { count, end in
                    written += count
                    emit(.bytesWritten(done: written, total: writeTotal, address: end))
                }
            }
        }
        emit(.phaseFinished(.program))

        var verified = 0
        if verify {
            emit(.phaseStarted(.verify))
            verified = try await verifyReadBack(of: plan, against: image)
            emit(.phaseFinished(.verify))
        }
        return FlashReport(
            erasedSectors: erased, bytesWritten: written, bytesVerified: verified,
            controlTransfers: statistics.controlTransfers - transfersBefore,
            duration: clock.now() - started)
    }

    // MARK: - Runs of blocks

    private func eraseSector(_ sector: FlashLayout.Sector) async throws(DfuSeError) {
        try await command(.erase(sector.start), during: .eraseSector(sector.start), kind: .sectorErase, sector: sector)
    }

    /// One contiguous run: set address once, then blocks 2, 3, ...; a new set-address only when the block
    /// number would overflow, after a stuck-busy recovery, or before a short tail block.
    private func writeRun(
        _ bytes: ArraySlice<UInt8>, at address: UInt32, blockSize: Int? = nil,
        progress: (_ count: Int, _ end: UInt32) -> Void
    ) async throws(DfuSeError) {
        let blockSize = min(blockSize ?? transferSize, transferSize)
        var offset = 0
        var block: UInt16 = 2
        var needsAddress = true
        var recoveredAt: UInt32?
        while offset < bytes.count {
            let blockAddress = address + UInt32(offset)
            let length = min(blockSize, bytes.count - offset)
            // A ROM may place block n at the pointer + (n − 2) × this request's wLength (AN2662 §4.4.1; unsettled,
            // docs/silicon-sources.md): a block shorter than wTransferSize (a tail, or every block of a plan made
            // smaller) is only placed right as block 2, after its own set-address.
            if length < transferSize, block > 2 { needsAddress = true }
            if needsAddress {
                try await command(.setAddress(blockAddress), during: .setAddress(blockAddress), kind: .command)
                block = 2
                needsAddress = false
            }
            let start = bytes.startIndex + offset
            let chunk = Array(bytes[start..<start + length])
            let operation = DfuSeOperation.download(block: block, address: blockAddress, length: length)
            try checkCancellation(during: operation)
            let sector = layoutContext?.sector(containing: blockAddress)
            try await send(.download, value: block, data: chunk, during: operation)
            lastKnownState = .downloadSync
            let completion = try await pollUntilDone(
                during: operation, kind: .data, sector: sector,
                allowRecovery: recoveredAt != blockAddress)
            switch completion {
            case .done:
                offset += length
                progress(length, blockAddress + UInt32(length))
                if block == UInt16.max { needsAddress = true } else { block += 1 }
            case .recoveredFromStuckBusy:
                // The block may or may not have been programmed. A flash word must never be written twice
                // (seed 004), so look before writing again.
                recoveredAt = blockAddress
                let current = try await upload(address: blockAddress, length: length) { _ in }
                if current == chunk {
                    offset += length
                    progress(length, blockAddress + UInt32(length))
                } else if !current.allSatisfy({ $0 == 0xFF }) {
                    throw .blockLeftIncomplete(address: blockAddress, length: length, sector: sector)
                }
                needsAddress = true
            }
        }
    }

    /// Set address, ABORT to dfuIDLE, then UPLOAD blocks 2, 3, ...; leaves the device in dfuUPLOAD-IDLE.
    private func upload(address: UInt32, length: Int, progress: (Int) -> Void) async throws(DfuSeError) -> [UInt8] {
        var result: [UInt8] = []
        result.reserveCapacity(length)
        while result.count < length {
            let runStart = address + UInt32(result.count)
            try await command(.setAddress(runStart), during: .setAddress(runStart), kind: .command)
            try await ensureState([.dfuIdle], during: .setAddress(runStart))
            var block: UInt16 = 2
            while result.count < length {
                let blockAddress = address + UInt32(result.count)
                let wanted = min(transferSize, length - result.count)
                // As for downloads: a short tail block is addressed with its own wLength, so it starts a new run.
                if wanted < transferSize, block > 2 { break }
                let operation = DfuSeOperation.upload(block: block, address: blockAddress, length: wanted)
                try checkCancellation(during: operation)
                let data = try await receive(.upload, value: block, length: wanted, during: operation)
                lastKnownState = .uploadIdle
                guard data.count == wanted else { throw .shortRead(address: blockAddress, expected: wanted, got: data.count) }
                result += data
                progress(result.count)
                if block == UInt16.max { break }
                block += 1
            }
        }
        return result
    }

    /// Reads back the plan's span and every written range, in address order, and compares it with what
    /// the flash must hold: the image's bytes, 0xFF in its gaps. Sectors the plan skipped are covered too,
    /// so a wrong "unchanged" report cannot pass.
    private func verifyReadBack(of plan: FlashPlan, against image: NormalizedImage) async throws(DfuSeError) -> Int {
        let total = plan.bytesToVerify
        var verified = 0
        for range in plan.readBackRanges {
            let address = UInt32(range.lowerBound)
            let expected = FlashPlan.expectedBytes(in: range, of: image)
            let actual = try await upload(address: address, length: expected.count) { _ in }
            if actual != expected {
                let common = min(actual.count, expected.count)
                let offset = (0..<common).first { actual[$0] != expected[$0] } ?? common
                let mismatch = address + UInt32(offset)
                throw .verifyMismatch(
                    address: mismatch, expected: offset < expected.count ? expected[offset] : 0xFF,
                    actual: offset < actual.count ? actual[offset] : 0xFF,
                    sector: layoutContext?.sector(containing: mismatch))
            }
            verified += actual.count
            emit(.bytesVerified(done: verified, total: total))
        }
        try await ensureState([.dfuIdle], during: .returnToIdle)
        return verified
    }

    // MARK: - One download and its polling

    private enum BusyKind {
        case command, sectorErase, massErase, data
    }

    private enum Completion {
        case done
        /// The stuck-busy quirk's CLRSTATUS brought the device to dfuIDLE; the outcome is unknown.
        case recoveredFromStuckBusy
    }

    /// Sends a DfuSe command (DNLOAD block 0) and polls it to completion; resends it once after a stuck-busy
    /// recovery (set address and erase may be repeated safely).
    private func command(
        _ command: DfuSeCommand, during operation: DfuSeOperation, kind: BusyKind,
        sector: FlashLayout.Sector? = nil
    ) async throws(DfuSeError) {
        try await ensureState([.dfuIdle, .downloadIdle], during: operation)
        var allowRecovery = true
        while true {
            try await send(.download, value: 0, data: command.bytes, during: operation)
            lastKnownState = .downloadSync
            switch try await pollUntilDone(during: operation, kind: kind, sector: sector, allowRecovery: allowRecovery) {
            case .done: return
            case .recoveredFromStuckBusy: allowRecovery = false
            }
        }
    }

    /// What one busy wait (`pollUntilDone`) has seen: when it began, how long it may last, and its counts.
    private struct BusyWait {
        let started: Duration
        /// F4: how long a mass erase may run although the reported poll timeouts have passed.
        let massEraseBudget: Duration?
        let limit: Duration
        var zeroPolls = 0
        var stalls = 0
        var lastPollTimeout = Duration.zero
    }

    /// GETSTATUS until dfuDNLOAD-IDLE, sleeping each reported poll timeout (AN3156: the command or block
    /// executes on the first GETSTATUS, its status arrives on a later one). Applies the family's quirks.
    private func pollUntilDone(
        during operation: DfuSeOperation, kind: BusyKind, sector: FlashLayout.Sector?,
        allowRecovery: Bool
    ) async throws(DfuSeError) -> Completion {
        let started = clock.now()
        let massEraseBudget = kind == .massErase ? massEraseAllowance : nil
        var wait = BusyWait(
            started: started, massEraseBudget: massEraseBudget, limit: max(options.maxBusyTime, massEraseBudget ?? .zero))
        while true {
            let report: DFUStatusReport
            do {
                report = try await getStatus(during: operation)
            } catch {
                try await waitAfterFailedStatus(error, wait: &wait, kind: kind, during: operation)
                continue
            }
            wait.stalls = 0
            if report.status != .ok || report.state == .error {
                throw await deviceError(report, during: operation, sector: sector)
            }
            switch report.state {
            case .downloadIdle:
                return .done
            case .downloadBusy, .downloadSync:
                if let completion = try await waitWhileBusy(report, wait: &wait, allowRecovery: allowRecovery, during: operation) {
                    return completion
                }
            default:
                throw .unexpectedState(report.state, expected: [.downloadBusy, .downloadIdle], during: operation)
            }
        }
    }

    /// A GETSTATUS that failed on the transport during a busy wait: returns after a pause where the family's
    /// quirk tolerates the failure (F4's mass erase still running, L4's stalls during an erase), else throws it.
    private func waitAfterFailedStatus(
        _ error: DfuSeError, wait: inout BusyWait, kind: BusyKind, during operation: DfuSeOperation
    ) async throws(DfuSeError) {
        guard let transportError = error.transportError else { throw error }
        let elapsed = clock.now() - wait.started
        // The reported poll timeout has just proved too short: do not trust it again.
        let retryWait = boundedWait(max(wait.lastPollTimeout, options.quirkRetryInterval), elapsed: elapsed, budget: wait.limit)
        // F4: the erase is still running although the reported poll timeout has passed.
        if let budget = wait.massEraseBudget, elapsed < budget,
            transportError.kind == .timeout || transportError.kind == .stall
        {
            emit(.quirk(.massEraseStillRunning(elapsed: elapsed, allowed: budget)))
            try await sleep(retryWait, during: operation)
            return
        }
        // L4: GETSTATUS stalls a few times during an erase.
        if let allowed = eraseStallAllowance, kind == .sectorErase || kind == .massErase,
            transportError.kind == .stall
        {
            wait.stalls += 1
            guard wait.stalls <= allowed else { throw .tooManyStalls(during: operation, stalls: wait.stalls) }
            emit(.quirk(.statusStalledDuringErase(stall: wait.stalls, allowed: allowed)))
            try await sleep(retryWait, during: operation)
            return
        }
        throw error
    }

    /// The device reports it is still busy: sleeps its poll timeout (bounded by the wait's limit), or, when it
    /// looks stuck, brings it back (H7's quirk: `.recoveredFromStuckBusy`) or throws. Nil: poll again.
    private func waitWhileBusy(
        _ report: DFUStatusReport, wait: inout BusyWait, allowRecovery: Bool, during operation: DfuSeOperation
    ) async throws(DfuSeError) -> Completion? {
        wait.lastPollTimeout = report.pollTimeout
        wait.zeroPolls = report.pollTimeout == .zero ? wait.zeroPolls + 1 : 0
        let elapsed = clock.now() - wait.started
        let withinBudget = wait.massEraseBudget.map { elapsed < $0 } ?? false
        if (wait.zeroPolls >= options.stuckZeroPollLimit && !withinBudget) || elapsed > wait.limit {
            // H7: CLRSTATUS n times brings a hung ROM back to dfuIDLE.
            if let clears = stuckBusyClearCount, allowRecovery {
                try await recoverStuckBusy(clearStatusCount: clears, during: operation, polls: wait.zeroPolls)
                return .recoveredFromStuckBusy
            }
            throw .stuckBusy(during: operation, polls: wait.zeroPolls, elapsed: elapsed)
        }
        let pause = report.pollTimeout == .zero && withinBudget ? options.quirkRetryInterval : report.pollTimeout
        try await sleep(boundedWait(pause, elapsed: elapsed, budget: wait.limit), during: operation)
        return nil
    }

    private func recoverStuckBusy(
        clearStatusCount: Int, during operation: DfuSeOperation,
        polls: Int
    ) async throws(DfuSeError) {
        let started = clock.now()
        for _ in 0..<clearStatusCount {
            try await send(.clearStatus, during: operation)
        }
        let report = try await getStatus(during: operation)
        guard report.state == .dfuIdle, report.status == .ok else {
            throw .stuckBusy(during: operation, polls: polls, elapsed: clock.now() - started)
        }
        emit(.quirk(.recoveredStuckBusy(clearStatusCount: clearStatusCount)))
    }

    /// Builds the typed error for a failed status and clears dfuERROR (CLRSTATUS) so the device is usable.
    private func deviceError(
        _ report: DFUStatusReport, during operation: DfuSeOperation,
        sector: FlashLayout.Sector?
    ) async -> DfuSeError {
        if report.state == .error {
            do {
                try await send(.clearStatus, during: operation)
                lastKnownState = .dfuIdle
            } catch {
                lastKnownState = nil // the next operation starts with a full return to dfuIDLE
            }
        }
        let context = sector ?? operation.address.flatMap { layoutContext?.sector(containing: $0) }
        return .deviceStatus(report.status, state: report.state, during: operation, sector: context)
    }

    /// Makes sure the device is in one of `allowed` (which includes dfuIDLE): ABORT from a known idle state,
    /// the full return to dfuIDLE when the state is unknown or anything else.
    private func ensureState(_ allowed: Set<DFUState>, during operation: DfuSeOperation) async throws(DfuSeError) {
        if let state = lastKnownState, allowed.contains(state) { return }
        if lastKnownState == .downloadIdle || lastKnownState == .uploadIdle {
            try await send(.abort, during: operation)
            let report = try await getStatus(during: operation)
            if report.state == .dfuIdle { return }
        }
        try await returnToIdle()
    }

    // MARK: - Transfers

    private func getStatus(during operation: DfuSeOperation) async throws(DfuSeError) -> DFUStatusReport {
        let bytes = try await receive(.getStatus, value: 0, length: 6, during: operation)
        guard let report = DFUStatusReport(bytes: bytes) else {
            lastKnownState = nil
            throw .malformedStatus(bytes, during: operation)
        }
        lastKnownState = report.state
        return report
    }

    private func send(
        _ request: DFURequest, value: UInt16 = 0, data: [UInt8] = [],
        during operation: DfuSeOperation
    ) async throws(DfuSeError) {
        count(request.description)
        do {
            try await transport.controlOut(
                .classOut(request.rawValue, value: value, interface: interface),
                data: data, timeout: options.controlTimeout)
        } catch {
            lastKnownState = nil
            throw wrap(error, during: operation)
        }
        switch request {
        case .clearStatus, .abort: lastKnownState = .dfuIdle
        default: break
        }
    }

    private func receive(
        _ request: DFURequest, value: UInt16, length: Int,
        during operation: DfuSeOperation
    ) async throws(DfuSeError) -> [UInt8] {
        count(request.description)
        do {
            return try await transport.controlIn(
                .classIn(request.rawValue, value: value, interface: interface),
                length: length, timeout: options.controlTimeout)
        } catch {
            lastKnownState = nil
            throw wrap(error, during: operation)
        }
    }

    /// A wait the device asked for, cut to what is left of the busy budget of the operation in progress:
    /// bwPollTimeout is 24 bits of milliseconds (DFU 1.1 §6.1.2), so a broken ROM can ask for 4.6 hours.
    /// The cut wait ends 1 ms past the budget, so the next GETSTATUS finds the budget spent and stops.
    private func boundedWait(_ wait: Duration, elapsed: Duration, budget: Duration) -> Duration {
        min(wait, max(budget - elapsed, .zero) + .milliseconds(1))
    }

    private func sleep(_ duration: Duration, during operation: DfuSeOperation) async throws(DfuSeError) {
        guard duration > .zero else { return }
        statistics.pollWait += duration
        do { try await clock.sleep(for: duration) } catch { throw .cancelled(during: operation) }
    }

    /// A transport that was cancelled while it waited reports `.cancelled`: that is no USB failure.
    private func wrap(_ error: TransportError, during operation: DfuSeOperation) -> DfuSeError {
        error.kind == .cancelled ? .cancelled(during: operation) : .transport(error, during: operation)
    }

    private func begin(_ call: String) throws(DfuSeError) {
        if let active = activeCall { throw .concurrentCall(requested: call, running: active) }
        activeCall = call
    }

    private func end() { activeCall = nil }

    /// Cancellation is honoured between blocks (and in every clock sleep).
    private func checkCancellation(during operation: DfuSeOperation) throws(DfuSeError) {
        if Task.isCancelled { throw .cancelled(during: operation) }
    }

    private func count(_ name: String) {
        statistics.controlTransfers += 1
        statistics.requests[name, default: 0] += 1
    }

    private func emit(_ event: DfuSeEvent) { onEvent(event) }

    /// After leave or read unprotect the device resets: it vanishes, or stalls or times out on the way.
    private static func meansDeviceLeft(_ kind: TransportError.Kind) -> Bool {
        switch kind {
        case .disconnected, .stall, .timeout, .notFound: true
        default: false
        }
    }
}
