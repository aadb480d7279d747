// libFuzzer harness: plain DFU suffix files and raw binaries that may end in one (CRC recomputed too).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDfuSuffix(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    fuzzBinaryFormat(.dfuSuffixed, bytes)
    fuzzBinaryFormat(.binary, resealed(bytes))
    return 0
}
