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
        let root: JSONValue
        do { root = try JSONValue.parse(data) } catch {
            // A key given twice is named by its path; a syntax error by the byte where reading stopped.
            throw ProductProfileError(
                file: file, field: error.path.dotted, problem: "is not valid JSON (\(error.problem) at byte \(error.offset))")
        }
        return try ProfileReader(file: file).profile(JSONCursor(value: root, path: []))
    }
}

// MARK: - Reading

/// A position in the JSON document, for reading one value and naming it in errors.
private struct JSONCursor {
    var value: JSONValue?
    var path: [String]

    var name: String { path.joined(separator: ".") }

    subscript(key: String) -> JSONCursor {
        guard case .object(let members) = value else { return JSONCursor(value: nil, path: path + [key]) }
        return JSONCursor(value: members[key], path: path + [key])
    }

    var isPresent: Bool {
        if case .some(.null) = value { return false }
        return value != nil
    }
}

/// Turns JSON into a checked `ProductProfile`, naming the file and the field of the first problem.
private struct ProfileReader {
    var file: String

    func error(_ cursor: JSONCursor, _ problem: String) -> ProductProfileError {
        ProductProfileError(file: file, field: cursor.name, problem: problem)
    }

    func object(_ cursor: JSONCursor, allowing keys: Set<String>) throws(ProductProfileError) -> [String: JSONValue] {
        guard case .object(let members) = cursor.value else { throw error(cursor, cursor.isPresent ? "must be an object" : "is missing") }
        if let unknown = members.keys.sorted().first(where: { !keys.contains($0) }) {
            throw error(cursor[unknown], "is not a field of this object (known: \(keys.sorted().joined(separator: ", ")))")
        }
        return members
    }

    func string(_ cursor: JSONCursor) throws(ProductProfileError) -> String {
        guard case .string(let text) = cursor.value else { throw error(cursor, cursor.isPresent ? "must be a string" : "is missing") }
        guard !text.trimmingCharacters(in: .whitespaces).isEmpty else { throw error(cursor, "must not be empty") }
        return text
    }

    /// The integer rule (`IntegerSpelling.profile`): a JSON integer, or a string holding a decimal or 0x-hex
    /// number, within `T`'s range.
    func integer<T: FixedWidthInteger>(_ cursor: JSONCursor, _: T.Type = T.self) throws(ProductProfileError) -> T {
        guard let value = cursor.value, value != .null else { throw error(cursor, "is missing") }
        do { return try value.integer(T.self, spelling: .profile) } catch let problem { throw error(cursor, problem.description) }
    }

    func integer<T: FixedWidthInteger>(_ cursor: JSONCursor, in range: ClosedRange<T>) throws(ProductProfileError) -> T {
        let value: T = try integer(cursor)
        guard range.contains(value) else { throw error(cursor, "\(value) is outside \(range.lowerBound)...\(range.upperBound)") }
        return value
    }

    /// Bytes written as hex pairs, spaces allowed: "3F 01 42". ASCII digits only: a digit such as a
    /// fullwidth "３" passes `isHexDigit` but is no byte value, and must not be read as 0.
    func hexBytes(_ cursor: JSONCursor) throws(ProductProfileError) -> [UInt8] {
        guard let bytes = Hex.bytes(fromHex: try string(cursor), ignoringSpaces: true) else {
            throw error(cursor, "must be bytes in hex, e.g. \"3F 01\"")
        }
        return bytes
    }

    func profile(_ root: JSONCursor) throws(ProductProfileError) -> ProductProfile {
        _ = try object(
            root,
            allowing: [
                "format", "id", "name", "family", "application", "dfu", "boot0",
                "reenumerationTimeoutMs", "requiredOptionBytes", "applicationBase", "signing", "dfuTransferSize"
            ])
        let format: Int = try integer(root["format"])
        guard format == ProductProfile.formatVersion else {
            throw error(root["format"], "is \(format); this dfuhop reads profile format \(ProductProfile.formatVersion)")
        }
        let id = try string(root["id"])
        guard id.allSatisfy({ ($0.isASCII && ($0.isLowercase || $0.isNumber)) || $0 == "-" }) else {
            throw error(root["id"], "must be lower-case letters, digits and dashes")
        }
        let familyID = try string(root["family"])
        if let refused = McuFamily.refusal(for: familyID) {
            throw error(root["family"], "\(refused.name) cannot be upgraded by dfuhop: \(refused.reason)")
        }
        guard let family = McuFamily.named(familyID) else {
            throw error(root["family"], "\"\(familyID)\" is not a known family (known: \(McuFamily.all.map(\.id).joined(separator: ", ")))")
        }
        let requirements = try optionBytes(root["requiredOptionBytes"])
        var profile = ProductProfile(
            id: id, name: try string(root["name"]), family: family,
            application: try application(root["application"]),
            dfu: try dfuIdentity(root["dfu"], family: family),
            boot0: try boot0(root["boot0"]),
            reenumerationTimeout: .milliseconds(try integer(root["reenumerationTimeoutMs"], in: Int64(100)...120_000)),
            requiredOptionBytes: requirements,
            flashMode: try flashMode(family: family, requirements: requirements, at: root["requiredOptionBytes"]),
            applicationBase: try applicationBase(root["applicationBase"], family: family),
            signing: try signing(root["signing"]))
        profile.dfuTransferSize = try transferSize(root["dfuTransferSize"])
        return profile
    }

    /// Optional; a power of two from 64 to 4096 bytes (wTransferSize, DFU 1.1 §4.1.3).
    func transferSize(_ cursor: JSONCursor) throws(ProductProfileError) -> Int? {
        guard cursor.isPresent else { return nil }
        let size = Int(try integer(cursor, in: Int64(64)...4096))
        guard size & (size - 1) == 0 else { throw error(cursor, "\(size) is not a power of two") }
        return size
    }

    /// Optional; inside the family's flash, on a 512-byte boundary (the Cortex-M VTOR alignment that covers
    /// every vector-table size of these parts: ARMv7-M ARM §B3.2.5).
    func applicationBase(_ cursor: JSONCursor, family: McuFamily) throws(ProductProfileError) -> UInt32? {
        guard cursor.isPresent else { return nil }
        let base: UInt32 = try integer(cursor)
        guard base % 512 == 0, family.defaultFlashMode.layout.sector(containing: base) != nil else {
            throw error(cursor, "0x\(String(base, radix: 16)) is not a 512-byte-aligned address in \(family.name)'s flash")
        }
        return base
    }

    /// `"signing": { "publicKeys": ["<base64 of 32 bytes>", ...], "required": true|false }`.
    func signing(_ cursor: JSONCursor) throws(ProductProfileError) -> ProductProfile.Signing? {
        guard cursor.isPresent else { return nil }
        _ = try object(cursor, allowing: ["publicKeys", "required"])
        guard case .bool(let required) = cursor["required"].value else {
            throw error(cursor["required"], cursor["required"].isPresent ? "must be true or false" : "is missing")
        }
        guard case .array(let items) = cursor["publicKeys"].value else {
            throw error(cursor["publicKeys"], cursor["publicKeys"].isPresent ? "must be an array of strings" : "is missing")
        }
        var keys: [[UInt8]] = []
        for index in items.indices {
            let item = JSONCursor(value: items[index], path: cursor["publicKeys"].path + ["\(index)"])
            guard let data = Data(base64Encoded: try string(item)), data.count == 32 else {
                throw error(item, "must be an Ed25519 public key: the base64 of exactly 32 bytes (a KEY.pub's first word)")
            }
            if let problem = Ed25519KeyCheck.problem(withPublicKey: data) { throw error(item, "\(problem); refused") }
            guard !keys.contains(Array(data)) else { throw error(item, "is listed twice") }
            keys.append(Array(data))
        }
        if required, keys.isEmpty { throw error(cursor["publicKeys"], "must list at least one key when signing is required") }
        return ProductProfile.Signing(publicKeys: keys, required: required)
    }

    func application(_ cursor: JSONCursor) throws(ProductProfileError) -> ProductProfile.Application {
        _ = try object(
            cursor,
            allowing: [
                "usbVendorID", "usbProductID", "hidUsagePage", "hidUsage", "protocol",
                "imageProductID", "legacy"
            ])
        let kind = try string(cursor["protocol"])
        let hidProtocol: ProductProfile.ApplicationProtocol
        switch kind {
        case "dfuhop":
            if cursor["legacy"].isPresent { throw error(cursor["legacy"], "only a \"legacy\" protocol has this") }
            hidProtocol = .dfuhop(imageProductID: try integer(cursor["imageProductID"]))
        case "legacy":
            if cursor["imageProductID"].isPresent {
                throw error(
                    cursor["imageProductID"], "only the \"dfuhop\" protocol has this; a legacy product id goes in legacy.identify.productID"
                )
            }
            hidProtocol = .legacy(try legacy(cursor["legacy"]))
        default:
            throw error(cursor["protocol"], "\"\(kind)\" is neither \"dfuhop\" nor \"legacy\"")
        }
        // dfuhop's own interface has a fixed usage page and usage (hid-app-protocol.md §2).
        let dfuhop = if case .dfuhop = hidProtocol { true } else { false }
        return ProductProfile.Application(
            vendorID: try integer(cursor["usbVendorID"]), productID: try integer(cursor["usbProductID"]),
            usagePage: dfuhop && !cursor["hidUsagePage"].isPresent ? 0xFFDF : try integer(cursor["hidUsagePage"]),
            usage: dfuhop && !cursor["hidUsage"].isPresent ? 0x0001 : try integer(cursor["hidUsage"]),
            hidProtocol: hidProtocol)
    }

    func dfuIdentity(_ cursor: JSONCursor, family: McuFamily) throws(ProductProfileError) -> ProductProfile.DFUIdentity {
        guard cursor.isPresent else {
            return ProductProfile.DFUIdentity(vendorID: family.rom.vendorID, productID: family.rom.productID)
        }
        _ = try object(cursor, allowing: ["usbVendorID", "usbProductID"])
        return ProductProfile.DFUIdentity(vendorID: try integer(cursor["usbVendorID"]), productID: try integer(cursor["usbProductID"]))
    }

    static let commandPlaceholders: Set<String> = ["{port}", "{uid}"]

    func boot0(_ cursor: JSONCursor) throws(ProductProfileError) -> ProductProfile.Boot0Method {
        _ = try object(cursor, allowing: ["method", "instructions", "command"])
        let method = try string(cursor["method"])
        switch method {
        case "prompt":
            if cursor["command"].isPresent { throw error(cursor["command"], "only the \"command\" method has this") }
            return .prompt(instructions: try string(cursor["instructions"]))
        case "command":
            if cursor["instructions"].isPresent { throw error(cursor["instructions"], "only the \"prompt\" method has this") }
            guard case .array(let items) = cursor["command"].value, !items.isEmpty else {
                throw error(cursor["command"], "must be a non-empty array of strings: the program and its arguments")
            }
            var arguments: [String] = []
            for index in items.indices {
                let item = JSONCursor(value: items[index], path: cursor["command"].path + ["\(index)"])
                let argument = try string(item)
                var rest = Substring(argument)
                while let open = rest.firstIndex(of: "{") {
                    guard let close = rest[open...].firstIndex(of: "}") else { throw error(item, "has a \"{\" without \"}\"") }
                    let placeholder = String(rest[open...close])
                    guard Self.commandPlaceholders.contains(placeholder) else {
                        throw error(item, "\(placeholder) is not a placeholder (known: {port}, {uid})")
                    }
                    rest = rest[rest.index(after: close)...]
                }
                arguments.append(argument)
            }
            return .command(arguments)
        default:
            throw error(cursor["method"], "\"\(method)\" is neither \"prompt\" nor \"command\"")
        }
    }

    func optionBytes(_ cursor: JSONCursor) throws(ProductProfileError) -> [ProductProfile.OptionByteRequirement] {
        guard cursor.isPresent else { return [] }
        guard case .array(let items) = cursor.value else { throw error(cursor, "must be an array") }
        var requirements: [ProductProfile.OptionByteRequirement] = []
        for index in items.indices {
            let item = JSONCursor(value: items[index], path: cursor.path + ["\(index)"])
            _ = try object(item, allowing: ["name", "value"])
            let name = try string(item["name"])
            guard name.allSatisfy({ $0.isASCII && ($0.isUppercase || $0.isNumber || $0 == "_") }) else {
                throw error(item["name"], "must be the reference manual's name, upper-case, e.g. \"DBANK\"")
            }
            guard !requirements.contains(where: { $0.name == name }) else { throw error(item["name"], "\(name) is required twice") }
            requirements.append(ProductProfile.OptionByteRequirement(name: name, value: try integer(item["value"])))
        }
        return requirements
    }

    /// A requirement on the option that selects the family's flash organisation picks the mode.
    func flashMode(
        family: McuFamily, requirements: [ProductProfile.OptionByteRequirement],
        at cursor: JSONCursor
    ) throws(ProductProfileError) -> FlashMode {
        for (index, requirement) in requirements.enumerated() {
            let selecting = family.flashModes.filter { $0.selectedBy?.hasPrefix(requirement.name + "=") == true }
            guard !selecting.isEmpty else { continue }
            guard let mode = selecting.first(where: { $0.selectedBy == requirement.description }) else {
                throw error(
                    JSONCursor(value: nil, path: cursor.path + ["\(index)", "value"]),
                    "\(requirement) selects no flash organisation of \(family.name) (known: \(selecting.compactMap(\.selectedBy).joined(separator: ", ")))"
                )
            }
            return mode
        }
        return family.defaultFlashMode
    }

    func legacy(_ cursor: JSONCursor) throws(ProductProfileError) -> LegacyProtocol {
        _ = try object(cursor, allowing: ["reports", "reportLength", "identify", "enterBootloader"])
        let kind = try string(cursor["reports"])
        guard let reports = LegacyProtocol.Reports(rawValue: kind) else {
            throw error(cursor["reports"], "\"\(kind)\" is neither \"interrupt\" nor \"feature\"")
        }
        let length: Int = try integer(cursor["reportLength"], in: 2...1024)

        let identifyCursor = cursor["identify"]
        _ = try object(identifyCursor, allowing: ["request", "reply", "version", "uidOffset", "productID"])
        let versionCursor = identifyCursor["version"]
        _ = try object(versionCursor, allowing: ["offset", "format"])
        let format = try versionFormat(versionCursor["format"])
        let versionOffset = try fieldOffset(versionCursor["offset"], width: format.width, reportLength: length)
        var uidOffset: Int?
        if identifyCursor["uidOffset"].isPresent {
            uidOffset = try fieldOffset(identifyCursor["uidOffset"], width: 12, reportLength: length)
        }
        var productID: LegacyProtocol.IntegerField?
        let productCursor = identifyCursor["productID"]
        if productCursor.isPresent {
            _ = try object(productCursor, allowing: ["offset", "width"])
            let width: Int = try integer(productCursor["width"])
            guard [1, 2, 4].contains(width) else { throw error(productCursor["width"], "must be 1, 2 or 4 bytes") }
            productID = .init(offset: try fieldOffset(productCursor["offset"], width: width, reportLength: length), width: width)
        }
        let identify = LegacyProtocol.Identify(
            request: try request(identifyCursor["request"], reportLength: length),
            reply: try reply(identifyCursor["reply"], reportLength: length),
            version: .init(offset: versionOffset, format: format), uidOffset: uidOffset, productID: productID)

        let enterCursor = cursor["enterBootloader"]
        _ = try object(enterCursor, allowing: ["request", "reply"])
        let enter = LegacyProtocol.EnterBootloader(
            request: try request(enterCursor["request"], reportLength: length),
            reply: enterCursor["reply"].isPresent ? try reply(enterCursor["reply"], reportLength: length) : nil)
        return LegacyProtocol(reports: reports, reportLength: length, identify: identify, enterBootloader: enter)
    }

    func request(_ cursor: JSONCursor, reportLength: Int) throws(ProductProfileError) -> [UInt8] {
        let bytes = try hexBytes(cursor)
        guard !bytes.isEmpty, bytes.count <= reportLength else {
            throw error(cursor, "must be 1 to \(reportLength) bytes, the report id first")
        }
        return bytes
    }

    func reply(_ cursor: JSONCursor, reportLength: Int) throws(ProductProfileError) -> LegacyProtocol.Reply {
        _ = try object(cursor, allowing: ["reportID", "match"])
        var matches: [LegacyProtocol.ByteMatch] = []
        if cursor["match"].isPresent {
            guard case .array(let items) = cursor["match"].value else { throw error(cursor["match"], "must be an array") }
            for index in items.indices {
                let item = JSONCursor(value: items[index], path: cursor["match"].path + ["\(index)"])
                _ = try object(item, allowing: ["offset", "bytes"])
                let bytes = try hexBytes(item["bytes"])
                guard !bytes.isEmpty else { throw error(item["bytes"], "must hold at least one byte") }
                matches.append(.init(offset: try fieldOffset(item["offset"], width: bytes.count, reportLength: reportLength), bytes: bytes))
            }
        }
        return LegacyProtocol.Reply(reportID: try integer(cursor["reportID"]), match: matches)
    }

    func fieldOffset(_ cursor: JSONCursor, width: Int, reportLength: Int) throws(ProductProfileError) -> Int {
        let offset: Int = try integer(cursor)
        // Compared by subtraction: an offset near Int64.max must be refused, not overflow.
        guard offset >= 1, offset <= reportLength - width else {
            throw error(cursor, "a \(width)-byte field at \(offset) does not fit after the report id of a \(reportLength)-byte report")
        }
        return offset
    }

    func versionFormat(_ cursor: JSONCursor) throws(ProductProfileError) -> LegacyProtocol.VersionFormat {
        let text = try string(cursor)
        let components = text.split(separator: ".", omittingEmptySubsequences: false)
        if (2...4).contains(components.count), components.allSatisfy({ $0 == "u8" }) { return .bytes(count: components.count) }
        if (2...4).contains(components.count), components.allSatisfy({ $0 == "u16" }) { return .littleEndian16(count: components.count) }
        if text == "bcd16" { return .bcd16 }
        if text.hasPrefix("ascii:"), let length = Int(text.dropFirst(6)), (3...32).contains(length) { return .ascii(length: length) }
        throw error(cursor, "\"\(text)\" is not a version format (u8.u8[.u8[.u8]], u16.u16[.u16[.u16]], bcd16, ascii:N with N 3...32)")
    }
}
