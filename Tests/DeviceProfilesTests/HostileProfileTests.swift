import Foundation
import Testing

@testable import DeviceProfiles

private let legacyExample = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("protocols/devices/legacy-example-l476.json")

/// Profiles and layout strings are outside input: numbers anywhere in Int64's range and any length.
/// Each is refused with the file and the field named, never a trap.
@Suite struct HostileProfileTests {
    /// The legacy example with `identify.<field>` replaced.
    static func legacy(identify field: String, _ value: Any) throws -> Data {
        var root = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: legacyExample)) as? [String: Any])
        var application = try #require(root["application"] as? [String: Any])
        var legacy = try #require(application["legacy"] as? [String: Any])
        var identify = try #require(legacy["identify"] as? [String: Any])
        identify[field] = value
        legacy["identify"] = identify
        application["legacy"] = legacy
        root["application"] = application
        return try JSONSerialization.data(withJSONObject: root)
    }

    @Test(
        "field offsets near Int64's limits are refused, not an overflow",
        arguments: [
            Int64.max, Int64.max - 11, Int64.min, -1, 0
        ])
    func hugeFieldOffset(offset: Int64) throws {
        let data = try Self.legacy(identify: "uidOffset", offset)
        let error = #expect(throws: ProductProfileError.self) { try ProductProfile.decode(data, file: "p.json") }
        #expect(error?.field == "application.legacy.identify.uidOffset")
        #expect(error?.problem.contains("does not fit") == true, "\(String(describing: error))")
    }

    @Test(
        "request bytes must be ASCII hex pairs: a fullwidth digit (Unicode calls it a hex digit) is refused, not read as 0",
        arguments: ["\u{FF13}F 01", "3F 0", "3F 0G", "0x3F"])
    func nonHexRequestBytes(text: String) throws {
        let data = try Self.legacy(identify: "request", text)
        let error = #expect(throws: ProductProfileError.self) { try ProductProfile.decode(data, file: "p.json") }
        #expect(error?.field == "application.legacy.identify.request")
        #expect(error?.problem.contains("must be bytes in hex") == true, "\(String(describing: error))")
    }

    @Test("the unmodified example still loads")
    func exampleLoads() throws {
        _ = try ProductProfile.decode(Data(contentsOf: legacyExample), file: "p.json")
    }

    @Test("a profile file larger than any profile is refused before it is parsed")
    func hugeProfile() {
        let data = Data(repeating: 0x20, count: ProductProfile.maximumFileSize + 1)
        let error = #expect(throws: ProductProfileError.self) { try ProductProfile.decode(data, file: "p.json") }
        #expect(error?.problem.contains("at most") == true)
    }

    @Test("a layout string longer than the limit is refused quickly, even with thousands of zones")
    func hugeLayout() {
        let zones = (0..<20_000).map { "/0x\(String(0x1000_0000 + $0 * 0x100, radix: 16))/01*256Bg" }.joined()
        let error = #expect(throws: FlashLayoutError.self) { try FlashLayout(parsing: "@Flash" + zones) }
        #expect(error?.problem.contains("more than \(FlashLayout.maximumLength)") == true)
        #expect((error?.description.count ?? .max) < 400, "the message quotes the start of the string, not all of it")
    }
}
