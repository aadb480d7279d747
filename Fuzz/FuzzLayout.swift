// libFuzzer harness: DfuSe memory layout strings (an alternate setting's iInterface string, or a family's
// data). Compiled with Sources/DeviceProfiles/FlashLayout.swift alone. A parsed layout renders to a string
// that parses to the same zones; sector lookups stay inside the layout.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzLayout(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    let layout: FlashLayout
    do { layout = try FlashLayout(parsing: text) } catch {
        precondition(!error.problem.isEmpty, "a FlashLayoutError must say what is wrong")
        precondition(error.offset >= 0, "the offset must be inside the string")
        return 0
    }
    let count = layout.zones.reduce(0) { $0 + $1.groups.reduce(0) { $0 + $1.count } }
    precondition(count <= FlashLayout.maximumSectorCount, "the sector cap must hold")
    for zone in layout.zones {
        precondition(zone.end <= 0x1_0000_0000, "a zone must end within 4 GiB")
        let probe = zone.start &+ UInt32(truncatingIfNeeded: zone.size / 2)
        if let sector = layout.sector(containing: probe) {
            precondition(UInt64(sector.start) <= UInt64(probe) && UInt64(probe) < sector.end, "the sector must hold the address")
        }
    }
    // The rendered form keeps every zone and group (names are trimmed and may hold a '/', so only zones compare).
    if !layout.name.contains("/"), let again = try? FlashLayout(parsing: layout.render()) {
        precondition(again.zones == layout.zones, "render → parse changed the zones")
    }
    return 0
}
