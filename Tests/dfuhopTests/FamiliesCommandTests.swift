import Foundation
import Testing

@Suite("dfuhop families", .timeLimit(.minutes(10)))
struct FamiliesCommandTests {
    @Test func jsonListsAtLeastSixteenPartLinesWithSourcesAndTheRefusals() async throws {
        let result = try await Dfuhop.run("families", "--json")
        #expect(result.status == 0, "\(result)")
        let objects = try #require(try result.json()["families"] as? [[String: Any]])
        let modelled = objects.filter { $0["usbDFU"] as? Bool == true }
        #expect(modelled.count >= 16)
        for line in modelled {
            let sources = line["sources"] as? [String: String] ?? [:]
            #expect(sources["deviceID"] != nil && sources["romVersions[0]"] != nil, "\(line["id"] ?? "?")")
            #expect(line["unverified"] is [String])
        }
        let refused = objects.filter { $0["usbDFU"] as? Bool == false }
        #expect(refused.contains { $0["id"] as? String == "f103" && ($0["refusal"] as? String ?? "").contains("no USB DFU") })
    }

    @Test func aRefusedPartLineCannotBeSimulated() async throws {
        let result = try await Dfuhop.run("info", "--simulate", "f103:programmed")
        #expect(result.status == 64, "\(result)")
        #expect(result.stderr.contains("no USB DFU"))
    }
}
