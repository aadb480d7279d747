import AppLink
import Foundation
import Testing

/// The C header a product compiles (protocols/reference-firmware/include/dfuhop/report_descriptor.h)
/// must carry the same report descriptor dfuhop expects.
@Suite("reference firmware: report descriptor header")
struct ReportDescriptorHeaderTests {
    static let header = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("protocols/reference-firmware/include/dfuhop/report_descriptor.h")

    /// The hex bytes of the DFH_REPORT_DESCRIPTOR_BYTES macro, comments removed, in order.
    static func headerBytes() throws -> [UInt8] {
        let text = try String(contentsOf: header, encoding: .utf8)
        let start = try #require(text.range(of: "#define DFH_REPORT_DESCRIPTOR_BYTES"))
        var macro = ""
        for line in text[start.upperBound...].split(separator: "\n", omittingEmptySubsequences: false) {
            let code = line.replacingOccurrences(of: #"/\*.*?\*/"#, with: "", options: .regularExpression)
            macro += code
            if !line.hasSuffix("\\") { break }
        }
        return macro.split(whereSeparator: { ", \\\t".contains($0) }).map { token in
            UInt8(token.dropFirst(2), radix: 16) ?? 0xEE // 0xEE: not a hex byte, which the comparison reports
        }
    }

    @Test func theHeaderHoldsTheBytesTheHostExpects() throws {
        #expect(try Self.headerBytes() == AppLinkProtocol.reportDescriptor)
    }

    @Test func theLengthMacroMatches() throws {
        let text = try String(contentsOf: Self.header, encoding: .utf8)
        #expect(text.contains("#define DFH_REPORT_DESCRIPTOR_LENGTH \(AppLinkProtocol.reportDescriptor.count)u"))
    }
}
