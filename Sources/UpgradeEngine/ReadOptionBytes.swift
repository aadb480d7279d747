import DeviceProfiles
import HexFormat
import USBTransport

/// `dfuhop option-bytes`: the option-byte area as the ROM shows it, read with uploads only (no DNLOAD, no
/// erase, no option-byte load), so the unit stays as it was.
extension UpgradeEngine {
    /// The option-byte area read from a unit's ROM.
    public struct OptionBytesRead: Sendable, Hashable {
        /// The alternate setting read, and its name ("@Option Bytes  /0x1FFF7800/01*048 e").
        public var alternate: UInt8
        public var alternateName: String
        public var address: UInt32
        public var bytes: [UInt8]
    }

    /// Reads the first memory of the ROM's option-byte alternate: the one named "@Option Bytes", else the one
    /// at the family's option-byte address. Refuses a ROM that shows neither (nothing is sent).
    public func readOptionBytes(from unit: DFUUnit) async throws -> OptionBytesRead {
        let address = "/0x\(Hex.digits(unit.family.optionBytes.address, width: 8))/"
        let alternate =
            unit.alternateSettings.first { $0.name.uppercased().hasPrefix("@OPTION BYTES") }
            ?? unit.alternateSettings.first { $0.name.uppercased().contains(address.uppercased()) }
        let none = Refusal.noOptionByteMemory(
            port: unit.identity.portPath, address: unit.family.optionBytes.address, alternates: unit.alternateSettings.map(\.shown))
        guard let alternate else { throw UpgradeError(.refused(none), phase: .optionBytes, hint: none.hint) }
        // A layout string that does not parse is the ROM's to explain, not "no option-byte memory".
        let layout: FlashLayout
        do throws(FlashLayoutError) { layout = try FlashLayout(parsing: alternate.name) } catch {
            let reason = Refusal.romLayoutUnreadable(port: unit.identity.portPath, error: error)
            throw UpgradeError(.refused(reason), phase: .optionBytes, hint: reason.hint)
        }
        guard let zone = layout.zones.first, zone.size > 0, zone.size <= 4096 else {
            throw UpgradeError(.refused(none), phase: .optionBytes, hint: none.hint)
        }
        let bytes = try await read(from: unit, address: zone.start, length: Int(zone.size), alternateSetting: alternate.number)
        return OptionBytesRead(alternate: alternate.number, alternateName: alternate.name, address: zone.start, bytes: bytes)
    }
}

extension DFUAlternateSetting {
    /// As a refusal lists it: its number and its name.
    var shown: String { "\(number) \"\(name)\"" }
}
