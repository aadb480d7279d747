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

/// Bytes as upper-case hex digits without separators ("0A1B"), built in one buffer. Inlinable, so that
/// callers get a loop specialised for their collection (kilobyte-sized blocks go through it).
@inlinable
public func hexString<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
    let digits = Array("0123456789ABCDEF".utf8)
    return String(unsafeUninitializedCapacity: bytes.count * 2) { buffer in
        var index = 0
        for byte in bytes {
            buffer[index] = digits[Int(byte >> 4)]
            buffer[index + 1] = digits[Int(byte & 0x0F)]
            index += 2
        }
        return index
    }
}

/// Bytes from hex digits (upper or lower case, no separators); nil for an odd count or a non-hex digit.
public func bytes<S: StringProtocol>(fromHex text: S) -> [UInt8]? {
    bytes(fromHexDigits: text.utf8)
}

/// Bytes from ASCII hex digits given as bytes (e.g. a slice of a line read from a pipe). Inlinable, as
/// `hexString`.
@inlinable
public func bytes<C: Collection>(fromHexDigits digits: C) -> [UInt8]? where C.Element == UInt8 {
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
    var high: UInt8?
    for digit in digits {
        guard let nibble = value(digit) else { return nil }
        if let first = high {
            result.append(first << 4 | nibble)
            high = nil
        } else {
            high = nibble
        }
    }
    return result
}
