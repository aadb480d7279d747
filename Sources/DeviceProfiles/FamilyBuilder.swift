/// Builds `McuFamily` values from a read family file (field names: protocols/families/README.md).
extension FamilyFileReader {
    func unsupported() throws(FamilyDataError) -> UnsupportedPartLine? {
        guard raw("usbDFU") != nil, try !bool("usbDFU") else { return nil }
        return UnsupportedPartLine(
            id: try string("id"), name: try string("name"), reason: try string("refusal"),
            source: sources["usbDFU"] ?? ValueSource("", unverified: true))
    }

    func family() throws(FamilyDataError) -> McuFamily {
        let versions = try romVersions()
        guard let modelled = versions.first else { throw fail("romVersions", "needs at least one ROM version") }
        let optionBytes = try optionByteMap()
        var family = McuFamily(
            id: try string("id"), name: try string("name"), deviceID: try hex("deviceID", as: UInt16.self),
            core: try core(), flashBase: try hex("flash.base"), flashModes: try flashModes(),
            writeGranularity: try int("flashWord.writeGranularity"), eccFlash: try bool("flashWord.ecc"),
            otherMemories: modelled.version.otherMemories, ramRegions: try ramRegions(),
            systemMemoryBase: try hex("systemMemory"), uidAddress: try hex("uid"), backupRegister: try hex("backupRegister"),
            romSerial: try serial(), rom: modelled.identity, emptyCheck: try bool("emptyCheck"), leaveJump: try leaveJump(),
            timings: try timings(), quirks: try quirks(), optionBytes: optionBytes, romVersions: versions.map(\.version),
            boot0: try boot0(), reportedPollTimeouts: try pollTimeouts(), sources: sources)
        family.applicationCanJumpToROM = try bool("applicationJump")
        family.applicationEntry = try applicationEntry(canJump: family.applicationCanJumpToROM, emptyCheck: family.emptyCheck)
        family.emptyCheckClearedAtStartup = try optionalBool("emptyCheckClearedAtStartup") ?? false
        guard !family.emptyCheckClearedAtStartup || family.emptyCheck else {
            throw fail("emptyCheckClearedAtStartup", "needs emptyCheck true")
        }
        family.writeLimits = try writeLimits()
        return family
    }

    /// Absent: the backup-register jump where the application can jump, no entry where it cannot. The empty-check
    /// methods need the empty check.
    private func applicationEntry(canJump: Bool, emptyCheck: Bool) throws(FamilyDataError) -> ApplicationEntry {
        guard let text = try optionalString("applicationEntry.method") else { return canJump ? .backupRegisterJump : .none }
        guard let entry = ApplicationEntry(rawValue: text) else { throw fail("applicationEntry.method", "unknown entry method") }
        if entry == .backupRegisterJump, !canJump { throw fail("applicationEntry.method", "needs applicationJump true") }
        if [.eraseFirstPage, .forceEmptyFlag].contains(entry), !emptyCheck {
            throw fail("applicationEntry.method", "needs emptyCheck true")
        }
        return entry
    }

    private func writeLimits() throws(FamilyDataError) -> RomWriteLimits {
        let limits = RomWriteLimits(
            maxBytes: try optionalInt("writeLimits.maxBytes"), alignedAbove: try optionalInt("writeLimits.alignedAbove"),
            alignment: try optionalInt("writeLimits.alignment") ?? 1)
        guard limits.maxBytes.map({ $0 > 0 }) ?? true, (limits.alignedAbove == nil) == (raw("writeLimits.alignment") == nil) else {
            throw fail("writeLimits", "maxBytes must be positive; alignedAbove and alignment go together")
        }
        return limits
    }

    private func core() throws(FamilyDataError) -> McuFamily.Core {
        guard let core = McuFamily.Core(rawValue: try string("core")) else { throw fail("core", "unknown core") }
        return core
    }

    private func romVersions() throws(FamilyDataError) -> [(version: RomVersion, identity: RomIdentity)] {
        var result: [(RomVersion, RomIdentity)] = []
        for index in 0..<count("romVersions") {
            let path = "romVersions.\(index)"
            let bcd = try hex(path + ".bcdDevice", as: UInt16.self)
            let product = try string(path + ".product")
            let version = RomVersion(bcdDevice: bcd, product: product, otherMemories: try strings(path + ".alternates"))
            let identity = RomIdentity(bcdDevice: bcd, product: product, transferSize: try int(path + ".transferSize", as: UInt16.self))
            result.append((version, identity))
        }
        return result
    }

    private func flashModes() throws(FamilyDataError) -> [FlashMode] {
        var modes: [FlashMode] = []
        for index in 0..<count("flash.modes") {
            let path = "flash.modes.\(index)"
            let layout = try string(path + ".layout")
            do { _ = try FlashLayout(parsing: layout) } catch { throw fail(path + ".layout", "does not parse: \(error)") }
            modes.append(
                FlashMode(
                    name: try string(path + ".name"), layoutString: layout,
                    selectedBy: try optionalString(path + ".selectedBy")))
        }
        guard !modes.isEmpty else { throw fail("flash.modes", "needs at least one flash mode") }
        return modes
    }

    private func ramRegions() throws(FamilyDataError) -> [AddressRange] {
        var regions: [AddressRange] = []
        for index in 0..<count("ram.regions") {
            let path = "ram.regions.\(index)"
            regions.append(AddressRange(start: try hex(path + ".start"), size: try int(path + ".size", as: UInt32.self)))
        }
        guard !regions.isEmpty else { throw fail("ram.regions", "needs at least one region") }
        return regions
    }

    private func serial() throws(FamilyDataError) -> RomSerialFormula {
        guard let kind = RomSerialFormula.Kind(rawValue: try string("serial.rule")) else {
            throw fail("serial.rule", "expected uid-sum, constant or unstable")
        }
        var formula = RomSerialFormula(
            kind: kind, secondWordOffset: raw("serial.offset") == nil ? 0 : try hex("serial.offset", as: UInt16.self),
            lastWord: try optionalInt("serial.lastWord") ?? 1, constant: try optionalString("serial.constant"))
        if count("serial.alsoSeen") > 0 { formula.alsoSeen = try strings("serial.alsoSeen") }
        return formula
    }

    private func leaveJump() throws(FamilyDataError) -> McuFamily.LeaveJump {
        guard let jump = McuFamily.LeaveJump(rawValue: try string("leave.jump")) else {
            throw fail("leave.jump", "expected vector-table or direct-jump")
        }
        return jump
    }

    private func optionByteMap() throws(FamilyDataError) -> OptionByteMap {
        OptionByteMap(
            address: try hex("optionBytes.address"), factoryBytes: try bytes("optionBytes.factory"),
            readProtectionByteOffset: try int("readProtection.byteOffset"),
            dualBankBit: try optionalInt("optionBytes.dualBankBit"),
            level0Value: try hex("readProtection.level0", as: UInt8.self),
            level2Value: raw("readProtection.level2") == nil ? nil : try hex("readProtection.level2", as: UInt8.self),
            size: try optionalInt("optionBytes.size"))
    }

    private func boot0() throws(FamilyDataError) -> Boot0Activation {
        Boot0Activation(
            pattern: try string("boot0.pattern"), pinIgnoredBit: try optionalInt("boot0.pinIgnoredBit"),
            pinIgnoredWhenSet: raw("boot0.pinIgnoredWhenSet") == nil ? false : try bool("boot0.pinIgnoredWhenSet"),
            nBoot0Bit: try optionalInt("boot0.nBoot0Bit"))
    }

    private func pollTimeouts() throws(FamilyDataError) -> ReportedPollTimeouts {
        ReportedPollTimeouts(
            setAddress: try milliseconds("pollTimeouts.setAddressMs"), erase: try milliseconds("pollTimeouts.eraseMs"),
            massErase: try milliseconds("pollTimeouts.massEraseMs"))
    }

    private func timings() throws(FamilyDataError) -> FlashTimings {
        var sectorErase: [UInt32: Duration] = [:]
        for size in keys("timings.sectorEraseMs") {
            guard let bytes = UInt32(size), let time = try milliseconds("timings.sectorEraseMs.\(size)") else {
                throw fail("timings.sectorEraseMs", "keys are sector sizes in bytes")
            }
            sectorErase[bytes] = time
        }
        guard let fallback = try milliseconds("timings.defaultSectorEraseMs"), let mass = try milliseconds("timings.massEraseMs"),
            let unit = try microseconds("timings.programUnitUs")
        else {
            throw fail("timings", "needs defaultSectorEraseMs, massEraseMs and programUnitUs")
        }
        return FlashTimings(
            sectorErase: sectorErase, defaultSectorErase: fallback, massErase: mass, programUnit: unit,
            controlTransferOverhead: McuFamily.fullSpeedOverhead, usbPerByte: McuFamily.fullSpeedPerByte)
    }

    private func quirks() throws(FamilyDataError) -> [RomQuirk] {
        var quirks: [RomQuirk] = []
        for index in 0..<count("quirks") {
            let path = "quirks.\(index)"
            switch try string(path + ".kind") {
            case "mass-erase-poll-timeout-understated":
                guard let actual = try milliseconds(path + ".actualMs") else { throw fail(path, "needs actualMs") }
                quirks.append(.massErasePollTimeoutUnderstated(actual: actual))
            case "getstatus-stalls-during-erase": quirks.append(.getStatusStallsDuringErase(maxStalls: try int(path + ".maxStalls")))
            case "stuck-in-download-busy": quirks.append(.stuckInDownloadBusy(clearStatusCount: try int(path + ".clearStatusCount")))
            case "leave-locks-up": quirks.append(.leaveLocksUp)
            case let other: throw fail(path + ".kind", "unknown quirk \"\(other)\"")
            }
        }
        return quirks
    }
}
