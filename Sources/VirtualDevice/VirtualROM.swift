import DeviceProfiles
import DfuSeWire
import USBTransport

/// The ROM bootloader's DFU state (DFU 1.1 §6.1.2, AN3156). Reset on every enumeration.
struct ROMState {
    var state: DFUState = .dfuIdle
    var status: DFUStatus = .ok
    var addressPointer: UInt32?
    var alternateSetting: UInt8 = 0
    var pending: Pending?
    /// The operation under way: when it ends and what the next GETSTATUS reports then.
    var busyUntil: Duration = .zero
    var outcome: Outcome = .idle
    var isErasing = false
    var blocksFailed: Set<UInt16> = []

    enum Pending {
        case command(DfuSeCommand)
        case data(block: UInt16, bytes: [UInt8])
        case leave
    }

    enum Outcome {
        case idle
        case error(DFUStatus)
        /// The ROM applies option bytes or wipes flash, then resets the MCU (seed 003).
        case resetAfter
        case stuck
    }
}

/// What the request handler decided, applied outside the lock.
enum ROMAction {
    case reply([UInt8])
    case stall
    /// The ROM is busy (flash operation under way): the transfer completes when the operation ends.
    case blockUntil(Duration)
    case replyThenJump([UInt8], UInt32)
    case replyThenReset([UInt8])
    /// The ROM resets the MCU by itself when the operation ends (option-byte load, read-unprotect).
    case replyThenResetAfter([UInt8], Duration)
    case disconnect
}

/// A command or data block the ROM has started: how long it runs, the poll timeout it reports (nil: its
/// duration), and what the GETSTATUS after it reports.
private struct StartedOperation {
    var duration = Duration.zero
    var reported: Duration?
    var outcome = ROMState.Outcome.idle

    static func failed(_ status: DFUStatus) -> StartedOperation { StartedOperation(outcome: .error(status)) }
}

extension VirtualUnit {
    /// The family's ROM quirks this unit acts out: those a public source confirms, and the ones the family data
    /// marks unverified only when the fault plan opts in (`FaultPlan.unverifiedQuirks`). A client real ROMs
    /// accept must not fail against the model because of a guess (issue 25: the L4 GETSTATUS stall during erase).
    public var enactedQuirks: [RomQuirk] { lock.withLock { enactedQuirksLocked } }

    var enactedQuirksLocked: [RomQuirk] {
        family.quirks.enumerated().filter { index, _ in
            faults.unverifiedQuirks == true || family.sources["quirks[\(index)]"]?.unverified != true
        }.map(\.element)
    }

    /// One control transfer, as the ROM's USB stack sees it.
    func control(
        _ request: ControlRequest, data: [UInt8]?, length: Int, timeout: Duration, enumeration handle: Int,
        device: String
    ) async throws(TransportError) -> [UInt8] {
        let operation = DFURequest(rawValue: request.request)?.description ?? "request \(request.request)"
        func fail(_ kind: TransportError.Kind) -> TransportError { TransportError(kind, device: device, operation: operation) }

        // Faults that act on the wire, before the device sees the request.
        let wireFault: TransportError.Kind? = lock.withLock {
            guard handle == enumeration, mode == .rom else { return .disconnected }
            transferCount += 1
            if faults.disconnectAtTransfer == transferCount { return .notFound }
            if faults.stallAtTransfer == transferCount { stallsLeft = faults.stallCount }
            if stallsLeft > 0 {
                stallsLeft -= 1
                return .stall
            }
            return nil
        }
        if wireFault == .notFound {
            unplug()
            throw fail(.disconnected)
        }
        if let wireFault { throw fail(wireFault) }

        // The transfer's time on the bus, and a GETSTATUS that arrives while an operation runs held (NAKed) until
        // it ends, in one wait: the host sees one transfer complete, as it would on a real bus.
        let transfer = family.timings.transferTime(bytes: data?.count ?? length)
        let start = clock.now()
        let heldUntil = lock.withLock { handle == enumeration && mode == .rom ? heldUntilLocked(request, arrival: start + transfer) : nil }
        if let heldUntil, heldUntil - (start + transfer) > timeout {
            try await clock.sleep(for: transfer + timeout, device: device, operation: operation)
            throw fail(.timeout)
        }
        try await clock.sleep(for: max(transfer, (heldUntil ?? start) - start), device: device, operation: operation)
        var waited = Duration.zero
        while true {
            let action: ROMAction = lock.withLock {
                guard handle == enumeration, mode == .rom else { return .disconnect }
                return handleLocked(request, data: data, length: length)
            }
            switch action {
            case .reply(let bytes):
                return bytes
            case .stall:
                throw fail(.stall)
            case .disconnect:
                publishPresence()
                throw fail(.disconnected)
            case .blockUntil(let end):
                let remaining = end - clock.now()
                if waited + remaining > timeout {
                    try await clock.sleep(for: timeout - waited, device: device, operation: operation)
                    throw fail(.timeout)
                }
                try await clock.sleep(for: remaining, device: device, operation: operation)
                waited += remaining
            case .replyThenJump(let bytes, let address):
                jump(to: address)
                return bytes
            case .replyThenReset(let bytes):
                reset(.optionByteLoad)
                return bytes
            case .replyThenResetAfter(let bytes, let delay):
                scheduleReset(after: delay, enumeration: lock.withLock { enumeration })
                return bytes
            }
        }
    }

    func selectAlternateSetting(_ number: UInt8, enumeration handle: Int) -> Bool {
        lock.withLock {
            guard handle == enumeration, mode == .rom, Int(number) < alternateSettingsLocked.count else { return false }
            log.append(LoggedRequest(kind: .selectAlternateSetting(number), enumeration: enumeration))
            rom.alternateSetting = number
            rom.state = .dfuIdle
            rom.status = .ok
            return true
        }
    }

    /// The layout behind the selected alternate setting.
    var selectedLayoutLocked: FlashLayout? {
        guard let name = alternateNameLocked(Int(rom.alternateSetting)) else { return nil }
        if let parsed = parsedLayouts[name] { return parsed }
        let layout = try? FlashLayout(parsing: name)
        parsedLayouts[name] = layout
        return layout
    }

    private func statusReply(pollMs: UInt32 = 0) -> [UInt8] {
        DFUStatusReport(status: rom.status, pollTimeoutMs: pollMs, state: rom.state).bytes
    }

    private func enterError(_ status: DFUStatus) {
        rom.state = .error
        rom.status = status
    }

    func handleLocked(_ request: ControlRequest, data: [UInt8]?, length: Int) -> ROMAction {
        guard request.requestType & 0x60 == 0x20, let dfuRequest = DFURequest(rawValue: request.request) else {
            log.append(LoggedRequest(kind: .unknown(request), enumeration: enumeration))
            return .stall
        }
        switch dfuRequest {
        case .download:
            return download(block: request.value, data: data ?? [])
        case .upload:
            return upload(block: request.value, length: length)
        case .getStatus:
            log.append(LoggedRequest(kind: .getStatus, enumeration: enumeration))
            return getStatus()
        case .clearStatus:
            log.append(LoggedRequest(kind: .clearStatus, enumeration: enumeration))
            if rom.outcome.isStuck {
                // H7 rev V: the first CLRSTATUS leaves (errUNKNOWN, dfuERROR), the next one dfuIDLE
                // (betaflight-configurator PRs 1861, 5348).
                rom.outcome = .idle
                enterError(.errUnknown)
                return .reply([])
            }
            if rom.state == .error || rom.state == .dfuIdle {
                rom.state = .dfuIdle
                rom.status = .ok
                return .reply([])
            }
            return .stall
        case .getState:
            log.append(LoggedRequest(kind: .getState, enumeration: enumeration))
            return .reply([rom.state.rawValue])
        case .abort:
            log.append(LoggedRequest(kind: .abort, enumeration: enumeration))
            switch rom.state {
            case .dfuIdle, .downloadIdle, .uploadIdle, .downloadSync, .manifestSync:
                rom.state = .dfuIdle
                rom.pending = nil
                return .reply([])
            default:
                return .stall
            }
        case .detach:
            log.append(LoggedRequest(kind: .detach, enumeration: enumeration))
            return .stall
        }
    }

    // MARK: DNLOAD

    private func download(block: UInt16, data: [UInt8]) -> ROMAction {
        guard rom.state == .dfuIdle || rom.state == .downloadIdle else {
            log.append(
                LoggedRequest(kind: .unknown(.classOut(DFURequest.download.rawValue, value: block, interface: 0)), enumeration: enumeration)
            )
            enterError(.errStalledPkt)
            return .stall
        }
        if data.isEmpty {
            // Leave: manifestation, then the jump to the address pointer (AN3156 §6.2.4).
            log.append(LoggedRequest(kind: .leave, enumeration: enumeration))
            rom.pending = .leave
            rom.state = .manifestSync
            return .reply([])
        }
        if block == 0 {
            guard let command = DfuSeCommand(bytes: data) else {
                log.append(LoggedRequest(kind: .unknown(.classOut(1, value: 0, interface: 0)), enumeration: enumeration))
                enterError(.errStalledPkt)
                return .stall
            }
            log.append(LoggedRequest(kind: .command(command), enumeration: enumeration))
            rom.pending = .command(command)
        } else if block >= 2 {
            let address = dataAddress(block: block)
            log.append(LoggedRequest(kind: .download(block: block, address: address ?? 0, length: data.count), enumeration: enumeration))
            // A block larger than the ROM takes is stalled; on L43x a large unaligned one is programmed wrong (AN2606).
            if family.writeLimits.stalls(data.count) {
                enterError(.errStalledPkt)
                return .stall
            }
            rom.pending = .data(block: block, bytes: Self.asProgrammed(data, family.writeLimits))
        } else {
            log.append(LoggedRequest(kind: .unknown(.classOut(1, value: block, interface: 0)), enumeration: enumeration))
            enterError(.errStalledPkt)
            return .stall
        }
        rom.state = .downloadSync
        return .reply([])
    }

    /// The bytes a ROM with these limits really programs: the block, or (AN2606 Table 165) the block with its bytes
    /// past the last whole alignment unit left erased.
    static func asProgrammed(_ data: [UInt8], _ limits: RomWriteLimits) -> [UInt8] {
        let good = limits.programmedCorrectly(data.count)
        return good == data.count ? data : Array(data[..<good]) + [UInt8](repeating: 0xFF, count: data.count - good)
    }

    /// Where block `block` goes: the address pointer + (block − 2) × wTransferSize. Unsettled: AN2662 §4.4.1 says
    /// wTransferSize is each request's wLength; dfu-util reads a short tail as block n > 2 and is used that way on
    /// ST ROMs, which holds only with the descriptor's size. The model takes the descriptor's size (so unmodified
    /// dfu-util works against it); the client never depends on it (a short tail always starts its own run), and
    /// the DfuSe tests' device uses the wLength reading (docs/silicon-sources.md).
    private func dataAddress(block: UInt16) -> UInt32? {
        let offset = UInt64(block - 2) * UInt64(family.rom.transferSize)
        let address = UInt64(rom.addressPointer ?? family.flashBase) + offset
        return address <= 0xFFFF_FFFF ? UInt32(address) : nil
    }

    // MARK: GETSTATUS

    /// When a GETSTATUS arriving at `arrival` would be held until the running operation ends: that end. Nil
    /// when it would be answered, or stalled, at once.
    func heldUntilLocked(_ request: ControlRequest, arrival: Duration) -> Duration? {
        guard request.requestType & 0x60 == 0x20, request.request == DFURequest.getStatus.rawValue,
            rom.state == .downloadBusy, !rom.outcome.isStuck
        else { return nil }
        return statusHeldUntilLocked(arrival: arrival)
    }

    /// While an operation runs (dfuDNBUSY), a GETSTATUS is held until it ends, except on a ROM whose quirk
    /// stalls it during an erase. L4 (unverified, so only as an opt-in fault): GETSTATUS stalls while an erase
    /// is under way; other ROMs hold the transfer.
    private func statusHeldUntilLocked(arrival: Duration) -> Duration? {
        guard arrival < rom.busyUntil, !(rom.isErasing && enactedQuirksLocked.eraseStallAllowance != nil) else { return nil }
        return rom.busyUntil
    }

    private func getStatus() -> ROMAction {
        switch rom.state {
        case .downloadSync:
            return startPendingOperation()
        case .downloadBusy:
            if rom.outcome.isStuck { return .reply(statusReply()) }
            let now = clock.now()
            if let end = statusHeldUntilLocked(arrival: now) { return .blockUntil(end) }
            if now < rom.busyUntil { return .stall } // busy and not held: the erase-stall quirk
            rom.isErasing = false
            switch rom.outcome {
            case .error(let status):
                rom.outcome = .idle
                enterError(status)
                return .reply(statusReply())
            case .resetAfter:
                rom.outcome = .idle
                rom.state = .downloadIdle
                return .replyThenReset(statusReply())
            case .idle, .stuck:
                rom.state = .downloadIdle
                return .reply(statusReply())
            }
        case .manifestSync:
            rom.state = .manifest
            let target = rom.addressPointer ?? family.flashBase
            return .replyThenJump(statusReply(), target)
        default:
            return .reply(statusReply())
        }
    }

    /// The command or block executes now; the ROM reports dfuDNBUSY with its poll timeout, and the
    /// outcome on the GETSTATUS after the operation ends (AN3156 §6.2).
    private func startPendingOperation() -> ROMAction {
        guard let pending = rom.pending else {
            rom.state = .downloadIdle
            return .reply(statusReply())
        }
        rom.pending = nil
        let started: StartedOperation?
        switch pending {
        case .leave:
            rom.state = .manifest
            return .replyThenJump(statusReply(), rom.addressPointer ?? family.flashBase)
        case .command(let command):
            started = startCommand(command)
        case .data(let block, let bytes):
            started = startBlock(block, bytes: bytes)
        }
        guard let started else { return .disconnect } // the power went during a flash operation
        return busyReply(for: started)
    }

    /// A DfuSe command (block 0); nil when the power went while it changed the flash.
    private func startCommand(_ command: DfuSeCommand) -> StartedOperation? {
        switch command {
        case .getCommands:
            return StartedOperation()
        case .setAddress(let address):
            guard isAddressableLocked(address) else { return .failed(.errTarget) }
            rom.addressPointer = address
            return StartedOperation(reported: family.reportedPollTimeouts.setAddress)
        case .erase(let address):
            return startSectorErase(at: address)
        case .massErase:
            guard readProtectionLocked == 0 else { return .failed(.errVendor) }
            guard flashOperation({ torn in self.eraseLocked(offset: 0, count: self.flash.count, torn: torn) }) else { return nil }
            rom.isErasing = true
            return StartedOperation(duration: family.timings.massErase, reported: family.reportedPollTimeouts.massErase)
        case .readUnprotect:
            eraseLocked(offset: 0, count: flash.count, torn: false)
            optionBytes[family.optionBytes.readProtectionByteOffset] = family.optionBytes.level0Value
            return StartedOperation(duration: family.timings.massErase, outcome: .resetAfter)
        }
    }

    private func startSectorErase(at address: UInt32) -> StartedOperation? {
        guard readProtectionLocked == 0 else { return .failed(.errVendor) }
        guard let sector = selectedLayoutLocked?.sector(containing: address), let offset = flashOffset(sector.start),
            sector.attributes.contains(.erasable)
        else { return .failed(.errTarget) }
        let duration = family.timings.eraseTime(sectorSize: sector.size)
        var started = StartedOperation(
            duration: duration,
            reported: family.reportedPollTimeouts.erase ?? (enactedQuirksLocked.eraseStallAllowance != nil ? duration / 4 : nil))
        guard flashOperation({ torn in self.eraseLocked(offset: offset, count: Int(sector.size), torn: torn) }) else { return nil }
        rom.isErasing = true
        // H7 rev V hangs in dfuDNBUSY on an erase (betaflight-configurator PR 1861).
        if faults.stuckBusyAtFlashOperation == flashOperationCount, enactedQuirksLocked.stuckBusyClearCount != nil {
            started.outcome = .stuck
        }
        return started
    }

    /// A data block (wBlockNum >= 2) for the flash or the option bytes; nil when the power went while it
    /// was programmed.
    private func startBlock(_ block: UInt16, bytes: [UInt8]) -> StartedOperation? {
        guard let address = dataAddress(block: block) else { return .failed(.errAddress) }
        if let fault = faults.statusErrorAtBlock, fault.block == Int(block), !rom.blocksFailed.contains(block),
            let status = DFUStatus(rawValue: fault.status)
        {
            rom.blocksFailed.insert(block)
            return .failed(status)
        }
        if isInFlash(address) { return startFlashWrite(bytes, at: address) }
        if address == family.optionBytes.address, bytes.count <= optionBytes.count { return startOptionByteWrite(bytes) }
        // Inside the option bytes but not at their base, or in no memory at all.
        return .failed(isInOptionBytes(address) ? .errTarget : .errAddress)
    }

    private func startFlashWrite(_ bytes: [UInt8], at address: UInt32) -> StartedOperation? {
        guard readProtectionLocked == 0 else { return .failed(.errVendor) }
        guard rom.alternateSetting == 0, writable(address: address, count: bytes.count) else { return .failed(.errAddress) }
        let programmed = flashOperation { torn in self.programLocked(bytes, at: address, tornAt: torn ? bytes.count / 2 : nil) }
        guard programmed else { return nil }
        return StartedOperation(duration: family.timings.programTime(bytes: bytes.count, granularity: family.writeGranularity))
    }

    /// An option-byte write starts at the area's base; the ROM loads the new values when it ends, which
    /// resets the MCU whether or not the host asks for the status (AN3156; seed 003).
    private func startOptionByteWrite(_ bytes: [UInt8]) -> StartedOperation {
        if readProtectionLocked > 0, bytes[family.optionBytes.readProtectionByteOffset] == family.optionBytes.level0Value {
            eraseLocked(offset: 0, count: flash.count, torn: false) // RDP 1 → 0 wipes the flash
        }
        optionBytes.replaceSubrange(0..<bytes.count, with: bytes)
        let duration = family.timings.programTime(bytes: bytes.count, granularity: family.writeGranularity)
        return StartedOperation(duration: duration, outcome: .resetAfter)
    }

    /// dfuDNBUSY with the ROM's poll timeout; the operation's outcome waits for the GETSTATUS after it ends.
    private func busyReply(for started: StartedOperation) -> ROMAction {
        rom.outcome = started.outcome
        rom.busyUntil = clock.now() + started.duration
        rom.state = .downloadBusy
        if started.outcome.isStuck { return .reply(DFUStatusReport(status: .ok, pollTimeoutMs: 0, state: .downloadBusy).bytes) }
        // bwPollTimeout is the ROM's estimate in whole ms (rounded to nearest); a GETSTATUS that comes a
        // little early is held until the operation ends. A lying ROM scales it (FaultPlan.pollTimeoutScale).
        let estimate = (started.reported ?? started.duration) * (faults.pollTimeoutScale ?? 1)
        let pollMs = UInt32((estimate + .microseconds(500)) / .milliseconds(1))
        let reply = DFUStatusReport(status: .ok, pollTimeoutMs: pollMs, state: .downloadBusy).bytes
        if case .resetAfter = started.outcome { return .replyThenResetAfter(reply, started.duration) }
        return .reply(reply)
    }

    /// Counts a flash operation and applies it, torn if the power-loss fault hits it.
    /// Returns false when the power went: the unit is off.
    private func flashOperation(_ apply: (_ torn: Bool) -> Void) -> Bool {
        flashOperationCount += 1
        if faults.powerLossAtFlashOperation == flashOperationCount {
            apply(true)
            mode = .off
            enumeration += 1
            rom = ROMState()
            return false
        }
        apply(false)
        return true
    }

    private func writable(address: UInt32, count: Int) -> Bool {
        guard let layout = selectedLayoutLocked else { return false }
        var position = UInt64(address)
        let end = UInt64(address) + UInt64(count)
        while position < end {
            guard let sector = layout.sector(containing: UInt32(position)), sector.attributes.contains(.writable) else { return false }
            position = sector.end
        }
        return true
    }

    // MARK: UPLOAD

    private func upload(block: UInt16, length: Int) -> ROMAction {
        log.append(LoggedRequest(kind: .upload(block: block, length: length), enumeration: enumeration))
        guard rom.state == .dfuIdle || rom.state == .uploadIdle else {
            enterError(.errStalledPkt)
            return .stall
        }
        if block == 0 {
            rom.state = .uploadIdle
            return .reply(Array([0x00, 0x21, 0x41, 0x92].prefix(length)))
        }
        guard block >= 2, let address = dataAddress(block: block) else {
            enterError(.errStalledPkt)
            return .stall
        }
        // Under read protection every upload fails, option bytes included (an audit of public ROM logs; AN3156).
        guard readProtectionLocked == 0 else {
            enterError(.errVendor)
            return .stall
        }
        if let offset = flashOffset(address) {
            let count = min(length, flash.count - offset)
            if wordCorruptedLocked(offset: offset, count: count) {
                // An ECC double error in the ROM's own read: NMI, the ROM dies (seed 004).
                mode = .hung
                enumeration += 1
                return .disconnect
            }
            rom.state = .uploadIdle
            return .reply(Array(flash[offset..<offset + count]))
        }
        if isInOptionBytes(address) {
            let offset = Int(address - family.optionBytes.address)
            rom.state = .uploadIdle
            return .reply(Array(optionBytes[offset..<min(optionBytes.count, offset + length)]))
        }
        if address >= family.uidAddress, address < family.uidAddress &+ 12 {
            // The unique ID (where the identity step reads it). Whether each ROM allows this read is unverified.
            let offset = Int(address - family.uidAddress)
            rom.state = .uploadIdle
            return .reply(Array(uid[offset..<min(12, offset + length)]))
        }
        if let count = readableLength(at: address, upTo: length) {
            // RAM, system memory, OTP and the other areas the ROM lists: not modelled byte by byte.
            let fill: UInt8 = isOTPOrFeature(address) ? 0xFF : 0x00
            rom.state = .uploadIdle
            return .reply([UInt8](repeating: fill, count: count))
        }
        enterError(.errTarget)
        return .stall
    }

    func isInOptionBytes(_ address: UInt32) -> Bool {
        address >= family.optionBytes.address && UInt64(address) < UInt64(family.optionBytes.address) + UInt64(optionBytes.count)
    }

    /// The regions the ROM can address besides flash and option bytes: RAM, system memory, and every zone of
    /// the other alternate settings (OTP, device feature, data EEPROM). Each as [start, end).
    private var otherRegions: [(start: UInt64, end: UInt64, otp: Bool)] {
        var regions = family.ramRegions.map { (UInt64($0.start), $0.end, false) }
        regions.append((UInt64(family.systemMemoryBase), UInt64(family.systemMemoryBase) + UInt64(Self.systemMemorySize), false))
        for memory in family.otherMemories {
            guard let layout = try? FlashLayout(parsing: memory) else { continue }
            regions += layout.zones.map { (UInt64($0.start), $0.end, true) }
        }
        return regions
    }

    private func readableLength(at address: UInt32, upTo length: Int) -> Int? {
        guard let region = otherRegions.first(where: { UInt64(address) >= $0.start && UInt64(address) < $0.end }) else { return nil }
        return Int(min(UInt64(length), region.end - UInt64(address)))
    }

    private func isOTPOrFeature(_ address: UInt32) -> Bool {
        otherRegions.contains { $0.otp && UInt64(address) >= $0.start && UInt64(address) < $0.end }
    }

    /// Where a set-address may point: flash, option bytes, RAM, system memory, or another alternate's zones.
    /// Elsewhere the ROM answers errTARGET (AN3156 "Set Address Pointer").
    func isAddressableLocked(_ address: UInt32) -> Bool {
        isInFlash(address) || isInOptionBytes(address) || readableLength(at: address, upTo: 1) != nil
            || (address >= family.uidAddress && address < family.uidAddress &+ 12)
    }

    /// The MCU resets by itself `delay` from now (the ROM applies option bytes or ends a read-unprotect),
    /// unless it has already restarted by then.
    func scheduleReset(after delay: Duration, enumeration expected: Int) {
        let fire: @Sendable () -> Void = { [self] in
            guard lock.withLock({ enumeration == expected && mode == .rom }) else { return }
            reset(.optionByteLoad)
        }
        if let virtual = clock as? VirtualClock {
            virtual.schedule(after: delay, fire)
        } else {
            Task { [clock] in
                try? await clock.sleep(for: delay)
                fire()
            }
        }
    }
}

extension ROMState.Outcome {
    var isStuck: Bool { if case .stuck = self { true } else { false } }
}
