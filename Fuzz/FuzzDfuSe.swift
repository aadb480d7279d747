// libFuzzer harness: the DfuSe (.dfu) reader. The suffix CRC would stop most mutations at the first
// check, so the harness also feeds each input with its CRC recomputed, to reach the target parser.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDfuSe(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    fuzzBinaryFormat(.dfuse, bytes)
    fuzzBinaryFormat(.dfuse, resealed(bytes))
    return 0
}
