// libFuzzer harness for AppLink's parsers of outside bytes (build and run: Fuzz/applink/README.md).
// Compiled into one module with Sources/AppLink/*.swift, so it calls the parsers directly.
// A crash, a trap, or a broken round trip (precondition) is a finding.
import DeviceProfiles

// Built per input rather than held in globals: LeakSanitizer reports a global's lazily made
// buffers as leaks when the fuzzer exits.

/// A request of every command: the first input byte picks which one the reply answers.
private func requestAnswered(by selector: UInt8) -> AppRequest {
    switch selector % 7 {
    case 0: .getInfo
    case 1: .getDescriptor(offset: 0, length: 32)
    case 2: .getDescriptor(offset: 32, length: 32)
    case 3: .getSectorCRCs(SectorQuery(address: 0x0800_0000, size: 0x800, count: 12))
    case 4: .getSectorCRCs(SectorQuery(address: 0x0800_0000, size: 0x1000, count: 1))
    case 5: .checkImage
    default: .enterBootloader(BootloaderRequest(nonce: 0x5EED_1234, uid: UniqueID(hex: "5A5A5A5A5A5A5A5A5A5A5A5A")!))
    }
}

/// A product's own protocol as a profile might describe it, fields near the end of the report.
private func legacyIdentify() -> LegacyProtocol.Identify {
    LegacyProtocol.Identify(
        request: [0x3F, 0x01],
        reply: .init(reportID: 0x3F, match: [.init(offset: 1, bytes: [0x81])]),
        version: .init(offset: 40, format: .ascii(length: 12)),
        uidOffset: 52,
        productID: .init(offset: 60, width: 4))
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    guard let selector = input.first else { return 0 }
    let report = Array(input.dropFirst())
    let request = requestAnswered(by: selector)

    // The host's reply parser: decoded, or refused with an AppLinkError; a decoded reply re-encodes
    // to bytes that decode to the same value (the virtual device uses the same encoder).
    let sequence = report.count > 2 ? report[2] : 0
    if let decoded = try? AppResponse.decode(report, answering: request, sequence: sequence) {
        let again = decoded.report(sequence: sequence, command: request.command.rawValue)
        precondition(
            (try? AppResponse.decode(again, answering: request, sequence: sequence)) == decoded,
            "a decoded reply does not survive re-encoding")
    }

    // The device's request decoder: a request it accepts re-encodes to one it decodes the same way.
    if case .request(let sequence, let decodedRequest) = AppRequest.decode(report: report) {
        precondition(
            AppRequest.decode(report: decodedRequest.report(sequence: sequence)) == .request(sequence: sequence, decodedRequest),
            "a decoded request does not survive re-encoding")
    }

    // A legacy profile's fields read out of the same bytes.
    _ = try? legacyIdentify().parse(report)

    // The Swift device (the virtual device's engine) on a 256-byte flash holding the input (0xFF
    // after it), so word 8 and the descriptor are hostile too: it must answer or ignore, never trap.
    let flash = Array(report.prefix(256)) + [UInt8](repeating: 0xFF, count: 256 - min(report.count, 256))
    let device = AppLinkDevice(
        state: .init(
            flashAddress: 0x0800_0000, flashSize: 256, imageBase: 0x0800_0000,
            uid: UniqueID(hex: "5A5A5A5A5A5A5A5A5A5A5A5A")!, deviceID: 0x469, revisionID: 0x2001),
        readFlash: { address, count in Array(flash[Int(address - 0x0800_0000)..<(Int(address - 0x0800_0000) + count)]) },
        crc32: { bytes in UInt32(truncatingIfNeeded: bytes.count) })
    _ = device.handle(report)
    return 0
}
