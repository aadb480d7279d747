// libFuzzer harness: the `--simulate-state` JSON file of a virtual unit. Compiled with
// Sources/VirtualDevice/*.swift; USBTransport, AppLink, DeviceProfiles, FirmwareImage and DfuSeWire are linked
// as libraries. Every input ends in a unit or a VirtualDeviceError naming the file; a restored unit saves
// back to the same snapshot.
import Foundation
import USBTransport

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzState(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Data(UnsafeBufferPointer(start: data, count: size))
    guard let snapshot = try? JSONDecoder().decode(UnitSnapshot.self, from: bytes) else { return 0 }
    do {
        let unit = try VirtualUnit.restore(snapshot, clock: VirtualClock(), source: "fuzz.json")
        let again = unit.snapshot()
        // Family names and UIDs are read in any case and written back in their canonical one.
        precondition(
            again.family.lowercased() == snapshot.family.lowercased() && again.uid.lowercased() == snapshot.uid.lowercased(),
            "identity must survive")
    } catch {
        precondition(error.source == "fuzz.json" && !error.problem.isEmpty, "a VirtualDeviceError must name the file and the problem")
    }
    return 0
}
