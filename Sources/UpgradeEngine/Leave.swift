import DeviceProfiles
import DfuSe
import FirmwareImage
import USBTransport

/// Phase 6, leave: the ROM jumps to the new application (the jump each family's ROM needs, seed 001).
extension UpgradeEngine {
    func leave(_ rom: ROM, target: Target, run: Run) async throws {
        try await withClient(rom, family: target.family) { client in
            do {
                _ = try await client.leave(jumpTo: target.leaveAddress)
            } catch let error as DfuSeError where Self.worthOneMoreTry(error) {
                // Refused before the jump (the set-address command): the ROM is still there.
                onEvent(.note("the ROM did not take the leave request (\(error)); asking once more"))
                _ = try await client.leave(jumpTo: target.leaveAddress)
            }
        }
        try record(.left, run, target: target)
    }

    /// Leaves DFU into the application already on the unit, so a run that stops before writing does not
    /// strand a working unit in its ROM. Returns false (and leaves nothing) when the flash holds no
    /// vector table to start.
    /// Under read protection the vector table cannot be read; a ROM that loads SP and PC from the table
    /// is then sent to it unread (the caller knows an application was running).
    func returnToApplication(_ rom: ROM, family: McuFamily) async throws -> Bool {
        try await withClient(rom, family: family) { client in
            try await client.prepare(alternateSetting: 0)
            let vectors: [UInt8]?
            do throws(DfuSeError) { vectors = try await client.read(address: family.flashBase, length: 8) } catch {
                // Only the ROM's refusal under read protection (AN3156 §4.3) means "unreadable, start it unread";
                // any other failed read is a failure to return the unit, reported as such.
                guard await refusedForProtection(error, client) else { throw error }
                try await client.prepare(alternateSetting: 0)
                vectors = nil
            }
            if let vectors, vectors.allSatisfy({ $0 == 0xFF }) { return false }
            let reset = vectors.map { UInt32(littleEndianBytes: $0[4..<8]) }
            guard let address = family.leaveAddress(vectorTable: family.flashBase, resetHandler: reset) else { return false }
            _ = try await client.leave(jumpTo: address)
            return true
        }
    }
}
