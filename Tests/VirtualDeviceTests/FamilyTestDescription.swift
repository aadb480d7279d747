import DeviceProfiles
import Testing

// Test cases over McuFamily.all are named by the part line's id, not the whole value.
extension McuFamily: CustomTestStringConvertible {
    public var testDescription: String { id }
}
