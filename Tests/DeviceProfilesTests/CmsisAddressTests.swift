import Foundation
import Testing

@testable import DeviceProfiles

/// The family files against ST's own CMSIS device headers: protocols/families/cmsis/addresses.json is what
/// scripts/cmsis-addresses read from STMicroelectronics/cmsis_device_* (each repository with its commit), and
/// cmsis/families.json names the headers of each part line.
@Suite("Family addresses against ST's CMSIS headers", .timeLimit(.minutes(10)))
struct CmsisAddressTests {
    struct Part: Decodable {
        var backupRegister: String?
        var uid: String?
        var flashBase: String?
        var systemMemory: String?
        /// FLASH_OPTR bit positions: nSWBOOT0, nBOOT_SEL, nBOOT0 (where the header defines them).
        var optionBits: [String: Int]?
        var repository: String
    }

    struct Table: Decodable {
        struct Repository: Decodable {
            var repository: String
            var commit: String
        }
        var repositories: [Repository]
        var parts: [String: Part]
    }

    struct Lines: Decodable { var lines: [String: [String]] }

    static let directory = FamilyDataTests.directory.appendingPathComponent("cmsis")
    static let table: Table = load("addresses.json")
    static let lines: Lines = load("families.json")

    static func load<T: Decodable>(_ name: String) -> T {
        do {
            return try JSONDecoder().decode(T.self, from: Data(contentsOf: directory.appendingPathComponent(name)))
        } catch { preconditionFailure("protocols/families/cmsis/\(name): \(error)") }
    }

    /// Where `family` disagrees with the headers its line names: "field: family X, header Y (part)".
    static func disagreements(_ family: McuFamily) -> [String] {
        guard let parts = lines.lines[family.id], !parts.isEmpty else { return ["no CMSIS headers named for \(family.id)"] }
        var found: [String] = []
        for name in parts {
            guard let part = table.parts[name] else {
                found.append("\(name) is not in the table")
                continue
            }
            let checks: [(String, UInt32, String?)] = [
                ("backupRegister", family.backupRegister, part.backupRegister), ("uid", family.uidAddress, part.uid),
                ("flash.base", family.flashBase, part.flashBase), ("systemMemory", family.systemMemoryBase, part.systemMemory)
            ]
            for (field, ours, theirs) in checks {
                guard let theirs, let value = UInt32(theirs.dropFirst(2), radix: 16) else { continue }
                if value != ours { found.append("\(field): family 0x\(String(ours, radix: 16)), \(name) 0x\(String(value, radix: 16))") }
            }
            found += boot0Disagreements(family.boot0, part, name)
        }
        return found
    }

    /// The BOOT0 option bits, counted from the option-byte area's first byte, which is FLASH_OPTR's on the lines
    /// whose header defines FLASH_OPTR's boot bits: the pin-ignoring bit is nSWBOOT0 (G4, L4, L5, U5, WB) or
    /// nBOOT_SEL (G0, C0, U0). F0's USER byte sits elsewhere (FLASH_OBR) and is not checked here.
    static func boot0Disagreements(_ boot0: Boot0Activation, _ part: Part, _ name: String) -> [String] {
        var found: [String] = []
        guard let bits = part.optionBits else { return [] }
        if let ours = boot0.pinIgnoredBit, ours != bits["nSWBOOT0"], ours != bits["nBOOT_SEL"] {
            found.append("boot0.pinIgnoredBit: family \(ours), \(name) nSWBOOT0 \(bits["nSWBOOT0"].map(String.init) ?? "-")")
        }
        if let ours = boot0.nBoot0Bit, ours != bits["nBOOT0"] {
            found.append("boot0.nBoot0Bit: family \(ours), \(name) nBOOT0 \(bits["nBOOT0"].map(String.init) ?? "-")")
        }
        return found
    }

    @Test("the table names each repository with a full commit")
    func tableNamesCommits() {
        #expect(Self.table.repositories.count >= 19)
        for repository in Self.table.repositories {
            #expect(repository.repository.hasPrefix("STMicroelectronics/cmsis_device_"))
            #expect(repository.commit.count == 40 && repository.commit.allSatisfy(\.isHexDigit))
        }
        let named = Set(Self.table.repositories.map(\.repository))
        #expect(Self.table.parts.values.allSatisfy { named.contains($0.repository) })
    }

    @Test("every part line agrees with ST's headers", arguments: McuFamily.all)
    func familyAgrees(family: McuFamily) {
        #expect(Self.disagreements(family) == [])
    }

    /// The values issue 22 found wrong; putting any of them back must fail the check above.
    @Test(
        "the wrong values of issue 22 are caught",
        arguments: [
            ("u5", "backupRegister", 0x4000_7D00), ("h563", "backupRegister", 0x4003_6500), ("h563", "systemMemory", 0x0BF9_7000),
            ("h7a3", "backupRegister", 0x5800_4050), ("l41x", "backupRegister", 0x4000_2850)
        ] as [(String, String, UInt32)])
    func wrongValuesCaught(id: String, field: String, old: UInt32) throws {
        var family = try #require(McuFamily.named(id))
        switch field {
        case "backupRegister": family.backupRegister = old
        default: family.systemMemoryBase = old
        }
        #expect(Self.disagreements(family).contains { $0.hasPrefix(field + ":") })
    }

    @Test(
        "a BOOT0 option bit off by one is caught",
        arguments: McuFamily.all.filter { $0.boot0.nBoot0Bit != nil && $0.id != "f042" })
    func boot0BitsCaught(family: McuFamily) {
        var moved = family
        moved.boot0.nBoot0Bit = family.boot0.nBoot0Bit.map { $0 + 1 }
        #expect(Self.disagreements(moved).contains { $0.hasPrefix("boot0.nBoot0Bit:") })
        moved = family
        moved.boot0.pinIgnoredBit = family.boot0.pinIgnoredBit.map { $0 - 1 }
        #expect(Self.disagreements(moved).contains { $0.hasPrefix("boot0.pinIgnoredBit:") })
    }
}

/// The other values issue 22 found wrong (not addresses), so none comes back unnoticed.
@Suite("Issue 22 values", .timeLimit(.minutes(10)))
struct Issue22ValueTests {
    @Test("F070xB and U073/083 have USB DFU; the F030 and U031 are refused")
    func dfuLines() throws {
        #expect(try #require(McuFamily.withDeviceID(0x448)).name.contains("F070xB"))
        #expect(try #require(McuFamily.named("u0")).deviceID == 0x489)
        #expect(McuFamily.refusal(for: "f030")?.name == "STM32F030")
        #expect(McuFamily.refusal(for: "u031") != nil)
        #expect(McuFamily.refusal(for: "u0") == nil)
    }

    @Test("F04x/F070x6 and L0 cannot jump to the ROM from the application; every other line can")
    func applicationJump() {
        #expect(McuFamily.all.filter { !$0.applicationCanJumpToROM }.map(\.id) == ["f042", "l0"])
    }

    /// ST knowledge base "Empty check mechanism on STM32" (AN2606 patterns 6, 11, 13, 16): F04x, F070x6, F09x, C0,
    /// G0, L01x/02x, L41x-L46x, L496/4A6, L4R/4S, U0, WL, WB. Of the modelled lines exactly these have it.
    @Test("the empty check is on exactly the lines ST's list names")
    func emptyCheckLines() {
        #expect(
            McuFamily.all.filter(\.emptyCheck).map(\.id) == ["c071", "f042", "g0b1", "l41x", "l43x", "l45x", "l496", "l4r", "u0", "wb55"])
    }

    @Test("the entry methods that rest on the empty check are on empty-check lines only")
    func entryNeedsEmptyCheck() {
        let methods: [ApplicationEntry] = [.eraseFirstPage, .forceEmptyFlag]
        let lines = McuFamily.all.filter { methods.contains($0.applicationEntry) }
        #expect(lines.map(\.id) == ["c071", "f042"])
        #expect(lines.allSatisfy { $0.emptyCheck })
    }

    @Test("G0B1 V9.2 clears the empty-check flag at startup")
    func g0b1EmptyCheck() throws {
        let g0b1 = try #require(McuFamily.named("g0b1"))
        #expect(g0b1.emptyCheck && g0b1.emptyCheckClearedAtStartup)
        #expect(McuFamily.all.allSatisfy { !$0.emptyCheckClearedAtStartup || $0.emptyCheck })
    }

    @Test("H563 timings: 29 ms per 8 KiB sector and 485 µs per 16-byte flash word, not 3 ms and 30 µs")
    func h563Timings() throws {
        let h563 = try #require(McuFamily.named("h563"))
        #expect(h563.timings.eraseTime(sectorSize: 8192) == .milliseconds(29))
        #expect(h563.timings.programUnit == .microseconds(485))
    }

    @Test("G431/G474 transfer 1024 bytes; L43x writes over 256 bytes must be multiples of 8")
    func transferAndWriteLimits() throws {
        #expect(try #require(McuFamily.named("g431")).rom.transferSize == 1024)
        #expect(try #require(McuFamily.named("g474")).rom.transferSize == 1024)
        let l43x = try #require(McuFamily.named("l43x")).writeLimits
        #expect(l43x.alignedAbove == 256 && l43x.alignment == 8)
    }

    @Test("a write limit without its pair, or a cleared flag without an empty check, is refused")
    func badFieldsRefused() throws {
        let files = try FamilyDataTests.jsonFiles()
        let g0b1 = try #require(files.first { $0.name == "g0b1.json" })
        let noEmptyCheck = g0b1.json.replacingOccurrences(
            of: "\"emptyCheck\": {\n    \"value\": true", with: "\"emptyCheck\": {\n    \"value\": false")
        #expect(noEmptyCheck != g0b1.json)
        #expect(throws: FamilyDataError.self) { _ = try FamilyCatalog(files: [("g0b1.json", noEmptyCheck)]) }
        let l43x = try #require(files.first { $0.name == "l43x.json" })
        let unpaired = l43x.json.replacingOccurrences(of: "\"alignment\": 8,", with: "")
        #expect(unpaired != l43x.json)
        #expect(throws: FamilyDataError.self) { _ = try FamilyCatalog(files: [("l43x.json", unpaired)]) }
    }
}

/// Flash geometry against probe-rs target descriptions: protocols/families/probe-rs/flash.json is what
/// scripts/probe-rs-flash read from probe-rs/probe-rs (commit recorded). Each line's flash layout must have the
/// size of a part it covers (the parts of its CMSIS headers: "stm32f401xe" covers STM32F401?E).
@Suite("Family flash sizes against probe-rs", .timeLimit(.minutes(10)))
struct ProbeRsFlashTests {
    struct Table: Decodable {
        var repository: String
        var commit: String
        var flashBytes: [String: UInt64]
    }

    static let table: Table = CmsisAddressTests.load("../probe-rs/flash.json")

    /// probe-rs variant names a CMSIS header name covers ("x" stands for any one character).
    static func covered(by header: String) -> [String] {
        let pattern = Array("STM32" + header.dropFirst(5).uppercased())
        return table.flashBytes.keys.filter { name in
            name.count == pattern.count && zip(name, pattern).allSatisfy { $0 == $1 || $1 == "X" }
        }
    }

    @Test("the table names its commit and covers the STM32 series")
    func tableNamesCommit() {
        #expect(Self.table.repository == "probe-rs/probe-rs" && Self.table.commit.count == 40)
        #expect(Self.table.flashBytes.count > 1000)
    }

    @Test("a size no covered part has is caught: F401xB/C is not 512 KiB, F401xD/E not 256 KiB")
    func wrongSizeCaught() {
        let f401 = Set(Self.covered(by: "stm32f401xc").compactMap { Self.table.flashBytes[$0] })
        let f401xe = Set(Self.covered(by: "stm32f401xe").compactMap { Self.table.flashBytes[$0] })
        #expect(f401 == [256 * 1024] && f401xe == [512 * 1024])
    }

    @Test("every line's flash layout has the size of a part it covers", arguments: McuFamily.all)
    func flashSizeIsReal(family: McuFamily) throws {
        let headers = try #require(CmsisAddressTests.lines.lines[family.id])
        let sizes = Set(headers.flatMap(Self.covered).compactMap { Self.table.flashBytes[$0] })
        #expect(!sizes.isEmpty, "no probe-rs part for \(headers)")
        for mode in family.flashModes {
            let size = mode.layout.zones.reduce(0) { $0 + $1.size }
            #expect(sizes.contains(size), "\(mode.name): \(size) bytes, parts have \(sizes.sorted())")
        }
    }
}
