import Foundation
import Testing

@testable import AppLink

/// CRC-32 as zlib computes it, for the fixture (the product code takes FirmwareImage's).
private func zlibCRC32(_ bytes: [UInt8]) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for byte in bytes {
        crc ^= UInt32(byte)
        for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
    }
    return ~crc
}

/// The fixture device of the vector file: its flash, changed by `erase` and `flash` lines.
private final class FixtureFlash: @unchecked Sendable {
    private let lock = NSLock()
    var address: UInt32 = 0
    private var bytes: [UInt8] = []

    func resize(_ size: Int) { lock.withLock { bytes = [UInt8](repeating: 0xFF, count: size) } }
    func erase() { lock.withLock { bytes = [UInt8](repeating: 0xFF, count: bytes.count) } }
    func write(_ data: [UInt8], at target: UInt32) {
        lock.withLock { bytes.replaceSubrange(Int(target - address)..<(Int(target - address) + data.count), with: data) }
    }
    func read(_ target: UInt32, _ count: Int) -> [UInt8] {
        lock.withLock { Array(bytes[Int(target - address)..<(Int(target - address) + count)]) }
    }
}

/// `AppLinkDevice`, the virtual device's protocol engine, against the vector file's fixture: every
/// answer byte for byte, as `make check` does for the C handler.
@Suite struct DeviceTests {
    @Test func theSwiftDeviceAnswersEveryVectorAsTheReferenceFirmwareDoes() throws {
        let file = try VectorFile.load()
        let flash = FixtureFlash()
        var state = AppLinkDevice.State(
            flashAddress: 0, flashSize: 0, imageBase: 0, uid: UniqueID([UInt8](repeating: 0, count: 12))!,
            deviceID: 0, revisionID: 0)
        var inputs: [String: [UInt8]] = [:]
        var checked = 0
        for step in file.steps {
            switch step {
            case .fixture(let key, let value):
                let number = value.hasPrefix("0x") ? UInt64(value.dropFirst(2), radix: 16) : UInt64(value)
                switch key {
                case "flash-address":
                    state.flashAddress = UInt32(try #require(number))
                    flash.address = state.flashAddress
                case "flash-size":
                    state.flashSize = UInt32(try #require(number))
                    flash.resize(Int(state.flashSize))
                case "image-base": state.imageBase = UInt32(try #require(number))
                case "uid": state.uid = try #require(UniqueID(hex: value))
                case "dev-id": state.deviceID = UInt16(try #require(number))
                case "rev-id": state.revisionID = UInt16(try #require(number))
                case "reset-delay-ms": state.resetDelayMs = UInt16(try #require(number))
                case "bootloader-blocked": state.bootloaderBlocked = try #require(number) != 0
                default: Issue.record("unknown fixture key \(key)")
                }
            case .erase:
                flash.erase()
            case .flash(let address, let bytes):
                flash.write(bytes, at: address)
            case .vector(let vector) where vector.kind == .request || vector.kind == .deviceInput:
                inputs[vector.name] = vector.bytes ?? []
            case .vector(let vector) where vector.kind == .response:
                let request = try #require(inputs[try vector.field("to")], "\(vector)")
                let device = AppLinkDevice(state: state, readFlash: { flash.read($0, $1) }, crc32: zlibCRC32)
                let outcome = device.handle(request)
                switch (outcome, vector.bytes) {
                case (.ignore, nil): break
                case (.reply(let bytes), let expected?):
                    #expect(bytes == expected, "\(vector)")
                    #expect(vector.fields["action"] == nil, "\(vector): the device must enter the bootloader")
                case (.replyThenEnterBootloader(let bytes), let expected?):
                    #expect(bytes == expected, "\(vector)")
                    #expect(vector.fields["action"] == "enter-bootloader", "\(vector): the device must not enter the bootloader")
                default:
                    Issue.record("\(vector): the device's outcome \(outcome) differs")
                }
                checked += 1
            case .vector:
                break
            }
        }
        #expect(checked >= 30)
    }

    @Test func theFixtureCRCIsZlibs() {
        #expect(zlibCRC32(Array("123456789".utf8)) == 0xCBF4_3926)
    }
}
