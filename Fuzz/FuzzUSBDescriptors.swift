// libFuzzer harness: USB device, configuration and string descriptors and the DFU functional descriptor,
// as a device (or a hostile one) sends them. Compiled into one module with
// Sources/LibUSBBackend/Descriptors.swift and DFUDescriptors.swift; USBTransport is linked as a library.
// Every input ends in a value or a DescriptorError that says where; walking never loops or reads past the end.
import USBTransport

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzUSBDescriptors(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    guard let selector = input.first else { return 0 }
    let bytes = Array(input.dropFirst())
    switch selector % 5 {
    case 0:
        checked { () throws(DescriptorError) in _ = try USBDeviceDescriptor(parsing: bytes) }
    case 1:
        configuration(bytes)
    case 2:
        checked { () throws(DescriptorError) in _ = try USBStringDescriptor.decode(bytes, index: 2) }
        checked { () throws(DescriptorError) in _ = try USBStringDescriptor.languages(bytes) }
    case 3:
        checked { () throws(DescriptorError) in _ = try DFUFunctionalDescriptorParser.parse(bytes, context: "fuzz") }
        checked { () throws(DescriptorError) in _ = try DFUFunctionalDescriptorParser.find(in: bytes, context: "fuzz") }
    default:
        // A valid configuration header whose wTotalLength covers the input, so the walk reaches the
        // interface, endpoint and functional descriptors the fuzzer writes after it.
        let total = min(9 + bytes.count, 0xFFFF)
        let header: [UInt8] = [9, 2, UInt8(total & 0xFF), UInt8(total >> 8), 1, 1, 0, 0x80, 50]
        configuration(header + bytes.prefix(total - 9))
    }
    return 0
}

private func configuration(_ bytes: [UInt8]) {
    checked { () throws(DescriptorError) in
        let parsed = try USBConfiguration(parsing: bytes)
        let extra = parsed.settings.reduce(parsed.extra.count) { $0 + $1.extra.count }
        precondition(extra <= bytes.count, "class-specific bytes cannot exceed the configuration")
        for interface in try DFUInterfaceDescription.find(in: parsed) {
            precondition(interface.functionalDescriptor.transferSize > 0, "wTransferSize 0 must be refused")
        }
    }
    // The walker on its own: lengths add up to the input exactly, offsets strictly increase.
    if let descriptors = try? splitDescriptors(bytes, context: "fuzz") {
        precondition(descriptors.reduce(0) { $0 + $1.bytes.count } == bytes.count, "descriptors must cover the input")
        precondition(zip(descriptors, descriptors.dropFirst()).allSatisfy { $0.offset < $1.offset }, "offsets must increase")
    }
}

private func checked(_ body: () throws(DescriptorError) -> Void) {
    do { try body() } catch {
        precondition(!error.problem.isEmpty && !error.descriptor.isEmpty, "a DescriptorError must say what and where")
    }
}
