import DeviceProfiles
import USBTransport

/// Talks a product's own HID protocol, as its profile describes it (`LegacyProtocol`): identify, and
/// enter the bootloader. Input reports that do not match the described reply (a product streaming
/// measurements, say) are skipped until the timeout.
public actor LegacyClient {
    public nonisolated let transport: any HIDTransport
    public nonisolated let legacy: LegacyProtocol
    private let clock: any DeviceClock
    public nonisolated let timeouts: AppLinkTimeouts

    public init(
        transport: any HIDTransport, protocol legacy: LegacyProtocol, clock: any DeviceClock,
        timeouts: AppLinkTimeouts = .standard
    ) {
        self.transport = transport
        self.legacy = legacy
        self.clock = clock
        self.timeouts = timeouts
    }

    private var device: String { transport.info.description }

    /// Sends the identify request and reads version, unique ID and product id from the reply.
    public func identify() async throws(AppLinkError) -> LegacyIdentity {
        let operation = "legacy identify"
        try await send(legacy.identify.request, operation: operation)
        let reply = try await awaitReply(legacy.identify.reply, operation: operation)
        do { return try legacy.identify.parse(reply) } catch { throw error.at(operation: operation, device: device) }
    }

    /// Sends the enter-bootloader request, reads the acknowledgement if the profile describes one, and
    /// waits for the application to leave the bus. A disconnect after the request is the expected outcome.
    public func enterBootloader() async throws(AppLinkError) -> BootloaderEntry {
        let operation = "legacy enter bootloader"
        try await send(legacy.enterBootloader.request, operation: operation)
        let start = clock.now()
        var acknowledged = false
        if let expected = legacy.enterBootloader.reply {
            do {
                _ = try await awaitReply(expected, operation: operation)
                acknowledged = true
            } catch {
                switch error.kind {
                case .transport(let failure) where failure.kind == .disconnected:
                    return .leftWithoutAcknowledging(leftAfter: clock.now() - start)
                case .noReply:
                    break // The acknowledgement may have been lost in the reset: leaving is what counts.
                default:
                    throw error
                }
            }
        }
        if try await waitForDeparture(
            of: transport, clock: clock, until: start + timeouts.reply + timeouts.departure, operation: operation, device: device)
        {
            let leftAfter = clock.now() - start
            return acknowledged ? .acknowledged(leftAfter: leftAfter) : .leftWithoutAcknowledging(leftAfter: leftAfter)
        }
        throw AppLinkError(.stayedOnBus(waited: clock.now() - start), operation: operation, device: device)
    }

    // MARK: Plumbing

    private func send(_ request: [UInt8], operation: String) async throws(AppLinkError) {
        var report = request
        if report.count < legacy.reportLength { report += [UInt8](repeating: 0, count: legacy.reportLength - report.count) }
        do {
            switch legacy.reports {
            case .interrupt: try await transport.write(report)
            case .feature: try await transport.sendFeatureReport(report)
            }
        } catch {
            throw AppLinkError(.transport(error), operation: operation, device: device)
        }
    }

    /// The first report that matches `expected`.
    private func awaitReply(_ expected: LegacyProtocol.Reply, operation: String) async throws(AppLinkError) -> [UInt8] {
        switch legacy.reports {
        case .feature:
            let report: [UInt8]
            do { report = try await transport.getFeatureReport(id: expected.reportID, length: legacy.reportLength) } catch {
                throw AppLinkError(.transport(error), operation: operation, device: device)
            }
            guard expected.matches(report) else {
                throw AppLinkError(
                    .malformedReply(.unexpectedLegacyReply(matched: 0, skipped: 1)), operation: operation,
                    device: device, report: report)
            }
            return report
        case .interrupt:
            return try await awaitInputReport(expected, operation: operation)
        }
    }

    /// Reads input reports until one matches `expected`, skipping others, until the reply timeout.
    private func awaitInputReport(_ expected: LegacyProtocol.Reply, operation: String) async throws(AppLinkError) -> [UInt8] {
        let deadline = clock.now() + timeouts.reply
        var skipped = 0
        while true {
            let remaining = deadline - clock.now()
            var report: [UInt8]?
            if remaining > .zero {
                do { report = try await transport.read(timeout: remaining) } catch {
                    throw AppLinkError(.transport(error), operation: operation, device: device)
                }
            }
            guard let report else {
                throw AppLinkError(
                    skipped == 0
                        ? .noReply(timeout: timeouts.reply)
                        : .malformedReply(.unexpectedLegacyReply(matched: 0, skipped: skipped)),
                    operation: operation, device: device)
            }
            if expected.matches(report) { return report }
            skipped += 1
        }
    }
}
