import AppLink
// dfuhop-usb-peer: answers dfuhop-usb-server (emulated-usb/PROTOCOL.md) from the VirtualDevice model, so
// the emulated-USB tier and the in-process tests share one device behaviour.
//
//   dfuhop-usb-peer --server PATH (--simulate FAMILY[:STATE] | --state FILE) [--port 1-3.2] [--no-flash-time]
//                   [--control FIFO] [--stats] [--deny-access] [--set-address-poll MS] -- COMMAND [ARGS...]
//
// Starts the server, plugs what the unit presents at PORT (its ROM's DfuSe interface, or its
// application's HID interface with a hidraw node), runs COMMAND under the umockdev preload with the
// testbed's UMOCKDEV_DIR, relays its output and exits with its status. The unit re-enumerates as the
// model says (ENTER_BOOTLOADER, leave, option-byte reset): UNPLUG, then PLUG of what it shows next.
// With --state, the unit is loaded from FILE if it exists and saved there at exit. With --control, lines
// written to FIFO act on the unit as a test jig would: "boot0 1", "boot0 0", "power-cycle", "unplug",
// "plug" (several per line with ";"). With --deny-access, every device node the unit shows is made mode 0000
// (owner root) as soon as it is plugged: a client without CAP_DAC_OVERRIDE is refused as by missing udev rules.
import Foundation
import HexFormat
import USBTransport
import VirtualDevice

struct PeerError: Error, CustomStringConvertible { var description: String }

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("dfuhop-usb-peer: \(message)\n".utf8))
    exit(70)
}

// MARK: Arguments

struct Options: Sendable {
    var serverPath = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("dfuhop-usb-server")
        .path
    var simulate: String?
    var statePath: String?
    var port = "1-3.2"
    var command: [String] = []
    /// Erase and programming take no time, and the ROM announces none for them: what is left to measure is
    /// host and USB-protocol cost.
    var noFlashTime = false
    /// A FIFO to create for control lines (boot0 1|0, power-cycle, unplug, plug).
    var controlPath: String?
    /// At exit, print the client's wall time and the unit's control-transfer count on stderr.
    var stats = false
    /// Device nodes get mode 0000: what a unit looks like to a user the udev rules do not grant access.
    var denyAccess = false
    /// The bwPollTimeout the ROM reports after a set-address, in ms, instead of the family data's (a reading
    /// the sources do not settle: the benchmark shows the ratio under each).
    var setAddressPollMs: Int?
}

func parseOptions() -> Options {
    var options = Options()
    var arguments = Array(CommandLine.arguments.dropFirst())
    while !arguments.isEmpty {
        let word = arguments.removeFirst()
        if word == "--" {
            options.command = arguments
            break
        }
        if word == "--no-flash-time" {
            options.noFlashTime = true
            continue
        }
        if word == "--stats" {
            options.stats = true
            continue
        }
        if word == "--deny-access" {
            options.denyAccess = true
            continue
        }
        guard !arguments.isEmpty else { fail("\(word) needs a value") }
        switch word {
        case "--server": options.serverPath = arguments.removeFirst()
        case "--simulate": options.simulate = arguments.removeFirst()
        case "--state": options.statePath = arguments.removeFirst()
        case "--port": options.port = arguments.removeFirst()
        case "--control": options.controlPath = arguments.removeFirst()
        case "--set-address-poll":
            guard let ms = Int(arguments.removeFirst()), (0...0xFFFF).contains(ms) else { fail("--set-address-poll takes 0...65535 ms") }
            options.setAddressPollMs = ms
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
            // The ROM's own estimates of those times go too: an instant erase announced as 100 ms is neither reading.
            spec.family.reportedPollTimeouts.erase = nil
            spec.family.reportedPollTimeouts.massErase = nil
        }
        if let ms = options.setAddressPollMs { spec.family.reportedPollTimeouts.setAddress = .milliseconds(ms) }
        unit = try spec.makeUnit(clock: clock)
    } else {
        fail("give --simulate FAMILY[:STATE], or --state FILE that exists")
    }
} catch { fail("\(error)") }

// MARK: Descriptors (USB 2.0 §9.6, DFU 1.1 §4.2, HID 1.11 §6.2), built from the unit

func le16(_ value: UInt16) -> [UInt8] { [UInt8(value & 0xFF), UInt8(value >> 8)] }

/// What the unit shows on the bus in one enumeration: descriptors and strings, and for the application
/// its HID report descriptor.
struct Descriptors {
    let device: [UInt8]
    let configuration: [UInt8]
    let strings: [Int: String]
    /// The HID interface's report descriptor (application only).
    var reportDescriptor: [UInt8]? = nil

    /// The ROM's DfuSe interface, exactly as ST's ROM describes itself.
    init(rom transport: VirtualDFUTransport) {
        let identity = transport.identity
        device =
            [18, 1] + le16(0x0200) + [0, 0, 0, 64] + le16(identity.vendorID) + le16(identity.productID)
            + le16(identity.bcdDevice) + [1, 2, 3, 1]
        var body: [UInt8] = []
        for alternate in transport.alternateSettings {
            body += [9, 4, transport.interfaceNumber, alternate.number, 0, 0xFE, 0x01, 0x02, 4 + alternate.number]
        }
        body += transport.functionalDescriptor.bytes // after the last alternate setting, as ST ROMs put it
        configuration = [9, 2] + le16(UInt16(9 + body.count)) + [1, 1, 0, 0xC0, 0x32] + body
        var strings = [1: identity.manufacturer ?? "", 2: identity.product ?? "", 3: identity.serialNumber ?? ""]
        for alternate in transport.alternateSettings { strings[4 + Int(alternate.number)] = alternate.name }
        self.strings = strings
    }

    /// The application's HID interface: interrupt IN and OUT endpoints of 64 bytes, 1 ms (the reference
    /// firmware's descriptors, protocols/hid-app-protocol.md §2).
    init(application info: HIDDeviceInfo) {
        let usb = info.usb
        let report = AppLinkProtocol.reportDescriptor
        device =
            [18, 1] + le16(0x0200) + [0, 0, 0, 64] + le16(usb.vendorID) + le16(usb.productID) + le16(usb.bcdDevice)
            + [1, 2, 3, 1]
        let body: [UInt8] =
            [9, 4, UInt8(info.interfaceNumber), 0, 2, 3, 0, 0, 0]
            + [9, 0x21] + le16(0x0111) + [0, 1, 0x22] + le16(UInt16(report.count))
            + [7, 5, 0x81, 3] + le16(64) + [1]
            + [7, 5, 0x01, 3] + le16(64) + [1]
        configuration = [9, 2] + le16(UInt16(9 + body.count)) + [1, 1, 0, 0x80, 0x32] + body
        strings = [1: usb.manufacturer ?? "", 2: usb.product ?? "", 3: usb.serialNumber ?? ""]
        reportDescriptor = report
    }

    func string(_ index: Int) -> [UInt8]? {
        if index == 0 { return [4, 3, 0x09, 0x04] }
        guard let text = strings[index] else { return nil }
        let utf16 = text.utf16.flatMap { le16($0) }
        return [UInt8(2 + utf16.count), 3] + utf16
    }

    /// The PLUG line (PROTOCOL.md).
    func plugLine(port: String) -> String {
        func attribute(_ text: String?) -> String { text?.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "" }
        var line = "PLUG \(port) \(Hex.string(device + configuration))"
        line += " manufacturer=\(attribute(strings[1])) product=\(attribute(strings[2])) serial=\(attribute(strings[3]))"
        if let reportDescriptor { line += " hid=" + Hex.string(reportDescriptor) }
        return line
    }
}

// MARK: The server

let server = Process()
server.executableURL = URL(fileURLWithPath: options.serverPath)
let toServer = Pipe()
let fromServer = Pipe()
server.standardInput = toServer
server.standardOutput = fromServer
do { try server.run() } catch { fail("cannot start \(options.serverPath): \(error)") }

@Sendable func send(_ line: String) { toServer.fileHandleForWriting.write(Data((line + "\n").utf8)) }

/// Lines from a pipe, as bytes: a CONTROL line carries kilobytes of hex, which String splitting would
/// walk character by character.
final class LineReader: @unchecked Sendable {
    let handle: FileHandle
    private var buffer: [UInt8] = []
    private var start = 0
    init(_ handle: FileHandle) { self.handle = handle }
    func next() -> Line? {
        while true {
            if let newline = buffer[start...].firstIndex(of: 0x0A) {
                let line = Line(buffer[start..<newline])
                start = newline + 1
                return line
            }
            buffer.removeFirst(start)
            start = 0
            let chunk = handle.availableData
            if chunk.isEmpty { return nil }
            buffer.append(contentsOf: chunk)
        }
    }
}

/// One line, split into space-separated words.
struct Line {
    let bytes: ArraySlice<UInt8>
    let words: [ArraySlice<UInt8>]
    init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        words = bytes.split(separator: 0x20)
    }
    var text: String { String(decoding: bytes, as: UTF8.self) }
    var count: Int { words.count }
    subscript(_ index: Int) -> Substring { Substring(String(decoding: words[index], as: UTF8.self)) }
    /// Word `index` as hex bytes ("-" is none); nil when malformed.
    func bytes(_ index: Int) -> [UInt8]? {
        words[index].elementsEqual("-".utf8) ? [] : Hex.bytes(fromHexDigits: words[index])
    }
}
let lines = LineReader(fromServer.fileHandleForReading)
guard let ready = lines.next(), ready.count == 3, ready[0] == "READY", ready[1] == "2" else {
    fail("the server did not start")
}
let umockdevDir = String(ready[2])

/// The thread the request loop runs on: it blocks reading the server's lines, and the model's async
/// calls run in place on it (they never wait: the unit runs on virtual time), so a request costs no
/// thread switch in the peer.
final class ServingExecutor: TaskExecutor {
    let queue = DispatchQueue(label: "dfuhop-usb-peer serving")
    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        queue.async { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}

// MARK: Serving

/// The emulated device that matches what the unit presents: its ROM's DfuSe interface, its application's
/// HID interface, or nothing (off, hung, or a corrupted application that shows nothing).
final class Peer: @unchecked Sendable {
    // @unchecked: the state below is guarded by `lock` (the serving loop and the control thread both use it).
    let lock = NSLock()
    var dfu: VirtualDFUTransport?
    var hid: VirtualHIDTransport?
    var descriptors: Descriptors?
    /// The unit's enumeration that is plugged, nil when nothing is.
    var plugged: Int?
    /// When the last control request arrived (real time), for `deviceWorkedWhileHostWaited`.
    var lastRequest: ContinuousClock.Instant?

    /// Plugs or unplugs the emulated device to match what the unit presents on the bus.
    func follow() {
        lock.withLock {
            let enumeration = unit.currentEnumeration
            let presence = unit.presence
            if let plugged, plugged != enumeration || presence == nil {
                send("UNPLUG \(port)")
                self.plugged = nil
                dfu = nil
                hid = nil
                descriptors = nil
            }
            guard plugged == nil, let presence else { return }
            let built: Descriptors
            switch presence {
            case .dfu:
                guard let opened = try? VirtualDFUTransport(unit: unit) else { return }
                dfu = opened
                built = Descriptors(rom: opened)
            case .hid:
                guard let opened = try? VirtualHIDTransport(unit: unit) else { return }
                hid = opened
                built = Descriptors(application: opened.info)
            }
            descriptors = built
            plugged = enumeration
            send(built.plugLine(port: port))
        }
    }

    /// CONTROL: a control transfer on endpoint 0.
    func answerControl(_ words: Line) async -> String {
        deviceWorkedWhileHostWaited()
        let sequence = words[1]
        guard words.count >= 9, let requestType = UInt8(words[3], radix: 16), let request = UInt8(words[4], radix: 16),
            let value = UInt16(words[5], radix: 16), let index = UInt16(words[6], radix: 16),
            let length = Int(words[7], radix: 16)
        else { return "REPLY \(sequence) STALL" }
        guard let data = words.bytes(8) else { return "REPLY \(sequence) STALL" }
        let (dfu, hid, descriptors) = lock.withLock { (self.dfu, self.hid, self.descriptors) }
        guard let descriptors else { return "REPLY \(sequence) NODEV" }
        func ack(_ bytes: [UInt8]) -> String {
            let sent = bytes.prefix(length)
            return "REPLY \(sequence) ACK " + (sent.isEmpty ? "-" : Hex.string(sent))
        }
        let stall = "REPLY \(sequence) STALL"
        let control = ControlRequest(requestType: requestType, request: request, value: value, index: index)
        do {
            switch (requestType, request) {
            case (0x80, 6): // GET_DESCRIPTOR (device)
                switch value >> 8 {
                case 1: return ack(descriptors.device)
                case 2: return ack(descriptors.configuration)
                case 3: return descriptors.string(Int(value & 0xFF)).map(ack) ?? stall
                default: return stall
                }
            case (0x81, 6) where value >> 8 == 0x22: // GET_DESCRIPTOR (interface): the HID report descriptor
                return descriptors.reportDescriptor.map(ack) ?? stall
            case (0x00, 9): // SET_CONFIGURATION
                return value == 1 ? ack([]) : stall
            case (0x01, 11): // SET_INTERFACE
                guard let dfu else { return value == 0 ? ack([]) : stall }
                try await dfu.selectAlternateSetting(UInt8(truncatingIfNeeded: value))
                return ack([])
            case (0xA1, 1): // HID GET_REPORT (HID 1.11 §7.2.1): wValue = type << 8 | id
                guard let hid, value >> 8 == 3 else { return stall }
                let id = UInt8(value & 0xFF)
                let report = try await hid.getFeatureReport(id: id, length: length + (id == 0 ? 1 : 0))
                return ack(id == 0 ? Array(report.dropFirst()) : report)
            case (0x21, 9): // HID SET_REPORT (§7.2.2)
                guard let hid else { return stall }
                let id = UInt8(value & 0xFF)
                let report = id == 0 ? [0] + data : data
                switch value >> 8 {
                case 2: try await hidWrite(hid, report)
                case 3: try await hid.sendFeatureReport(report)
                default: return stall
                }
                return ack([])
            default:
                guard let dfu else { return stall }
                if control.isDeviceToHost {
                    return ack(try await dfu.controlIn(control, length: length, timeout: .seconds(5)))
                }
                try await dfu.controlOut(control, data: data, timeout: .seconds(5))
                return ack([])
            }
        } catch { return reply(sequence, error) }
    }

    /// HIDOUT: an output report on the interrupt OUT endpoint.
    func answerOutputReport(_ words: Line) async -> String {
        let sequence = words[1]
        guard words.count >= 4, let report = words.bytes(3), !report.isEmpty else { return "REPLY \(sequence) STALL" }
        guard let hid = lock.withLock({ self.hid }) else { return "REPLY \(sequence) NODEV" }
        do {
            try await hidWrite(hid, report)
            return "REPLY \(sequence) ACK -"
        } catch { return reply(sequence, error) }
    }

    /// The model runs on virtual time, which only its own waits move on. A real unit also works while the host
    /// waits between requests (an L4 ROM that stalls GETSTATUS during an erase finishes the erase while the
    /// host sleeps between polls): the real time since the last request is added to the unit's time.
    func deviceWorkedWhileHostWaited() {
        let now = ContinuousClock.now
        let gap = lock.withLock {
            defer { lastRequest = now }
            return lastRequest.map { now - $0 } ?? .zero
        }
        clock.advance(by: gap)
    }

    /// Hands an output report to the application and sends what it answers as INPUT lines. The model
    /// runs on virtual time; the time the report took there (the reset delay of ENTER_BOOTLOADER, when
    /// the unit then leaves for the ROM) is waited in real time before the bus is told, as a real unit
    /// stays on the bus for that long after answering.
    func hidWrite(_ hid: VirtualHIDTransport, _ report: [UInt8]) async throws {
        let before = clock.now()
        try await hid.write(report)
        let took = clock.now() - before
        while let input = try? await hid.read(timeout: .zero) {
            send("INPUT \(port) " + Hex.string(input))
        }
        if unit.currentEnumeration != lock.withLock({ plugged }) {
            try? await Task.sleep(for: took) // the serving loop answers nothing meanwhile, like a unit resetting
        }
    }

    func reply(_ sequence: Substring, _ error: any Error) -> String {
        switch (error as? TransportError)?.kind {
        case .stall: "REPLY \(sequence) STALL"
        case .timeout: "REPLY \(sequence) TIMEOUT"
        default: "REPLY \(sequence) NODEV"
        }
    }

    /// A line on the control channel (--control): what a test jig or an operator does to the unit.
    func control(_ line: String) -> String? {
        let words = line.split(separator: " ")
        switch (words.first, words.count) {
        case ("boot0", 2) where words[1] == "1" || words[1] == "0": unit.setBoot0(words[1] == "1")
        case ("power-cycle", 1): unit.powerCycle()
        case ("unplug", 1): unit.unplug()
        case ("plug", 1): unit.plug()
        case (nil, _): return nil
        default: return "unknown control line \"\(line)\"; expected boot0 1|0, power-cycle, unplug or plug"
        }
        follow()
        return nil
    }
}

let peer = Peer()
/// Signalled when the server acknowledges the first PLUG: the client must not enumerate before it.
let firstPlugged = DispatchSemaphore(value: 0)
let initiallyPlugged = { peer.follow(); return peer.lock.withLock { peer.plugged != nil } }()

let servingExecutor = ServingExecutor()
Task(executorPreference: servingExecutor) {
    while let words = lines.next() {
        guard words.count > 0 else { continue }
        switch words[0] {
        case "CONTROL":
            send(await peer.answerControl(words))
            peer.follow()
        case "HIDOUT":
            send(await peer.answerOutputReport(words))
            peer.follow()
        case "RESET" where words.count >= 2:
            send("REPLY \(words[1]) ACK -")
        case "ERROR":
            FileHandle.standardError.write(Data("dfuhop-usb-peer: server: \(words.text)\n".utf8))
        case "PLUGGED":
            // PLUGGED PORT DEVNODE SYSPATH [HIDRAW]: the nodes live under the testbed's directory. Done before
            // the client starts for the first plug; a re-plug races the client's open (the tests deny the first).
            if options.denyAccess {
                for index in [2, 4] where index < words.count { chmod(umockdevDir + String(words[index]), 0) }
            }
            firstPlugged.signal()
        default:
            break // UNPLUGGED acknowledgements
        }
    }
}

// The control channel: a FIFO that hooks (dfuhop --boot0-command) and tests write lines to.
if let controlPath = options.controlPath {
    unlink(controlPath)
    guard mkfifo(controlPath, 0o600) == 0 else {
        fail("cannot create the control FIFO \(controlPath): \(String(cString: strerror(errno)))")
    }
    Thread {
        while true {
            // Opened anew after each writer closes it: one hook run writes, closes, and the next opens again.
            guard let handle = FileHandle(forReadingAtPath: controlPath) else { return }
            let reader = LineReader(handle)
            while let line = reader.next() {
                for command in line.text.split(separator: ";") {
                    if let problem = peer.control(command.trimmingCharacters(in: .whitespaces)) {
                        FileHandle.standardError.write(Data("dfuhop-usb-peer: control: \(problem)\n".utf8))
                    }
                }
            }
            try? handle.close()
        }
    }.start()
}

// MARK: The client

// The client enumerates only once the server has acknowledged the unit's first PLUG (a fixed delay lost that race on
// a loaded machine: dfu-util -l then listed nothing).
if initiallyPlugged, firstPlugged.wait(timeout: .now() + 30) == .timedOut {
    fail("the emulated-USB server did not acknowledge the unit's PLUG within 30 s")
}
let client = Process()
client.executableURL = URL(fileURLWithPath: "/usr/bin/env")
client.arguments = options.command
var environment = ProcessInfo.processInfo.environment
environment["UMOCKDEV_DIR"] = umockdevDir
environment["LD_PRELOAD"] = "libumockdev-preload.so.0" + (environment["LD_PRELOAD"].map { ":" + $0 } ?? "")
client.environment = environment
// Process.waitUntilExit polls a run loop (50 ms steps here); the termination handler is exact.
let exited = DispatchSemaphore(value: 0)
client.terminationHandler = { _ in exited.signal() }
let started = ContinuousClock.now
do { try client.run() } catch { fail("cannot run \(options.command[0]): \(error)") }
exited.wait()
if options.stats {
    // What a benchmark compares: the client's own wall time (not the testbed's start) and its bus traffic.
    let (seconds, attoseconds) = (ContinuousClock.now - started).components
    let wall = Double(seconds) + Double(attoseconds) / 1e18
    FileHandle.standardError.write(
        Data("dfuhop-usb-peer: client \(String(format: "%.3f", wall)) s, \(unit.controlTransfers) control transfers\n".utf8))
}

send("QUIT")
server.waitUntilExit()
if let statePath = options.statePath {
    do { try unit.save(to: URL(fileURLWithPath: statePath)) } catch { fail("\(error)") }
}
exit(client.terminationStatus)
