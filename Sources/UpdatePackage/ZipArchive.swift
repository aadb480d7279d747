import FirmwareImage
import HexFormat

/// A strict reader for the zips dfuhop packages are (docs/packages.md): every member a flat, plainly named,
/// stored (uncompressed) regular file, listed once. Anything else — compression (so no zip bomb can inflate),
/// directories, symlinks, `../` or absolute names, duplicates, encryption, ZIP64, spanning, members that
/// overlap or run past their bounds, bytes that belong to no member (a prefix, gaps, a comment), flags that
/// differ between a member's two headers, a CRC that does not match — is refused before any member is used.
/// The layout is checked whole before any CRC is computed, so a hostile directory costs work in proportion
/// to the file, never to what its headers claim.
///
/// It works on the package's bytes, already read with a size cap: every offset and size in a header is
/// checked against those bytes, never trusted. Layout: PKWARE APPNOTE.TXT 6.3.x, §4.3.7 (local header),
/// §4.3.9 (data descriptor), §4.3.12 (central directory header), §4.3.16 (end of central directory).
public struct ZipArchive: Sendable {
    public struct Member: Sendable, Hashable {
        public var name: String
        /// Where the member's bytes are in the package.
        public var range: Range<Int>
        public var crc32: UInt32
    }

    /// More members than any package needs; bounds the work a hostile central directory can cause.
    public static let maximumMembers = 64

    public let bytes: [UInt8]
    /// In central-directory order.
    public let members: [Member]
    let file: String

    public init(bytes: [UInt8], file: String) throws(PackageError) {
        self.bytes = bytes
        self.file = file
        let directory = try Self.endOfCentralDirectory(bytes, file: file)
        members = try Self.readMembers(bytes, directory: directory, file: file)
    }

    public func member(named name: String) -> Member? { members.first { $0.name == name } }

    public func contents(of member: Member) -> ArraySlice<UInt8> { bytes[member.range] }

    struct Directory {
        var offset: Int
        var size: Int
        var count: Int
    }

    static let endSignature: UInt32 = 0x0605_4B50
    static let centralSignature: UInt32 = 0x0201_4B50
    static let localSignature: UInt32 = 0x0403_4B50
    static let descriptorSignature: UInt32 = 0x0807_4B50

    /// The end-of-central-directory record: the last 22 bytes, or earlier by exactly its comment's length.
    static func endOfCentralDirectory(_ bytes: [UInt8], file: String) throws(PackageError) -> Directory {
        let reader = LittleEndianReader(bytes: bytes, file: file)
        guard bytes.count >= 22 else { throw reader.error("is \(bytes.count) bytes: too short to be a zip (truncated?)") }
        var position = bytes.count - 22
        let lowest = max(0, bytes.count - 22 - 0xFFFF)
        while position >= lowest {
            if bytes[position] == 0x50, bytes[position + 1] == 0x4B, try reader.u32(position) == endSignature,
                try position + 22 + reader.u16(position + 20) == bytes.count
            {
                break
            }
            position -= 1
        }
        guard position >= lowest else { throw reader.error("has no zip end-of-central-directory record (truncated, or not a zip)") }
        let disk = try reader.u16(position + 4)
        let directoryDisk = try reader.u16(position + 6)
        let onDisk = try reader.u16(position + 8)
        let count = try reader.u16(position + 10)
        let size = try reader.u32(position + 12)
        let offset = try reader.u32(position + 16)
        guard count != 0xFFFF, size != 0xFFFF_FFFF, offset != 0xFFFF_FFFF else {
            throw reader.error("is a ZIP64 archive, which packages never are")
        }
        guard disk == 0, directoryDisk == 0, onDisk == count else { throw reader.error("is a multi-disk zip, which packages never are") }
        let commentLength = bytes.count - position - 22
        guard commentLength == 0 else {
            throw reader.error(
                "carries a \(commentLength)-byte zip comment after its end record; packages carry none (nothing unsigned rides along)")
        }
        guard count <= maximumMembers else { throw reader.error("lists \(count) members; a package holds at most \(maximumMembers)") }
        guard Int(offset) + Int(size) == position else {
            throw reader.error(
                "its central directory (\(size) bytes at offset \(offset)) does not end where the end record starts "
                    + "(offset \(position)): truncated or altered")
        }
        return Directory(offset: Int(offset), size: Int(size), count: count)
    }

    static func readMembers(_ bytes: [UInt8], directory: Directory, file: String) throws(PackageError) -> [Member] {
        let reader = LittleEndianReader(bytes: bytes, file: file)
        var entries: [(member: Member, span: Range<Int>)] = []
        var seen: Set<String> = []
        var position = directory.offset
        for index in 0..<directory.count {
            let (member, span, next) = try centralEntry(reader, at: position, index: index, dataLimit: directory.offset)
            guard seen.insert(member.name.lowercased()).inserted else {
                throw reader.error("member \"\(member.name)\" is in the zip twice (names are compared ignoring case)")
            }
            entries.append((member, span))
            position = next
        }
        guard position == directory.offset + directory.size else {
            throw reader.error(
                "its central directory is \(directory.size) bytes but its \(directory.count) entries take "
                    + "\(position - directory.offset)")
        }
        try checkLayout(entries.map { ($0.span, $0.member.name) }, end: directory.offset, reader: reader)
        // Only now, with every member apart and inside the file, is each byte hashed at most once.
        for (member, _) in entries {
            let actual = CRC32.zlib(bytes[member.range])
            guard actual == member.crc32 else {
                throw reader.error(
                    "member \"\(member.name)\" has CRC-32 0x\(Hex.digits(actual, width: 8)) but the zip says "
                        + "0x\(Hex.digits(member.crc32, width: 8)): its bytes were altered or truncated")
            }
        }
        return entries.map(\.member)
    }

    /// The members (local header to the end of data or descriptor) must tile the file from offset 0 to the
    /// central directory: members that share bytes are how "overlapping" zip bombs multiply a small file,
    /// and bytes before the first member or between members (a shell-script prefix, a hidden payload) are
    /// covered by no CRC and no signature.
    static func checkLayout(_ spans: [(range: Range<Int>, name: String)], end: Int, reader: LittleEndianReader) throws(PackageError) {
        var expected = 0
        var previous: String?
        for span in spans.sorted(by: { $0.range.lowerBound < $1.range.lowerBound }) {
            if span.range.lowerBound < expected, let previous {
                throw reader.error("members \"\(previous)\" and \"\(span.name)\" overlap in the file")
            }
            guard span.range.lowerBound == expected else {
                let place = previous.map { "between member \"\($0)\" and" } ?? "before the first member,"
                throw reader.error(
                    "has \(span.range.lowerBound - expected) bytes \(place) \"\(span.name)\" (offsets \(expected) to "
                        + "\(span.range.lowerBound)) that belong to no member: prefixed or padded, so unsigned")
            }
            expected = span.range.upperBound
            previous = span.name
        }
        guard expected == end else {
            throw reader.error(
                "has \(end - expected) bytes after the last member (offsets \(expected) to \(end)) that belong to no member: "
                    + "padded, so unsigned")
        }
    }

    /// General-purpose flag bits a stored package member may carry (APPNOTE §4.4.4): 1-2 (compression
    /// options, meaningless when stored), 3 (sizes and CRC in a data descriptor) and 11 (UTF-8 name).
    /// Everything else — 0 and 6 (encryption), 13 (masked local header), the reserved bits — is refused.
    static let allowedFlags = 0x0002 | 0x0004 | 0x0008 | 0x0800

    /// One central-directory entry, checked against its local header: the member, the bytes it spans
    /// (local header to the end of its data descriptor) and where the next entry starts. Its CRC is checked
    /// later, once the whole layout is known to be sound.
    static func centralEntry(
        _ reader: LittleEndianReader, at position: Int, index: Int,
        dataLimit: Int
    ) throws(PackageError) -> (Member, Range<Int>, Int) {
        guard try reader.u32(position) == centralSignature else {
            throw reader.error("central directory entry \(index) at offset \(position) has no entry signature")
        }
        let madeBy = try reader.u16(position + 4)
        let flags = try reader.u16(position + 8)
        let method = try reader.u16(position + 10)
        let crc = try reader.u32(position + 16)
        let compressed = try reader.u32(position + 20)
        let size = try reader.u32(position + 24)
        let nameLength = try reader.u16(position + 28)
        let extraLength = try reader.u16(position + 30)
        let commentLength = try reader.u16(position + 32)
        let startDisk = try reader.u16(position + 34)
        let external = try reader.u32(position + 38)
        let localOffset = Int(try reader.u32(position + 42))
        let nameBytes = try reader.slice(position + 46, count: nameLength)
        let name = try memberName(nameBytes, reader: reader, index: index)
        func refuse(_ problem: String) -> PackageError { reader.error("member \"\(name)\" \(problem)") }
        try checkFlags(flags, refuse: refuse)
        guard method == 0 else {
            throw refuse("is compressed (method \(method)); package members are stored, so nothing is inflated before it is verified")
        }
        guard compressed == size else {
            throw refuse("declares \(compressed) stored bytes but \(size) uncompressed: a stored member has one size")
        }
        guard startDisk == 0 else { throw refuse("starts on disk \(startDisk)") }
        try checkFileType(madeBy: madeBy, external: external, refuse: refuse)

        let local = try localHeader(reader, at: localOffset, name: nameBytes, method: method, refuse: refuse)
        try checkFlags(local.flags, refuse: refuse)
        guard local.flags == flags else {
            throw refuse(
                "has flags 0x\(Hex.digits(UInt16(local.flags), width: 4)) in its local header but "
                    + "0x\(Hex.digits(UInt16(flags), width: 4)) in the central directory")
        }
        let dataStart = local.dataStart
        guard dataStart <= dataLimit, Int(size) <= dataLimit - dataStart else {
            throw refuse(
                "declares \(size) bytes at offset \(dataStart), past the end of the members (offset \(dataLimit)): "
                    + "truncated or lying")
        }
        let data = dataStart..<(dataStart + Int(size))
        var spanEnd = data.upperBound
        if flags & 0x08 != 0 {
            spanEnd = try dataDescriptor(reader, at: data.upperBound, crc: crc, size: size, limit: dataLimit, refuse: refuse)
        } else if local.crc != crc || local.compressed != compressed || local.size != size {
            throw refuse("has a local header whose CRC or sizes differ from the central directory's")
        }
        let next = position + 46 + nameLength + extraLength + commentLength
        return (Member(name: name, range: data, crc32: crc), localOffset..<spanEnd, next)
    }

    static func checkFlags(_ flags: Int, refuse: (String) -> PackageError) throws(PackageError) {
        guard flags & 0x41 == 0 else { throw refuse("is encrypted (general-purpose flags 0x\(Hex.digits(UInt16(flags), width: 4)))") }
        guard flags & ~allowedFlags == 0 else {
            throw refuse("sets general-purpose flags 0x\(Hex.digits(UInt16(flags & ~allowedFlags), width: 4)), which packages never use")
        }
    }

    static func memberName(_ bytes: ArraySlice<UInt8>, reader: LittleEndianReader, index: Int) throws(PackageError) -> String {
        guard let name = String(validating: bytes, as: UTF8.self) else {
            throw reader.error("member \(index)'s name is not UTF-8")
        }
        if let problem = PackageNames.problem(with: name) { throw reader.error("member \(index) \"\(name)\": \(problem)") }
        return name
    }

    /// Only regular files, whatever system made the entry (APPNOTE §4.4.2, §4.4.15): a Unix mode in the high
    /// half of the external attributes is read whatever the "made by" host says (Info-ZIP writes it as host
    /// 3, macOS tools as host 19, and a hostile writer as anything), and the DOS attribute bits for a
    /// directory (0x10) and a volume label (0x08) are refused too.
    static func checkFileType(madeBy: Int, external: UInt32, refuse: (String) -> PackageError) throws(PackageError) {
        let host = "made by host \(madeBy >> 8)"
        switch (external >> 16) & 0o170000 {
        case 0, 0o100000: break
        case 0o120000: throw refuse("is a symbolic link (\(host))")
        case 0o040000: throw refuse("is a directory (\(host))")
        case let type: throw refuse("is not a regular file (Unix file type 0o\(String(type, radix: 8)), \(host))")
        }
        if external & 0x10 != 0 { throw refuse("is marked as a directory (\(host))") }
        if external & 0x08 != 0 { throw refuse("is marked as a volume label (\(host))") }
    }

    struct LocalHeader {
        var flags: Int
        var crc: UInt32
        var compressed: UInt32
        var size: UInt32
        var dataStart: Int
    }

    static func localHeader(
        _ reader: LittleEndianReader, at offset: Int, name: ArraySlice<UInt8>, method: Int,
        refuse: (String) -> PackageError
    ) throws(PackageError) -> LocalHeader {
        guard try reader.u32(offset) == localSignature else { throw refuse("has no local header at offset \(offset)") }
        let flags = try reader.u16(offset + 6)
        guard try reader.u16(offset + 8) == method else { throw refuse("has a local header with another compression method") }
        let nameLength = try reader.u16(offset + 26)
        let extraLength = try reader.u16(offset + 28)
        guard try reader.slice(offset + 30, count: nameLength).elementsEqual(name) else {
            throw refuse("has a local header with another name")
        }
        return LocalHeader(
            flags: flags, crc: try reader.u32(offset + 14), compressed: try reader.u32(offset + 18),
            size: try reader.u32(offset + 22), dataStart: offset + 30 + nameLength + extraLength)
    }

    /// The data descriptor after a member's data (optional signature, CRC, sizes); returns where it ends.
    static func dataDescriptor(
        _ reader: LittleEndianReader, at offset: Int, crc: UInt32, size: UInt32, limit: Int,
        refuse: (String) -> PackageError
    ) throws(PackageError) -> Int {
        let start = try reader.u32(offset) == descriptorSignature ? offset + 4 : offset
        guard start + 12 <= limit else { throw refuse("has a data descriptor past the end of the members") }
        guard try reader.u32(start) == crc, try reader.u32(start + 4) == size, try reader.u32(start + 8) == size else {
            throw refuse("has a data descriptor whose CRC or sizes differ from the central directory's")
        }
        return start + 12
    }
}

/// What a member (and an image named in a manifest) may be called: a plain file name, so no name can
/// reach outside the directory it might be extracted to, on any system.
public enum PackageNames {
    public static let manifest = "manifest.json"
    public static let signature = "manifest.sig"

    /// Why `name` is not acceptable, or nil.
    public static func problem(with name: String) -> String? {
        guard !name.isEmpty, name.utf8.count <= 128 else { return "names must be 1 to 128 bytes" }
        if name.contains("/") || name.contains("\\") { return "names a path (\"/\" or \"\\\"), not a plain file name" }
        if name.hasPrefix(".") { return "starts with \".\" (\"..\" and hidden files are not allowed)" }
        let allowed = name.unicodeScalars.allSatisfy { scalar in
            scalar.isASCII && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || "._-+".unicodeScalars.contains(scalar))
        }
        return allowed ? nil : "may hold only ASCII letters, digits, \".\", \"_\", \"-\" and \"+\""
    }
}

/// Bounds-checked little-endian reads from the package's bytes; a read past the end is a truncated zip.
struct LittleEndianReader {
    let bytes: [UInt8]
    let file: String

    func error(_ problem: String) -> PackageError { PackageError(.malformed, file: file, problem) }

    func slice(_ offset: Int, count: Int) throws(PackageError) -> ArraySlice<UInt8> {
        guard offset >= 0, count >= 0, offset <= bytes.count, count <= bytes.count - offset else {
            throw error("a header at offset \(offset) runs past the end of the file (\(bytes.count) bytes): truncated")
        }
        return bytes[offset..<(offset + count)]
    }

    func u16(_ offset: Int) throws(PackageError) -> Int {
        let field = try slice(offset, count: 2)
        return Int(field[field.startIndex]) | Int(field[field.startIndex + 1]) << 8
    }

    func u32(_ offset: Int) throws(PackageError) -> UInt32 {
        let field = try slice(offset, count: 4)
        let start = field.startIndex
        return UInt32(field[start]) | UInt32(field[start + 1]) << 8 | UInt32(field[start + 2]) << 16 | UInt32(field[start + 3]) << 24
    }
}
