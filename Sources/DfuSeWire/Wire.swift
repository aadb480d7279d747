/// DFU 1.1 and ST DfuSe on the wire: requests, states, status codes, commands.
/// USB DFU 1.1 §3, §6.1.2; ST AN3156 §3–§6. Shared by the client and the virtual ROM.

/// Class-specific requests (DFU 1.1 Table 3.2).
public enum DFURequest: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case detach = 0
    case download = 1
    case upload = 2
    case getStatus = 3
    case clearStatus = 4
    case getState = 5
    case abort = 6

    public var description: String {
        switch self {
        case .detach: "DETACH"
        case .download: "DNLOAD"
        case .upload: "UPLOAD"
        case .getStatus: "GETSTATUS"
        case .clearStatus: "CLRSTATUS"
        case .getState: "GETSTATE"
        case .abort: "ABORT"
        }
    }
}

/// bState (DFU 1.1 §6.1.2).
public enum DFUState: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case appIdle = 0
    case appDetach = 1
    case dfuIdle = 2
    case downloadSync = 3
    case downloadBusy = 4
    case downloadIdle = 5
    case manifestSync = 6
    case manifest = 7
    case manifestWaitReset = 8
    case uploadIdle = 9
    case error = 10

    public var description: String {
        switch self {
        case .appIdle: "appIDLE"
        case .appDetach: "appDETACH"
        case .dfuIdle: "dfuIDLE"
        case .downloadSync: "dfuDNLOAD-SYNC"
        case .downloadBusy: "dfuDNBUSY"
        case .downloadIdle: "dfuDNLOAD-IDLE"
        case .manifestSync: "dfuMANIFEST-SYNC"
        case .manifest: "dfuMANIFEST"
        case .manifestWaitReset: "dfuMANIFEST-WAIT-RESET"
        case .uploadIdle: "dfuUPLOAD-IDLE"
        case .error: "dfuERROR"
        }
    }
}

/// bStatus (DFU 1.1 §6.1.2).
public enum DFUStatus: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case ok = 0x00
    case errTarget = 0x01
    case errFile = 0x02
    case errWrite = 0x03
    case errErase = 0x04
    case errCheckErased = 0x05
    case errProg = 0x06
    case errVerify = 0x07
    case errAddress = 0x08
    case errNotDone = 0x09
    case errFirmware = 0x0A
    case errVendor = 0x0B
    case errUSBR = 0x0C
    case errPOR = 0x0D
    case errUnknown = 0x0E
    case errStalledPkt = 0x0F

    public var description: String {
        switch self {
        case .ok: "OK"
        case .errTarget: "errTARGET (file is not for this device)"
        case .errFile: "errFILE (file failed the device's checks)"
        case .errWrite: "errWRITE (device cannot write memory)"
        case .errErase: "errERASE (memory erase failed)"
        case .errCheckErased: "errCHECK_ERASED (erase check failed)"
        case .errProg: "errPROG (program memory failed)"
        case .errVerify: "errVERIFY (programmed memory failed verification)"
        case .errAddress: "errADDRESS (address out of range)"
        case .errNotDone: "errNOTDONE (download ended before the device expected)"
        case .errFirmware: "errFIRMWARE (firmware is corrupt)"
        case .errVendor: "errVENDOR (vendor error; on ST ROMs: read protection is active)"
        case .errUSBR: "errUSBR (unexpected USB reset)"
        case .errPOR: "errPOR (unexpected power-on reset)"
        case .errUnknown: "errUNKNOWN"
        case .errStalledPkt: "errSTALLEDPKT (device stalled an unexpected request)"
        }
    }
}

/// The 6-byte GETSTATUS answer (DFU 1.1 §6.1.2).
public struct DFUStatusReport: Sendable, Hashable, CustomStringConvertible {
    public var status: DFUStatus
    /// bwPollTimeout: how long the host waits before the next GETSTATUS.
    public var pollTimeout: Duration
    public var state: DFUState
    public var stringIndex: UInt8

    public init(status: DFUStatus, pollTimeoutMs: UInt32, state: DFUState, stringIndex: UInt8 = 0) {
        self.status = status
        self.pollTimeout = .milliseconds(Int(pollTimeoutMs & 0xFF_FFFF))
        self.state = state
        self.stringIndex = stringIndex
    }

    public var pollTimeoutMs: UInt32 {
        let (seconds, attoseconds) = pollTimeout.components
        return UInt32(seconds) * 1000 + UInt32(attoseconds / 1_000_000_000_000_000)
    }

    /// Parses the 6-byte answer; nil if it is not one (length, unknown state or status).
    public init?(bytes: [UInt8]) {
        guard bytes.count == 6, let status = DFUStatus(rawValue: bytes[0]), let state = DFUState(rawValue: bytes[4]) else {
            return nil
        }
        self.init(
            status: status, pollTimeoutMs: UInt32(bytes[1]) | UInt32(bytes[2]) << 8 | UInt32(bytes[3]) << 16,
            state: state, stringIndex: bytes[5])
    }

    public var bytes: [UInt8] {
        let ms = pollTimeoutMs
        return [status.rawValue, UInt8(ms & 0xFF), UInt8(ms >> 8 & 0xFF), UInt8(ms >> 16 & 0xFF), state.rawValue, stringIndex]
    }

    public var description: String { "state \(state), status \(status), poll \(pollTimeoutMs) ms" }
}

/// DfuSe commands, sent as DNLOAD with wBlockNum 0 (AN3156 §6.1).
public enum DfuSeCommand: Sendable, Hashable, CustomStringConvertible {
    /// 0x00: ask for the supported commands (answered on UPLOAD block 0).
    case getCommands
    /// 0x21 + address: set the address pointer.
    case setAddress(UInt32)
    /// 0x41 + address: erase the page or sector holding the address.
    case erase(UInt32)
    /// 0x41 alone: mass erase.
    case massErase
    /// 0x92: read unprotect (wipes the whole flash, resets the device).
    case readUnprotect

    public static let getCommandsCode: UInt8 = 0x00
    public static let setAddressCode: UInt8 = 0x21
    public static let eraseCode: UInt8 = 0x41
    public static let readUnprotectCode: UInt8 = 0x92

    public var bytes: [UInt8] {
        func le(_ address: UInt32) -> [UInt8] {
            [UInt8(address & 0xFF), UInt8(address >> 8 & 0xFF), UInt8(address >> 16 & 0xFF), UInt8(address >> 24)]
        }
        switch self {
        case .getCommands: return [Self.getCommandsCode]
        case .setAddress(let address): return [Self.setAddressCode] + le(address)
        case .erase(let address): return [Self.eraseCode] + le(address)
        case .massErase: return [Self.eraseCode]
        case .readUnprotect: return [Self.readUnprotectCode]
        }
    }

    /// Parses a block-0 DNLOAD payload; nil if it is none of the commands.
    public init?(bytes: [UInt8]) {
        func address() -> UInt32 { UInt32(bytes[1]) | UInt32(bytes[2]) << 8 | UInt32(bytes[3]) << 16 | UInt32(bytes[4]) << 24 }
        switch (bytes.first, bytes.count) {
        case (Self.getCommandsCode, 1): self = .getCommands
        case (Self.setAddressCode, 5): self = .setAddress(address())
        case (Self.eraseCode, 5): self = .erase(address())
        case (Self.eraseCode, 1): self = .massErase
        case (Self.readUnprotectCode, 1): self = .readUnprotect
        default: return nil
        }
    }

    public var description: String {
        switch self {
        case .getCommands: "GET_COMMANDS"
        case .setAddress(let address): "SET_ADDRESS 0x\(String(address, radix: 16, uppercase: true))"
        case .erase(let address): "ERASE 0x\(String(address, radix: 16, uppercase: true))"
        case .massErase: "MASS_ERASE"
        case .readUnprotect: "READ_UNPROTECT"
        }
    }
}
