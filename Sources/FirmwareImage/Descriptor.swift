import HexFormat

/// dfuhop's image descriptor (protocols/image-descriptor.md): 64 little-endian bytes inside the image,
/// found through word 8 of the vector table (offset 0x20, reserved on every Cortex-M), that say which
/// product and version the image is and let anyone check it is complete (size and CRC-32).
///
/// | offset | type     | field |
/// | 0x00   | u32      | magic 0x50484644 ("DFHP") |
/// | 0x04   | u16      | descriptor format, 1 |
/// | 0x06   | u16      | descriptor size, 64 |
/// | 0x08   | u32      | product id |
/// | 0x0C   | 4 × u16  | version major, minor, patch, build |
/// | 0x14   | u32      | image size from the image base (gaps count, as 0xFF) |
/// | 0x18   | u32      | CRC-32 (zlib) of those bytes, this field taken as zero |
/// | 0x1C   | u32      | flags, 0 |
/// | 0x20   | 32 bytes | name, UTF-8, NUL-padded |
public struct ImageDescriptor: Sendable, Hashable {
    public static let magic: UInt32 = 0x5048_4644
    public static let formatVersion: UInt16 = 1
    public static let size = 64
    /// Offset of the descriptor's address in the vector table (word 8).
    public static let pointerOffset: UInt32 = 0x20
    /// Offset of the CRC field inside the descriptor.
    public static let crcOffset: UInt32 = 0x18
    public static let nameLength = 32

    public var productID: UInt32
    public var version: FirmwareVersion
    public var imageSize: UInt32
    public var crc: UInt32
    public var flags: UInt32
    public var name: String

    public init(productID: UInt32, version: FirmwareVersion, name: String, imageSize: UInt32 = 0, crc: UInt32 = 0, flags: UInt32 = 0) {
        self.productID = productID
        self.version = version
        self.name = name
        self.imageSize = imageSize
        self.crc = crc
        self.flags = flags
    }

    /// The 64 bytes as they sit in flash. The name is cut to 32 bytes (callers check it first).
    public func encoded() -> [UInt8] {
        var bytes = [UInt8]()
        bytes.reserveCapacity(Self.size)
        bytes.appendLE(Self.magic)
        bytes.appendLE(Self.formatVersion)
        bytes.appendLE(UInt16(Self.size))
        bytes.appendLE(productID)
        for part in [version.major, version.minor, version.patch, version.build] { bytes.appendLE(part) }
        bytes.appendLE(imageSize)
        bytes.appendLE(crc)
        bytes.appendLE(flags)
        let name = Array(self.name.utf8.prefix(Self.nameLength))
        bytes.append(contentsOf: name)
        bytes.append(contentsOf: repeatElement(0, count: Self.nameLength - name.count))
        return bytes
    }

    /// Decodes 64 bytes found at `address` in `source`, checking magic, format, size, flags and name.
    public init<Bytes: RandomAccessCollection<UInt8>>(decoding bytes: Bytes, at address: UInt32, source: String) throws(ImageError) {
        func fail(_ offset: UInt32, _ problem: String) -> ImageError {
            ImageError(file: source, at: .address(address &+ offset), problem)
        }
        guard bytes.count == Self.size else { throw fail(0, "an image descriptor is \(Self.size) bytes, got \(bytes.count)") }
        let magic = littleEndianU32(bytes, 0)
        guard magic == Self.magic else {
            throw fail(
                0,
                "no image descriptor here: magic is 0x\(Hex.digits(magic, width: 8)), expected 0x\(Hex.digits(Self.magic, width: 8)) (\"DFHP\")"
            )
        }
        let format = littleEndianU16(bytes, 4)
        guard format == Self.formatVersion else {
            throw fail(4, "descriptor format \(format); this dfuhop knows format \(Self.formatVersion)")
        }
        let size = littleEndianU16(bytes, 6)
        guard Int(size) == Self.size else { throw fail(6, "descriptor size field is \(size), format 1 descriptors are \(Self.size) bytes") }
        productID = littleEndianU32(bytes, 8)
        version = FirmwareVersion(
            major: littleEndianU16(bytes, 12), minor: littleEndianU16(bytes, 14),
            patch: littleEndianU16(bytes, 16), build: littleEndianU16(bytes, 18))
        imageSize = littleEndianU32(bytes, 20)
        crc = littleEndianU32(bytes, 24)
        flags = littleEndianU32(bytes, 28)
        guard flags == 0 else { throw fail(0x1C, "descriptor flags are 0x\(Hex.digits(flags, width: 8)); format 1 defines none (0)") }
        let nameField = Array(bytes.dropFirst(0x20))
        let nameBytes = nameField.prefix { $0 != 0 }
        guard nameField[nameBytes.count...].allSatisfy({ $0 == 0 }) else {
            throw fail(0x20, "the name field has bytes after its NUL padding")
        }
        guard isValidUTF8(nameBytes) else { throw fail(0x20, "the name is not valid UTF-8") }
        name = String(decoding: nameBytes, as: UTF8.self)
    }

    /// Whether size and CRC were never filled in (an image built with the area reserved but not stamped).
    public var isUnstamped: Bool { imageSize == 0 && crc == 0 }
}

/// Memory that holds an image: a file's normalised image (gaps read as 0xFF) or a device's flash.
public protocol ImageMemory {
    /// Calls `body` with the bytes of [address, address + count) in order, in one or more pieces.
    /// Returns false, without calling `body`, when any of those bytes lies outside the memory.
    func withBytes(from address: UInt32, count: Int, _ body: (UnsafeBufferPointer<UInt8>) -> Void) -> Bool
    /// As `withBytes`, but a gap comes as one `.fill` piece instead of being materialised, so that walking a
    /// span costs time in proportion to its data, never to its gaps (a 72-byte HEX may span 4 GiB).
    func withPieces(from address: UInt32, count: Int, _ body: (MemoryPiece) -> Void) -> Bool
}

/// Part of a memory's content: bytes as stored, or `count` copies of one value (a gap, read as erased).
public enum MemoryPiece {
    case bytes(UnsafeBufferPointer<UInt8>)
    case fill(UInt8, count: Int)

    public var count: Int {
        switch self {
        case .bytes(let bytes): bytes.count
        case .fill(_, let count): count
        }
    }
}

extension ImageMemory {
    /// Memories without gaps hand out their bytes as they are.
    public func withPieces(from address: UInt32, count: Int, _ body: (MemoryPiece) -> Void) -> Bool {
        withBytes(from: address, count: count) { body(.bytes($0)) }
    }
}

extension CRC32 {
    /// Feeds one piece; a fill costs O(log count).
    public mutating func update(_ piece: MemoryPiece) {
        switch piece {
        case .bytes(let bytes): update(bytes)
        case .fill(let value, let count): update(repeating: value, count: UInt64(count))
        }
    }
}

extension ImageMemory {
    /// The bytes of [address, address + count), or nil when they are not all inside the memory.
    public func read(_ address: UInt32, count: Int) -> [UInt8]? {
        var result = [UInt8]()
        result.reserveCapacity(count)
        let inside = withBytes(from: address, count: count) { result.append(contentsOf: $0) }
        return inside ? result : nil
    }

    public func word(at address: UInt32) -> UInt32? {
        read(address, count: 4).map { littleEndianU32($0, 0) }
    }
}

/// A contiguous memory, e.g. a device's flash read back or simulated.
public struct FlatMemory: ImageMemory, Sendable {
    public var base: UInt32
    public var bytes: [UInt8]

    public init(base: UInt32, bytes: [UInt8]) {
        self.base = base
        self.bytes = bytes
    }

    public func withBytes(from address: UInt32, count: Int, _ body: (UnsafeBufferPointer<UInt8>) -> Void) -> Bool {
        guard count >= 0, address >= base, UInt64(address - base) + UInt64(count) <= UInt64(bytes.count) else { return false }
        let offset = Int(address - base)
        bytes.withUnsafeBufferPointer { body(UnsafeBufferPointer(rebasing: $0[offset..<offset + count])) }
        return true
    }
}

extension NormalizedImage: ImageMemory {
    /// Inside [baseAddress, end); gaps between segments read as 0xFF.
    public func withBytes(from address: UInt32, count: Int, _ body: (UnsafeBufferPointer<UInt8>) -> Void) -> Bool {
        let erased = [UInt8](repeating: 0xFF, count: 4096)
        return withPieces(from: address, count: count) { piece in
            switch piece {
            case .bytes(let bytes): body(bytes)
            case .fill(_, let count):
                var remaining = count
                while remaining > 0 {
                    let step = min(remaining, erased.count)
                    erased.withUnsafeBufferPointer { body(UnsafeBufferPointer(rebasing: $0[0..<step])) }
                    remaining -= step
                }
            }
        }
    }

    /// Inside [baseAddress, end); each gap is one `.fill(0xFF)` piece.
    public func withPieces(from address: UInt32, count: Int, _ body: (MemoryPiece) -> Void) -> Bool {
        guard let base = baseAddress, count >= 0, address >= base, UInt64(address) + UInt64(count) <= end else { return false }
        var position = UInt64(address)
        let stop = UInt64(address) + UInt64(count)
        var index = firstSegmentIndex(endingAfter: position)
        while position < stop {
            if index < segments.count, UInt64(segments[index].address) <= position {
                let segment = segments[index]
                let from = Int(position - UInt64(segment.address))
                let to = Int(min(stop, segment.end) - UInt64(segment.address))
                segment.bytes.withUnsafeBufferPointer { body(.bytes(UnsafeBufferPointer(rebasing: $0[from..<to]))) }
                position = UInt64(segment.address) + UInt64(to)
                index += 1
            } else {
                let gapEnd = min(stop, index < segments.count ? UInt64(segments[index].address) : stop)
                body(.fill(0xFF, count: Int(gapEnd - position)))
                position = gapEnd
            }
        }
        return true
    }

    /// Index of the first segment whose end lies after `position` (binary search).
    func firstSegmentIndex(endingAfter position: UInt64) -> Int {
        var low = 0
        var high = segments.count
        while low < high {
            let mid = (low + high) / 2
            if segments[mid].end <= position { low = mid + 1 } else { high = mid }
        }
        return low
    }
}

/// What the descriptor of an image (or a flash) says, and whether it holds.
public enum DescriptorStatus: Sendable, Hashable {
    /// Word 8 of the vector table is 0 or erased: the image has no descriptor.
    case absent(pointer: UInt32)
    /// Word 8 points at a blank area (all 0x00 or all 0xFF): reserved for a descriptor, never stamped.
    case reserved(address: UInt32)
    /// The area is reserved (magic, format and fields present) but size and CRC are still 0.
    case unstamped(ImageDescriptor, address: UInt32)
    /// Everything checks out: the `imageSize` bytes from the base have the stated CRC.
    case valid(ImageDescriptor, address: UInt32)
    /// The descriptor or the image it describes is wrong; the error says where and how.
    case invalid(ImageError)

    public var descriptor: ImageDescriptor? {
        switch self {
        case .unstamped(let descriptor, _), .valid(let descriptor, _): descriptor
        case .absent, .reserved, .invalid: nil
        }
    }

    public var address: UInt32? {
        switch self {
        case .unstamped(_, let address), .valid(_, let address), .reserved(let address): address
        case .absent, .invalid: nil
        }
    }
}

extension ImageDescriptor {
    /// Finds and checks the descriptor of the image whose vector table is at `base`: "does this memory hold
    /// a complete, valid image, and which one?"
    public static func inspect(_ memory: some ImageMemory, base: UInt32, source: String) -> DescriptorStatus {
        let pointerAddress = base &+ pointerOffset
        guard let pointer = memory.word(at: pointerAddress) else {
            return .invalid(
                ImageError(
                    file: source, at: .address(base), "no vector table at 0x\(Hex.digits(base, width: 8)): fewer than 36 bytes there"))
        }
        if pointer == 0 || pointer == 0xFFFF_FFFF { return .absent(pointer: pointer) }
        guard pointer % 4 == 0 else {
            return .invalid(
                ImageError(
                    file: source, at: .address(pointerAddress),
                    "word 8 of the vector table points to 0x\(Hex.digits(pointer, width: 8)), which is not 4-byte aligned"))
        }
        guard let bytes = memory.read(pointer, count: size) else {
            return .invalid(
                ImageError(
                    file: source, at: .address(pointerAddress),
                    "word 8 of the vector table points to 0x\(Hex.digits(pointer, width: 8)), but the 64 bytes there are not all in the image"
                ))
        }
        if bytes.allSatisfy({ $0 == 0 }) || bytes.allSatisfy({ $0 == 0xFF }) { return .reserved(address: pointer) }
        let descriptor: ImageDescriptor
        do { descriptor = try ImageDescriptor(decoding: bytes, at: pointer, source: source) } catch { return .invalid(error) }
        if descriptor.isUnstamped { return .unstamped(descriptor, address: pointer) }
        let descriptorEnd = UInt64(pointer) + UInt64(size)
        guard UInt64(base) + UInt64(descriptor.imageSize) >= descriptorEnd else {
            return .invalid(
                ImageError(
                    file: source, at: .address(pointer &+ 0x14),
                    "image size \(descriptor.imageSize) ends before the descriptor itself (which ends at 0x\(Hex.digits(min(descriptorEnd, 1 << 32), width: 8)))"
                ))
        }
        guard let crc = crc32(of: memory, base: base, size: descriptor.imageSize, crcField: pointer &+ crcOffset) else {
            return .invalid(
                ImageError(
                    file: source, at: .address(pointer &+ 0x14),
                    "image size \(descriptor.imageSize) runs past the end of the image (0x\(Hex.digits(base, width: 8)) + \(descriptor.imageSize)); truncated?"
                ))
        }
        guard crc == descriptor.crc else {
            return .invalid(
                ImageError(
                    file: source, at: .address(pointer &+ crcOffset),
                    "image CRC-32 is 0x\(Hex.digits(crc, width: 8)), the descriptor says 0x\(Hex.digits(descriptor.crc, width: 8)); the image is corrupted or was changed after stamping"
                ))
        }
        return .valid(descriptor, address: pointer)
    }

    /// The descriptor of a complete, valid image at `base`, or an error saying why there is none.
    public static func validate(_ memory: some ImageMemory, base: UInt32, source: String) throws(ImageError) -> ImageDescriptor {
        let status = inspect(memory, base: base, source: source)
        // Return a copy built from the fields: returning the enum payload bound by the switch below was
        // miscompiled by Swift 6.3.1 at -O (the name's storage was released before the caller used it).
        if case .valid = status, let found = status.descriptor {
            return ImageDescriptor(
                productID: found.productID, version: found.version, name: String(found.name),
                imageSize: found.imageSize, crc: found.crc, flags: found.flags)
        }
        switch status {
        case .valid(let descriptor, _): return descriptor
        case .invalid(let error): throw error
        case .absent(let pointer):
            throw ImageError(
                file: source, at: .address(base &+ pointerOffset),
                "no image descriptor: word 8 of the vector table is 0x\(Hex.digits(pointer, width: 8))")
        case .unstamped(_, let address), .reserved(let address):
            throw ImageError(file: source, at: .address(address), "the image descriptor is reserved but not stamped")
        }
    }

    /// zlib CRC-32 of `size` bytes from `base`, the four bytes at `crcField` taken as zero; nil when the
    /// range is not all in memory.
    public static func crc32(of memory: some ImageMemory, base: UInt32, size: UInt32, crcField: UInt32) -> UInt32? {
        let start = UInt64(base)
        let end = start + UInt64(size)
        guard end <= 0x1_0000_0000 else { return nil }
        // The zeroed bytes: the field clipped to the range (empty if the field lies outside it).
        let zeroStart = min(max(UInt64(crcField), start), end)
        let zeroEnd = max(min(UInt64(crcField) + 4, end), zeroStart)
        var crc = CRC32()
        for (from, to, zeroed) in [(start, zeroStart, false), (zeroStart, zeroEnd, true), (zeroEnd, end, false)] where from < to {
            let inside = memory.withPieces(from: UInt32(from), count: Int(to - from)) { piece in
                if zeroed { crc.update(.fill(0, count: piece.count)) } else { crc.update(piece) }
            }
            guard inside else { return nil }
        }
        return crc.zlibValue
    }
}

extension FirmwareImage {
    /// Fills in the descriptor the image reserved: word 8 of the vector table (at the lowest address of the
    /// internal-flash target) must already point at a 64-byte area inside the image holding zeros, erased
    /// bytes (0xFF) or an earlier descriptor. Sets product, version, name, size and CRC; the target comes
    /// back with its segments merged (gaps stay gaps).
    public func stamped(productID: UInt32, version: FirmwareVersion, name: String, file: String) throws(ImageError) -> FirmwareImage {
        let nameBytes = Array(name.utf8)
        guard nameBytes.count <= ImageDescriptor.nameLength, !nameBytes.contains(0) else {
            throw ImageError(
                .unsupported, file: file,
                "the name \"\(name)\" is \(nameBytes.count) bytes of UTF-8; the descriptor holds at most \(ImageDescriptor.nameLength), without NUL"
            )
        }
        let normalized: NormalizedImage
        do { normalized = try self.normalized(granularity: 1) } catch { throw ImageError(file: file, "\(error)") }
        guard let base = normalized.baseAddress else { throw ImageError(file: file, "the image is empty: nothing to stamp") }
        // A base in the last 36 bytes of the address space has no room for word 8: no wrap-around to 0.
        let (pointerAddress, beyondAddressSpace) = base.addingReportingOverflow(ImageDescriptor.pointerOffset)
        guard !beyondAddressSpace, let pointer = normalized.word(at: pointerAddress) else {
            throw ImageError(
                file: file, at: .address(base),
                "no vector table at the image base 0x\(Hex.digits(base, width: 8)): word 8 (base + 0x20) is not in the image")
        }
        guard pointer != 0 && pointer != 0xFFFF_FFFF else {
            throw ImageError(
                file: file, at: .address(pointerAddress),
                "word 8 of the vector table is 0x\(Hex.digits(pointer, width: 8)): the image reserves no descriptor; reserve a 64-byte area and put its address at offset 0x20 (protocols/image-descriptor.md)"
            )
        }
        guard pointer % 4 == 0 else {
            throw ImageError(
                file: file, at: .address(pointerAddress),
                "word 8 of the vector table points to 0x\(Hex.digits(pointer, width: 8)), which is not 4-byte aligned")
        }
        guard let index = normalized.segments.firstIndex(where: { UInt64($0.address) <= UInt64(pointer) && UInt64(pointer) + 64 <= $0.end })
        else {
            throw ImageError(
                file: file, at: .address(pointerAddress),
                "word 8 of the vector table points to 0x\(Hex.digits(pointer, width: 8)), but the image does not hold 64 bytes there")
        }
        var segments = normalized.segments
        let offset = Int(pointer - segments[index].address)
        let area = segments[index].bytes[offset..<offset + ImageDescriptor.size]
        let reusable = area.allSatisfy { $0 == 0 } || area.allSatisfy { $0 == 0xFF } || littleEndianU32(area, 0) == ImageDescriptor.magic
        guard reusable else {
            throw ImageError(
                file: file, at: .address(pointer),
                "the 64 bytes at 0x\(Hex.digits(pointer, width: 8)) hold other data (not zeros, erased bytes or a descriptor); word 8 must point at a reserved area"
            )
        }
        let extent = normalized.end - UInt64(base)
        guard extent <= UInt64(UInt32.max) else { throw ImageError(.unsupported, file: file, "the image spans more than 4 GiB") }
        var descriptor = ImageDescriptor(productID: productID, version: version, name: name, imageSize: UInt32(extent))
        segments[index].bytes.replaceSubrange(offset..<offset + ImageDescriptor.size, with: descriptor.encoded())
        let unsigned = NormalizedImage(uncheckedSegments: segments, granularity: 1, entryPoint: entryPoint)
        guard
            let crc = ImageDescriptor.crc32(
                of: unsigned, base: base, size: descriptor.imageSize, crcField: pointer + ImageDescriptor.crcOffset)
        else {
            throw ImageError(file: file, at: .address(pointer), "cannot compute the image CRC")
        }
        descriptor.crc = crc
        segments[index].bytes.replaceSubrange(offset..<offset + ImageDescriptor.size, with: descriptor.encoded())
        var result = self
        let targetIndex = targets.firstIndex { $0.alternateSetting == 0 } ?? 0
        result.targets[targetIndex].segments = segments
        return result
    }
}

func isValidUTF8<Bytes: Sequence<UInt8>>(_ bytes: Bytes) -> Bool {
    var iterator = bytes.makeIterator()
    var decoder = UTF8()
    while true {
        switch decoder.decode(&iterator) {
        case .scalarValue: continue
        case .emptyInput: return true
        case .error: return false
        }
    }
}
