// libFuzzer harness: the Intel HEX reader (built with Sources/FirmwareImage by scripts/fuzz.sh).
// Any input must give an image or an ImageError, never a crash or a hang; a successful read must survive
// normalise → write → read unchanged.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzIntelHex(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    fuzzTextFormat(.intelHex, UnsafeBufferPointer(start: data, count: size))
    return 0
}
