import DeviceProfiles
import DfuSeWire
import Foundation
import USBTransport

@testable import DfuSe

/// A minimal DfuSe ROM behind `DFUTransport`, for the client's tests: keeps a DFU state, executes a
/// downloaded command or block on the following GETSTATUS (dfuDNBUSY with a poll timeout, then
/// dfuDNLOAD-IDLE once the clock has passed the operation's duration), stalls requests the DFU state
/// machine forbids, and records every request so that tests can assert the exact sequence.
/// Faults and ROM quirks are switched on through `configure`.
actor FakeDfuSeDevice: DFUTransport {
    enum OperationKind: Hashable { case command, erase, massErase, data, readUnprotect }

    /// What the device does when polled before the running operation is done.
    enum EarlyPoll { case reportBusy, timeout, stall }

    enum LeaveBehaviour {
        case manifest, disconnectOnStatus, stallOnStatus, timeoutOnStatus
        case errorStatus(DFUStatus)
    }

    /// How a stuck-busy (H7) ends for the operation that hung.
    enum StuckOutcome { case notPerformed, performed, halfWritten }

    struct Configuration {
        /// bwPollTimeout the device reports when an operation starts, per kind (ms).
        var reportedPollMs: [OperationKind: UInt32] = [.command: 5, .erase: 25, .massErase: 100, .data: 3, .readUnprotect: 10]
        /// How long the operation really takes; the reported poll timeout when absent.
        var actualDuration: [OperationKind: Duration] = [:]
        var earlyPoll: EarlyPoll = .reportBusy
        /// The first operation of this kind fails with this status (then the fault is spent).
        var statusFault: (kind: OperationKind, status: DFUStatus)?
        /// GETSTATUS stalls this many times in a row while an operation of the kind runs (L4: erases).
        var stallsDuring: [OperationKind: Int] = [:]
        /// The first operation of this kind hangs in dfuDNBUSY (poll 0) until `clears` CLRSTATUS (H7).
        var stuck: (kind: OperationKind, clears: Int, outcome: StuckOutcome)?
        /// The next operation answers dfuDNBUSY with poll timeout 0 forever; CLRSTATUS does not help.
        var hangForever = false
        var leave: LeaveBehaviour = .manifest
        /// A byte written at this address is stored inverted (a bad flash cell), so verify must fail.
        var corruptAddress: UInt32?
        /// Worn cells an erase does not reach: whatever they hold stays, so a gap there must fail verify.
        var unerasable: Set<UInt32> = []
        /// The next GETSTATUS answers these bytes instead of a status.
        var garbledStatus: [UInt8]?
        /// UPLOAD returns one byte less than asked.
        var shortUpload = false
        var commandList: [UInt8] = [0x00, 0x21, 0x41, 0x92]
    }

    nonisolated let identity = USBDeviceIdentity(
        vendorID: 0x0483, productID: 0xDF11, serialNumber: "FAKE00000001",
        portPath: "fake-1")
    nonisolated let interfaceNumber: UInt8 = 0
    nonisolated let alternateSettings: [DFUAlternateSetting]
    nonisolated let functionalDescriptor: DFUFunctionalDescriptor

    private let clock: VirtualClock
    private let layout: FlashLayout
    private var configuration = Configuration()

    private(set) var state: DFUState
    private var status: DFUStatus = .ok
    private(set) var addressPointer: UInt32 = 0
    private(set) var log: [String] = []
    /// Programmed bytes; everything else in the layout reads as erased (0xFF).
    private(set) var memory: [UInt32: UInt8] = [:]
    /// How often each address was programmed since its last erase (ECC: must never exceed 1).
    private(set) var programCount: [UInt32: Int] = [:]
    private(set) var erasedSectorStarts: [UInt32] = []
    private(set) var gone = false

    private enum Pending {
        case command(DfuSeCommand)
        case data(address: UInt32, bytes: [UInt8])
        case leave
    }
    private var pending: Pending?
    private var busyUntil: Duration = .zero
    private var reportedPoll: UInt32 = 0
    private var stallsLeft = 0
    private var stuckClearsLeft: Int?
    private var stuckOutcome: StuckOutcome = .notPerformed
    private var hanging = false
    /// A DNLOAD that waits for `release()`, so a test can act while the client is mid-request.
    private var pauseArmed = false
    private var gate: CheckedContinuation<Void, Never>?
    private(set) var isPaused = false

    init(
        layout: String = "@Internal Flash  /0x08000000/04*016Kg,01*064Kg,07*128Kg", transferSize: UInt16 = 2048,
        clock: VirtualClock, initialState: DFUState = .dfuIdle, bcdDFU: UInt16 = 0x011A
    ) throws {
        self.layout = try FlashLayout(parsing: layout)
        self.alternateSettings = [
            DFUAlternateSetting(number: 0, name: layout),
            DFUAlternateSetting(number: 1, name: "@Option Bytes  /0x1FFFC000/01*016 e")
        ]
        self.functionalDescriptor = DFUFunctionalDescriptor(
            attributes: 0x0B, detachTimeoutMs: 255,
            transferSize: transferSize, dfuVersion: bcdDFU)
        self.clock = clock
        self.state = initialState
        if initialState == .error { status = .errUnknown }
    }

    func configure(_ change: (inout Configuration) -> Void) { change(&configuration) }

    /// Puts bytes into flash as if programmed earlier (no request is logged).
    func preload(_ bytes: [UInt8], at address: UInt32) {
        for (offset, byte) in bytes.enumerated() { memory[address + UInt32(offset)] = byte }
    }

    func clearLog() { log.removeAll() }

    /// The next DNLOAD waits until `release()`.
    func pauseNextDownload() { pauseArmed = true }

    func release() {
        gate?.resume()
        gate = nil
    }

    func byte(at address: UInt32) -> UInt8 { memory[address] ?? 0xFF }

    func bytes(at address: UInt32, count: Int) -> [UInt8] {
        (0..<count).map { byte(at: address + UInt32($0)) }
    }

    // MARK: DFUTransport

    func selectAlternateSetting(_ number: UInt8) async throws(TransportError) {
        try checkPresent("SET_INTERFACE")
        log.append("SET_INTERFACE \(number)")
    }

    func controlOut(_ request: ControlRequest, data: [UInt8], timeout: Duration) async throws(TransportError) {
        try checkPresent("control out")
        guard request.requestType == 0x21, request.index == 0, let dfuRequest = DFURequest(rawValue: request.request) else {
            throw stall("unexpected request \(request)")
        }
        switch dfuRequest {
        case .download:
            if pauseArmed {
                pauseArmed = false
                isPaused = true
                await withCheckedContinuation { gate = $0 }
                isPaused = false
            }
            try download(block: request.value, data: data)
        case .clearStatus:
            log.append("CLRSTATUS")
            try clearStatus()
        case .abort:
            log.append("ABORT")
            guard [.dfuIdle, .downloadIdle, .uploadIdle, .downloadSync, .manifestSync].contains(state) else {
                throw stall("ABORT in \(state)")
            }
            state = .dfuIdle
            pending = nil
        default:
            log.append("\(dfuRequest)")
            throw stall("\(dfuRequest) is not a host-to-device request")
        }
    }

    func controlIn(_ request: ControlRequest, length: Int, timeout: Duration) async throws(TransportError) -> [UInt8] {
        try checkPresent("control in")
        guard request.requestType == 0xA1, request.index == 0, let dfuRequest = DFURequest(rawValue: request.request) else {
            throw stall("unexpected request \(request)")
        }
        switch dfuRequest {
        case .getStatus:
            log.append("GETSTATUS")
            return try getStatus()
        case .getState:
            log.append("GETSTATE")
            return [state.rawValue]
        case .upload:
            log.append("UPLOAD \(request.value) (\(length))")
            return try upload(block: request.value, length: length)
        default:
            log.append("\(dfuRequest)")
            throw stall("\(dfuRequest) is not a device-to-host request")
        }
    }

    func close() async {}

    // MARK: Requests

    private func download(block: UInt16, data: [UInt8]) throws(TransportError) {
        if data.isEmpty {
            log.append("DNLOAD \(block) (0 bytes)")
            guard state == .downloadIdle else { throw stallIntoError("zero-length DNLOAD in \(state)") }
            pending = .leave
            state = .manifestSync
            return
        }
        guard state == .dfuIdle || state == .downloadIdle else { throw stallIntoError("DNLOAD in \(state)") }
        switch block {
        case 0:
            guard let command = DfuSeCommand(bytes: data) else {
                log.append("DNLOAD 0 [\(hexBytes(data))]")
                throw stallIntoError("unknown DfuSe command")
            }
            log.append("DNLOAD 0 \(command)")
            pending = .command(command)
        case 1:
            log.append("DNLOAD 1 (\(data.count) bytes)")
            throw stallIntoError("block 1 is not defined by DfuSe")
        default:
            log.append("DNLOAD \(block) (\(data.count) bytes)")
            guard data.count <= Int(functionalDescriptor.transferSize) else { throw stallIntoError("block too long") }
            // AN2662 §4.4.1 (the same formula for writes): address = (wBlockNum − 2) × wTransferSize + address
            // pointer, where wTransferSize is this request's wLength, not the descriptor's.
            let address = UInt32(block - 2) * UInt32(data.count) + addressPointer
            pending = .data(address: address, bytes: data)
        }
        state = .downloadSync
    }

    private func getStatus() throws(TransportError) -> [UInt8] {
        if let garbled = configuration.garbledStatus {
            configuration.garbledStatus = nil
            return garbled
        }
        switch state {
        case .downloadSync:
            return startPendingOperation()
        case .downloadBusy:
            if hanging || stuckClearsLeft != nil { return report(poll: 0) }
            if stallsLeft > 0 {
                stallsLeft -= 1
                throw TransportError(.stall, device: identity.description, operation: "GETSTATUS")
            }
            if clock.now() < busyUntil {
                switch configuration.earlyPoll {
                case .reportBusy:
                    return report(poll: reportedPoll) // the same, possibly understated, timeout again
                case .timeout:
                    throw TransportError(.timeout, device: identity.description, operation: "GETSTATUS")
                case .stall:
                    throw TransportError(.stall, device: identity.description, operation: "GETSTATUS")
                }
            }
            finishPendingOperation()
            try checkPresent("GETSTATUS")
            return report(poll: 0)
        case .manifestSync:
            switch configuration.leave {
            case .manifest:
                state = .manifest
                gone = true // the answer goes out, then the device resets
                return DFUStatusReport(status: .ok, pollTimeoutMs: 0, state: .manifest).bytes
            case .disconnectOnStatus:
                gone = true
                throw TransportError(.disconnected, device: identity.description, operation: "GETSTATUS")
            case .stallOnStatus:
                gone = true
                throw TransportError(.stall, device: identity.description, operation: "GETSTATUS")
            case .timeoutOnStatus:
                gone = true
                throw TransportError(.timeout, device: identity.description, operation: "GETSTATUS")
            case .errorStatus(let failure):
                state = .error
                status = failure
                return report(poll: 0)
            }
        default:
            return report(poll: 0)
        }
    }

    private func startPendingOperation() -> [UInt8] {
        let kind = pendingKind
        state = .downloadBusy
        if configuration.hangForever {
            configuration.hangForever = false
            hanging = true
            return report(poll: 0)
        }
        if let stuck = configuration.stuck, stuck.kind == kind {
            configuration.stuck = nil
            stuckClearsLeft = stuck.clears
            stuckOutcome = stuck.outcome
            return report(poll: 0)
        }
        reportedPoll = configuration.reportedPollMs[kind] ?? 0
        busyUntil = clock.now() + (configuration.actualDuration[kind] ?? .milliseconds(Int(reportedPoll)))
        stallsLeft = configuration.stallsDuring[kind] ?? 0
        return report(poll: reportedPoll)
    }

    private var pendingKind: OperationKind {
        switch pending {
        case .command(.erase): .erase
        case .command(.massErase): .massErase
        case .command(.readUnprotect): .readUnprotect
        case .data: .data
        default: .command
        }
    }

    private func finishPendingOperation() {
        let kind = pendingKind
        defer { pending = nil }
        if let fault = configuration.statusFault, fault.kind == kind {
            configuration.statusFault = nil
            fail(fault.status)
            return
        }
        switch pending {
        case .command(.setAddress(let address)):
            addressPointer = address
        case .command(.erase(let address)):
            guard let sector = layout.sector(containing: address), sector.attributes.contains(.erasable) else {
                return fail(.errTarget)
            }
            erase(sector)
        case .command(.massErase):
            for sector in layout.sectors where sector.attributes.contains(.erasable) { erase(sector) }
        case .command(.readUnprotect):
            memory.removeAll()
            gone = true // the ROM wipes the flash and resets
        case .command(.getCommands), nil, .leave:
            break
        case .data(let address, let bytes):
            guard program(bytes, at: address) else { return }
        }
        state = .downloadIdle
        status = .ok
    }

    /// Programs like ECC flash: every byte must be erased before, and must lie in a writable sector.
    @discardableResult
    private func program(_ bytes: [UInt8], at address: UInt32) -> Bool {
        for (offset, byte) in bytes.enumerated() {
            let target = address + UInt32(offset)
            guard let sector = layout.sector(containing: target), sector.attributes.contains(.writable) else {
                fail(.errAddress)
                return false
            }
            guard memory[target] == nil else {
                fail(.errProg) // written twice without an erase (seed 004)
                return false
            }
            memory[target] = target == configuration.corruptAddress ? ~byte : byte
            programCount[target, default: 0] += 1
        }
        return true
    }

    private func erase(_ sector: FlashLayout.Sector) {
        erasedSectorStarts.append(sector.start)
        for address in memory.keys where address >= sector.start && UInt64(address) < sector.end {
            if configuration.unerasable.contains(address) { continue }
            memory[address] = nil
            programCount[address] = nil
        }
    }

    private func clearStatus() throws(TransportError) {
        if let left = stuckClearsLeft {
            // H7 rev V: CLRSTATUS n times brings the hung ROM back.
            if left > 1 {
                stuckClearsLeft = left - 1
                return
            }
            stuckClearsLeft = nil
            switch stuckOutcome {
            case .notPerformed: break
            case .performed: finishPendingOperation()
            case .halfWritten:
                if case .data(let address, let bytes) = pending { program(Array(bytes.prefix(bytes.count / 2)), at: address) }
            }
            pending = nil
            state = .dfuIdle
            status = .ok
            return
        }
        guard state == .error else { throw stall("CLRSTATUS in \(state)") }
        state = .dfuIdle
        status = .ok
    }

    private func upload(block: UInt16, length: Int) throws(TransportError) -> [UInt8] {
        guard state == .dfuIdle || state == .uploadIdle else { throw stallIntoError("UPLOAD in \(state)") }
        if block == 0 {
            state = .uploadIdle
            return Array(configuration.commandList.prefix(length))
        }
        guard block >= 2 else { throw stallIntoError("UPLOAD block 1") }
        let address = UInt32(block - 2) * UInt32(length) + addressPointer // wLength, as for DNLOAD
        guard layout.sector(containing: address) != nil else { throw stallIntoError("UPLOAD outside memory") }
        state = .uploadIdle
        let count = configuration.shortUpload ? max(0, length - 1) : length
        return bytes(at: address, count: count)
    }

    // MARK: Helpers

    private func report(poll: UInt32) -> [UInt8] {
        DFUStatusReport(status: status, pollTimeoutMs: poll, state: state).bytes
    }

    private func fail(_ failure: DFUStatus) {
        state = .error
        status = failure
    }

    private func checkPresent(_ operation: String) throws(TransportError) {
        if gone { throw TransportError(.disconnected, device: identity.description, operation: operation) }
    }

    private func stall(_ why: String) -> TransportError {
        TransportError(.stall, device: identity.description, operation: why)
    }

    /// DFU 1.1: a request the state does not allow is stalled and the device goes to dfuERROR.
    private func stallIntoError(_ why: String) -> TransportError {
        fail(.errStalledPkt)
        return stall(why)
    }
}

/// Collects the client's events for assertions.
final class EventRecorder: @unchecked Sendable {
    private let lock = NSLock()
    private var recorded: [DfuSeEvent] = []

    var events: [DfuSeEvent] { lock.withLock { recorded } }

    var handler: DfuSeEventHandler {
        { [self] event in lock.withLock { recorded.append(event) } }
    }
}
