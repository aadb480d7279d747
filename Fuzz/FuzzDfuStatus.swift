// libFuzzer harness: the DfuSe client against a ROM whose every GETSTATUS reply (and UPLOAD answer) comes
// from the input: lengths, states, status codes and poll timeouts up to 0xFFFFFF ms. Compiled with
// Sources/DfuSe/*.swift; DfuSeWire, USBTransport, DeviceProfiles and FirmwareImage are linked as libraries.
// Every run ends in a result or a DfuSeError, on a virtual clock, and no single wait of the client ever
// exceeds the busy budget of the operation in progress (plus 1 ms): a ROM cannot stall dfuhop for hours.
import DeviceProfiles
import DfuSeWire
import FirmwareImage
import Foundation
import USBTransport

/// Replies cut from the input: one length byte (0...7), then that many bytes. An exhausted input is a
/// device that has gone, so every run ends.
private final class ScriptedROM: DFUTransport, @unchecked Sendable {
    let identity = USBDeviceIdentity(vendorID: 0x0483, productID: 0xDF11, serialNumber: "FUZZ", portPath: "fuzz")
    let interfaceNumber: UInt8 = 0
    let alternateSettings = [DFUAlternateSetting(number: 0, name: "@Internal Flash  /0x08000000/04*016Kg,01*064Kg,07*128Kg")]
    let functionalDescriptor = DFUFunctionalDescriptor(attributes: 0x0B, detachTimeoutMs: 255, transferSize: 1024, dfuVersion: 0x011A)
    private let lock = NSLock()
    private var input: ArraySlice<UInt8>

    init(_ input: [UInt8]) { self.input = input[...] }

    func selectAlternateSetting(_ number: UInt8) async throws(TransportError) {}
    func controlOut(_ request: ControlRequest, data: [UInt8], timeout: Duration) async throws(TransportError) { _ = try next() }
    func controlIn(_ request: ControlRequest, length: Int, timeout: Duration) async throws(TransportError) -> [UInt8] {
        Array(try next().prefix(length))
    }
    func close() async {}

    private func next() throws(TransportError) -> [UInt8] {
        let reply = lock.withLock { () -> Result<[UInt8], TransportError> in
            let fault: TransportError.Kind
            switch input.popFirst() {
            case nil: fault = .disconnected
            case 0xFF: fault = .stall
            case 0xFE: fault = .timeout
            case let length?:
                let reply = Array(input.prefix(Int(length % 8)))
                input = input.dropFirst(reply.count)
                return .success(reply)
            }
            return .failure(TransportError(fault, device: "fuzz", operation: "fuzz"))
        }
        return try reply.get()
    }
}

/// Virtual time that remembers the longest single sleep.
private final class WatchedClock: DeviceClock, @unchecked Sendable {
    private let lock = NSLock()
    private var current: Duration = .zero
    private(set) var longestSleep: Duration = .zero

    func now() -> Duration { lock.withLock { current } }
    func sleep(for duration: Duration) async throws(CancellationError) {
        lock.withLock {
            current += duration
            longestSleep = max(longestSleep, duration)
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDfuStatus(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    guard let selector = input.first else { return 0 }
    // The wire format alone: a 6-byte reply decodes to fields that encode back to the same bytes.
    if input.count >= 7, let report = DFUStatusReport(bytes: Array(input[1...6])) {
        precondition(report.bytes == Array(input[1...6]), "a status reply must round-trip")
    }
    let rom = ScriptedROM(Array(input.dropFirst()))
    let clock = WatchedClock()
    let quirks = [McuFamily.f407, .l476, .g474, .h753][Int(selector >> 2) % 4].quirks
    let options = {
        var options = DfuSeClient.Options()
        options.maxBusyTime = .seconds(10)
        return options
    }()
    let done = DispatchSemaphore(value: 0)
    Task { @Sendable in
        defer { done.signal() }
        guard let client = try? DfuSeClient(transport: rom, clock: clock, quirks: quirks, options: options) else { return }
        switch selector % 4 {
        case 0: _ = try? await client.prepare()
        case 1: _ = try? await client.erase(sectorsAt: [0x0800_0000, 0x0800_4000], in: FlashLayout(parsing: rom.alternateSettings[0].name))
        case 2: _ = try? await client.read(address: 0x0800_0000, length: 3000)
        default: _ = try? await client.abortToIdle()
        }
    }
    done.wait()
    // The longest budget is a mass erase's quirk allowance; no command here is one, so maxBusyTime holds.
    let allowance = quirks.compactMap { if case .massErasePollTimeoutUnderstated(let actual) = $0 { actual } else { nil } }.max() ?? .zero
    precondition(clock.longestSleep <= max(options.maxBusyTime, allowance) + .milliseconds(1), "a wait of \(clock.longestSleep)")
    return 0
}
