import Foundation
import Testing

@Suite("dfuhop families", .timeLimit(.minutes(10)))
struct FamiliesCommandTests {
    @Test func jsonListsAtLeastSixteenPartLinesWithSourcesAndTheRefusals() async throws {
        let result = try await Dfuhop.run("families", "--json")
        #expect(result.status == 0, "\(result)")
        let objects = try #require(try result.result().families)
        let modelled = objects.filter(\.usbDFU)
        #expect(modelled.count >= 16)
        for line in modelled {
            let sources = line.sources ?? [:]
            #expect(sources["deviceID"] != nil && sources["romVersions[0]"] != nil, "\(line.id)")
            #expect(line.unverified != nil)
        }
        let refused = objects.filter { !$0.usbDFU }
        #expect(refused.contains { $0.id == "f103" && ($0.refusal ?? "").contains("no USB DFU") })
    }

    @Test func aRefusedPartLineCannotBeSimulated() async throws {
        let result = try await Dfuhop.run("info", "--simulate", "f103:programmed")
        #expect(result.status == 64, "\(result)")
        #expect(result.stderr.contains("no USB DFU"))
    }
}
