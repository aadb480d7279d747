import Foundation
import HexFormat
import StrictJSON

/// A product dfuhop can upgrade, as data (protocols/devices/*.json): how its application shows up on
/// USB, which MCU it runs on, how its ROM bootloader shows up, how to force the ROM by BOOT0 when the
/// application cannot be asked, which option bytes must hold, and how to talk to its application —
/// dfuhop's HID protocol, or the product's own, described field by field.
public struct ProductProfile: Sendable, Hashable {
    public static let formatVersion = 1

    /// Short id, e.g. "dfuhop-demo-g474": lower-case letters, digits and dashes.
    public var id: String
    public var name: String
    public var family: McuFamily
    public var application: Application
    /// How the ROM bootloader enumerates (AN2606: 0483:DF11 unless the profile says otherwise).
    public var dfu: DFUIdentity
    public var boot0: Boot0Method
    /// How long the unit may take to re-enumerate after entering or leaving the bootloader.
    public var reenumerationTimeout: Duration
    /// Option bytes the unit must have; dfuhop checks them and never changes them on its own (seed 003).
    public var requiredOptionBytes: [OptionByteRequirement]
    /// The flash organisation the required option bytes select (G474: DBANK), else the family's default.
    public var flashMode: FlashMode
    /// Where the product's application starts (its vector table), when not at the family's flash base
    /// (e.g. behind a bootloader of the product's own). `upgrade` refuses images linked elsewhere.
    public var applicationBase: UInt32?
    /// The directory of the file the profile came from: relative hook paths are resolved against it.
    public var sourceDirectory: String?
    /// Which keys sign this product's update packages, and whether only signed packages may be flashed
    /// (docs/packages.md); nil when the profile says nothing.
    public var signing: Signing? = nil
    /// The largest DfuSe data block to send, where the product's ROM takes more than the family's default
    /// (which is the size every public capture of that ROM supports); nil: the family's.
    public var dfuTransferSize: Int? = nil

    public struct Application: Sendable, Hashable {
        public var vendorID: UInt16
        public var productID: UInt16
        public var usagePage: UInt16
        public var usage: UInt16
        public var hidProtocol: ApplicationProtocol
    }

    public enum ApplicationProtocol: Sendable, Hashable {
        /// protocols/hid-app-protocol.md; the image descriptor's product id the unit must report.
        case dfuhop(imageProductID: UInt32)
        /// The product's own commands.
        case legacy(LegacyProtocol)
    }

    public struct DFUIdentity: Sendable, Hashable {
        public var vendorID: UInt16
        public var productID: UInt16
    }

    public enum Boot0Method: Sendable, Hashable {
        /// A person holds BOOT0 and replugs the unit; the text tells them how.
        case prompt(instructions: String)
        /// A program drives BOOT0 and reset (a jig); `{port}` and `{uid}` in its arguments are filled in.
        case command([String])
    }

    public struct Signing: Sendable, Hashable {
        /// Raw 32-byte Ed25519 public keys (RFC 8032); a package verifying with any one is trusted.
        public var publicKeys: [[UInt8]]
        /// Refuse bare images and packages no listed key verifies.
        public var required: Bool

        public init(publicKeys: [[UInt8]], required: Bool) {
            self.publicKeys = publicKeys
            self.required = required
        }
    }

    public struct OptionByteRequirement: Sendable, Hashable, CustomStringConvertible {
        public var name: String
        public var value: UInt32
        public var description: String { "\(name)=\(value)" }
    }
}

/// A profile that cannot be used: which file, which field, and what is wrong with it.
public struct ProductProfileError: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    /// Dotted path into the JSON, e.g. "application.legacy.identify.version.offset"; empty for the whole file.
    public var field: String
    public var problem: String

    public init(file: String, field: String, problem: String) {
        self.file = file
        self.field = field
        self.problem = problem
    }

    public var description: String {
        field.isEmpty ? "\(file): \(problem)" : "\(file): \(field): \(problem)"
    }
}

extension ProductProfile {
    /// Larger than any profile (the examples are about 1 KiB); a bigger file is refused before parsing.
    public static let maximumFileSize = 1 << 20

    /// Reads and checks one profile file.
    public static func load(contentsOf url: URL) throws(ProductProfileError) -> ProductProfile {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw ProductProfileError(file: url.path, field: "", problem: "cannot be read: \(error.localizedDescription)")
        }
        var profile = try decode(data, file: url.path)
        profile.sourceDirectory = url.deletingLastPathComponent().path
        return profile
    }

    /// Every `*.json` in `directory`, sorted by file name; the first bad one stops the load.
    public static func loadAll(in directory: URL) throws(ProductProfileError) -> [ProductProfile] {
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: directory.path) } catch {
            throw ProductProfileError(file: directory.path, field: "", problem: "cannot be listed: \(error.localizedDescription)")
        }
        var profiles: [ProductProfile] = []
        for name in names.sorted() where name.hasSuffix(".json") {
            profiles.append(try load(contentsOf: directory.appendingPathComponent(name)))
        }
        return profiles
    }

    /// Parses and checks a profile; `file` names it in errors.
    public static func decode(_ data: Data, file: String) throws(ProductProfileError) -> ProductProfile {
        guard data.count <= maximumFileSize else {
            throw ProductProfileError(
                file: file, field: "",
                problem: "is \(data.count) bytes; a profile is at most \(maximumFileSize) bytes")
        }
        let raw: ProfileFile
        do { raw = try StrictJSONDecoder(integers: .profile).decode(ProfileFile.self, from: data) } catch {
            throw ProductProfileError(file: file, field: error.path.dotted, problem: error.problem)
        }
        return try ProfileReader(file: file).profile(raw)
    }
}

// MARK: - Reading

/// A profile file as written (protocols/devices/README.md), read by the strict decoder: a key given twice, an
/// unknown key, a null and an integer spelled otherwise than the format allows are refused with their path.
/// `ProfileReader` then checks what JSON's types cannot say.
struct ProfileFile: Decodable {
    var format: Int
    var id: String
    var name: String
    var family: String
    var application: Application
    var dfu: DFU?
    var boot0: Boot0
    var reenumerationTimeoutMs: Int64
    var requiredOptionBytes: [OptionByte]?
    var applicationBase: UInt32?
    var signing: Signing?
    var dfuTransferSize: Int64?

    struct Application: Decodable {
        var usbVendorID: UInt16
        var usbProductID: UInt16
        var hidUsagePage: UInt16?
        var hidUsage: UInt16?
        var `protocol`: String
        var imageProductID: UInt32?
        var legacy: Legacy?
    }

    struct DFU: Decodable {
        var usbVendorID: UInt16
        var usbProductID: UInt16
    }

    struct Boot0: Decodable {
        var method: String
        var instructions: String?
        var command: [String]?
    }

    struct OptionByte: Decodable {
        var name: String
        var value: UInt32
    }

    struct Signing: Decodable {
        var publicKeys: [String]
        var required: Bool
    }

    struct Legacy: Decodable {
        var reports: String
        var reportLength: Int
        var identify: Identify
        var enterBootloader: EnterBootloader
    }

    struct Identify: Decodable {
        var request: String
        var reply: Reply
        var version: Version
        var uidOffset: Int?
        var productID: Field?
    }

    struct Version: Decodable {
        var offset: Int
        var format: String
    }

    struct Field: Decodable {
        var offset: Int
        var width: Int
    }

    struct Reply: Decodable {
        var reportID: UInt8
        var match: [Match]?
    }

    struct Match: Decodable {
        var offset: Int
        var bytes: String
    }

    struct EnterBootloader: Decodable {
        var request: String
        var reply: Reply?
    }
}

/// Turns a decoded profile file into a checked `ProductProfile`, naming the file and the field (dotted path)
/// of the first problem.
private struct ProfileReader {
    var file: String

    func error(_ field: String, _ problem: String) -> ProductProfileError {
        ProductProfileError(file: file, field: field, problem: problem)
    }

    func text(_ text: String, at field: String) throws(ProductProfileError) -> String {
        guard !text.trimmingCharacters(in: .whitespaces).isEmpty else { throw error(field, "must not be empty") }
        return text
    }

    func within<T: FixedWidthInteger>(_ value: T, _ range: ClosedRange<T>, at field: String) throws(ProductProfileError) -> T {
        guard range.contains(value) else { throw error(field, "\(value) is outside \(range.lowerBound)...\(range.upperBound)") }
        return value
    }

    /// Bytes written as hex pairs, spaces allowed: "3F 01 42". ASCII digits only: a digit such as a
    /// fullwidth "３" passes `isHexDigit` but is no byte value, and must not be read as 0.
    func hexBytes(_ text: String, at field: String) throws(ProductProfileError) -> [UInt8] {
        guard let bytes = Hex.bytes(fromHex: try self.text(text, at: field), ignoringSpaces: true) else {
            throw error(field, "must be bytes in hex, e.g. \"3F 01\"")
        }
        return bytes
    }

    func profile(_ raw: ProfileFile) throws(ProductProfileError) -> ProductProfile {
        guard raw.format == ProductProfile.formatVersion else {
            throw error("format", "is \(raw.format); this dfuhop reads profile format \(ProductProfile.formatVersion)")
        }
        let id = try text(raw.id, at: "id")
        guard id.allSatisfy({ ($0.isASCII && ($0.isLowercase || $0.isNumber)) || $0 == "-" }) else {
            throw error("id", "must be lower-case letters, digits and dashes")
        }
        let familyID = try text(raw.family, at: "family")
        if let refused = McuFamily.refusal(for: familyID) {
            throw error("family", "\(refused.name) cannot be upgraded by dfuhop: \(refused.reason)")
        }
        guard let family = McuFamily.named(familyID) else {
            throw error("family", "\"\(familyID)\" is not a known family (known: \(McuFamily.all.map(\.id).joined(separator: ", ")))")
        }
        let requirements = try optionBytes(raw.requiredOptionBytes ?? [])
        var profile = ProductProfile(
            id: id, name: try text(raw.name, at: "name"), family: family,
            application: try application(raw.application),
            dfu: raw.dfu.map { ProductProfile.DFUIdentity(vendorID: $0.usbVendorID, productID: $0.usbProductID) }
                ?? ProductProfile.DFUIdentity(vendorID: family.rom.vendorID, productID: family.rom.productID),
            boot0: try boot0(raw.boot0),
            reenumerationTimeout: .milliseconds(try within(raw.reenumerationTimeoutMs, 100...120_000, at: "reenumerationTimeoutMs")),
            requiredOptionBytes: requirements,
            flashMode: try flashMode(family: family, requirements: requirements),
            applicationBase: try raw.applicationBase.map { base throws(ProductProfileError) in try applicationBase(base, family: family) },
            signing: try raw.signing.map { signing throws(ProductProfileError) in try self.signing(signing) })
        profile.dfuTransferSize = try raw.dfuTransferSize.map { size throws(ProductProfileError) in try transferSize(size) }
        return profile
    }

    /// Optional; a power of two from 64 to 4096 bytes (wTransferSize, DFU 1.1 §4.1.3).
    func transferSize(_ value: Int64) throws(ProductProfileError) -> Int {
        let size = Int(try within(value, 64...4096, at: "dfuTransferSize"))
        guard size & (size - 1) == 0 else { throw error("dfuTransferSize", "\(size) is not a power of two") }
        return size
    }

    /// Optional; inside the family's flash, on a 512-byte boundary (the Cortex-M VTOR alignment that covers
    /// every vector-table size of these parts: ARMv7-M ARM §B3.2.5).
    func applicationBase(_ base: UInt32, family: McuFamily) throws(ProductProfileError) -> UInt32 {
        guard base % 512 == 0, family.defaultFlashMode.layout.sector(containing: base) != nil else {
            throw error("applicationBase", "0x\(String(base, radix: 16)) is not a 512-byte-aligned address in \(family.name)'s flash")
        }
        return base
    }

    /// `"signing": { "publicKeys": ["<base64 of 32 bytes>", ...], "required": true|false }`.
    func signing(_ raw: ProfileFile.Signing) throws(ProductProfileError) -> ProductProfile.Signing {
        var keys: [[UInt8]] = []
        for (index, text) in raw.publicKeys.enumerated() {
            let field = "signing.publicKeys.\(index)"
            guard let data = Data(base64Encoded: try self.text(text, at: field)), data.count == 32 else {
                throw error(field, "must be an Ed25519 public key: the base64 of exactly 32 bytes (a KEY.pub's first word)")
            }
            if let problem = Ed25519KeyCheck.problem(withPublicKey: data) { throw error(field, "\(problem); refused") }
            guard !keys.contains(Array(data)) else { throw error(field, "is listed twice") }
            keys.append(Array(data))
        }
        if raw.required, keys.isEmpty { throw error("signing.publicKeys", "must list at least one key when signing is required") }
        return ProductProfile.Signing(publicKeys: keys, required: raw.required)
    }

    func application(_ raw: ProfileFile.Application) throws(ProductProfileError) -> ProductProfile.Application {
        let kind = try text(raw.`protocol`, at: "application.protocol")
        let hidProtocol: ProductProfile.ApplicationProtocol
        switch kind {
        case "dfuhop":
            if raw.legacy != nil { throw error("application.legacy", "only a \"legacy\" protocol has this") }
            guard let productID = raw.imageProductID else { throw error("application.imageProductID", "is missing") }
            hidProtocol = .dfuhop(imageProductID: productID)
        case "legacy":
            if raw.imageProductID != nil {
                throw error(
                    "application.imageProductID",
                    "only the \"dfuhop\" protocol has this; a legacy product id goes in legacy.identify.productID")
            }
            guard let legacy = raw.legacy else { throw error("application.legacy", "is missing") }
            hidProtocol = .legacy(try self.legacy(legacy))
        default:
            throw error("application.protocol", "\"\(kind)\" is neither \"dfuhop\" nor \"legacy\"")
        }
        // dfuhop's own interface has a fixed usage page and usage (hid-app-protocol.md §2).
        let dfuhop = if case .dfuhop = hidProtocol { true } else { false }
        guard let usagePage = raw.hidUsagePage ?? (dfuhop ? 0xFFDF : nil) else { throw error("application.hidUsagePage", "is missing") }
        guard let usage = raw.hidUsage ?? (dfuhop ? 0x0001 : nil) else { throw error("application.hidUsage", "is missing") }
        return ProductProfile.Application(
            vendorID: raw.usbVendorID, productID: raw.usbProductID, usagePage: usagePage, usage: usage, hidProtocol: hidProtocol)
    }

    static let commandPlaceholders: Set<String> = ["{port}", "{uid}"]

    func boot0(_ raw: ProfileFile.Boot0) throws(ProductProfileError) -> ProductProfile.Boot0Method {
        let method = try text(raw.method, at: "boot0.method")
        switch method {
        case "prompt":
            if raw.command != nil { throw error("boot0.command", "only the \"command\" method has this") }
            guard let instructions = raw.instructions else { throw error("boot0.instructions", "is missing") }
            return .prompt(instructions: try text(instructions, at: "boot0.instructions"))
        case "command":
            if raw.instructions != nil { throw error("boot0.instructions", "only the \"prompt\" method has this") }
            guard let arguments = raw.command, !arguments.isEmpty else {
                throw error("boot0.command", "must be a non-empty array of strings: the program and its arguments")
            }
            for (index, argument) in arguments.enumerated() { try placeholders(argument, at: "boot0.command.\(index)") }
            return .command(arguments)
        default:
            throw error("boot0.method", "\"\(method)\" is neither \"prompt\" nor \"command\"")
        }
    }

    /// Every `{...}` in a command argument is a known placeholder.
    func placeholders(_ argument: String, at field: String) throws(ProductProfileError) {
        var rest = Substring(try text(argument, at: field))
        while let open = rest.firstIndex(of: "{") {
            guard let close = rest[open...].firstIndex(of: "}") else { throw error(field, "has a \"{\" without \"}\"") }
            let placeholder = String(rest[open...close])
            guard Self.commandPlaceholders.contains(placeholder) else {
                throw error(field, "\(placeholder) is not a placeholder (known: {port}, {uid})")
            }
            rest = rest[rest.index(after: close)...]
        }
    }

    func optionBytes(_ items: [ProfileFile.OptionByte]) throws(ProductProfileError) -> [ProductProfile.OptionByteRequirement] {
        var requirements: [ProductProfile.OptionByteRequirement] = []
        for (index, item) in items.enumerated() {
            let field = "requiredOptionBytes.\(index).name"
            let name = try text(item.name, at: field)
            guard name.allSatisfy({ $0.isASCII && ($0.isUppercase || $0.isNumber || $0 == "_") }) else {
                throw error(field, "must be the reference manual's name, upper-case, e.g. \"DBANK\"")
            }
            guard !requirements.contains(where: { $0.name == name }) else { throw error(field, "\(name) is required twice") }
            requirements.append(ProductProfile.OptionByteRequirement(name: name, value: item.value))
        }
        return requirements
    }

    /// A requirement on the option that selects the family's flash organisation picks the mode.
    func flashMode(family: McuFamily, requirements: [ProductProfile.OptionByteRequirement]) throws(ProductProfileError) -> FlashMode {
        for (index, requirement) in requirements.enumerated() {
            let selecting = family.flashModes.filter { $0.selectedBy?.hasPrefix(requirement.name + "=") == true }
            guard !selecting.isEmpty else { continue }
            guard let mode = selecting.first(where: { $0.selectedBy == requirement.description }) else {
                throw error(
                    "requiredOptionBytes.\(index).value",
                    "\(requirement) selects no flash organisation of \(family.name) (known: \(selecting.compactMap(\.selectedBy).joined(separator: ", ")))"
                )
            }
            return mode
        }
        return family.defaultFlashMode
    }

    func legacy(_ raw: ProfileFile.Legacy) throws(ProductProfileError) -> LegacyProtocol {
        let path = "application.legacy"
        let kind = try text(raw.reports, at: path + ".reports")
        guard let reports = LegacyProtocol.Reports(rawValue: kind) else {
            throw error(path + ".reports", "\"\(kind)\" is neither \"interrupt\" nor \"feature\"")
        }
        let length = try within(raw.reportLength, 2...1024, at: path + ".reportLength")

        let identify = raw.identify
        let format = try versionFormat(identify.version.format, at: path + ".identify.version.format")
        let versionOffset = try fieldOffset(
            identify.version.offset, width: format.width, reportLength: length, at: path + ".identify.version.offset")
        let uidOffset = try identify.uidOffset.map { offset throws(ProductProfileError) in
            try fieldOffset(offset, width: 12, reportLength: length, at: path + ".identify.uidOffset")
        }
        let productID = try identify.productID.map { field throws(ProductProfileError) in
            guard [1, 2, 4].contains(field.width) else { throw error(path + ".identify.productID.width", "must be 1, 2 or 4 bytes") }
            let offset = try fieldOffset(field.offset, width: field.width, reportLength: length, at: path + ".identify.productID.offset")
            return LegacyProtocol.IntegerField(offset: offset, width: field.width)
        }
        let identified = LegacyProtocol.Identify(
            request: try request(identify.request, reportLength: length, at: path + ".identify.request"),
            reply: try reply(identify.reply, reportLength: length, at: path + ".identify.reply"),
            version: .init(offset: versionOffset, format: format), uidOffset: uidOffset, productID: productID)

        let enter = LegacyProtocol.EnterBootloader(
            request: try request(raw.enterBootloader.request, reportLength: length, at: path + ".enterBootloader.request"),
            reply: try raw.enterBootloader.reply.map { reply throws(ProductProfileError) in
                try self.reply(reply, reportLength: length, at: path + ".enterBootloader.reply")
            })
        return LegacyProtocol(reports: reports, reportLength: length, identify: identified, enterBootloader: enter)
    }

    func request(_ text: String, reportLength: Int, at field: String) throws(ProductProfileError) -> [UInt8] {
        let bytes = try hexBytes(text, at: field)
        guard !bytes.isEmpty, bytes.count <= reportLength else {
            throw error(field, "must be 1 to \(reportLength) bytes, the report id first")
        }
        return bytes
    }

    func reply(_ raw: ProfileFile.Reply, reportLength: Int, at path: String) throws(ProductProfileError) -> LegacyProtocol.Reply {
        var matches: [LegacyProtocol.ByteMatch] = []
        for (index, item) in (raw.match ?? []).enumerated() {
            let field = "\(path).match.\(index)"
            let bytes = try hexBytes(item.bytes, at: field + ".bytes")
            guard !bytes.isEmpty else { throw error(field + ".bytes", "must hold at least one byte") }
            matches.append(
                .init(
                    offset: try fieldOffset(item.offset, width: bytes.count, reportLength: reportLength, at: field + ".offset"),
                    bytes: bytes))
        }
        return LegacyProtocol.Reply(reportID: raw.reportID, match: matches)
    }

    func fieldOffset(_ offset: Int, width: Int, reportLength: Int, at field: String) throws(ProductProfileError) -> Int {
        // Compared by subtraction: an offset near Int.max must be refused, not overflow.
        guard offset >= 1, offset <= reportLength - width else {
            throw error(field, "a \(width)-byte field at \(offset) does not fit after the report id of a \(reportLength)-byte report")
        }
        return offset
    }

    func versionFormat(_ raw: String, at field: String) throws(ProductProfileError) -> LegacyProtocol.VersionFormat {
        let text = try self.text(raw, at: field)
        let components = text.split(separator: ".", omittingEmptySubsequences: false)
        if (2...4).contains(components.count), components.allSatisfy({ $0 == "u8" }) { return .bytes(count: components.count) }
        if (2...4).contains(components.count), components.allSatisfy({ $0 == "u16" }) { return .littleEndian16(count: components.count) }
        if text == "bcd16" { return .bcd16 }
        if text.hasPrefix("ascii:"), let length = Int(text.dropFirst(6)), (3...32).contains(length) { return .ascii(length: length) }
        throw error(field, "\"\(text)\" is not a version format (u8.u8[.u8[.u8]], u16.u16[.u16[.u16]], bcd16, ascii:N with N 3...32)")
    }
}
