import DeviceProfiles
import DfuSeWire
import HexFormat
import USBTransport

/// What the DfuSe client was doing when something happened: the context every error and log line names.
public enum DfuSeOperation: Sendable, Hashable, CustomStringConvertible {
    case selectAlternateSetting(UInt8)
    case getStatus
    case clearStatus
    case abort
    /// Bringing a device found in some other state back to dfuIDLE.
    case returnToIdle
    case getCommands
    case setAddress(UInt32)
    case eraseSector(UInt32)
    case massErase
    case readUnprotect
    /// DNLOAD of one data block (wBlockNum >= 2) holding `length` bytes for `address`.
    case download(block: UInt16, address: UInt32, length: Int)
    /// UPLOAD of one data block (wBlockNum >= 2) of `length` bytes from `address`.
    case upload(block: UInt16, address: UInt32, length: Int)
    case leave(jumpTo: UInt32)

    public var description: String {
        switch self {
        case .selectAlternateSetting(let number): "selecting alternate setting \(number)"
        case .getStatus: "GETSTATUS"
        case .clearStatus: "CLRSTATUS"
        case .abort: "ABORT"
        case .returnToIdle: "returning the device to dfuIDLE"
        case .getCommands: "reading the supported DfuSe commands"
        case .setAddress(let address): "setting the address pointer to \(Hex.word(address))"
        case .eraseSector(let address): "erasing the sector at \(Hex.word(address))"
        case .massErase: "mass erase"
        case .readUnprotect: "read unprotect"
        case .download(let block, let address, let length):
            "writing block \(block) (\(length) bytes at \(Hex.word(address)))"
        case .upload(let block, let address, let length):
            "reading block \(block) (\(length) bytes at \(Hex.word(address)))"
        case .leave(let address): "leaving DFU mode (jump to \(Hex.word(address)))"
        }
    }

    /// The memory address the operation concerns, if it concerns one.
    public var address: UInt32? {
        switch self {
        case .setAddress(let address), .eraseSector(let address), .leave(let address): address
        case .download(_, let address, _), .upload(_, let address, _): address
        default: nil
        }
    }
}

/// The one error type of the DfuSe layer: the device's protocol, its ROM's misbehaviour, and the
/// flash plan's refusals. Every case carries what a technician needs: operation, state, status,
/// address, sector and, for refusals, the layout line.
public enum DfuSeError: Error, Sendable, Equatable, CustomStringConvertible {
    // MARK: The device and the wire

    /// The transport failed while the client was doing `operation`.
    case transport(TransportError, during: DfuSeOperation)
    /// The device reported a DFU error status (DFU 1.1 §6.1.2); the client has already sent CLRSTATUS.
    case deviceStatus(DFUStatus, state: DFUState, during: DfuSeOperation, sector: FlashLayout.Sector?)
    /// The device answered GETSTATUS with a state the protocol does not allow here.
    case unexpectedState(DFUState, expected: [DFUState], during: DfuSeOperation)
    /// A GETSTATUS answer that is not 6 bytes with a known state and status.
    case malformedStatus([UInt8], during: DfuSeOperation)
    /// The device stayed in dfuDNBUSY: `polls` answers in a row with a zero poll timeout, or busy
    /// for longer than any flash operation takes.
    case stuckBusy(during: DfuSeOperation, polls: Int, elapsed: Duration)
    /// GETSTATUS stalled more often in a row than the ROM quirk allows (L4: 3).
    case tooManyStalls(during: DfuSeOperation, stalls: Int)
    /// After a stuck dfuDNBUSY was cleared, the block's flash is neither erased nor what was sent.
    case blockLeftIncomplete(address: UInt32, length: Int, sector: FlashLayout.Sector?)
    /// The device is running its application (appIDLE/appDETACH), not the DFU bootloader.
    case notInDfuMode(DFUState)
    /// The device did not reach dfuIDLE after CLRSTATUS/ABORT.
    case cannotReachIdle(lastState: DFUState)
    /// bcdDFU is not 0x011A: the device does not speak ST's DfuSe extensions.
    case notDfuSe(bcdDFU: UInt16)
    /// wTransferSize of the functional descriptor is 0.
    case invalidTransferSize(Int)
    case noSuchAlternateSetting(UInt8, available: [UInt8])
    /// The alternate setting's name is not a valid DfuSe layout string.
    case badLayout(FlashLayoutError, alternateSetting: UInt8)
    /// UPLOAD block 0 did not return a command list starting with 0x00.
    case malformedCommandList([UInt8])
    /// UPLOAD returned another number of bytes than asked for.
    case shortRead(address: UInt32, expected: Int, got: Int)
    /// The requested range runs past the 4 GiB address space.
    case addressRangeOverflow(address: UInt32, length: Int)
    /// Read-back differs from the image; `address` is the first differing byte.
    case verifyMismatch(address: UInt32, expected: UInt8, actual: UInt8, sector: FlashLayout.Sector?)
    /// The task was cancelled while waiting on the device.
    case cancelled(during: DfuSeOperation)
    /// A call was made while another was still talking to the device.
    case concurrentCall(requested: String, running: String)
    /// The ROM stalled SET_ADDRESS to the option bytes: it refuses that address, and nothing was written.
    case optionBytesAddressRefused(UInt32)

    // MARK: The flash plan's refusals (nothing has been sent to the device)

    case emptyImage
    /// Part of the image lies in no zone of the layout.
    case outsideMemory(address: UInt32, layout: String)
    /// The image touches a sector whose attribute lacks "writable".
    case notWritable(FlashLayout.Sector, layout: String)
    /// The image touches a sector whose attribute lacks "erasable" (seed 002).
    case notErasable(FlashLayout.Sector, layout: String)
    /// A segment does not start or end on the family's write granularity (ECC flash word, seed 004).
    case misaligned(address: UInt32, granularity: Int, layout: String)
    /// Blocks of `transferSize` bytes would split a flash word between two blocks.
    case transferSizeNotMultipleOfGranularity(transferSize: Int, granularity: Int)
    /// A sector named as unchanged, or given to `erase`, is not the start of a sector in the layout.
    case notASectorStart(address: UInt32, layout: String)
    /// The image given to `execute` is not the one the plan was made from.
    case planDoesNotMatchImage(String)
    /// The plan was made for another wTransferSize than the device reports.
    case planTransferSizeMismatch(plan: Int, device: Int)

    /// Broad classes, so that a CLI maps the layer to exit codes with one switch.
    public enum Category: String, Sendable, Hashable, Codable {
        /// The plan or request cannot be right; nothing was sent.
        case refused
        /// The device reported a DFU error status.
        case deviceError
        /// Read-back differs.
        case verifyFailed
        /// USB failed, or the device broke the protocol or hung.
        case transport
        case cancelled
    }

    public var category: Category {
        switch self {
        case .emptyImage, .outsideMemory, .notWritable, .notErasable, .misaligned,
            .transferSizeNotMultipleOfGranularity, .notASectorStart, .planDoesNotMatchImage,
            .planTransferSizeMismatch, .addressRangeOverflow, .notDfuSe, .invalidTransferSize,
            .noSuchAlternateSetting, .badLayout, .notInDfuMode, .concurrentCall, .optionBytesAddressRefused:
            .refused
        case .deviceStatus, .blockLeftIncomplete:
            .deviceError
        case .verifyMismatch:
            .verifyFailed
        case .transport, .unexpectedState, .malformedStatus, .stuckBusy, .tooManyStalls,
            .cannotReachIdle, .malformedCommandList, .shortRead:
            .transport
        case .cancelled:
            .cancelled
        }
    }

    /// The memory address the error concerns, if any (for journals and messages).
    public var address: UInt32? {
        switch self {
        case .transport(_, let operation), .deviceStatus(_, _, let operation, _), .unexpectedState(_, _, let operation),
            .malformedStatus(_, let operation), .stuckBusy(let operation, _, _), .tooManyStalls(let operation, _),
            .cancelled(let operation):
            operation.address
        case .blockLeftIncomplete(let address, _, _), .shortRead(let address, _, _),
            .addressRangeOverflow(let address, _), .verifyMismatch(let address, _, _, _),
            .outsideMemory(let address, _), .misaligned(let address, _, _), .notASectorStart(let address, _),
            .optionBytesAddressRefused(let address):
            address
        case .notWritable(let sector, _), .notErasable(let sector, _):
            sector.start
        default:
            nil
        }
    }

    /// The transport error underneath, if any (e.g. to tell a vanished device from a refusal).
    public var transportError: TransportError? {
        if case .transport(let error, _) = self { return error }
        return nil
    }

    public var description: String {
        switch self {
        case .transport(let error, let operation):
            return "USB failure while \(operation): \(error)"
        case .deviceStatus(let status, let state, let operation, let sector):
            var text = "the device reported \(status) in state \(state) while \(operation)"
            if let sector { text += ", in \(sector)" }
            return text + statusAdvice(status)
        case .unexpectedState(let state, let expected, let operation):
            let names = expected.map(\.description).joined(separator: " or ")
            return "the device reported state \(state) while \(operation), expected \(names); "
                + "replug the unit and run the command again"
        case .malformedStatus(let bytes, let operation):
            return "the device's GETSTATUS answer while \(operation) is not a DFU status (\(bytes.count) bytes: "
                + "\(hexBytes(bytes))); it may not be an STM32 DFU bootloader"
        case .stuckBusy(let operation, let polls, let elapsed):
            return "the device stayed in dfuDNBUSY while \(operation) (\(polls) polls in a row, \(elapsed)); "
                + "power-cycle the unit into the bootloader and run the command again"
        case .tooManyStalls(let operation, let stalls):
            return "GETSTATUS stalled \(stalls) times in a row while \(operation), more than the ROM is known to; "
                + "replug the unit and run the command again"
        case .blockLeftIncomplete(let address, let length, let sector):
            var text =
                "the \(length)-byte block at \(Hex.word(address)) was interrupted by a stuck dfuDNBUSY and "
                + "is neither erased nor fully written"
            if let sector { text += " (\(sector))" }
            return text + "; run the upgrade again: it erases the sector first"
        case .notInDfuMode(let state):
            return "the device is in \(state), running its application rather than the DFU bootloader; "
                + "enter the bootloader first"
        case .cannotReachIdle(let state):
            return "the device did not return to dfuIDLE (last state \(state)); replug the unit and run the command again"
        case .notDfuSe(let version):
            return "the device reports DFU version 0x\(Hex.digits(version, width: 4)), not DfuSe 0x011A; "
                + "it is not an STM32 DfuSe bootloader"
        case .invalidTransferSize(let size):
            return "the device's DFU functional descriptor gives wTransferSize \(size); no transfer is possible"
        case .noSuchAlternateSetting(let number, let available):
            return "the device has no alternate setting \(number) (it has \(available.map(String.init).joined(separator: ", ")))"
        case .badLayout(let error, let alternateSetting):
            return "alternate setting \(alternateSetting) has no usable memory layout: \(error)"
        case .malformedCommandList(let bytes):
            return "the device's DfuSe command list is malformed (\(hexBytes(bytes)))"
        case .shortRead(let address, let expected, let got):
            return "reading \(expected) bytes at \(Hex.word(address)) returned \(got); "
                + "the region may be read-protected or beyond the device's memory"
        case .addressRangeOverflow(let address, let length):
            return "\(length) bytes at \(Hex.word(address)) run past the end of the 32-bit address space"
        case .verifyMismatch(let address, let expected, let actual, let sector):
            var text =
                "verification failed at \(Hex.word(address)): expected 0x\(Hex.digits(expected, width: 2)), "
                + "read 0x\(Hex.digits(actual, width: 2))"
            if let sector { text += " (\(sector))" }
            return text + "; the unit is still in DFU mode: run the upgrade again"
        case .cancelled(let operation):
            return "cancelled while \(operation)"
        case .concurrentCall(let requested, let running):
            return "\(requested) was called while \(running) is still talking to the device; "
                + "a DfuSe client runs one operation at a time (this is a bug in the caller)"
        case .optionBytesAddressRefused(let address):
            return "the ROM refused the option-byte address \(Hex.word(address)) (it stalled SET_ADDRESS); nothing was written"
        case .emptyImage:
            return "the image holds no bytes to write"
        case .outsideMemory(let address, let layout):
            return "the image has data at \(Hex.word(address)), outside every memory zone of the device "
                + "(layout \(layout)); the image is for another part or another memory map"
        case .notWritable(let sector, let layout):
            return "the image writes into \(sector), which the device marks not writable (layout \(layout))"
        case .notErasable(let sector, let layout):
            return "the image needs \(sector) erased, but the device marks it not erasable (layout \(layout)); "
                + "a firmware DfuSe protects its own sectors this way (seed 002): link the image above them"
        case .misaligned(let address, let granularity, let layout):
            return "the image has a segment boundary at \(Hex.word(address)), not on the \(granularity)-byte "
                + "flash word (layout \(layout)); a flash word must be written exactly once: pad the image"
        case .transferSizeNotMultipleOfGranularity(let transferSize, let granularity):
            return "wTransferSize \(transferSize) is not a multiple of the \(granularity)-byte flash word; "
                + "blocks would split a word between two writes"
        case .notASectorStart(let address, let layout):
            return "\(Hex.word(address)) is not the start of a sector (layout \(layout))"
        case .planDoesNotMatchImage(let detail):
            return "the flash plan was not made from this image: \(detail)"
        case .planTransferSizeMismatch(let plan, let device):
            return "the flash plan uses \(plan)-byte blocks but the device's wTransferSize is \(device); plan again"
        }
    }
}

private func statusAdvice(_ status: DFUStatus) -> String {
    switch status {
    case .errVendor:
        "; read protection is probably active: only a read unprotect (which wipes the flash) clears it"
    case .errAddress, .errTarget:
        "; the address is not valid for this device: check the image and the family"
    case .errErase, .errCheckErased, .errProg, .errWrite, .errVerify:
        "; the flash may be write-protected or worn: check the option bytes"
    default:
        "; run the command again"
    }
}

func hexBytes(_ bytes: [UInt8]) -> String {
    bytes.isEmpty ? "none" : bytes.prefix(16).map { Hex.digits($0, width: 2) }.joined(separator: " ") + (bytes.count > 16 ? " …" : "")
}
