/// Builds `McuFamily` values from a read family file (field names: protocols/families/README.md).
extension FamilyFileReader {
    /// A required group or value, or an error naming it.
    func required<T>(_ value: T?, _ field: String) throws(FamilyDataError) -> T {
        guard let value else { throw fail(field, "is missing") }
        return value
    }

    func unsupported() throws(FamilyDataError) -> UnsupportedPartLine? {
        guard let usbDFU = file.usbDFU, !usbDFU else { return nil }
        return UnsupportedPartLine(
            id: file.id, name: file.name, reason: try required(file.refusal, "refusal"),
            source: sources["usbDFU"] ?? ValueSource("", unverified: true))
    }

    func family() throws(FamilyDataError) -> McuFamily {
        let versions = try romVersions()
        guard let modelled = versions.first else { throw fail("romVersions", "needs at least one ROM version") }
        let flash = try required(file.flash, "flash")
        let flashWord = try required(file.flashWord, "flashWord")
        var family = McuFamily(
            id: file.id, name: file.name, deviceID: try required(file.deviceID, "deviceID").value,
            core: try core(), flashBase: flash.base.value, flashModes: try flashModes(flash),
            writeGranularity: flashWord.writeGranularity, eccFlash: flashWord.ecc,
            otherMemories: modelled.version.otherMemories, ramRegions: try ramRegions(),
            systemMemoryBase: try required(file.systemMemory, "systemMemory").value, uidAddress: try required(file.uid, "uid").value,
            backupRegister: try required(file.backupRegister, "backupRegister").value,
            romSerial: try serial(), rom: modelled.identity, emptyCheck: try required(file.emptyCheck, "emptyCheck"),
            leaveJump: try leaveJump(), timings: try timings(), quirks: try quirks(), optionBytes: try optionByteMap(),
            romVersions: versions.map(\.version), boot0: try boot0(), reportedPollTimeouts: try pollTimeouts(), sources: sources)
        family.applicationCanJumpToROM = try required(file.applicationJump, "applicationJump")
        family.applicationEntry = try applicationEntry(canJump: family.applicationCanJumpToROM, emptyCheck: family.emptyCheck)
        family.emptyCheckClearedAtStartup = file.emptyCheckClearedAtStartup ?? false
        guard !family.emptyCheckClearedAtStartup || family.emptyCheck else {
            throw fail("emptyCheckClearedAtStartup", "needs emptyCheck true")
        }
        family.writeLimits = try writeLimits()
        return family
    }

    /// Absent: the backup-register jump where the application can jump, no entry where it cannot. The empty-check
    /// methods need the empty check.
    private func applicationEntry(canJump: Bool, emptyCheck: Bool) throws(FamilyDataError) -> ApplicationEntry {
        guard let text = file.applicationEntry?.method else { return canJump ? .backupRegisterJump : .none }
        guard let entry = ApplicationEntry(rawValue: text) else { throw fail("applicationEntry.method", "unknown entry method") }
        if entry == .backupRegisterJump, !canJump { throw fail("applicationEntry.method", "needs applicationJump true") }
        if [.eraseFirstPage, .forceEmptyFlag].contains(entry), !emptyCheck {
            throw fail("applicationEntry.method", "needs emptyCheck true")
        }
        return entry
    }

    private func writeLimits() throws(FamilyDataError) -> RomWriteLimits {
        let limits = RomWriteLimits(
            maxBytes: file.writeLimits?.maxBytes, alignedAbove: file.writeLimits?.alignedAbove, alignment: file.writeLimits?.alignment ?? 1)
        guard limits.maxBytes.map({ $0 > 0 }) ?? true, (limits.alignedAbove == nil) == (file.writeLimits?.alignment == nil) else {
            throw fail("writeLimits", "maxBytes must be positive; alignedAbove and alignment go together")
        }
        return limits
    }

    private func core() throws(FamilyDataError) -> McuFamily.Core {
        guard let core = McuFamily.Core(rawValue: try required(file.core, "core")) else { throw fail("core", "unknown core") }
        return core
    }

    private func romVersions() throws(FamilyDataError) -> [(version: RomVersion, identity: RomIdentity)] {
        (file.romVersions ?? []).map { raw in
            let bcd = raw.bcdDevice.value
            return (
                RomVersion(bcdDevice: bcd, product: raw.product, otherMemories: raw.alternates),
                RomIdentity(bcdDevice: bcd, product: raw.product, transferSize: raw.transferSize)
            )
        }
    }

    private func flashModes(_ flash: FamilyFile.Flash) throws(FamilyDataError) -> [FlashMode] {
        var modes: [FlashMode] = []
        for (index, mode) in flash.modes.enumerated() {
            do { _ = try FlashLayout(parsing: mode.layout) } catch { throw fail("flash.modes.\(index).layout", "does not parse: \(error)") }
            modes.append(FlashMode(name: mode.name, layoutString: mode.layout, selectedBy: mode.selectedBy))
        }
        guard !modes.isEmpty else { throw fail("flash.modes", "needs at least one flash mode") }
        return modes
    }

    private func ramRegions() throws(FamilyDataError) -> [AddressRange] {
        let regions = try required(file.ram, "ram").regions.map { AddressRange(start: $0.start.value, size: $0.size) }
        guard !regions.isEmpty else { throw fail("ram.regions", "needs at least one region") }
        return regions
    }

    private func serial() throws(FamilyDataError) -> RomSerialFormula {
        let raw = try required(file.serial, "serial")
        guard let kind = RomSerialFormula.Kind(rawValue: raw.rule) else {
            throw fail("serial.rule", "expected uid-sum, constant or unstable")
        }
        var formula = RomSerialFormula(
            kind: kind, secondWordOffset: raw.offset?.value ?? 0, lastWord: raw.lastWord ?? 1, constant: raw.constant)
        if let alsoSeen = raw.alsoSeen, !alsoSeen.isEmpty { formula.alsoSeen = alsoSeen }
        return formula
    }

    private func leaveJump() throws(FamilyDataError) -> McuFamily.LeaveJump {
        guard let jump = McuFamily.LeaveJump(rawValue: try required(file.leave, "leave").jump) else {
            throw fail("leave.jump", "expected vector-table or direct-jump")
        }
        return jump
    }

    private func optionByteMap() throws(FamilyDataError) -> OptionByteMap {
        let raw = try required(file.optionBytes, "optionBytes")
        let protection = try required(file.readProtection, "readProtection")
        // "AA F8 EF FF"
        let parts = raw.factory.split(separator: " ")
        let factory = parts.compactMap { UInt8($0, radix: 16) }
        guard factory.count == parts.count else { throw fail("optionBytes.factory", "expected hex bytes separated by spaces") }
        return OptionByteMap(
            address: raw.address.value, factoryBytes: factory, readProtectionByteOffset: protection.byteOffset,
            dualBankBit: raw.dualBankBit, level0Value: protection.level0.value, level2Value: protection.level2?.value, size: raw.size)
    }

    private func boot0() throws(FamilyDataError) -> Boot0Activation {
        let raw = try required(file.boot0, "boot0")
        return Boot0Activation(
            pattern: raw.pattern, pinIgnoredBit: raw.pinIgnoredBit, pinIgnoredWhenSet: raw.pinIgnoredWhenSet ?? false,
            nBoot0Bit: raw.nBoot0Bit)
    }

    private func pollTimeouts() throws(FamilyDataError) -> ReportedPollTimeouts {
        let raw = file.pollTimeouts
        return ReportedPollTimeouts(
            setAddress: try raw?.setAddressMs.map { ms throws(FamilyDataError) in try duration(ms, "pollTimeouts.setAddressMs") },
            erase: try raw?.eraseMs.map { ms throws(FamilyDataError) in try duration(ms, "pollTimeouts.eraseMs") },
            massErase: try raw?.massEraseMs.map { ms throws(FamilyDataError) in try duration(ms, "pollTimeouts.massEraseMs") })
    }

    private func timings() throws(FamilyDataError) -> FlashTimings {
        let raw = try required(file.timings, "timings")
        var sectorErase: [UInt32: Duration] = [:]
        for (size, ms) in raw.sectorEraseMs ?? [:] {
            guard let bytes = UInt32(size) else { throw fail("timings.sectorEraseMs", "keys are sector sizes in bytes") }
            sectorErase[bytes] = try duration(ms, "timings.sectorEraseMs.\(size)")
        }
        return FlashTimings(
            sectorErase: sectorErase, defaultSectorErase: try duration(raw.defaultSectorEraseMs, "timings.defaultSectorEraseMs"),
            massErase: try duration(raw.massEraseMs, "timings.massEraseMs"),
            programUnit: try duration(raw.programUnitUs, "timings.programUnitUs", unit: 1000),
            controlTransferOverhead: McuFamily.fullSpeedOverhead, usbPerByte: McuFamily.fullSpeedPerByte)
    }

    private func quirks() throws(FamilyDataError) -> [RomQuirk] {
        var quirks: [RomQuirk] = []
        for (index, quirk) in (file.quirks ?? []).enumerated() {
            let path = "quirks.\(index)"
            switch quirk.kind {
            case "mass-erase-poll-timeout-understated":
                quirks.append(
                    .massErasePollTimeoutUnderstated(
                        actual: try duration(try required(quirk.actualMs, path + ".actualMs"), path + ".actualMs")))
            case "getstatus-stalls-during-erase":
                quirks.append(.getStatusStallsDuringErase(maxStalls: try required(quirk.maxStalls, path + ".maxStalls")))
            case "stuck-in-download-busy":
                quirks.append(.stuckInDownloadBusy(clearStatusCount: try required(quirk.clearStatusCount, path + ".clearStatusCount")))
            case "leave-locks-up": quirks.append(.leaveLocksUp)
            case let other: throw fail(path + ".kind", "unknown quirk \"\(other)\"")
            }
        }
        return quirks
    }

    /// A measured time (fractions allowed) in milliseconds, or in units of `unit` nanoseconds: non-negative and
    /// below a day (a bigger figure is a typo, and the nanoseconds must fit Int64).
    private func duration(_ value: Double, _ field: String, unit: Double = 1_000_000) throws(FamilyDataError) -> Duration {
        let nanoseconds = value * unit
        guard nanoseconds >= 0, nanoseconds < 86_400e9 else { throw fail(field, "expected a non-negative number below a day") }
        return .nanoseconds(Int64(nanoseconds.rounded()))
    }
}
