import HexFormat

/// ELF32 little-endian ARM executables (System V ABI, "ELF for the Arm Architecture"): the bytes of every
/// PT_LOAD program header with file contents, placed at its physical (load) address `p_paddr`, which is
/// where flash holds them (e.g. `.data` is loaded from flash and copied to RAM at start-up). Bytes past
/// `p_filesz` (`.bss`) are not in the file and not loaded. The entry point is `e_entry`.
enum ElfReader {
    static let machineARM: UInt16 = 40
    static let headerSize = 52
    static let programHeaderSize = 32

    static func read(_ bytes: [UInt8], file: String) throws(ImageError) -> FirmwareImage {
        let reader = ByteReader(bytes: bytes, file: file)
        try checkHeader(reader)
        let table = try programHeaderTable(reader)
        let segments = try loadableSegments(reader, table: table)
        guard !segments.isEmpty else {
            throw ImageError(file: file, at: .byteOffset(table.offset), "no loadable program header (PT_LOAD) with file contents")
        }
        return FirmwareImage(format: .elf, segments: segments, entryPoint: reader.u32(24))
    }

    /// Where the program headers are: e_phoff, e_phentsize, e_phnum.
    struct ProgramHeaderTable {
        var offset: Int
        var entrySize: Int
        var count: Int
    }

    /// The ELF identification and header fields that make it an ARM executable dfuhop can load.
    static func checkHeader(_ reader: ByteReader) throws(ImageError) {
        let file = reader.file
        try reader.require(0, headerSize, "the ELF header")
        guard reader.matches(0, "\u{7F}ELF") else {
            throw ImageError(file: file, at: .byteOffset(0), "not an ELF file (no 0x7F 'ELF' magic)")
        }
        switch reader.u8(4) {
        case 1: break
        case 2: throw ImageError(.unsupported, file: file, at: .byteOffset(4), "64-bit ELF; an STM32 image is ELF32 (EI_CLASS 1)")
        case let other: throw ImageError(file: file, at: .byteOffset(4), "EI_CLASS is \(other), neither ELF32 (1) nor ELF64 (2)")
        }
        guard reader.u8(5) == 1 else {
            throw ImageError(
                .unsupported, file: file, at: .byteOffset(5),
                "EI_DATA is \(reader.u8(5)); only little-endian ELF (1) is an ARM Cortex-M image")
        }
        let type = reader.u16(16)
        switch type {
        case 2: break
        case 1:
            throw ImageError(
                .unsupported, file: file, at: .byteOffset(16), "a relocatable object (ET_REL), not a linked executable; link it first")
        default: throw ImageError(.unsupported, file: file, at: .byteOffset(16), "e_type is \(type); dfuhop loads executables (ET_EXEC, 2)")
        }
        let machine = reader.u16(18)
        guard machine == machineARM else {
            throw ImageError(.unsupported, file: file, at: .byteOffset(18), "e_machine is \(machine), not ARM (40)")
        }
    }

    static func programHeaderTable(_ reader: ByteReader) throws(ImageError) -> ProgramHeaderTable {
        let file = reader.file
        let table = ProgramHeaderTable(offset: Int(reader.u32(28)), entrySize: Int(reader.u16(42)), count: Int(reader.u16(44)))
        guard table.count > 0 else {
            throw ImageError(file: file, at: .byteOffset(44), "no program headers (e_phnum is 0): nothing says what to load")
        }
        guard table.count != 0xFFFF else {
            throw ImageError(
                .unsupported, file: file, at: .byteOffset(44),
                "e_phnum is PN_XNUM (65535); extended program header counts are not supported")
        }
        guard table.entrySize == programHeaderSize else {
            throw ImageError(
                file: file, at: .byteOffset(42), "e_phentsize is \(table.entrySize), ELF32 program headers are \(programHeaderSize) bytes")
        }
        try reader.require(
            table.offset, table.count * table.entrySize,
            "the program header table (\(table.count) entries, e_phoff \(table.offset))")
        return table
    }

    /// The file contents of every PT_LOAD program header, at its physical address.
    static func loadableSegments(_ reader: ByteReader, table: ProgramHeaderTable) throws(ImageError) -> [Segment] {
        let file = reader.file
        var segments: [Segment] = []
        // Program headers may point at the same file bytes; copying each would let a small file demand
        // gigabytes (4,000 headers over one region). No linked image loads more bytes than its file holds.
        var loadedBytes = 0
        for index in 0..<table.count {
            let header = table.offset + index * table.entrySize
            guard reader.u32(header) == 1 else { continue } // PT_LOAD
            let offset = Int(reader.u32(header + 4))
            let physical = reader.u32(header + 12)
            let fileSize = Int(reader.u32(header + 16))
            let memorySize = Int(reader.u32(header + 20))
            guard fileSize > 0 else { continue }
            guard fileSize <= memorySize else {
                throw ImageError(
                    file: file, at: .byteOffset(header + 16),
                    "program header \(index): p_filesz \(fileSize) exceeds p_memsz \(memorySize)")
            }
            try reader.require(offset, fileSize, "program header \(index)'s contents (p_offset \(offset), p_filesz \(fileSize))")
            guard UInt64(physical) + UInt64(fileSize) <= 0x1_0000_0000 else {
                throw ImageError(
                    file: file, at: .byteOffset(header + 12),
                    "program header \(index): p_paddr 0x\(Hex.digits(physical, width: 8)) + \(fileSize) bytes runs past the 4 GiB address space"
                )
            }
            loadedBytes += fileSize
            guard loadedBytes <= reader.bytes.count else {
                throw ImageError(
                    file: file, at: .byteOffset(header + 16),
                    "program header \(index): the loadable program headers so far load \(loadedBytes) bytes, "
                        + "more than the file's \(reader.bytes.count); several load the same bytes")
            }
            segments.append(Segment(address: physical, bytes: Array(reader.bytes[offset..<offset + fileSize])))
        }
        return segments
    }
}
