import ArgumentParser
import DeviceProfiles
import DfuSe
import FirmwareImage
import Foundation
import HexFormat
import Recording
import USBTransport
import UpgradeEngine

/// `dfuhop list`: what is on the bus that dfuhop can talk to.
struct ListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List units and classify them: programmed, corrupted, or in DFU.",
        discussion: """
            Shows every STM32 ROM bootloader (DfuSe, 0483:df11) with its serial number, port path and memory \
            layout, and every HID interface on dfuhop's vendor usage page (0xFFDF). Each application is asked \
            GET_INFO (nothing changes on it): one that answers is "programmed" (with its version and unique \
            ID), one that does not is "corrupted". A ROM is "in-dfu": blank, or an interrupted upgrade \
            (`dfuhop upgrade` reads its vector table to tell). A blank part without an empty check shows \
            nothing at all until BOOT0 is held.

            Examples:
              dfuhop list
              dfuhop list --json
              dfuhop list --simulate l476:blank
            """)

    @OptionGroup var device: DeviceOptions
    @Flag(help: "One JSON object per unit, one per line.") var json = false

    func run() async throws {
        try await runCommand("list", json: json) {
            let session = try DeviceSession.open(device)
            let (devices, units, problems) = try await session.run {
                let devices = try await session.discovery.devices()
                let units = try await UpgradeEngine(discovery: session.discovery, clock: session.clock).survey(skippingRefused: true)
                return (devices, units, await unreadable(devices, described: units, on: session))
            }
            let listing = Listing(session: session, units: units, problems: problems)
            if devices.isEmpty, !json { Output.print("no units found") }
            var result = ResultLine("listed")
            result.devices = []
            for found in devices {
                if json {
                    result.devices?.append(listing.json(found))
                } else {
                    for line in listing.lines(found) { Output.print(line) }
                }
            }
            return result
        }
    }

    /// What `list` shows of each device: the survey's classification by port, and why a device could not be read.
    private struct Listing {
        let session: DeviceSession
        let classified: [String: UnitDescription]
        let problems: [String: String]

        init(session: DeviceSession, units: [UnitDescription], problems: [String: String]) {
            self.session = session
            classified = Dictionary(units.compactMap { unit in unit.portPath.map { ($0, unit) } }) { first, _ in first }
            self.problems = problems
        }

        /// The classification at `port`, with the version and UID where known.
        func state(_ port: String) -> String {
            guard let unit = classified[port] else { return "unknown" }
            var text = unit.classification.rawValue
            if let version = unit.version { text += " \(version)" }
            if let uid = unit.uid { text += " uid \(uid)" }
            return text
        }

        /// The device's object in `list --json`.
        func json(_ found: DiscoveredDevice) -> DeviceJSON {
            switch found {
            case .dfu(let identity, let alternates):
                let family = session.family(alternateSettings: alternates, identity: identity)
                let classification = classified[identity.portPath]?.classification.rawValue ?? "unknown"
                return DeviceJSON(
                    kind: "dfu", classification: classification,
                    vidPid: identity.vidPid, serial: identity.serialNumber, port: identity.portPath,
                    family: family?.id, alternateSettings: alternates.map(\.name), problem: problems[identity.portPath])
            case .hid(let info):
                let unit = classified[info.usb.portPath]
                return DeviceJSON(
                    kind: "hid", classification: unit?.classification.rawValue ?? "unknown",
                    vidPid: info.usb.vidPid, serial: info.usb.serialNumber, port: info.usb.portPath,
                    family: unit?.familyID, product: info.usb.product,
                    usagePage: "0x" + Hex.digits(info.usagePage, width: 4),
                    version: unit?.version?.description, uid: unit?.uid?.description,
                    problem: problems[info.usb.portPath])
            }
        }

        /// The device's lines in `list`.
        func lines(_ found: DiscoveredDevice) -> [String] {
            switch found {
            case .dfu(let identity, let alternates):
                let family = session.family(alternateSettings: alternates, identity: identity)
                var lines = [
                    "DFU  \(identity.vidPid)  serial \(TerminalText.escaped(identity.serialNumber ?? "-"))  port \(identity.portPath)  \(family?.name ?? "unknown family")  \(state(identity.portPath))"
                ]
                for alternate in alternates { lines.append("       alt \(alternate.number): \(TerminalText.escaped(alternate.name))") }
                if let problem = problems[identity.portPath] { lines.append("       cannot be read: \(problem); run `dfuhop doctor`") }
                return lines
            case .hid(let info):
                var lines = [
                    "HID  \(info.usb.vidPid)  serial \(TerminalText.escaped(info.usb.serialNumber ?? "-"))  port \(info.usb.portPath)  \(TerminalText.escaped(info.usb.product ?? ""))  \(state(info.usb.portPath))"
                ]
                if let problem = problems[info.usb.portPath] { lines.append("       cannot be read: \(problem); run `dfuhop doctor`") }
                return lines
            }
        }
    }

    /// Why a device could not be read, by port: a ROM listed without the names of its alternate settings, or an
    /// application the survey could not describe (opening it again says why, e.g. the OS refusing its node).
    private func unreadable(
        _ devices: [DiscoveredDevice], described units: [UnitDescription], on session: DeviceSession
    ) async -> [String: String] {
        let described = Set(units.compactMap(\.portPath))
        var problems: [String: String] = [:]
        for device in devices {
            do {
                switch device {
                case .dfu(let identity, let alternates):
                    try await session.discovery.explainUnreadDFU(identity, alternates: alternates)
                case .hid(let info) where !described.contains(info.usb.portPath):
                    try await session.discovery.openHID(info).close()
                case .hid: break
                }
            } catch {
                problems[device.identity.portPath] = error.description
            }
        }
        return problems
    }
}

/// `dfuhop flash IMAGE`: erase what the image touches, write it (vector table last), verify.
struct FlashCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flash",
        abstract: "Flash an image into a unit that is already in DFU mode.",
        discussion: """
            dfuhop plans before it touches the unit: it erases only the sectors the image covers, writes the \
            sector holding the vector table last (so an interrupted flash never leaves a half image that \
            looks bootable), refuses sectors the layout marks not erasable or not writable, and verifies by \
            reading back. The image is padded to the part's flash word, so no word is written twice.

            Examples:
              dfuhop flash app.hex --dry-run      # print the plan, touch nothing
              dfuhop flash app.dfu --leave        # flash, verify, start the app
              dfuhop flash app.bin --address 0x08004000 --unit 1-2.3
              dfuhop flash protocols/examples/demo-g474-v2.hex --simulate g474:dfu
            """)

    @Argument(help: "The image: .hex, .srec, .elf, .dfu or raw .bin.", completion: .file()) var image: String
    @Option(help: ArgumentHelp("Where a raw binary goes (0x hex).", valueName: "address")) var address = Address(0x0800_0000)
    @Flag(help: "Print the plan and stop; nothing is sent to the unit.") var dryRun = false
    @Flag(help: "Skip reading back what was written (faster, less safe).") var noVerify = false
    @Flag(help: "Leave DFU afterwards so the application starts.") var leave = false
    @Flag(help: "Write an unsigned image although its product's profile requires signed packages (said in the result).")
    var allowUnsigned = false
    @Option(help: ArgumentHelp("Product profile file or directory; repeatable (default: the installed profiles).", valueName: "path"))
    var profile: [String] = []
    @Flag(help: "Progress as JSON lines, then a result object.") var json = false
    @OptionGroup var device: DeviceOptions

    func run() async throws {
        try await runCommand("flash", json: json) {
            let profiles = try Profiles.load(profile)
            let station = try StationPolicy.requiresSignature(stateDirectory: JournalStore.defaultDirectory())
            let file = try ImageFile.read(path: image, options: ReadOptions(binaryAddress: address.value))
            let inputs = { [try RecordedInputs.file(image, role: "image")] }
            return try await DeviceSession.withDFUTarget(device, json: json, inputs: inputs) { unit, engine, renderer in
                var options = UpgradeEngine.FlashOptions()
                (options.verify, options.dryRun, options.leave, options.source) = (!noVerify, dryRun, leave, image)
                options.profiles = profiles
                options.signing = SigningPolicy(stationRequiresSignature: station, allowUnsigned: allowUnsigned)
                let flashed = try await engine.flash(file, on: unit, options: options)
                renderer.finish()
                guard let report = flashed.report else {
                    if !json { for line in PlanText.lines(flashed.plan) { Output.print(line) } }
                    var result = ResultLine("planned")
                    result.plan = PlanJSON(flashed.plan)
                    return result
                }
                var result = ResultLine("flashed")
                result.allowedUnsigned = allowUnsigned ? true : nil
                result.unit = UnitJSON(port: unit.identity.portPath, romSerial: unit.identity.serialNumber)
                result.flash = FlashJSON(report)
                result.jumpTo = flashed.jumpTo.map(Hex.word)
                result.leave = flashed.leave?.rawValue
                if !json {
                    let verified = noVerify ? "not verified" : "verified \(ProgressBar.bytes(report.bytesVerified))"
                    Output.print(
                        "flashed \(ProgressBar.bytes(report.bytesWritten)) in \(report.erasedSectors) sectors, \(verified), "
                            + "\(report.controlTransfers) control transfers, \(String(format: "%.2f", report.duration.seconds)) s")
                    if let jump = flashed.jumpTo { Output.print("left DFU, jumping to \(Hex.word(jump))") }
                }
                return result
            }
        }
    }
}

/// `dfuhop read`: upload memory to a file.
struct ReadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "read",
        abstract: "Read memory from a unit in DFU mode into a file.",
        discussion: """
            The output format follows the file's extension (.hex, .srec, .dfu, anything else raw binary), or --format. \
            Without --length, the read runs to the end of the memory the alternate setting shows (like \
            dfu-util -U); without --address, it starts at that memory's start. From the internal flash (alternate \
            setting 0), the read is widened to whole flash words of the part, so that any client can write the file \
            back without writing a word twice.

            Examples:
              dfuhop read -o backup.hex
              dfuhop read --address 0x08000000 --length 64K -o backup.hex
              dfuhop read --address 0x1FFF7800 --length 48 --alt-setting 1 -o options.bin
            """)

    @Option(help: ArgumentHelp("First address to read (0x hex; default: the start of the alternate's memory).", valueName: "address"))
    var address: Address?
    @Option(help: ArgumentHelp("Bytes to read: 4096, 0x1000, 4K or 1M (default: to the end of that memory).", valueName: "size"))
    var length: ByteCount?
    @Option(name: .shortAndLong, help: ArgumentHelp("Output file.", valueName: "file"), completion: .file()) var output: String
    @Option(help: ArgumentHelp("Output format: bin, hex, srec or dfu.", valueName: "format"), completion: .imageFormats) var format: String?
    @Option(help: ArgumentHelp("Alternate setting (memory) to read from; 0 is the internal flash.", valueName: "n")) var altSetting: UInt8 =
        0
    @Flag(help: "Progress as JSON lines, then a result object.") var json = false
    @OptionGroup var device: DeviceOptions

    func run() async throws {
        try await runCommand("read", json: json) {
            if let address, let length, length.value > 0x1_0000_0000 - UInt64(address.value) {
                throw Failure(.usage, "--length \(length) runs past the end of the 32-bit address space from \(address)")
            }
            let outputFormat = try format.map(formatNamed) ?? ImageReader.formatForExtension(of: output) ?? .binary
            return try await DeviceSession.withDFUTarget(device, json: json) { unit, engine, renderer in
                let (requested, count) = try readRange(
                    start: address?.value, count: length?.value, alternate: altSetting, in: unit.alternateSettings)
                // The internal flash is read in whole flash words, so the file can be written back by any client
                // without writing a word twice (issue 25); the widened bytes are the unit's, not padding.
                let start = UInt64(requested)
                let word = altSetting == 0 ? UInt64(unit.family.writeGranularity) : 1
                let (first, end) = (start & ~(word - 1), (start + count + word - 1) & ~(word - 1))
                _ = try readRange(start: UInt32(first), count: end - first, alternate: altSetting, in: unit.alternateSettings)
                let bytes = try await engine.read(
                    from: unit, address: UInt32(first), length: Int(end - first),
                    alternateSetting: altSetting)
                renderer.finish()
                let image = FirmwareImage(format: outputFormat, segments: [Segment(address: UInt32(first), bytes: bytes)])
                try ImageFile.write(image, to: output, as: outputFormat)
                var result = ResultLine("read")
                (result.address, result.length, result.file) = (Hex.word(UInt32(first)), bytes.count, output)
                result.crc32 = Hex.word(CRC32.zlib(bytes))
                if !json {
                    if (first, end) != (start, start + count) {
                        Output.print(
                            "widened to whole \(word)-byte flash words of \(unit.family.name): \(Hex.word(UInt32(first)))-\(Hex.word(UInt32(end - 1)))"
                        )
                    }
                    Output.print(
                        "read \(ProgressBar.bytes(bytes.count)) from \(Hex.word(UInt32(first))) into \(output) (crc32 0x\(Hex.digits(CRC32.zlib(bytes), width: 8)))"
                    )
                }
                return result
            }
        }
    }
}

/// `dfuhop leave`: start the application from the ROM.
struct LeaveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "leave",
        abstract: "Leave DFU mode so the application starts.",
        discussion: """
            Without --address, dfuhop picks the jump the family's ROM needs: the vector table base on F4, L4 \
            and G4; the application's reset handler (read from word 1 of the vector table in flash) on H7, \
            whose ROM jumps straight to the address (seed 001). The unit leaves the bus; that is success.

            Examples:
              dfuhop leave
              dfuhop leave --address 0x0800BA65
            """)

    @Option(help: ArgumentHelp("Jump target (0x hex).", valueName: "address")) var address: Address?
    @Flag(help: "A result object as JSON.") var json = false
    @OptionGroup var device: DeviceOptions

    func run() async throws {
        try await runCommand("leave", json: json) {
            try await DeviceSession.withDFUTarget(device, json: json) { unit, engine, renderer in
                let (target, outcome) = try await engine.leave(unit, address: address?.value)
                renderer.finish()
                var result = ResultLine("left")
                (result.jumpTo, result.leave) = (Hex.word(target), outcome.rawValue)
                if !json {
                    Output.print(
                        "left DFU, jumping to \(Hex.word(target)) (\(outcome == .deviceLeftBus ? "the unit left the bus" : "the unit is manifesting"))"
                    )
                }
                return result
            }
        }
    }
}

/// `dfuhop erase`: explicit erases only.
struct EraseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "erase",
        abstract: "Erase sectors, or the whole flash, of a unit in DFU mode.",
        discussion: """
            Nothing is erased unless named: give the sectors by any address inside them, or --mass-erase \
            for everything. Sectors the layout marks not erasable are refused before anything is sent. \
            --read-unprotect sets read protection back to level 0 on a level-1 unit: the MCU erases its \
            whole flash doing so, and resets (the only way out of level 1; level 2 is permanent).

            Examples:
              dfuhop erase --sector 0x08004000 --sector 0x08008000
              dfuhop erase --mass-erase
              dfuhop erase --read-unprotect
            """)

    @Option(name: .customLong("sector"), help: ArgumentHelp("An address inside a sector to erase (repeatable).", valueName: "address"))
    var sectors: [Address] = []
    @Flag(help: "Erase the whole flash (a long operation; F4 takes up to 35 s).") var massErase = false
    @Flag(help: "Clear read protection level 1: erases the whole flash and resets the unit.") var readUnprotect = false
    @Flag(help: "A result object as JSON.") var json = false
    @OptionGroup var device: DeviceOptions

    func validate() throws {
        guard [massErase, readUnprotect, !sectors.isEmpty].filter({ $0 }).count == 1 else {
            throw ValidationError("name exactly one of: --sector ADDRESS (repeatable), --mass-erase, --read-unprotect")
        }
    }

    func run() async throws {
        try await runCommand("erase", json: json) {
            let addresses = sectors.map(\.value)
            return try await DeviceSession.withDFUTarget(device, json: json) { unit, engine, renderer in
                let request: UpgradeEngine.EraseRequest = readUnprotect ? .readUnprotect : massErase ? .massErase : .sectors(addresses)
                let erased = try await engine.erase(unit, request)
                renderer.finish()
                if case .readUnprotected(let reset) = erased {
                    if !json { Output.print("read protection cleared: the flash is erased" + (reset ? " and the unit reset" : "")) }
                    var result = ResultLine("read-unprotected")
                    result.deviceReset = reset
                    return result
                }
                var result = ResultLine("erased")
                if case .sectors(let count) = erased {
                    result.erasedSectors = count
                    if !json { Output.print("erased \(count) sector\(count == 1 ? "" : "s")") }
                } else {
                    result.massErased = true
                    if !json { Output.print("erased the whole flash") }
                }
                return result
            }
        }
    }
}

/// The range a read covers. Without an address, the read starts where the memory starts; without a length,
/// it runs to the end of the contiguous memory holding the start (dfu-util -U reads the whole alternate).
func readRange(start: UInt32?, count: UInt64?, alternate: UInt8, in settings: [DFUAlternateSetting]) throws -> (UInt32, UInt64) {
    guard let name = settings.first(where: { $0.number == alternate })?.name else {
        throw Failure(
            .usage,
            "the unit has no alternate setting \(alternate) (it shows \(settings.map { String($0.number) }.joined(separator: ", ")))")
    }
    guard let layout = try? FlashLayout(parsing: name) else {
        guard let start, let count else {
            throw Failure(.usage, "alternate setting \(alternate) (\(name)) shows no memory layout: give --address and --length")
        }
        return (start, count)
    }
    let ranges = contiguousRanges(layout)
    let first = start ?? UInt32(truncatingIfNeeded: ranges.first?.lowerBound ?? 0)
    let whole = ranges.first { $0.contains(UInt64(first)) }.map { $0.upperBound - UInt64(first) }
    guard let length = count ?? whole, length > 0 else {
        throw Failure(
            .usage, "\(Hex.word(first)) is not inside the memory alternate setting \(alternate) shows",
            hint: "nothing was read; pick an address inside it")
    }
    try checkReadRange(start: first, count: length, alternate: alternate, layout: layout, ranges: ranges)
    return (first, length)
}

/// The layout's zones, contiguous ones (two banks back to back) merged into one range.
func contiguousRanges(_ layout: FlashLayout) -> [Range<UInt64>] {
    layout.zones.map { UInt64($0.start)..<$0.end }.sorted { $0.lowerBound < $1.lowerBound }
        .reduce(into: [Range<UInt64>]()) { merged, range in
            if let last = merged.last, last.upperBound == range.lowerBound {
                merged[merged.count - 1] = last.lowerBound..<range.upperBound
            } else {
                merged.append(range)
            }
        }
}

/// A read must lie inside the memory the alternate setting shows; outside it, the ROM stalls and a
/// "USB failure" would hide a wrong address.
func checkReadRange(start: UInt32, count: UInt64, alternate: UInt8, layout: FlashLayout, ranges: [Range<UInt64>]) throws {
    let end = UInt64(start) + count
    let inside = ranges.contains { $0.lowerBound <= UInt64(start) && end <= $0.upperBound }
    guard inside else {
        throw Failure(
            .usage,
            "[\(Hex.word(start)), \(Hex.word(UInt32(truncatingIfNeeded: end)))) is not inside the memory alternate setting "
                + "\(alternate) shows (\(layout.zones.map { "[\(Hex.word($0.start)), \(Hex.word(UInt32(truncatingIfNeeded: $0.end))))" }.joined(separator: ", ")))",
            hint: "nothing was read; pick an address and length inside it")
    }
}
