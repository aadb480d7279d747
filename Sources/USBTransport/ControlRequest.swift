/// A USB control request's setup stage, without the length (the transfer call gives it).
/// USB 2.0 §9.3: bmRequestType, bRequest, wValue, wIndex.
public struct ControlRequest: Sendable, Hashable, CustomStringConvertible {
    public var requestType: UInt8
    public var request: UInt8
    public var value: UInt16
    public var index: UInt16

    public init(requestType: UInt8, request: UInt8, value: UInt16, index: UInt16) {
        self.requestType = requestType
        self.request = request
        self.value = value
        self.index = index
    }

    /// Class request to an interface, host to device (0x21).
    public static func classOut(_ request: UInt8, value: UInt16, interface: UInt16) -> ControlRequest {
        ControlRequest(requestType: 0x21, request: request, value: value, index: interface)
    }

    /// Class request to an interface, device to host (0xA1).
    public static func classIn(_ request: UInt8, value: UInt16, interface: UInt16) -> ControlRequest {
        ControlRequest(requestType: 0xA1, request: request, value: value, index: interface)
    }

    public var isDeviceToHost: Bool { requestType & 0x80 != 0 }

    public var description: String {
        "bmRequestType=0x\(hex(requestType, 2)) bRequest=\(request) wValue=\(value) wIndex=\(index)"
    }
}

/// Fixed-width upper-case hex without a prefix.
@inline(__always)
public func hex<T: BinaryInteger>(_ value: T, _ width: Int) -> String {
    let digits = String(value, radix: 16, uppercase: true)
    return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
}

/// Bytes from hex digits (upper or lower case, no separators); nil for an odd count or a non-hex digit.
public func bytes<S: StringProtocol>(fromHex text: S) -> [UInt8]? {
    let digits = Array(text.utf8)
    guard digits.count % 2 == 0 else { return nil }
    func value(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: c - 0x30
        case 0x41...0x46: c - 0x37
        case 0x61...0x66: c - 0x57
        default: nil
        }
    }
    var result = [UInt8]()
    result.reserveCapacity(digits.count / 2)
    var index = 0
    while index < digits.count {
        guard let high = value(digits[index]), let low = value(digits[index + 1]) else { return nil }
        result.append(high << 4 | low)
        index += 2
    }
    return result
}
