import AppLink
import DeviceProfiles
import DfuSe
import FirmwareImage
import USBTransport

/// Phase 3, enter: the unit's ROM bootloader reached — ENTER_BOOTLOADER for a running application, the
/// BOOT0 path for a silent one — and waited for on the unit's port.
extension UpgradeEngine {
    func enter(_ found: Found, target: Target, run: Run) async throws -> ROM {
        switch found.reach {
        case .application(let hid, _):
            // F04x/F070x6 (its entry erases the running image) and L0 (no entry): a BOOT0 path, when set up, goes first.
            if [.eraseFirstPage, .none].contains(target.family.applicationEntry), run.options.boot0 != nil {
                return try await enterByBoot0(
                    port: hid.usb.portPath, expectedSerial: found.description.uid.flatMap { target.family.romSerial.serial(uid: $0.bytes) },
                    uid: found.description.uid?.description, method: target.profile?.boot0, options: run.options)
            }
            if target.family.applicationEntry == .eraseFirstPage {
                // F04x: ENTER makes the application erase its first page: from here the flash holds a mix, and the
                // journal must say so, so that a second run finishes the unit (the erased page held its descriptor).
                try record(.flashing, run, target: target)
                run.flashStarted = true
            }
            return try await enterBootloader(
                hid: hid, unit: found.description, family: target.family, timeout: timeout(target, run),
                nonceHook: run.options.nonceHook)
        case .rom(let rom):
            return rom
        case .boot0(let port):
            try checkBoot0Reaches(target.family)
            return try await enterByBoot0(
                port: port ?? run.candidateEntry?.portPath, uid: run.candidateEntry?.uid,
                method: target.profile?.boot0, options: run.options)
        }
    }

    /// On parts whose factory option bits make the MCU ignore the BOOT0 pin (AN2606 pattern 11: G0, C0 with
    /// nBOOT_SEL = 1), no jig or hand can start the ROM of a unit whose application does not answer: asking
    /// would only loop. Only a debug probe, or option bytes changed beforehand, reach it.
    func checkBoot0Reaches(_ family: McuFamily) throws {
        guard !family.factoryBoot0PinReachesROM else { return }
        let reason = Refusal.boot0PinIgnored(family: family.name)
        throw UpgradeError(.refused(reason), phase: .enter, hint: reason.hint)
    }

    /// L0: a jump from the application to the ROM goes back to user flash and no other entry exists
    /// (`McuFamily.applicationEntry`), so ENTER_BOOTLOADER cannot work; nothing is sent and the reason and the
    /// BOOT0 path are named. F04x/F070x6 cannot jump either, but their application erases its first page.
    func checkApplicationCanJump(_ family: McuFamily) throws {
        guard family.applicationEntry == .none else { return }
        throw UpgradeError(
            .needsBoot0(.applicationCannotJump(family: family.name)), phase: .enter,
            hint: "nothing was sent; hold BOOT0 high while plugging the unit in and run again, or \(NextStep.plugInOrBoot0.clause)",
            next: .plugInOrBoot0)
    }

    /// How long the unit may take to re-enumerate: `--timeout`, else the product profile's, else 10 s.
    func timeout(_ target: Target, _ run: Run) -> Duration {
        run.options.reenumerationTimeout ?? target.profile?.reenumerationTimeout ?? .seconds(10)
    }

    /// ENTER_BOOTLOADER naming the unit's own UID, then the ROM with the predicted serial on the same port.
    func enterBootloader(
        hid: HIDDeviceInfo, unit: UnitDescription, family: McuFamily, timeout: Duration,
        nonceHook: (@Sendable (String, UInt32) throws -> UInt32)? = nil
    ) async throws -> ROM {
        try checkApplicationCanJump(family)
        if family.applicationEntry == .eraseFirstPage {
            onEvent(
                .note(
                    "on \(family.name) the application erases its first flash page to reach its ROM (AN2606: no jump); "
                        + "the unit starts its ROM until an image is written"))
        }
        guard let uid = unit.uid else {
            let reason = Refusal.noUniqueID(port: hid.usb.portPath)
            throw UpgradeError(.refused(reason), phase: .enter, hint: reason.hint)
        }
        let serial = family.romSerial.serial(uid: uid.bytes)
        let events = discovery.events()
        var nonce = UInt32(truncatingIfNeeded: clock.now().components.attoseconds) | 1
        if let nonceHook { nonce = try nonceHook(hid.usb.portPath, nonce) }
        _ = try await withHID(hid) { [nonce] link in try await link.enterBootloader(uid: uid, nonce: nonce) }
        if let rom = try await awaitROM(events: events, port: hid.usb.portPath, serial: serial, timeout: timeout) { return rom }
        if let serial, let other = try await elsewhere(serial: serial, port: hid.usb.portPath) {
            let step = NextStep.namePort(other)
            throw UpgradeError(
                .notConfirmed(.romDidNotShow(port: hid.usb.portPath, serial: serial, timeout: timeout, elsewhere: other)),
                phase: .reenumerate, hint: "nothing was written; run the same command again \(step.clause)", next: step)
        }
        let erased = family.applicationEntry == .eraseFirstPage
        throw UpgradeError(
            .notConfirmed(.romDidNotShow(port: hid.usb.portPath, serial: serial, timeout: timeout, elsewhere: nil)),
            phase: .reenumerate,
            hint: erased
                ? "the application erased its first page to reach its ROM, which now starts at power-on; power the unit "
                    + "off and on and run the same command again to finish it"
                : "nothing was written; run the same command again (if the application cannot jump to its ROM, use the BOOT0 path)")
    }

    /// The BOOT0 path: ask for the ROM, then wait for it on the unit's port (any new ROM if the port is
    /// not known, which `find` allows only when nothing else is on the bus). The ROM's UID proves the unit.
    func enterByBoot0(
        port: String?, expectedSerial: String? = nil, uid: String?, method: ProductProfile.Boot0Method?,
        options: Options
    ) async throws -> ROM {
        guard let boot0 = options.boot0 else {
            throw UpgradeError(
                .needsBoot0(.noApplication(port: port, pathSetUp: false)), phase: .enter,
                hint: "nothing was written; hold BOOT0 while plugging the unit in and run again, or \(NextStep.plugInOrBoot0.clause)",
                next: .plugInOrBoot0)
        }
        let request = Boot0Path.Request(action: .enterROM, port: port, uid: uid, method: method)
        let events = discovery.events()
        // With no port to watch, only a ROM that was not there before the request can be this unit.
        // A listing that fails is an error, not "nothing there": an empty set would let a ROM that was already
        // attached pass for this unit.
        let present: Set<USBDeviceIdentity> = port == nil ? Set(try await discovery.devices().map(\.identity)) : []
        onEvent(.boot0(request, path: boot0.description))
        try await perform(request, on: boot0)
        if let rom = try await awaitROM(
            events: events, port: port, serial: expectedSerial, timeout: boot0.arrivalTimeout, excluding: present)
        {
            return rom
        }
        let other = if let expectedSerial { try await elsewhere(serial: expectedSerial, port: port) } else { String?.none }
        let need = Boot0Need.romDidNotShow(
            port: port, timeout: boot0.arrivalTimeout, path: boot0.description, serial: expectedSerial, elsewhere: other)
        guard let other else {
            throw UpgradeError(
                .needsBoot0(need), phase: .reenumerate, hint: "check the BOOT0 wiring or hook, then run the same command again")
        }
        let step = NextStep.namePort(other)
        throw UpgradeError(.needsBoot0(need), phase: .reenumerate, hint: "run the same command again \(step.clause)", next: step)
    }

    func perform(_ request: Boot0Path.Request, on path: Boot0Path) async throws {
        do { try await path.perform(request) } catch is CancellationError {
            throw CancellationError()
        } catch {
            throw UpgradeError(
                .needsBoot0(.pathFailed(path: path.description, action: request.action.rawValue, problem: "\(error)")),
                phase: .enter, hint: "check the jig or hook; the unit is recoverable: run the same command again")
        }
    }

    /// The port a ROM with `serial` shows up at, when it is not `port` (the cable was moved).
    func elsewhere(serial: String, port: String?) async throws -> String? {
        try await discovery.devices().first { $0.identity.serialNumber == serial && $0.identity.portPath != port }?.identity.portPath
    }

    /// The ROM on `port` (any port if nil) with `serial` (any if nil); a ROM on that port with another
    /// serial is another unit and is never taken (docs/guarantees.md).
    func awaitROM(
        events: AsyncStream<DiscoveryEvent>, port: String?, serial: String?, timeout: Duration,
        excluding: Set<USBDeviceIdentity> = []
    ) async throws -> ROM? {
        try await awaitDevice(events: events, timeout: timeout) { device in
            guard case .dfu(let identity, let alternates) = device, !excluding.contains(identity) else { return nil }
            if let port, identity.portPath != port { return nil }
            if let serial, identity.serialNumber != serial { return nil }
            return ROM(identity: identity, alternates: alternates)
        }
    }

    func awaitApplication(events: AsyncStream<DiscoveryEvent>, port: String, timeout: Duration) async throws -> HIDDeviceInfo? {
        try await awaitDevice(events: events, timeout: timeout) { device in
            if case .hid(let info) = device, info.usb.portPath == port { info } else { nil }
        }
    }

    /// Waits for a device `match` accepts: already present, or arriving before `timeout`; nil if none.
    /// A listing that fails is an error, never "not there yet", and a cancellation is one too: neither may
    /// pass for a unit that did not arrive (whose hint would send the operator after the wrong fault).
    func awaitDevice<T: Sendable>(
        events: AsyncStream<DiscoveryEvent>, timeout: Duration, includePresent: Bool = true,
        _ match: @escaping @Sendable (DiscoveredDevice) -> T?
    ) async throws -> T? {
        if includePresent, let present = try await discovery.devices().lazy.compactMap(match).first { return present }
        let clock = self.clock
        let deadline = clock.now() + timeout
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                for await event in events { if case .arrived(let device) = event, let value = match(device) { return value } }
                return nil
            }
            group.addTask { [discovery] in
                try await clock.sleep(for: deadline - clock.now())
                // At the deadline a device that is there counts, even if its arrival is still on its way.
                guard includePresent else { return nil }
                return try await discovery.devices().lazy.compactMap(match).first
            }
            defer { group.cancelAll() }
            if let first = try await group.next(), let value = first { return value }
            // One side ended with nothing. The other is stopped, and what it already had still counts: an arrival
            // handed to the events side just as the deadline passed is not lost to the deadline's listing
            // (on a loaded machine the events side may not run again before the deadline side finishes).
            group.cancelAll()
            while true {
                do {
                    guard let next = try await group.next() else { break }
                    if let value = next { return value }
                } catch is CancellationError {
                    continue // the side stopped here; the run's own cancellation is checked below
                }
            }
            try Task.checkCancellation()
            return nil
        }
    }
}
