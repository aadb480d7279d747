import DeviceProfiles
import DfuSeWire
import FirmwareImage
import USBTransport

@testable import DfuSe

let f407Layout = McuFamily.f407.defaultFlashMode.layoutString
let h753Layout = McuFamily.h753.defaultFlashMode.layoutString
let l476Layout = McuFamily.l476.defaultFlashMode.layoutString
/// Seed 002: a firmware DfuSe that marks its own three sectors readable only.
let seed002Layout = "@Internal Flash  /0x08000000/03*016Ka,01*016Kg,01*064Kg,07*128Kg"

/// A device, a client talking to it, their shared virtual clock and the client's events.
struct Bench {
    let device: FakeDfuSeDevice
    let client: DfuSeClient
    let clock: VirtualClock
    let events: EventRecorder

    init(
        layout: String = f407Layout, transferSize: UInt16 = 2048, quirks: [RomQuirk] = [],
        initialState: DFUState = .dfuIdle, options: DfuSeClient.Options = DfuSeClient.Options()
    ) throws {
        clock = VirtualClock()
        device = try FakeDfuSeDevice(layout: layout, transferSize: transferSize, clock: clock, initialState: initialState)
        events = EventRecorder()
        client = try DfuSeClient(transport: device, clock: clock, quirks: quirks, options: options, onEvent: events.handler)
    }

    var log: [String] { get async { await device.log } }
}

/// Deterministic pseudo-random bytes (a 32-bit LCG), so images are reproducible without Foundation.
func patternBytes(_ count: Int, seed: UInt32 = 1) -> [UInt8] {
    var state = seed
    return (0..<count).map { _ in
        state = state &* 1_664_525 &+ 1_013_904_223
        return UInt8(truncatingIfNeeded: state >> 24)
    }
}

func image(_ segments: [(UInt32, Int)], granularity: Int = 8, seed: UInt32 = 1) throws -> NormalizedImage {
    let parts = segments.enumerated().map { index, part in
        Segment(address: part.0, bytes: patternBytes(part.1, seed: seed &+ UInt32(index)))
    }
    return try FirmwareImage.normalize(parts, granularity: granularity, entryPoint: nil)
}

func layout(_ text: String) throws -> FlashLayout { try FlashLayout(parsing: text) }

/// The sequence a command costs on the fake: DNLOAD block 0, GETSTATUS (busy), GETSTATUS (done).
func commandRequests(_ command: DfuSeCommand) -> [String] {
    ["DNLOAD 0 \(command)", "GETSTATUS", "GETSTATUS"]
}

func blockRequests(_ block: UInt16, _ length: Int) -> [String] {
    ["DNLOAD \(block) (\(length) bytes)", "GETSTATUS", "GETSTATUS"]
}

extension DfuSeError {
    var operation: DfuSeOperation? {
        switch self {
        case .transport(_, let operation), .deviceStatus(_, _, let operation, _), .unexpectedState(_, _, let operation),
            .malformedStatus(_, let operation), .stuckBusy(let operation, _, _), .tooManyStalls(let operation, _),
            .cancelled(let operation):
            operation
        default:
            nil
        }
    }
}
