import HexFormat
import USBTransport

/// A HID report descriptor that cannot be right (outside input: an error, never a crash or a hang).
public struct HIDReportDescriptorError: Error, Sendable, Equatable, CustomStringConvertible {
    public var offset: Int
    public var problem: String

    public var description: String { "HID report descriptor, byte \(offset): \(problem)" }
}

/// What dfuhop needs from a report descriptor (HID 1.11 §6.2.2): the report ids it declares and the
/// usage of its first top-level collection.
public struct HIDReportDescriptor: Sendable, Equatable {
    /// Report ids in order of appearance; empty when the device uses unnumbered reports.
    public var reportIDs: [UInt8]
    public var usagePage: UInt16?
    public var usage: UInt16?

    public var usesReportIDs: Bool { !reportIDs.isEmpty }

    /// Walks the items (HID 1.11 §6.2.2.2 short items, §6.2.2.3 long items).
    public init(parsing bytes: [UInt8]) throws(HIDReportDescriptorError) {
        var reportIDs: [UInt8] = []
        var usagePage: UInt16?
        var usage: UInt16?
        var currentPage: UInt16?
        var offset = 0
        while offset < bytes.count {
            let prefix = bytes[offset]
            if prefix == 0xFE { // long item: bDataSize, bLongItemTag, data
                guard offset + 2 < bytes.count else {
                    throw HIDReportDescriptorError(offset: offset, problem: "long item header cut short")
                }
                let size = Int(bytes[offset + 1])
                guard offset + 3 + size <= bytes.count else {
                    throw HIDReportDescriptorError(offset: offset, problem: "long item of \(size) bytes runs past the end")
                }
                offset += 3 + size
                continue
            }
            let size = [0, 1, 2, 4][Int(prefix & 0x03)]
            guard offset + 1 + size <= bytes.count else {
                throw HIDReportDescriptorError(
                    offset: offset, problem: "item 0x\(Hex.digits(prefix, width: 2)) needs \(size) data bytes, the descriptor ends first")
            }
            var value: UInt32 = 0
            for index in 0..<size { value |= UInt32(bytes[offset + 1 + index]) << (8 * index) }
            switch prefix & 0xFC {
            case 0x84: // Report ID (global)
                guard size == 1, value != 0 else {
                    throw HIDReportDescriptorError(offset: offset, problem: "Report ID must be one byte from 1 to 255")
                }
                if !reportIDs.contains(UInt8(value)) { reportIDs.append(UInt8(value)) }
            case 0x04: // Usage Page (global)
                currentPage = UInt16(truncatingIfNeeded: value)
            case 0x08: // Usage (local); remembered for the first collection
                if usage == nil { usage = UInt16(truncatingIfNeeded: value) }
            case 0xA0: // Collection
                if usagePage == nil { usagePage = currentPage }
            default:
                break
            }
            offset += 1 + size
        }
        self.reportIDs = reportIDs
        self.usagePage = usagePage
        self.usage = usage
    }
}
