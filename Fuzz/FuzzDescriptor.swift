// libFuzzer harness: the image descriptor as the device side meets it, in a flash of arbitrary bytes,
// and the image checks on the same bytes as a sparse image split in two.
@testable import FirmwareImage

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDescriptor(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let base: UInt32 = 0x0800_0000
    _ = ImageDescriptor.inspect(FlatMemory(base: base, bytes: bytes), base: base, source: "fuzz")
    let split = bytes.isEmpty ? 0 : Int(bytes[0]) % (bytes.count + 1)
    let gap = UInt32(bytes.count > 1 ? bytes[1] : 0)
    let segments = [
        Segment(address: base, bytes: Array(bytes[..<split])),
        Segment(address: base + UInt32(split) + gap, bytes: Array(bytes[split...]))
    ]
    if let image = try? FirmwareImage.normalize(segments, granularity: 8, entryPoint: nil) {
        _ = ImageCheck.check(image, source: "fuzz")
    }
    if let stamped = try? FirmwareImage(format: .binary, segments: segments)
        .stamped(productID: 1, version: FirmwareVersion(major: 1, minor: 2, patch: 3), name: "fuzz", file: "fuzz"),
        let normalized = try? stamped.normalized(), let imageBase = normalized.baseAddress
    {
        // A stamped image must validate at its own base: stamping and checking agree on size and CRC.
        precondition((try? ImageDescriptor.validate(normalized, base: imageBase, source: "fuzz")) != nil, "stamped image does not validate")
    }
    return 0
}
