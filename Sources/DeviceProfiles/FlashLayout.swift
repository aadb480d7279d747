import HexFormat

/// A DfuSe memory layout string, parsed (ST UM0424 / AN3156; grammar in protocols/dfuse-layout.md):
/// `@Name/0xADDRESS/N*SSSmT[,N*SSSmT]...[/0xADDRESS/N*SSSmT...]...`
/// Each alternate setting's iInterface string describes one memory with one or more zones.
public struct FlashLayout: Sendable, Hashable, Codable, CustomStringConvertible {
    public var name: String
    public var zones: [Zone]

    public init(name: String, zones: [Zone]) {
        self.name = name
        self.zones = zones
    }

    /// A contiguous run of sectors starting at `start`.
    public struct Zone: Sendable, Hashable, Codable {
        public var start: UInt32
        public var groups: [SectorGroup]

        public init(start: UInt32, groups: [SectorGroup]) {
            self.start = start
            self.groups = groups
        }

        public var size: UInt64 { groups.reduce(0) { $0 + UInt64($1.count) * UInt64($1.sectorSize) } }
        public var end: UInt64 { UInt64(start) + size }
    }

    /// `N*SSSmT`: N sectors of the same size and attributes.
    public struct SectorGroup: Sendable, Hashable, Codable {
        public var count: Int
        public var sectorSize: UInt32
        public var attributes: SectorAttributes

        public init(count: Int, sectorSize: UInt32, attributes: SectorAttributes) {
            self.count = count
            self.sectorSize = sectorSize
            self.attributes = attributes
        }
    }

    /// One sector, with its place in the layout (for messages).
    public struct Sector: Sendable, Hashable, Codable, CustomStringConvertible {
        public var start: UInt32
        public var size: UInt32
        public var attributes: SectorAttributes
        /// Index across the whole layout, in address order as listed.
        public var index: Int
        public var end: UInt64 { UInt64(start) + UInt64(size) }

        public init(start: UInt32, size: UInt32, attributes: SectorAttributes, index: Int) {
            self.start = start
            self.size = size
            self.attributes = attributes
            self.index = index
        }

        public var description: String {
            "sector \(index) [0x\(Hex.digits(start, width: 8)), 0x\(Hex.digits(UInt32(truncatingIfNeeded: end), width: 8))) \(attributes)"
        }
    }

    /// Every sector, in the order the string lists them.
    public var sectors: [Sector] {
        var result: [Sector] = []
        for zone in zones {
            var address = UInt64(zone.start)
            for group in zone.groups {
                for _ in 0..<group.count {
                    result.append(
                        Sector(
                            start: UInt32(truncatingIfNeeded: address), size: group.sectorSize,
                            attributes: group.attributes, index: result.count))
                    address += UInt64(group.sectorSize)
                }
            }
        }
        return result
    }

    /// The sector holding `address`, if any.
    public func sector(containing address: UInt32) -> Sector? {
        var index = 0
        for zone in zones {
            var start = UInt64(zone.start)
            for group in zone.groups {
                let groupSize = UInt64(group.count) * UInt64(group.sectorSize)
                if UInt64(address) >= start, UInt64(address) < start + groupSize {
                    let within = Int((UInt64(address) - start) / UInt64(group.sectorSize))
                    return Sector(
                        start: UInt32(start + UInt64(within) * UInt64(group.sectorSize)),
                        size: group.sectorSize, attributes: group.attributes, index: index + within)
                }
                start += groupSize
                index += group.count
            }
        }
        return nil
    }

    public var description: String { render() }

    /// Renders the layout in ST's notation (counts as given, sizes in the largest exact unit).
    public func render() -> String {
        var text = "@\(name)"
        for zone in zones {
            text += "/0x\(Hex.digits(zone.start, width: 8))/"
            text += zone.groups.map { group in
                let (value, unit): (UInt32, String) =
                    if group.sectorSize % (1024 * 1024) == 0 {
                        (group.sectorSize / (1024 * 1024), "M")
                    } else if group.sectorSize % 1024 == 0 { (group.sectorSize / 1024, "K") } else { (group.sectorSize, " ") }
                let count = group.count < 10 ? "0\(group.count)" : "\(group.count)"
                let size = value < 10 ? "00\(value)" : value < 100 ? "0\(value)" : "\(value)"
                return "\(count)*\(size)\(unit)\(group.attributes.letter)"
            }.joined(separator: ",")
        }
        return text
    }
}

/// The attribute letter's low three bits (AN3156 §4.3.1): readable 1, erasable 2, writable 4.
public struct SectorAttributes: OptionSet, Sendable, Hashable, Codable, CustomStringConvertible {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue & 7 }

    public static let readable = SectorAttributes(rawValue: 1)
    public static let erasable = SectorAttributes(rawValue: 2)
    public static let writable = SectorAttributes(rawValue: 4)
    public static let all: SectorAttributes = [.readable, .erasable, .writable]

    /// From the letter: 'a' = 1 (R) ... 'g' = 7 (RWE).
    public init?(letter: Character) {
        guard let ascii = letter.asciiValue, ascii >= 0x61, ascii <= 0x67 else { return nil }
        self.init(rawValue: ascii - 0x60)
    }

    public var letter: Character { Character(UnicodeScalar(0x60 + rawValue)) }

    public var description: String {
        var text = ""
        text += contains(.readable) ? "r" : "-"
        text += contains(.erasable) ? "e" : "-"
        text += contains(.writable) ? "w" : "-"
        return "\(text) ('\(letter)')"
    }
}

/// What is wrong with a layout string, and at which character.
public struct FlashLayoutError: Error, Sendable, Hashable, CustomStringConvertible {
    public var layout: String
    /// Byte offset (UTF-8) in `layout`.
    public var offset: Int
    public var problem: String

    public var description: String {
        "memory layout string \"\(layout)\", character \(offset): \(problem)"
    }
}

extension FlashLayout {
    /// The most sectors one layout string may describe. Real parts have at most a few thousand
    /// (L4: 512 pages; a 128 MiB external flash of 4 KiB sectors: 32768); the cap keeps a hostile
    /// string such as `4294967295*1Bg` from making `sectors` allocate billions of entries.
    public static let maximumSectorCount = 1 << 20
    /// The longest layout string parsed. A USB string descriptor holds at most 126 characters; the cap
    /// keeps a string from a file from making the zone-overlap check quadratic in a huge input.
    public static let maximumLength = 4096
}

extension FlashLayout {
    /// Parses a layout string. Accepts padded names, leading zeros, the multipliers `B`, ` `, `K`, `M`,
    /// attribute letters `a`–`g`, several zones, and a trailing NUL or white space.
    public init(parsing text: String) throws(FlashLayoutError) {
        var position = 0
        guard text.utf8.count <= FlashLayout.maximumLength else {
            throw FlashLayoutError(
                layout: String(text.prefix(64)) + "...", offset: FlashLayout.maximumLength,
                problem: "the layout string has \(text.utf8.count) bytes, more than \(FlashLayout.maximumLength)")
        }
        let chars = Array(text.utf8)
        func fail(_ problem: String) -> FlashLayoutError {
            FlashLayoutError(layout: text, offset: position, problem: problem)
        }
        guard chars.first == UInt8(ascii: "@") else { throw fail("a layout string starts with '@'") }
        position = 1
        guard let nameEnd = chars[position...].firstIndex(of: UInt8(ascii: "/")) else {
            throw fail("no '/' after the memory name")
        }
        let rawName = String(decoding: chars[position..<nameEnd], as: UTF8.self)
        let name = rawName.trimmingCharacters(in: " \t")
        position = nameEnd

        // Trailing NULs and spaces are padding some ROMs include.
        var limit = chars.count
        while limit > position, chars[limit - 1] == 0 || chars[limit - 1] == 0x20 { limit -= 1 }

        var zones: [Zone] = []
        var sectorCount = 0
        while position < limit {
            // "/0xADDRESS/"
            guard chars[position] == UInt8(ascii: "/") else { throw fail("expected '/' before a zone address") }
            position += 1
            guard position + 1 < limit, chars[position] == UInt8(ascii: "0"),
                chars[position + 1] | 0x20 == UInt8(ascii: "x")
            else {
                throw fail("a zone address is written 0x followed by hex digits")
            }
            position += 2
            var address: UInt64 = 0
            var digits = 0
            while position < limit, let digit = Hex.value(ofDigit: chars[position]) {
                address = address << 4 | UInt64(digit)
                digits += 1
                position += 1
                if digits > 8 { throw fail("a zone address has more than 8 hex digits") }
            }
            guard digits > 0 else { throw fail("a zone address needs hex digits") }
            guard position < limit, chars[position] == UInt8(ascii: "/") else {
                throw fail("expected '/' after the zone address")
            }
            position += 1
            var groups: [SectorGroup] = []
            var zoneEnd = address
            while true {
                let group = try parseGroup(chars, &position, limit, layout: text)
                // Checked per group, so that many huge groups cannot overflow the running total.
                zoneEnd += UInt64(group.count) * UInt64(group.sectorSize)
                guard zoneEnd <= 0x1_0000_0000 else { throw fail("the zone runs past the 4 GiB address space") }
                sectorCount += group.count
                guard sectorCount <= FlashLayout.maximumSectorCount else {
                    throw fail("the layout describes more than \(FlashLayout.maximumSectorCount) sectors")
                }
                groups.append(group)
                if position < limit, chars[position] == UInt8(ascii: ",") {
                    position += 1
                    continue
                }
                break
            }
            let zone = Zone(start: UInt32(address), groups: groups)
            // Overlapping zones would give one address two sets of attributes.
            if let other = zones.first(where: { UInt64($0.start) < zone.end && UInt64(zone.start) < $0.end }) {
                throw fail("the zone at 0x\(Hex.digits(zone.start, width: 8)) overlaps the zone at 0x\(Hex.digits(other.start, width: 8))")
            }
            zones.append(zone)
        }
        guard !zones.isEmpty else { throw fail("the layout has no zone") }
        self.init(name: name, zones: zones)
    }
}

private func parseGroup(
    _ chars: [UInt8], _ position: inout Int, _ limit: Int,
    layout text: String
) throws(FlashLayoutError) -> FlashLayout.SectorGroup {
    // Builds errors from the inout `position` itself: a closure of the caller reading its own copy of
    // the position during this inout access would be an exclusivity violation (a crash on bad input).
    func fail(_ problem: String) -> FlashLayoutError {
        FlashLayoutError(layout: text, offset: position, problem: problem)
    }
    func number(_ what: String) throws(FlashLayoutError) -> UInt64 {
        var value: UInt64 = 0
        var digits = 0
        while position < limit, chars[position] >= 0x30, chars[position] <= 0x39 {
            value = value * 10 + UInt64(chars[position] - 0x30)
            digits += 1
            position += 1
            if value > 0xFFFF_FFFF { throw fail("\(what) is too large") }
        }
        guard digits > 0 else { throw fail("expected the \(what) (decimal digits)") }
        return value
    }
    let count = try number("sector count")
    guard count > 0 else { throw fail("a sector count of 0 describes nothing") }
    guard position < limit, chars[position] == UInt8(ascii: "*") else { throw fail("expected '*' after the sector count") }
    position += 1
    var size = try number("sector size")
    guard position < limit else { throw fail("the sector size needs a unit and an attribute letter") }
    switch chars[position] {
    case UInt8(ascii: "K"):
        size *= 1024
        position += 1
    case UInt8(ascii: "M"):
        size *= 1024 * 1024
        position += 1
    case UInt8(ascii: "B"), UInt8(ascii: " "): position += 1
    default: break // some firmware DfuSe implementations omit the unit: bytes
    }
    guard size > 0, size <= 0xFFFF_FFFF else { throw fail("a sector size must be between 1 byte and 4 GiB") }
    guard position < limit, let attributes = SectorAttributes(letter: Character(UnicodeScalar(chars[position]))) else {
        throw fail("expected an attribute letter 'a' to 'g'")
    }
    position += 1
    return FlashLayout.SectorGroup(count: Int(count), sectorSize: UInt32(size), attributes: attributes)
}

extension String {
    func trimmingCharacters(in set: String) -> String {
        let drop = Set(set)
        var slice = Substring(self)
        while let first = slice.first, drop.contains(first) { slice.removeFirst() }
        while let last = slice.last, drop.contains(last) { slice.removeLast() }
        return String(slice)
    }
}
