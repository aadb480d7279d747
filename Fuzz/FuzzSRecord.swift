// libFuzzer harness: the S-record reader (see FuzzIntelHex.swift).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSRecord(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    fuzzTextFormat(.srec, UnsafeBufferPointer(start: data, count: size))
    return 0
}
