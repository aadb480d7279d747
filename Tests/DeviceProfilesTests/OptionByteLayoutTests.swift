import Foundation
import HexFormat
import Testing

@testable import DeviceProfiles

/// The option-byte layouts (protocols/option-bytes/*.json): embedded as written, consistent with the family
/// files, and decoding known values per part line.
@Suite("Option-byte layouts")
struct OptionByteLayoutTests {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../protocols/option-bytes").standardized

    static func jsonFiles() throws -> [(name: String, json: String)] {
        try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".json") }.sorted().map {
            ($0, try String(contentsOf: directory.appendingPathComponent($0), encoding: .utf8))
        }
    }

    /// `family`'s fields decoded from `hex`, by name (a name given twice is a test failure).
    static func decode(_ family: String, _ hex: String) throws -> [String: DecodedOption] {
        let layout = try #require(OptionByteLayout.layout(forFamily: family), "no layout for \(family)")
        let bytes = try #require(Hex.bytes(fromHex: hex, ignoringSpaces: true))
        let decoded = layout.decode(bytes, family: family)
        #expect(Set(decoded.map(\.field.name)).count == decoded.count, "\(family): a field is decoded twice")
        return Dictionary(decoded.map { ($0.field.name, $0) }, uniquingKeysWith: { first, _ in first })
    }

    @Test("the embedded copy is the JSON files exactly (run scripts/gen-option-bytes after editing them)")
    func generatedFileIsCurrent() throws {
        let files = try Self.jsonFiles()
        let embedded = EmbeddedOptionByteFiles.files
        #expect(embedded.map(\.name) == files.map(\.name), "run scripts/gen-option-bytes")
        for (file, copy) in zip(files, embedded) where file.name == copy.name {
            #expect(copy.json + "\n" == file.json, "\(file.name) changed since scripts/gen-option-bytes ran")
        }
    }

    @Test("the eight part lines are covered, each family by one layout, every family known")
    func coverage() throws {
        let layouts = OptionByteLayout.all
        #expect(
            Set(layouts.map(\.line)).isSuperset(of: ["STM32F0", "STM32F1", "STM32F4", "STM32F7", "STM32L4", "STM32G0", "STM32G4", "STM32H7"]
            ))
        let covered = layouts.flatMap(\.families)
        #expect(Set(covered).count == covered.count, "a family is in two layouts")
        let known = Set(McuFamily.all.map(\.id))
        #expect(Set(covered).isSubset(of: known), "unknown families: \(Set(covered).subtracting(known))")
        for layout in layouts {
            for field in layout.fields {
                #expect(!field.source.isEmpty)
                #expect(Set(field.families ?? []).isSubset(of: layout.families), "\(layout.file) \(field.name)")
            }
        }
    }

    /// The memory the ROM's option-byte alternate shows, or the family file's option-byte size where the ROM
    /// has no such alternate (G0B1: `option-bytes` refuses it, the layout still documents the part).
    @Test("every field lies inside the option-byte memory of its family")
    func fieldsInsideTheArea() throws {
        for layout in OptionByteLayout.all {
            for id in layout.families {
                let family = try #require(McuFamily.named(id))
                let alternate = family.otherMemories.first { $0.hasPrefix("@Option Bytes") }
                let size =
                    try alternate.map { try #require(try FlashLayout(parsing: $0).zones.first?.size) }
                    ?? UInt64(family.optionBytes.size)
                for field in layout.fields where field.families?.contains(id) ?? true {
                    #expect(field.bytesNeeded <= Int(size), "\(layout.file) \(field.name) lies past \(id)'s \(size) bytes")
                }
            }
        }
    }

    /// The bits the family files already use (RDP byte, DBANK, the BOOT0 source and nBOOT0) are where the
    /// layouts put the fields of those names.
    @Test("the layouts agree with the family files on RDP, DBANK and the BOOT0 option bits")
    func agreeWithFamilyFiles() throws {
        for layout in OptionByteLayout.all {
            for id in layout.families {
                let family = try #require(McuFamily.named(id))
                let fields = layout.fields.filter { $0.families?.contains(id) ?? true }
                func bitIndex(_ names: [String]) -> Int? {
                    fields.first { names.contains($0.name) }.map { $0.offset * 8 + $0.bit }
                }
                #expect(bitIndex(["RDP"]).map { $0 / 8 } == family.optionBytes.readProtectionByteOffset, "\(id) RDP")
                if let dbank = family.optionBytes.dualBankBit { #expect(bitIndex(["DBANK"]) == dbank, "\(id) DBANK") }
                if let pin = family.boot0.pinIgnoredBit {
                    #expect(bitIndex(["nSWBOOT0", "nBOOT_SEL", "BOOT_SEL"]) == pin, "\(id) BOOT0 source")
                }
                if let nBoot0 = family.boot0.nBoot0Bit { #expect(bitIndex(["nBOOT0"]) == nBoot0, "\(id) nBOOT0") }
            }
        }
    }

    @Test("F0: the factory bytes; nBOOT0 and BOOT_SEL on F04x only")
    func f0() throws {
        let factory = "AA 55 FF 00 FF 00 FF 00 FF 00 FF 00 FF 00 FF 00"
        let f042 = try Self.decode("f042", factory)
        #expect(f042["RDP"]?.meaning == "level 0: no read protection")
        #expect(f042["BOOT_SEL"]?.value == 1 && f042["BOOT_SEL"]?.meaning == "the BOOT0 pin")
        #expect(f042["IWDG_SW"]?.meaning == "software: started by the application")
        #expect(f042["WRP3"]?.value == 0xFF && f042["WRP3"]?.valueText == "0xFF")
        let f072 = try Self.decode("f072", "BB 44 F8 07" + " FF 00" * 6)
        #expect(f072["BOOT_SEL"] == nil && f072["nBOOT0"] == nil)
        #expect(f072["RDP"]?.meaning?.hasPrefix("level 1") == true)
        #expect(f072["IWDG_SW"]?.value == 0 && f072["nRST_STOP"]?.value == 0 && f072["nBOOT1"]?.value == 1)
    }

    @Test("F1: RDP 0xA5 is unprotected, anything else protected (no level 2)")
    func f1() throws {
        #expect(try Self.decode("f105", "A5 5A FF 00" + " FF 00" * 6)["RDP"]?.meaning == "not read-protected")
        let protected = try Self.decode("f105", "CC 33 FB 04" + " FF 00" * 6)
        #expect(protected["RDP"]?.meaning?.hasPrefix("read-protected") == true)
        #expect(protected["nRST_STDBY"]?.value == 0 && protected["IWDG_SW"]?.value == 1)
    }

    @Test("F4: USER and RDP in the first word; BOR off in the factory value; nWRP at offset 8")
    func f4() throws {
        let fields = try Self.decode("f407", "EC AA FF 0F FF FF FF FF FF 0F 00 F0 FF FF FF FF")
        #expect(fields["RDP"]?.value == 0xAA)
        #expect(fields["BOR_LEV"]?.value == 3 && fields["BOR_LEV"]?.meaning == "BOR off")
        #expect(fields["WDG_SW"]?.value == 1 && fields["nRST_STOP"]?.value == 1 && fields["nRST_STDBY"]?.value == 1)
        #expect(fields["nWRP"]?.value == 0xFFF && fields["nWRP"]?.field.unverified == true)
        #expect(fields["RDP"]?.field.unverified == false)
        #expect(try Self.decode("f407", "E0 CC FF 0F")["RDP"]?.meaning?.hasPrefix("level 2") == true)
    }

    @Test("F7: watchdogs and RDP from the first word, BOOT_ADD words unverified")
    func f7() throws {
        let fields = try Self.decode("f74x", "F4 AA 00 55 FF FF FF FF 80 00 40 00 FF FF FF FF 80 00 40 20 7F FF BF DF")
        #expect(fields["BOR_LEV"]?.value == 1 && fields["BOR_LEV"]?.meaning == "BOR level 2")
        #expect(fields["WWDG_SW"]?.value == 1 && fields["IWDG_SW"]?.value == 1)
        #expect(fields["BOOT_ADD0"]?.value == 0x0080 && fields["BOOT_ADD1"]?.value == 0x2040)
        #expect(fields["BOOT_ADD0"]?.field.unverified == true)
    }

    @Test("L4: FLASH_OPTR's factory value; nSWBOOT0 where the part has it")
    func l4() throws {
        let l43x = try Self.decode("l43x", "AA F8 EF FF")
        #expect(l43x["RDP"]?.value == 0xAA && l43x["BOR_LEV"]?.value == 0 && l43x["BOR_LEV"]?.meaning == "level 0 (lowest)")
        #expect(l43x["nSWBOOT0"]?.value == 1 && l43x["nSWBOOT0"]?.meaning == "the BOOT0 pin")
        #expect(l43x["nBOOT1"]?.value == 1 && l43x["SRAM2_RST"]?.value == 1)
        #expect(try Self.decode("l476", "AA F8 EF FF")["nSWBOOT0"] == nil)
        #expect(try Self.decode("l476", "AA F8 EF FF")["DUALBANK"]?.value == 1)
    }

    @Test("G0: nBOOT_SEL, nBOOT0 and the NRST mode from FLASH_OPTR")
    func g0() throws {
        let fields = try Self.decode("g0b1", "AA FE FF DF")
        #expect(fields["BOR_EN"]?.value == 0 && fields["BOR_EN"]?.meaning == "disabled")
        #expect(fields["nBOOT_SEL"]?.value == 1 && fields["nBOOT_SEL"]?.meaning?.contains("nBOOT0 option bit") == true)
        #expect(fields["NRST_MODE"]?.value == 3 && fields["NRST_MODE"]?.meaning == "bidirectional reset")
        #expect(fields["IRHEN"]?.value == 0)
        #expect(fields["WRP1A_STRT"] == nil, "a field past the bytes read is left out")
    }

    @Test("G4: DBANK on G47x only; nSWBOOT0 = 0 hands BOOT0 to nBOOT0")
    func g4() throws {
        let g474 = try Self.decode("g474", "AA F8 EF FB")
        #expect(g474["DBANK"]?.value == 1 && g474["DBANK"]?.meaning == "dual bank")
        #expect(g474["nSWBOOT0"]?.value == 0 && g474["nSWBOOT0"]?.meaning?.hasPrefix("the nBOOT0 option bit") == true)
        #expect(g474["nBOOT0"]?.value == 1)
        #expect(try Self.decode("g431", "AA F8 EF FF")["DBANK"] == nil)
        let single = try Self.decode("g474", "AA F8 AF FF")
        #expect(single["DBANK"]?.value == 0 && single["DBANK"]?.meaning == "single bank")
    }

    @Test("H7: FLASH_OPTSR_CUR, then WPSN_CUR1 at offset 0x1C")
    func h7() throws {
        let bytes = "1C AA C6 03" + " 00" * 24 + " FE 00 00 00"
        let fields = try Self.decode("h753", bytes)
        #expect(fields["RDP"]?.value == 0xAA && fields["BOR_LEV"]?.value == 3 && fields["BOR_LEV"]?.meaning == "BOR level 3 (highest)")
        #expect(fields["IWDG1_SW"]?.value == 1 && fields["SWAP_BANK_OPT"]?.value == 0)
        #expect(fields["WRPSN"]?.value == 0xFE)
    }

    @Test("a field without a source is refused, naming the file and the field")
    func unsourcedFieldRefused() throws {
        let text =
            #"{"format": 1, "line": "X", "area": "a", "families": ["x"], "fields": [{"name": "RDP", "offset": 0, "bit": 0, "width": 8, "description": "d"}]}"#
        #expect(throws: OptionByteLayoutError.self) { try OptionByteLayout(file: "x.json", json: text) }
        do { _ = try OptionByteLayout(file: "x.json", json: text) } catch {
            #expect(error.description.contains("x.json") && error.description.contains("RDP"))
        }
        let outside = text.replacingOccurrences(of: #""description": "d""#, with: #""description": "d", "source": "s""#)
            .replacingOccurrences(of: #""bit": 0"#, with: #""bit": 30"#)
        #expect(throws: OptionByteLayoutError.self) { try OptionByteLayout(file: "x.json", json: outside) }
    }
}

extension String {
    /// `" FF 00" * 3`: the text repeated.
    fileprivate static func * (text: String, count: Int) -> String { String(repeating: text, count: count) }
}
