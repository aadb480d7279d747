// libFuzzer harness: product profile JSON (protocols/devices/*.json), as a user or a package ships it.
// Compiled with Sources/DeviceProfiles/*.swift; HexFormat is linked as a library.
// Every input ends in a profile or a ProductProfileError naming the file; a profile's values are in range.
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzProfile(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Data(UnsafeBufferPointer(start: data, count: size))
    do {
        let profile = try ProductProfile.decode(bytes, file: "fuzz.json")
        precondition(profile.reenumerationTimeout >= .milliseconds(100), "the timeout range must hold")
        precondition(!profile.id.isEmpty && !profile.name.isEmpty, "id and name must not be empty")
    } catch {
        precondition(error.file == "fuzz.json" && !error.problem.isEmpty, "a ProductProfileError must name the file and the problem")
    }
    return 0
}
