// dfuhop-usb-probe: drives LibUSBBackend from inside a umockdev testbed, for the emulated-USB tests
// (Tests/LibUSBBackendTests/EmulatedUSBTests.swift). The test process cannot run under the umockdev
// preload itself, so it runs this tool through emulated-usb/fixed_peer.py and reads its JSON lines.
//
//   dfuhop-usb-probe list              one JSON object per device libusb sees
//   dfuhop-usb-probe session PORT      open the DFU device at PORT, run a few DFU requests, report
//   dfuhop-usb-probe replug PORT       ask the peer to re-enumerate the device, follow it by hotplug,
//                                      and open it again on its new address
//   dfuhop-usb-probe bench PORT COUNT  time COUNT GETSTATUS round trips through the whole stack
//   dfuhop-usb-probe hid               find the vendor HID interface (usage page 0xFFDF) with hidapi, open
//                                      it, read with nothing sent, send two raw requests, read their
//                                      answers, ask for a feature report, report each step
import Foundation
import HIDAPIBackend
import HexFormat
import LibUSBBackend
import USBDiscovery
import USBTransport

struct ProbeFailure: Error, CustomStringConvertible {
    var description: String
}

func emit<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    FileHandle.standardOutput.write(try encoder.encode(value) + Data("\n".utf8))
}

struct DeviceLine: Encodable {
    var port: String
    var address: UInt8
    var vidPid: String
    var serial: String?
    var product: String?
    var dfuMode: Bool
    var interface: UInt8?
    var alternateSettings: [String]
    var transferSize: UInt16?
    var dfuVersion: UInt16?
    var problems: [String]

    init(_ record: LibUSBDeviceRecord) {
        port = record.portPath.description
        address = record.address
        vidPid = record.identity.vidPid
        serial = record.strings?.serialNumber
        product = record.strings?.product
        let dfu = record.dfuModeInterface
        dfuMode = dfu != nil
        interface = dfu?.interfaceNumber
        alternateSettings = dfu?.settings.map { record.strings?.settingNames[$0.alternateSetting] ?? "" } ?? []
        transferSize = dfu?.functionalDescriptor.transferSize
        dfuVersion = dfu?.functionalDescriptor.dfuVersion
        problems = [record.descriptorProblem, record.openError.map { "\($0)" }, record.stringProblem].compactMap { $0 }
    }
}

struct Step: Encodable {
    var request: String
    var result: String
    var bytes: [UInt8]?
}

/// Runs `request` and records its outcome; a TransportError is an outcome, not a failure.
func step(_ name: String, _ request: () async throws -> [UInt8]?) async -> Step {
    do {
        return Step(request: name, result: "ok", bytes: try await request())
    } catch let error as TransportError {
        let kind = if case .other = error.kind { "other: \(error)" } else { error.kind.name }
        return Step(request: name, result: kind, bytes: nil)
    } catch {
        return Step(request: name, result: "error: \(error)", bytes: nil)
    }
}

/// DFU 1.1 requests on interface 0, the way the DfuSe client will send them.
func dfuSession(_ dfu: LibUSBDFUTransport) async -> [Step] {
    let interface = UInt16(dfu.interfaceNumber)
    var steps: [Step] = []
    steps.append(
        await step("SET_INTERFACE 0") {
            try await dfu.selectAlternateSetting(0)
            return nil
        })
    steps.append(
        await step("GETSTATUS") {
            try await dfu.controlIn(.classIn(3, value: 0, interface: interface), length: 6, timeout: .seconds(1))
        })
    steps.append(
        await step("UPLOAD 0") {
            try await dfu.controlIn(
                .classIn(2, value: 0, interface: interface), length: Int(dfu.functionalDescriptor.transferSize),
                timeout: .seconds(1))
        })
    steps.append(
        await step("GETSTATE") {
            try await dfu.controlIn(.classIn(5, value: 0, interface: interface), length: 1, timeout: .seconds(1))
        })
    steps.append(
        await step("ABORT") {
            try await dfu.controlOut(.classOut(6, value: 0, interface: interface), data: [], timeout: .seconds(1))
            return nil
        })
    steps.append(
        await step("DNLOAD set-address") {
            try await dfu.controlOut(.classOut(1, value: 0, interface: interface), data: [0x21, 0, 0, 0, 0x08], timeout: .seconds(1))
            return nil
        })
    steps.append(
        await step("GETSTATE") {
            try await dfu.controlIn(.classIn(5, value: 0, interface: interface), length: 1, timeout: .seconds(1))
        })
    return steps
}

struct SessionLine: Encodable {
    var port: String
    var address: UInt8
    var serial: String?
    var alternateSettings: [String]
    var steps: [Step]
}

func session(backend: LibUSBBackend, port: String) async throws -> SessionLine {
    let identity = USBDeviceIdentity(vendorID: 0x0483, productID: 0xDF11, portPath: port)
    let dfu = try await backend.openDFU(identity)
    let address = try await backend.dfuDevices().first { $0.portPath.description == port }?.address ?? 0
    let steps = await dfuSession(dfu)
    await dfu.close()
    return SessionLine(
        port: dfu.identity.portPath, address: address, serial: dfu.identity.serialNumber,
        alternateSettings: dfu.alternateSettings.map(\.name), steps: steps)
}

struct ReplugLine: Encodable {
    /// What libusb hotplug reported for the port.
    var events: [String]
    /// What USBDeviceDiscovery.events() reported.
    var discovery: [String]
    var before: SessionLine
    var after: SessionLine
}

func replug(backend: LibUSBBackend, port: String) async throws -> ReplugLine {
    let before = try await session(backend: backend, port: port)
    let events = try backend.context.hotplugEvents()
    let discovery = USBDeviceDiscovery(libusb: backend, hidapi: try HIDAPIBackend(), hidMatches: [], hidSettleDelays: [])
    let discoveryEvents = discovery.events()
    FileHandle.standardOutput.write(Data("EMULATED-USB: replug\n".utf8))
    guard readLine() == "EMULATED-USB: replugged" else { throw ProbeFailure(description: "the peer did not replug the device") }
    let seen = try await withThrowingTaskGroup(of: [String].self) { group in
        group.addTask {
            var seen: [String] = []
            for await event in events where event.portPath.description == port {
                seen.append("\(event.kind) \(event.address)")
                if event.kind == .arrived { break }
            }
            return seen
        }
        group.addTask {
            try await Task.sleep(for: .seconds(10))
            throw ProbeFailure(description: "no hotplug arrival within 10 s")
        }
        defer { group.cancelAll() }
        return try await group.next() ?? []
    }
    var discovered: [String] = []
    for await event in discoveryEvents {
        switch event {
        case .left(let device): discovered.append("left \(device)")
        case .arrived(let device): discovered.append("arrived \(device)")
        }
        if case .arrived = event { break }
    }
    let after = try await session(backend: backend, port: port)
    return ReplugLine(events: seen, discovery: discovered, before: before, after: after)
}

struct BenchLine: Encodable {
    var requests: Int
    var seconds: Double
    var microsecondsPerRequest: Double
}

func bench(backend: LibUSBBackend, port: String, count: Int) async throws -> BenchLine {
    let dfu = try await backend.openDFU(USBDeviceIdentity(vendorID: 0x0483, productID: 0xDF11, portPath: port))
    let clock = ContinuousClock()
    let start = clock.now
    for _ in 0..<count {
        _ = try await dfu.controlIn(.classIn(3, value: 0, interface: UInt16(dfu.interfaceNumber)), length: 6, timeout: .seconds(1))
    }
    let elapsed = clock.now - start
    await dfu.close()
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    return BenchLine(requests: count, seconds: seconds, microsecondsPerRequest: seconds / Double(max(count, 1)) * 1e6)
}

struct HIDLine: Encodable {
    var path: String
    var port: String
    var serial: String?
    var product: String?
    var usagePage: String
    var numberedReports: Bool
    var steps: [Step]
}

/// Raw reports of protocols/hid-app-protocol.md §3.1 (report 0x01, version 1, sequence, command, length);
/// the probe does not depend on AppLink, so that the bytes on the wire are the test's own.
func hidSession() async throws -> HIDLine {
    let backend = try HIDAPIBackend()
    guard let info = try await backend.devices(matching: [HIDMatch(usagePage: 0xFFDF)]).first else {
        throw ProbeFailure(description: "no HID interface with usage page 0xFFDF")
    }
    let hid = try await backend.open(info)
    var steps: [Step] = []
    steps.append(await step("read with nothing sent") { try await hid.read(timeout: .milliseconds(50)) })
    for sequence: UInt8 in [1, 2] {
        let request: [UInt8] = [0x01, 0x01, sequence, 0x01, 0x00] + [UInt8](repeating: 0, count: 59) // GET_INFO
        steps.append(
            await step("write GET_INFO #\(sequence)") {
                try await hid.write(request)
                return nil
            })
    }
    for sequence in 1...2 {
        steps.append(await step("read answer #\(sequence)") { try await hid.read(timeout: .seconds(2)) })
    }
    steps.append(await step("get feature report 3") { try await hid.getFeatureReport(id: 3, length: 8) })
    await hid.close()
    return HIDLine(
        path: info.path, port: info.usb.portPath, serial: info.usb.serialNumber, product: info.usb.product,
        usagePage: Hex.digits(info.usagePage, width: 4), numberedReports: hid.numberedReports, steps: steps)
}

let arguments = CommandLine.arguments.dropFirst()
do {
    let backend = try LibUSBBackend()
    switch (arguments.first, arguments.dropFirst().first) {
    case ("list", _):
        for record in try await backend.scan() { try emit(DeviceLine(record)) }
    case ("session", let port?):
        try emit(try await session(backend: backend, port: port))
    case ("replug", let port?):
        try emit(try await replug(backend: backend, port: port))
    case ("bench", let port?):
        try emit(try await bench(backend: backend, port: port, count: Int(arguments.dropFirst(2).first ?? "") ?? 1000))
    case ("hid", _):
        try emit(try await hidSession())
    default:
        throw ProbeFailure(description: "usage: dfuhop-usb-probe list | session PORT | replug PORT | bench PORT [COUNT] | hid")
    }
} catch {
    FileHandle.standardError.write(Data("dfuhop-usb-probe: \(error)\n".utf8))
    exit(1)
}
