import AppLink
import DeviceProfiles
import DfuSe
import FirmwareImage
import USBTransport

/// Phase 7, confirm: the same unit's application is back, running the image.
extension UpgradeEngine {
    /// The application back on the ROM's port, the same unit (its UID, or for a unit that was blank, the
    /// ROM serial its UID predicts), running `version`. If it does not start after leaving DFU, the BOOT0
    /// path resets it with BOOT0 low (a direct start from its vector table: seed 001's way out).
    func confirm(rom: ROM, target: Target, run: Run) async throws -> (uid: UniqueID, version: FirmwareVersion) {
        let expectedUID = run.before.uid
        let version = target.version
        let family = target.family
        let options = run.options
        let timeout = self.timeout(target, run)
        let port = rom.identity.portPath
        var hid = try await awaitApplication(events: discovery.events(), port: port, timeout: timeout)
        if hid == nil, let boot0 = options.boot0 {
            onEvent(.note("the application did not start after leaving DFU; resetting the unit with BOOT0 low"))
            let request = Boot0Path.Request(
                action: .startApplication, port: port, uid: expectedUID?.description,
                method: target.profile?.boot0)
            let events = discovery.events()
            onEvent(.boot0(request, path: boot0.description))
            try await perform(request, on: boot0)
            hid = try await awaitApplication(events: events, port: port, timeout: boot0.arrivalTimeout)
        }
        guard let hid else {
            throw UpgradeError(
                .notConfirmed(.applicationDidNotShow(port: port, timeout: timeout)), phase: .confirm,
                hint: "the new firmware is written and verified (its whole span, as its own check reads it); "
                    + "power-cycle the unit, then run the same command again: it confirms the unit or finishes the upgrade")
        }
        let answer = try await withHID(hid) { link in try await link.info() }
        if let expectedUID, answer.uid != expectedUID {
            throw UpgradeError(
                .notConfirmed(.otherUnit(port: port, uid: answer.uid.description, expected: expectedUID.description)), phase: .confirm,
                hint: "check which unit is on that port")
        }
        if expectedUID == nil, let serial = rom.identity.serialNumber,
            let predicted = Optional(family.romSerial.serial(uid: answer.uid.bytes)),
            predicted != serial
        {
            throw UpgradeError(
                .notConfirmed(.otherROMSerial(port: port, uid: answer.uid.description, serial: serial)),
                phase: .confirm, hint: "check which unit is on that port")
        }
        guard let running = answer.image?.version, running == version else {
            throw UpgradeError(
                .notConfirmed(.otherVersion(running: answer.image?.version, expected: version)),
                phase: .confirm,
                hint: "the image was written and verified through the ROM, so the application itself reports "
                    + "another version than its descriptor: check the product firmware's GET_INFO; running again will not change it")
        }
        return (answer.uid, running)
    }
}
