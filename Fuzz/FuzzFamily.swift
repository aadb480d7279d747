// libFuzzer harness: family files (protocols/families/*.json) through the strict reader and the builder.
// Compiled with Sources/DeviceProfiles/*.swift; HexFormat and StrictJSON are linked as libraries.
// Every input ends in one part line (supported or refused) or a FamilyDataError naming the file.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFamily(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    do {
        let catalog = try FamilyCatalog(files: [("fuzz.json", text)])
        precondition(catalog.families.count + catalog.unsupported.count == 1, "one file must be one part line")
    } catch {
        precondition(error.file == "fuzz.json" && !error.problem.isEmpty, "a FamilyDataError must name the file and the problem")
    }
    return 0
}
