import Foundation

/// A family file that cannot be used: which file, which field, and what is wrong with it.
public struct FamilyDataError: Error, Sendable, Hashable, CustomStringConvertible {
    public var file: String
    public var field: String
    public var problem: String

    public var description: String { "\(file): \(field): \(problem)" }
}

/// The part lines of protocols/families/*.json, parsed once (the files are embedded by scripts/gen-families).
public struct FamilyCatalog: Sendable {
    public var families: [McuFamily]
    public var unsupported: [UnsupportedPartLine]

    /// Parses family files (name, JSON text). Files that say `"usbDFU": false` become refusals.
    public init(files: [(name: String, json: String)]) throws(FamilyDataError) {
        var families: [McuFamily] = []
        var unsupported: [UnsupportedPartLine] = []
        for file in files {
            let reader = try FamilyFileReader(name: file.name, text: file.json)
            if let refusal = try reader.unsupported() { unsupported.append(refusal) } else { families.append(try reader.family()) }
        }
        self.families = families.sorted { $0.id < $1.id }
        self.unsupported = unsupported.sorted { $0.id < $1.id }
    }

    /// The embedded files; a failure is a bug in the data, which the DeviceProfiles tests catch first.
    static let embedded: FamilyCatalog = {
        do { return try FamilyCatalog(files: EmbeddedFamilyFiles.files) } catch {
            preconditionFailure("built-in family data does not load: \(error)")
        }
    }()
}

extension McuFamily {
    /// Every part line dfuhop knows, by id.
    public static var all: [McuFamily] { FamilyCatalog.embedded.families }
    /// Part lines dfuhop refuses, with the reason (no USB DFU in the ROM).
    public static var unsupported: [UnsupportedPartLine] { FamilyCatalog.embedded.unsupported }

    /// Why the part line with this id cannot be used, if it is a known refusal.
    public static func refusal(for id: String) -> UnsupportedPartLine? {
        unsupported.first { $0.id == id.lowercased() }
    }

    public static var f407: McuFamily { builtIn("f407") }
    public static var l476: McuFamily { builtIn("l476") }
    public static var g474: McuFamily { builtIn("g474") }
    public static var h753: McuFamily { builtIn("h753") }

    private static func builtIn(_ id: String) -> McuFamily {
        guard let family = named(id) else { preconditionFailure("protocols/families/\(id).json is missing") }
        return family
    }

    /// Full-speed USB as seen from a Linux host: ~0.25 ms of setup/status per control transfer,
    /// ~1 µs per data byte (64-byte packets, about 1 MB/s). Host figures, the same for every part line.
    static let fullSpeedOverhead = Duration.microseconds(250)
    static let fullSpeedPerByte = Duration.nanoseconds(1000)
}

extension McuFamily {
    /// The part lines whose ROM could show this identity: alternate 0 is one of the line's flash layouts, the other
    /// alternates (when the ROM lists more than one) are those of one of its ROM versions, the bcdDevice (if given)
    /// is one of its versions', and a constant serial (if the line has one) is the one seen. Several lines share
    /// a flash layout (F411/F446, G0B1/G431, U5/H7A3/H563), so alternate 0 alone does not identify a part line.
    public static func candidates(alternates: [String], bcdDevice: UInt16? = nil, serial: String? = nil) -> [McuFamily] {
        guard let flash = alternates.first else { return [] }
        let others = Array(alternates.dropFirst())
        let matching = all.filter { family in
            guard family.flashModes.contains(where: { $0.layoutString == flash }) else { return false }
            if !others.isEmpty, !family.romVersions.contains(where: { $0.otherMemories == others }) { return false }
            if let bcdDevice, !family.romVersions.contains(where: { $0.bcdDevice == bcdDevice }) { return false }
            if !family.romSerial.fixedSerials.isEmpty, let serial, !family.romSerial.fixedSerials.contains(serial) { return false }
            return true
        }
        // A serial that is some candidate's constant picks that line over lines deriving it from the UID.
        let byConstant = matching.filter { serial.map($0.romSerial.fixedSerials.contains) ?? false }
        return byConstant.isEmpty ? matching : byConstant
    }
}
