import Foundation
import SeededRandom
import Testing

@testable import DeviceProfiles

/// A real layout string (docs/silicon-sources.md) and what it must parse to: per zone, its start and its groups
/// as (count, sector size, attribute letter).
struct RealLayout: Sendable, CustomTestStringConvertible {
    let part: String
    let text: String
    let name: String
    let zones: [(start: UInt32, groups: [(Int, UInt32, Character)])]

    var testDescription: String { part }
}

private let k: UInt32 = 1024

let realLayouts: [RealLayout] = [
    RealLayout(
        part: "F405/F407 flash", text: "@Internal Flash  /0x08000000/04*016Kg,01*064Kg,07*128Kg",
        name: "Internal Flash", zones: [(0x0800_0000, [(4, 16 * k, "g"), (1, 64 * k, "g"), (7, 128 * k, "g")])]),
    RealLayout(
        part: "F405/F407 option bytes", text: "@Option Bytes  /0x1FFFC000/01*016 g",
        name: "Option Bytes", zones: [(0x1FFF_C000, [(1, 16, "g")])]),
    RealLayout(
        part: "F405/F407 OTP", text: "@OTP Memory /0x1FFF7800/01*512 g,01*016 g",
        name: "OTP Memory", zones: [(0x1FFF_7800, [(1, 512, "g"), (1, 16, "g")])]),
    RealLayout(
        part: "F405/F407 device feature", text: "@Device Feature/0xFFFF0000/01*004 g",
        name: "Device Feature", zones: [(0xFFFF_0000, [(1, 4, "g")])]),
    RealLayout(
        part: "F401CC flash", text: "@Internal Flash  /0x08000000/04*016Kg,01*064Kg,01*128Kg",
        name: "Internal Flash", zones: [(0x0800_0000, [(4, 16 * k, "g"), (1, 64 * k, "g"), (1, 128 * k, "g")])]),
    RealLayout(
        part: "F413 flash", text: "@Internal Flash  /0x08000000/04*016Kg,01*064Kg,011*128Kg",
        name: "Internal Flash", zones: [(0x0800_0000, [(4, 16 * k, "g"), (1, 64 * k, "g"), (11, 128 * k, "g")])]),
    RealLayout(
        part: "F107 flash", text: "@Internal Flash  /0x08000000/128*002Kg",
        name: "Internal Flash", zones: [(0x0800_0000, [(128, 2 * k, "g")])]),
    RealLayout(
        part: "F303 flash", text: "@Internal Flash  /0x08000000/128*0002Kg",
        name: "Internal Flash", zones: [(0x0800_0000, [(128, 2 * k, "g")])]),
    RealLayout(
        part: "L4 flash", text: "@Internal Flash  /0x08000000/0128*0002Kg",
        name: "Internal Flash", zones: [(0x0800_0000, [(128, 2 * k, "g")])]),
    RealLayout(
        part: "L4 option bytes", text: "@Option Bytes  /0x1FFF7800/01*040 e",
        name: "Option Bytes", zones: [(0x1FFF_7800, [(1, 40, "e")])]),
    RealLayout(
        part: "G0C1 flash", text: "@Internal Flash  /0x08000000/256*02Kg",
        name: "Internal Flash", zones: [(0x0800_0000, [(256, 2 * k, "g")])]),
    RealLayout(
        part: "G474 option bytes (two zones)", text: "@Option Bytes   /0x1FFF7800/01*048 e/0x1FFFF800/01*048 e",
        name: "Option Bytes", zones: [(0x1FFF_7800, [(1, 48, "e")]), (0x1FFF_F800, [(1, 48, "e")])]),
    RealLayout(
        part: "H563 flash", text: "@Internal Flash  /0x08000000/256*08Kg",
        name: "Internal Flash", zones: [(0x0800_0000, [(256, 8 * k, "g")])]),
    RealLayout(
        part: "H7 flash", text: "@Internal Flash   /0x08000000/16*128Kg",
        name: "Internal Flash", zones: [(0x0800_0000, [(16, 128 * k, "g")])]),
    RealLayout(
        part: "seed 002 firmware DfuSe", text: "@Internal Flash  /0x08000000/03*016Ka,01*016Kg,01*064Kg,07*128Kg",
        name: "Internal Flash",
        zones: [(0x0800_0000, [(3, 16 * k, "a"), (1, 16 * k, "g"), (1, 64 * k, "g"), (7, 128 * k, "g")])])
]

@Suite("DfuSe memory layout strings")
struct FlashLayoutTests {
    @Test("every real layout string parses to its zones, sizes and attributes", arguments: realLayouts)
    func realStrings(real: RealLayout) throws {
        let layout = try FlashLayout(parsing: real.text)
        #expect(layout.name == real.name, "padding around the name is dropped")
        #expect(layout.zones.count == real.zones.count)
        for (zone, expected) in zip(layout.zones, real.zones) {
            #expect(zone.start == expected.start)
            #expect(zone.groups.map(\.count) == expected.groups.map(\.0))
            #expect(zone.groups.map(\.sectorSize) == expected.groups.map(\.1))
            #expect(zone.groups.map(\.attributes.letter) == expected.groups.map(\.2))
        }
    }

    @Test("every real layout string survives render and parse unchanged", arguments: realLayouts)
    func renderRoundTrip(real: RealLayout) throws {
        let layout = try FlashLayout(parsing: real.text)
        let rendered = layout.render()
        #expect(try FlashLayout(parsing: rendered) == layout)
        #expect(rendered.hasPrefix("@\(real.name)/0x"))
    }

    @Test("render writes ST's notation: two-digit counts, three-digit sizes, the largest exact unit")
    func renderNotation() throws {
        #expect(
            try FlashLayout(parsing: "@Internal Flash  /0x08000000/0128*0002Kg").render()
                == "@Internal Flash/0x08000000/128*002Kg")
        #expect(
            try FlashLayout(parsing: "@OTP Memory /0x1FFF7800/01*512 g,01*016 g").render()
                == "@OTP Memory/0x1FFF7800/01*512 g,01*016 g")
        #expect(try FlashLayout(parsing: "@QSPI/0x90000000/02*1024Kg").render() == "@QSPI/0x90000000/02*001Mg")
    }

    @Test("all four multipliers: B and space are bytes, K is KiB, M is MiB")
    func multipliers() throws {
        let cases: [(String, UInt32)] = [
            ("04*100Bg", 100), ("04*100 g", 100), ("04*100Kg", 100 * 1024),
            ("04*002Mg", 2 * 1024 * 1024), ("04*100g", 100)
        ]
        for (group, size) in cases {
            let layout = try FlashLayout(parsing: "@Memory/0x20000000/\(group)")
            #expect(layout.zones[0].groups[0].sectorSize == size, "\(group)")
            #expect(layout.zones[0].groups[0].count == 4)
        }
    }

    @Test("attribute letters a to g are the low three bits: readable 1, erasable 2, writable 4")
    func attributeLetters() throws {
        let expected: [Character: SectorAttributes] = [
            "a": [.readable], "b": [.erasable], "c": [.readable, .erasable], "d": [.writable],
            "e": [.readable, .writable], "f": [.erasable, .writable], "g": .all
        ]
        for (letter, attributes) in expected {
            let layout = try FlashLayout(parsing: "@M/0x08000000/01*001K\(letter)")
            #expect(layout.zones[0].groups[0].attributes == attributes, "letter \(letter)")
            #expect(attributes.letter == letter)
        }
        #expect(SectorAttributes(letter: "h") == nil)
        #expect(SectorAttributes(letter: "`") == nil)
        #expect(SectorAttributes(letter: "G") == nil)
    }

    @Test("sectors are numbered across groups and zones, and found by address")
    func sectorsAndLookup() throws {
        let layout = try FlashLayout(parsing: "@Option Bytes   /0x1FFF7800/01*048 e/0x1FFFF800/01*048 e")
        #expect(layout.sectors.map(\.start) == [0x1FFF_7800, 0x1FFF_F800])
        #expect(layout.sectors.map(\.index) == [0, 1])
        #expect(layout.sector(containing: 0x1FFF_F82F)?.index == 1)
        #expect(layout.sector(containing: 0x1FFF_F830) == nil)
        #expect(layout.sector(containing: 0x1FFF_7830) == nil, "the gap between zones belongs to no sector")

        let f407 = try FlashLayout(parsing: "@Internal Flash  /0x08000000/04*016Kg,01*064Kg,07*128Kg")
        #expect(f407.sector(containing: 0x0801_FFFF) == f407.sectors[4])
        #expect(f407.sector(containing: 0x0802_0000)?.index == 5)
        #expect(f407.sector(containing: 0x080F_FFFF)?.index == 11)
        #expect(f407.sector(containing: 0x0810_0000) == nil)
        #expect(f407.sector(containing: 0x07FF_FFFF) == nil)
    }

    @Test("trailing NULs and spaces some ROMs send are ignored; a lower-case 0x prefix and hex digits parse")
    func padding() throws {
        let layout = try FlashLayout(parsing: "@Internal Flash  /0x08000000/04*016Kg\u{0}\u{0}  ")
        #expect(layout.zones[0].groups.count == 1)
        #expect(try FlashLayout(parsing: "@M/0X1fff7800/01*048 e").zones[0].start == 0x1FFF_7800)
    }

    @Test("a zone may end exactly at 4 GiB")
    func zoneAtTheTop() throws {
        let layout = try FlashLayout(parsing: "@Top/0xFFFFF000/04*001Kg")
        #expect(layout.zones[0].end == 0x1_0000_0000)
        #expect(layout.sector(containing: 0xFFFF_FFFF)?.index == 3)
    }

    @Test("layouts encode to JSON and back")
    func codable() throws {
        let layout = try FlashLayout(parsing: "@Option Bytes   /0x1FFF7800/01*048 e/0x1FFFF800/01*048 e")
        let data = try JSONEncoder().encode(layout)
        #expect(try JSONDecoder().decode(FlashLayout.self, from: data) == layout)
    }

    // MARK: Hostile input

    static let hostile: [(String, String)] = [
        ("", "starts with '@'"),
        ("Internal Flash/0x08000000/04*016Kg", "starts with '@'"),
        ("@", "no '/'"),
        ("@Internal Flash", "no '/'"),
        ("@x/", "0x"),
        ("@x/0x", "hex digits"),
        ("@x/08000000/04*016Kg", "0x"),
        ("@x/0x/04*016Kg", "hex digits"),
        ("@x/0xZZ/04*016Kg", "hex digits"),
        ("@x/0x123456789/01*1Kg", "more than 8 hex digits"),
        ("@x/0x08000000", "'/' after the zone address"),
        ("@x/0x08000000/", "sector count"),
        ("@x/0x08000000/04", "'*'"),
        ("@x/0x08000000/04*", "sector size"),
        ("@x/0x08000000/04*016", "unit"),
        ("@x/0x08000000/04*016K", "attribute letter"),
        ("@x/0x08000000/04*016Kh", "attribute letter"),
        ("@x/0x08000000/04*016KG", "attribute letter"),
        ("@x/0x08000000/04*016Kg,", "sector count"),
        ("@x/0x08000000/04*016Kg;01*1Kg", "'/' before a zone address"),
        ("@x/0x08000000/00*016Kg", "count of 0"),
        ("@x/0x08000000/04*000Kg", "sector size"),
        ("@x/0x08000000/99999999999*1Kg", "too large"),
        ("@x/0x08000000/1*99999999999Bg", "too large"),
        ("@x/0x08000000/1*4096Mg", "between 1 byte and 4 GiB"),
        ("@x/0xFFFFFFFF/02*1Kg", "4 GiB"),
        ("@x/0x00000000/4294967295*4294967295Bg,4294967295*4294967295Bg", "4 GiB"),
        ("@x/0x00000000/4294967295*1Bg", "more than"),
        ("@x/0x08000000/01*1Kg/0x08000000/01*1Kg", "overlaps"),
        ("@x/0x08000000/02*1Kg/0x08000400/01*1Kg", "overlaps"),
        ("@x/0x08000000/01*1K\u{0}g", "attribute letter"),
        ("@x/0x08000000/-1*1Kg", "sector count"),
        ("@x/0x08000000/01*1Kg/", "0x")
    ]

    @Test("hostile strings are refused with a clear error at a sensible offset")
    func hostileStrings() {
        for (text, problem) in Self.hostile {
            do {
                let layout = try FlashLayout(parsing: text)
                Issue.record("\"\(text)\" parsed to \(layout)")
            } catch {
                #expect(error.problem.contains(problem), "\"\(text)\": \(error.problem)")
                #expect(error.offset >= 0 && error.offset <= text.utf8.count, "\"\(text)\": offset \(error.offset)")
                #expect(error.description.contains("character \(error.offset)"))
            }
        }
    }

    @Test("random and mutated strings never crash or hang; whatever parses renders back to itself")
    func fuzz() {
        var generator = SplitMix64(seed: 0x5EED)
        let alphabet = Array("@/0123456789xXaAbBcdefgKMG*, \u{0}-.".utf8)
        let seeds = realLayouts.map { Array($0.text.utf8) }
        var parsed = 0
        for round in 0..<4000 {
            var bytes: [UInt8]
            if round % 2 == 0 {
                bytes = (0..<Int(generator.next() % 48)).map { _ in alphabet[Int(generator.next() % UInt64(alphabet.count))] }
                if generator.next() % 2 == 0 { bytes.insert(UInt8(ascii: "@"), at: 0) }
            } else {
                bytes = seeds[Int(generator.next() % UInt64(seeds.count))]
                for _ in 0..<(1 + Int(generator.next() % 4)) where !bytes.isEmpty {
                    let position = Int(generator.next() % UInt64(bytes.count))
                    switch generator.next() % 3 {
                    case 0: bytes[position] = alphabet[Int(generator.next() % UInt64(alphabet.count))]
                    case 1: bytes.remove(at: position)
                    default: bytes.insert(alphabet[Int(generator.next() % UInt64(alphabet.count))], at: position)
                    }
                }
            }
            let text = String(decoding: bytes, as: UTF8.self)
            guard let layout = try? FlashLayout(parsing: text) else { continue }
            parsed += 1
            #expect(layout.zones.allSatisfy { $0.end <= 0x1_0000_0000 })
            #expect((try? FlashLayout(parsing: layout.render())) == layout, "\"\(text)\"")
        }
        #expect(parsed > 100, "the mutations should leave many strings valid")
    }
}
