import HexFormat

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
        "bmRequestType=0x\(Hex.digits(requestType, width: 2)) bRequest=\(request) wValue=\(value) wIndex=\(index)"
    }
}
