// dfuhop-usb-peer: answers dfuhop-usb-server (emulated-usb/PROTOCOL.md) from the VirtualDevice model, so
// the emulated-USB tier and the in-process tests share one device behaviour.
//
//   dfuhop-usb-peer --server PATH (--simulate FAMILY[:STATE] | --state FILE) [--port 1-3.2] [--no-flash-time] -- COMMAND [ARGS...]
//
// Starts the server, plugs the unit's ROM at PORT when it is in DFU mode, runs COMMAND under the
// umockdev preload with the testbed's UMOCKDEV_DIR, relays its output and exits with its status.
// The unit re-enumerates as the model says (leave, option-byte reset): UNPLUG, and PLUG when it comes
// back into the ROM. With --state, the unit is loaded from FILE if it exists and saved there at exit.
import Foundation
import USBTransport
import VirtualDevice

struct PeerError: Error, CustomStringConvertible { var description: String }

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("dfuhop-usb-peer: \(message)\n".utf8))
    exit(70)
}

// MARK: Arguments

struct Options: Sendable {
    var serverPath = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("dfuhop-usb-server").path
    var simulate: String?
    var statePath: String?
    var port = "1-3.2"
    var command: [String] = []
    /// Erase and programming take no time: what is left to measure is host and USB-protocol cost.
    var noFlashTime = false
}

func parseOptions() -> Options {
    var options = Options()
    var arguments = Array(CommandLine.arguments.dropFirst())
    while !arguments.isEmpty {
        let word = arguments.removeFirst()
        if word == "--" { options.command = arguments; break }
        if word == "--no-flash-time" { options.noFlashTime = true; continue }
        guard !arguments.isEmpty else { fail("\(word) needs a value") }
        switch word {
        case "--server": options.serverPath = arguments.removeFirst()
        case "--simulate": options.simulate = arguments.removeFirst()
        case "--state": options.statePath = arguments.removeFirst()
        case "--port": options.port = arguments.removeFirst()
        default: fail("unknown option \(word)")
        }
    }
    guard !options.command.isEmpty else { fail("give a command to run against the emulated unit, after --") }
    return options
}

let options = parseOptions()
let port = options.port
let clock = VirtualClock()
let unit: VirtualUnit
do {
    if let statePath = options.statePath, FileManager.default.fileExists(atPath: statePath) {
        unit = try VirtualUnit.load(from: URL(fileURLWithPath: statePath), clock: clock)
    } else if let simulate = options.simulate {
        var spec = try SimulationSpec(parsing: simulate)
        if options.noFlashTime {
            spec.family.timings.sectorErase = [:]
            spec.family.timings.defaultSectorErase = .zero
            spec.family.timings.massErase = .zero
            spec.family.timings.programUnit = .zero
        }
        unit = try spec.makeUnit(clock: clock)
    } else {
        fail("give --simulate FAMILY[:STATE], or --state FILE that exists")
    }
} catch { fail("\(error)") }

// MARK: Descriptors (USB 2.0 §9.6, DFU 1.1 §4.2), built from the unit

func le16(_ value: UInt16) -> [UInt8] { [UInt8(value & 0xFF), UInt8(value >> 8)] }

struct ROMDescriptors {
    let device: [UInt8]
    let configuration: [UInt8]
    let strings: [Int: String]

    init(transport: VirtualDFUTransport) {
        let identity = transport.identity
        device = [18, 1] + le16(0x0200) + [0, 0, 0, 64] + le16(identity.vendorID) + le16(identity.productID)
            + le16(identity.bcdDevice) + [1, 2, 3, 1]
        var body: [UInt8] = []
        for alternate in transport.alternateSettings {
            body += [9, 4, transport.interfaceNumber, alternate.number, 0, 0xFE, 0x01, 0x02, 4 + alternate.number]
        }
        body += transport.functionalDescriptor.bytes  // after the last alternate setting, as ST ROMs put it
        configuration = [9, 2] + le16(UInt16(9 + body.count)) + [1, 1, 0, 0xC0, 0x32] + body
        var strings = [1: identity.manufacturer ?? "", 2: identity.product ?? "", 3: identity.serialNumber ?? ""]
        for alternate in transport.alternateSettings { strings[4 + Int(alternate.number)] = alternate.name }
        self.strings = strings
    }

    func string(_ index: Int) -> [UInt8]? {
        if index == 0 { return [4, 3, 0x09, 0x04] }
        guard let text = strings[index] else { return nil }
        let utf16 = text.utf16.flatMap { le16($0) }
        return [UInt8(2 + utf16.count), 3] + utf16
    }
}

// MARK: The server

let server = Process()
server.executableURL = URL(fileURLWithPath: options.serverPath)
let toServer = Pipe(), fromServer = Pipe()
server.standardInput = toServer
server.standardOutput = fromServer
do { try server.run() } catch { fail("cannot start \(options.serverPath): \(error)") }

@Sendable func send(_ line: String) { toServer.fileHandleForWriting.write(Data((line + "\n").utf8)) }

/// Lines from the server's stdout.
final class LineReader: @unchecked Sendable {
    let handle: FileHandle
    var buffer = Data()
    init(_ handle: FileHandle) { self.handle = handle }
    func next() -> String? {
        while true {
            if let newline = buffer.firstIndex(of: 0x0A) {
                let line = String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self)
                buffer.removeSubrange(buffer.startIndex...newline)
                return line
            }
            let chunk = handle.availableData
            if chunk.isEmpty { return nil }
            buffer.append(chunk)
        }
    }
}
let lines = LineReader(fromServer.fileHandleForReading)
guard let ready = lines.next()?.split(separator: " "), ready.count == 3, ready[0] == "READY", ready[1] == "1" else {
    fail("the server did not start")
}
let umockdevDir = String(ready[2])

/// Runs async model code from the server's (synchronous) request loop: one request at a time.
final class ResultBox<T>: @unchecked Sendable { var result: Result<T, any Error>? }
func blocking<T: Sendable>(_ work: @escaping @Sendable () async throws -> T) throws -> T {
    let box = ResultBox<T>()
    let done = DispatchSemaphore(value: 0)
    Task {
        do { box.result = .success(try await work()) } catch { box.result = .failure(error) }
        done.signal()
    }
    done.wait()
    return try box.result!.get()
}

// MARK: Serving

final class Peer: @unchecked Sendable {
    var transport: VirtualDFUTransport?
    var descriptors: ROMDescriptors?
    var plugged = false

    /// Plugs or unplugs the emulated device to match what the unit presents on the bus.
    func follow() {
        let inROM = unit.currentMode == .rom
        if plugged, transport.map({ $0.unit.currentEnumeration != enumeration }) ?? true || !inROM {
            send("UNPLUG \(port)")
            plugged = false
            transport = nil
        }
        if !plugged, inROM, let opened = try? VirtualDFUTransport(unit: unit) {
            transport = opened
            enumeration = unit.currentEnumeration
            let built = ROMDescriptors(transport: opened)
            descriptors = built
            let serial = built.strings[3]?.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
            let product = built.strings[2]?.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
            send("PLUG \(port) \((built.device + built.configuration).map { hex($0, 2) }.joined()) serial=\(serial) product=\(product)")
            plugged = true
        }
    }
    var enumeration = 0

    func answer(_ words: [Substring]) -> String {
        let sequence = words[1]
        guard words.count >= 9, let requestType = UInt8(words[3], radix: 16), let request = UInt8(words[4], radix: 16),
              let value = UInt16(words[5], radix: 16), let index = UInt16(words[6], radix: 16),
              let length = Int(words[7], radix: 16) else { return "REPLY \(sequence) STALL" }
        guard let data = words[8] == "-" ? [] : bytes(fromHex: words[8]) else { return "REPLY \(sequence) STALL" }
        guard let transport, let descriptors else { return "REPLY \(sequence) NODEV" }
        func ack(_ bytes: [UInt8]) -> String {
            let sent = bytes.prefix(length)
            return "REPLY \(sequence) ACK " + (sent.isEmpty ? "-" : sent.map { hex($0, 2) }.joined())
        }
        switch (requestType, request) {
        case (0x80, 6):  // GET_DESCRIPTOR
            switch value >> 8 {
            case 1: return ack(descriptors.device)
            case 2: return ack(descriptors.configuration)
            case 3: return descriptors.string(Int(value & 0xFF)).map(ack) ?? "REPLY \(sequence) STALL"
            default: return "REPLY \(sequence) STALL"
            }
        case (0x00, 9):  // SET_CONFIGURATION
            return value == 1 ? ack([]) : "REPLY \(sequence) STALL"
        case (0x01, 11):  // SET_INTERFACE
            do {
                try blocking { try await transport.selectAlternateSetting(UInt8(truncatingIfNeeded: value)) }
                return ack([])
            } catch { return reply(sequence, error) }
        default:
            let control = ControlRequest(requestType: requestType, request: request, value: value, index: index)
            do {
                if control.isDeviceToHost {
                    return ack(try blocking { try await transport.controlIn(control, length: length, timeout: .seconds(5)) })
                }
                try blocking { try await transport.controlOut(control, data: data, timeout: .seconds(5)) }
                return ack([])
            } catch { return reply(sequence, error) }
        }
    }

    func reply(_ sequence: Substring, _ error: any Error) -> String {
        switch (error as? TransportError)?.kind {
        case .stall: "REPLY \(sequence) STALL"
        case .timeout: "REPLY \(sequence) TIMEOUT"
        default: "REPLY \(sequence) NODEV"
        }
    }
}

let peer = Peer()
peer.follow()
guard peer.plugged else { fail("the unit is not in DFU mode (\(unit.currentMode.rawValue)); nothing to plug") }

let serving = Thread {
    while let line = lines.next() {
        let words = line.split(separator: " ")
        guard let kind = words.first else { continue }
        switch kind {
        case "CONTROL":
            send(peer.answer(words))
            peer.follow()
        case "RESET" where words.count >= 2:
            send("REPLY \(words[1]) ACK -")
        case "ERROR":
            FileHandle.standardError.write(Data("dfuhop-usb-peer: server: \(line)\n".utf8))
        default:
            break  // PLUGGED / UNPLUGGED acknowledgements
        }
    }
}
serving.start()

// MARK: The client

// Wait for the first PLUGGED to be consumed by the serving thread: the client enumerates after it.
Thread.sleep(forTimeInterval: 0.2)
let client = Process()
client.executableURL = URL(fileURLWithPath: "/usr/bin/env")
client.arguments = options.command
var environment = ProcessInfo.processInfo.environment
environment["UMOCKDEV_DIR"] = umockdevDir
environment["LD_PRELOAD"] = "libumockdev-preload.so.0" + (environment["LD_PRELOAD"].map { ":" + $0 } ?? "")
client.environment = environment
do { try client.run() } catch { fail("cannot run \(options.command[0]): \(error)") }
client.waitUntilExit()

send("QUIT")
server.waitUntilExit()
if let statePath = options.statePath {
    do { try unit.save(to: URL(fileURLWithPath: statePath)) } catch { fail("\(error)") }
}
exit(client.terminationStatus)
