import HexFormat
import USBTransport

/// How long the host waits (§8.1). The device's own budgets are a tenth of these.
public struct AppLinkTimeouts: Sendable, Hashable {
    /// GET_INFO, GET_DESCRIPTOR, ENTER_BOOTLOADER.
    public var reply: Duration
    /// GET_SECTOR_CRCS and CHECK_IMAGE, which read flash.
    public var flashReply: Duration
    /// After ENTER_BOOTLOADER: how long beyond the announced reset delay the application may take to
    /// leave the bus.
    public var departure: Duration

    public init(reply: Duration, flashReply: Duration, departure: Duration) {
        self.reply = reply
        self.flashReply = flashReply
        self.departure = departure
    }

    public static let standard = AppLinkTimeouts(reply: .seconds(1), flashReply: .seconds(5), departure: .seconds(3))

    func reply(for command: AppCommand) -> Duration {
        switch command {
        case .getSectorCRCs, .checkImage: flashReply
        case .getInfo, .getDescriptor, .enterBootloader: reply
        }
    }
}

/// How an application went into its bootloader.
public enum BootloaderEntry: Sendable, Hashable {
    /// It acknowledged the request, then left the bus `leftAfter` the request was sent.
    case acknowledged(leftAfter: Duration)
    /// It left the bus without an acknowledgement the host could read: it had the request and reset
    /// (the usual outcome when the reset beats the host's read, and with legacy products that never answer).
    case leftWithoutAcknowledging(leftAfter: Duration)
}

/// Talks dfuhop's HID protocol to a running application over any `HIDTransport` (hidapi, the virtual
/// device, or a test's script). One request at a time; time only from the injected clock.
public actor AppLinkClient {
    public nonisolated let transport: any HIDTransport
    private let clock: any DeviceClock
    public nonisolated let timeouts: AppLinkTimeouts
    private var nextSequence: UInt8

    public init(
        transport: any HIDTransport, clock: any DeviceClock, timeouts: AppLinkTimeouts = .standard,
        firstSequence: UInt8 = 1
    ) {
        self.transport = transport
        self.clock = clock
        self.timeouts = timeouts
        self.nextSequence = firstSequence
    }

    // MARK: Commands

    /// GET_INFO: identity, unit, running firmware.
    public func info() async throws(AppLinkError) -> DeviceInfo {
        let answer = try await roundTrip(.getInfo)
        return try answer.decode { payload, report throws(AppLinkError) in try DeviceInfo(payload: payload, report: report) }
    }

    /// The running image's 64-byte descriptor, read in two GET_DESCRIPTOR requests.
    public func descriptor() async throws(AppLinkError) -> [UInt8] {
        // Two calls, not a loop: Swift 6.3.1's optimiser crashes (CoroSplit) on a typed-throws closure
        // inside an async loop here.
        let half = UInt8(AppLinkProtocol.descriptorLength / 2)
        let first = try await descriptorPart(offset: 0, length: half)
        return try await first + descriptorPart(offset: half, length: half)
    }

    private func descriptorPart(offset: UInt8, length: UInt8) async throws(AppLinkError) -> [UInt8] {
        let answer = try await roundTrip(.getDescriptor(offset: offset, length: length))
        return try answer.decode { payload, report throws(AppLinkError) in
            try descriptorChunk(payload, length: length, report: report)
        }
    }

    /// CRC-32 (zlib) of `count` consecutive ranges of `size` bytes from `address`, asked in batches of
    /// at most 12 ranges (§5.3). The host compares them with its image's to skip unchanged sectors.
    public func sectorCRCs(address: UInt32, size: UInt32, count: Int) async throws(AppLinkError) -> [UInt32] {
        precondition(
            UInt64(address) + UInt64(size) * UInt64(max(count, 0)) <= 1 << 32,
            "sector ranges must lie in the 32-bit address space")
        var crcs: [UInt32] = []
        crcs.reserveCapacity(max(count, 0))
        var next = UInt64(address)
        while crcs.count < count {
            let batch = min(count - crcs.count, AppLinkProtocol.maxSectorRanges)
            let query = SectorQuery(address: UInt32(truncatingIfNeeded: next), size: size, count: UInt8(batch))
            crcs += try await sectorBatch(query)
            next += UInt64(size) * UInt64(batch)
        }
        return crcs
    }

    /// One GET_SECTOR_CRCS exchange. (A function of its own: see `descriptor()` on the compiler crash.)
    private func sectorBatch(_ query: SectorQuery) async throws(AppLinkError) -> [UInt32] {
        let answer = try await roundTrip(.getSectorCRCs(query))
        return try answer.decode { payload, report throws(AppLinkError) in
            try SectorCRCs(payload: payload, answering: query, report: report).crcs
        }
    }

    /// CHECK_IMAGE: the device recomputes its image's CRC and compares it with its descriptor (§5.4).
    public func checkImage() async throws(AppLinkError) -> ImageCheck {
        let answer = try await roundTrip(.checkImage)
        return try answer.decode { payload, report throws(AppLinkError) in try ImageCheck(payload: payload, report: report) }
    }

    /// ENTER_BOOTLOADER for the unit `uid` (§5.5, §8.3), then waits for the application to leave the bus.
    /// A disconnect after the request went out is the expected outcome, not an error.
    public func enterBootloader(uid: UniqueID, nonce: UInt32) async throws(AppLinkError) -> BootloaderEntry {
        let sent = BootloaderRequest(nonce: nonce, uid: uid)
        let request = AppRequest.enterBootloader(sent)
        let sequence = try await send(request)
        let start = clock.now()
        let operation = describe(request, sequence)
        let reply: [UInt8]?
        do {
            reply = try await transport.read(timeout: timeouts.reply)
        } catch let error where error.kind == .disconnected {
            return .leftWithoutAcknowledging(leftAfter: clock.now() - start)
        } catch {
            throw AppLinkError(.transport(error), operation: operation, device: device)
        }
        guard let reply else {
            // The answer may have been lost in the reset: the device leaving is what counts.
            if try await waitForDeparture(
                of: transport, clock: clock, until: start + timeouts.reply + timeouts.departure,
                operation: operation, device: device)
            {
                return .leftWithoutAcknowledging(leftAfter: clock.now() - start)
            }
            throw AppLinkError(.noReply(timeout: timeouts.reply), operation: operation, device: device)
        }
        let answer = try check(reply, answering: request, sequence: sequence)
        let ack = try answer.decode { payload, report throws(AppLinkError) in
            try BootloaderAck(payload: payload, answering: sent, report: report)
        }
        let deadline = clock.now() + ack.resetDelay + timeouts.departure
        guard try await waitForDeparture(of: transport, clock: clock, until: deadline, operation: operation, device: device) else {
            throw AppLinkError(.stayedOnBus(waited: clock.now() - start), operation: operation, device: device)
        }
        return .acknowledged(leftAfter: clock.now() - start)
    }

    /// Sends any request and returns its answer, `.refused(status)` included.
    public func exchange(_ request: AppRequest) async throws(AppLinkError) -> AppResponse {
        let (report, sequence) = try await sendAndReceive(request)
        do {
            return try AppResponse.decode(report, answering: request, sequence: sequence)
        } catch {
            throw error.at(operation: describe(request, sequence), device: device)
        }
    }

    // MARK: Plumbing

    private var device: String { transport.info.description }

    /// An OK answer's payload with what is needed to decode it where it went wrong.
    private struct Answer {
        var payload: [UInt8]
        var report: [UInt8]
        var operation: String
        var device: String

        func decode<T>(_ body: ([UInt8], [UInt8]) throws(AppLinkError) -> T) throws(AppLinkError) -> T {
            do { return try body(payload, report) } catch { throw error.at(operation: operation, device: device) }
        }
    }

    /// Sends, receives, checks the framing, and turns a refusal into an error.
    private func roundTrip(_ request: AppRequest) async throws(AppLinkError) -> Answer {
        let (report, sequence) = try await sendAndReceive(request)
        return try check(report, answering: request, sequence: sequence)
    }

    private func check(_ report: [UInt8], answering request: AppRequest, sequence: UInt8) throws(AppLinkError) -> Answer {
        let operation = describe(request, sequence)
        let frame: ResponseFrame
        do { frame = try ResponseFrame.parse(report, answering: request.command, sequence: sequence) } catch {
            throw error.at(operation: operation, device: device)
        }
        guard frame.status == .ok else { throw AppLinkError(.refused(frame.status), operation: operation, device: device, report: report) }
        return Answer(payload: frame.payload, report: report, operation: operation, device: device)
    }

    private func sendAndReceive(_ request: AppRequest) async throws(AppLinkError) -> ([UInt8], UInt8) {
        let sequence = try await send(request)
        let operation = describe(request, sequence)
        let timeout = timeouts.reply(for: request.command)
        let report: [UInt8]?
        do { report = try await transport.read(timeout: timeout) } catch {
            throw AppLinkError(.transport(error), operation: operation, device: device)
        }
        guard let report else { throw AppLinkError(.noReply(timeout: timeout), operation: operation, device: device) }
        return (report, sequence)
    }

    /// Drops input reports left over from an earlier request that timed out (§8.2), then writes.
    private func send(_ request: AppRequest) async throws(AppLinkError) -> UInt8 {
        let sequence = nextSequence
        nextSequence &+= 1
        do {
            var dropped = 0
            while dropped < Self.maxStaleReports, try await transport.read(timeout: .zero) != nil { dropped += 1 }
            try await transport.write(request.report(sequence: sequence))
        } catch {
            throw AppLinkError(.transport(error), operation: describe(request, sequence), device: device)
        }
        return sequence
    }

    /// More than any HID driver queues; a device that keeps flooding is caught by the sequence check.
    private static let maxStaleReports = 64

    private func describe(_ request: AppRequest, _ sequence: UInt8) -> String {
        "\(request) (seq 0x\(Hex.digits(sequence, width: 2)))"
    }
}

/// Reads until the transport reports the device gone (true) or `clock` passes `deadline` (false).
/// Reports that still arrive are ignored: the application has already answered. A transport's `read`
/// blocks for its timeout when nothing comes, so this loop advances with the clock.
func waitForDeparture(
    of transport: any HIDTransport, clock: any DeviceClock, until deadline: Duration,
    operation: String, device: String
) async throws(AppLinkError) -> Bool {
    while true {
        let remaining = deadline - clock.now()
        guard remaining > .zero else { return false }
        do {
            _ = try await transport.read(timeout: remaining)
        } catch let error where error.kind == .disconnected {
            return true
        } catch {
            throw AppLinkError(.transport(error), operation: operation, device: device)
        }
    }
}
