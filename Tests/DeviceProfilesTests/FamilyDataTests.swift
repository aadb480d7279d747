import Foundation
import Testing

@testable import DeviceProfiles

/// The family files (protocols/families/*.json) against what the binary embeds, and the sourcing rule.
@Suite("Family data files")
struct FamilyDataTests {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../protocols/families").standardized

    static func jsonFiles() throws -> [(name: String, json: String)] {
        try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".json") }.sorted().map {
            ($0, try String(contentsOf: directory.appendingPathComponent($0), encoding: .utf8))
        }
    }

    @Test("the embedded copy is the JSON files exactly (run scripts/gen-families after editing them)")
    func generatedFileIsCurrent() throws {
        let files = try Self.jsonFiles()
        let embedded = EmbeddedFamilyFiles.files
        #expect(embedded.map(\.name) == files.map(\.name), "run scripts/gen-families")
        for (file, copy) in zip(files, embedded) where file.name == copy.name {
            #expect(copy.json + "\n" == file.json, "\(file.name) changed since scripts/gen-families ran")
        }
    }

    @Test("every file loads, and every value has a source")
    func everyFileLoads() throws {
        let files = try Self.jsonFiles()
        let catalog = try FamilyCatalog(files: files)
        #expect(catalog.families.count + catalog.unsupported.count == files.count)
        #expect(catalog.families.count >= 16)
        for family in catalog.families {
            #expect(!family.sources.isEmpty)
            #expect(family.sources.values.allSatisfy { !$0.text.isEmpty })
        }
    }

    @Test("a value without a source is refused, naming the file and the field")
    func unsourcedValueRefused() throws {
        let f407 = try #require(try Self.jsonFiles().first { $0.name == "f407.json" })
        let stripped = f407.json.replacingOccurrences(
            of: #""deviceID": \{[^}]*\}"#, with: #""deviceID": "0x413""#,
            options: .regularExpression)
        #expect(stripped != f407.json)
        #expect(throws: FamilyDataError.self) { try FamilyCatalog(files: [("f407.json", stripped)]) }
        do { _ = try FamilyCatalog(files: [("f407.json", stripped)]) } catch {
            #expect(error.file == "f407.json" && error.field == "deviceID")
        }
    }

    @Test("narrow values are range-checked, not truncated; integers are JSON integers; a value left out is named")
    func strictValues() throws {
        let f407 = try #require(try Self.jsonFiles().first { $0.name == "f407.json" })
        for (from, to, field, words) in [
            (#""value": "0x413""#, #""value": "0x1_0413""#, "deviceID", "outside 0...65535"),
            (#""bcdDevice": "0x2200""#, #""bcdDevice": 8704"#, "romVersions.0.bcdDevice", "must be a string"),
            (#""transferSize": 2048"#, #""transferSize": 2048.0"#, "romVersions.0.transferSize", "no fraction"),
            (#""transferSize": 2048"#, #""transferSize": 65536"#, "romVersions.0.transferSize", "outside 0...65535"),
            (#""transferSize": 2048"#, #""transferSize": true"#, "romVersions.0.transferSize", "must be an integer"),
            (#""transferSize": 2048,"#, "", "romVersions.0.transferSize", "is missing")
        ] {
            let text = try #require(f407.json.range(of: from).map { f407.json.replacingCharacters(in: $0, with: to) })
            let error = try #require(throws: FamilyDataError.self) { try FamilyCatalog(files: [("f407.json", text)]) }
            #expect(error.field == field && error.problem.contains(words), "\(to): \(error)")
        }
    }

    @Test("unverified values are listed per family with their notes")
    func unverifiedListed() throws {
        let text =
            #"{"format": 1, "id": "x1", "name": "X", "usbDFU": {"value": false, "source": "AN2606"}, "#
            + #""refusal": {"value": "no USB", "source": "AN2606"}}"#
        let catalog = try FamilyCatalog(files: [("x1.json", text)])
        #expect(catalog.families.isEmpty)
        #expect(catalog.unsupported.map(\.reason) == ["no USB"])
        for family in McuFamily.all {
            #expect(family.unverified.map(\.field) == family.sources.filter(\.value.unverified).keys.sorted())
        }
    }
}

@Suite("Telling part lines apart by what the ROM shows")
struct FamilyCandidateTests {
    @Test("every part line is found from its own ROM's alternates, bcdDevice and serial", arguments: McuFamily.all)
    func ownIdentityFindsTheLine(family: McuFamily) {
        let version = family.romVersions[0]
        let found = McuFamily.candidates(
            alternates: [family.defaultFlashMode.layoutString] + version.otherMemories,
            bcdDevice: version.bcdDevice, serial: family.romSerial.fixedSerial ?? "205939885533")
        #expect(found.contains(family))
    }

    @Test("shared flash layouts are told apart by the other alternates or the constant serial")
    func sharedLayouts() throws {
        let f446 = try #require(McuFamily.named("f446"))
        let alternates = [f446.defaultFlashMode.layoutString] + f446.otherMemories
        #expect(McuFamily.candidates(alternates: alternates, bcdDevice: 0x2200, serial: "STM32FxSTM32").map(\.id) == ["f446"])
        // F401xE and F411xE ROMs list the same strings: the listing alone cannot tell them apart.
        #expect(McuFamily.candidates(alternates: alternates, bcdDevice: 0x2200, serial: "3377337E3539").map(\.id) == ["f401xe", "f411"])
        let g0 = try #require(McuFamily.named("g0b1"))
        let g0Alternates = [g0.defaultFlashMode.layoutString] + g0.otherMemories
        #expect(McuFamily.candidates(alternates: g0Alternates, bcdDevice: 0x0200).map(\.id) == ["g0b1"])
        let u5 = try #require(McuFamily.named("u5"))
        let u5Alternates = [u5.defaultFlashMode.layoutString] + u5.otherMemories
        #expect(McuFamily.candidates(alternates: u5Alternates, bcdDevice: 0x0200).map(\.id) == ["u5"])
    }
}
