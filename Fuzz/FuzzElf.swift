// libFuzzer harness: the ELF32 reader, then the checks and the descriptor inspection on what it read.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzElf(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    fuzzBinaryFormat(.elf, Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}
