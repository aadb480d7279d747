import Testing
import USBTransport

@testable import LibUSBBackend

/// Descriptor bytes shaped like the STM32F407 ROM's: one configuration, interface 0 with four DFU-mode
/// alternate settings (iInterface 4...7), the functional descriptor after the last one (AN3156 §2).
enum ROMDescriptors {
    static let functional: [UInt8] = [9, 0x21, 0x0B, 0xFF, 0x00, 0x00, 0x08, 0x1A, 0x01] // 2048 bytes, DfuSe 0x011A

    static func interface(alternate: UInt8, name: UInt8, protocol: UInt8 = 2) -> [UInt8] {
        [9, 0x04, 0, alternate, 0, 0xFE, 0x01, `protocol`, name]
    }

    static func configuration(settings: Int = 4, functionalAfter: Int? = nil, functional: [UInt8] = functional) -> [UInt8] {
        var body: [UInt8] = []
        for alternate in 0..<settings {
            body += interface(alternate: UInt8(alternate), name: UInt8(4 + alternate))
            if alternate == (functionalAfter ?? settings - 1) { body += functional }
        }
        let total = 9 + body.count
        return [9, 0x02, UInt8(total & 0xFF), UInt8(total >> 8), 1, 1, 0, 0xC0, 0x32] + body
    }

    static let device: [UInt8] = [18, 0x01, 0x00, 0x02, 0, 0, 0, 64, 0x83, 0x04, 0x11, 0xDF, 0x00, 0x22, 1, 2, 3, 1]

    static func string(_ text: String) -> [UInt8] {
        let units = Array(text.utf16)
        return [UInt8(2 + 2 * units.count), 0x03] + units.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] }
    }
}

@Suite("Descriptor parsing")
struct DescriptorTests {
    @Test func parsesTheROMDeviceDescriptor() throws {
        let descriptor = try USBDeviceDescriptor(parsing: ROMDescriptors.device)
        #expect(descriptor.vendorID == 0x0483)
        #expect(descriptor.productID == 0xDF11)
        #expect(descriptor.bcdDevice == 0x2200)
        #expect(descriptor.serialNumberIndex == 3)
        #expect(descriptor.configurationCount == 1)
    }

    @Test(arguments: [
        ([UInt8](), "0 bytes, need 18"),
        (Array(ROMDescriptors.device.prefix(17)), "17 bytes, need 18"),
        ([17] + Array(ROMDescriptors.device.dropFirst()), "bLength 17, need 18"),
        ([18, 0x02] + Array(ROMDescriptors.device.dropFirst(2)), "bDescriptorType 0x02, expected 0x01")
    ])
    func rejectsABrokenDeviceDescriptor(bytes: [UInt8], problem: String) {
        #expect(throws: DescriptorError.self) { try USBDeviceDescriptor(parsing: bytes) }
        do {
            _ = try USBDeviceDescriptor(parsing: bytes)
        } catch {
            #expect(error.problem == problem)
        }
    }

    @Test func parsesTheROMConfigurationWithEveryAlternateSetting() throws {
        let configuration = try USBConfiguration(parsing: ROMDescriptors.configuration())
        #expect(configuration.value == 1)
        #expect(configuration.settings.map(\.alternateSetting) == [0, 1, 2, 3])
        #expect(configuration.settings.map(\.nameIndex) == [4, 5, 6, 7])
        #expect(configuration.settings.last?.extra == ROMDescriptors.functional)
        #expect(configuration.settings.first?.extra == [])
    }

    @Test func ignoresBytesAfterTotalLength() throws {
        let configuration = try USBConfiguration(parsing: ROMDescriptors.configuration() + [0xDE, 0xAD, 0xBE])
        #expect(configuration.settings.count == 4)
    }

    @Test func rejectsATruncatedConfiguration() {
        let bytes = ROMDescriptors.configuration()
        for cut in [0, 5, 9, 20, bytes.count - 1] {
            #expect(throws: DescriptorError.self, "cut at \(cut)") { try USBConfiguration(parsing: Array(bytes.prefix(cut))) }
        }
    }

    @Test func rejectsAZeroLengthDescriptorInsteadOfLoopingForever() throws {
        var bytes = ROMDescriptors.configuration()
        bytes[9] = 0 // first interface descriptor's bLength
        let error = try #require(throws: DescriptorError.self) { try USBConfiguration(parsing: bytes) }
        #expect(error.offset == 9)
        #expect(error.problem.contains("bLength 0"))
    }

    @Test func rejectsADescriptorRunningPastTheEnd() throws {
        var bytes = ROMDescriptors.configuration()
        bytes[bytes.count - 9] = 200 // the functional descriptor claims 200 bytes
        let error = try #require(throws: DescriptorError.self) { try USBConfiguration(parsing: bytes) }
        #expect(error.problem.contains("runs past the end"))
    }

    @Test func rejectsTotalLengthShorterThanTheHeaderOrLongerThanTheBytes() {
        var short = ROMDescriptors.configuration()
        short[2] = 4
        short[3] = 0
        #expect(throws: DescriptorError.self) { try USBConfiguration(parsing: short) }
        var long = ROMDescriptors.configuration()
        long[3] = 0x10
        #expect(throws: DescriptorError.self) { try USBConfiguration(parsing: long) }
    }

    @Test func rejectsAShortInterfaceDescriptorAndADuplicateAlternateSetting() {
        let shortInterface: [UInt8] = [9, 0x02, 16, 0, 1, 1, 0, 0xC0, 0x32, 7, 0x04, 0, 0, 0, 0xFE, 0x01]
        #expect(throws: DescriptorError.self) { try USBConfiguration(parsing: shortInterface) }
        let twice = ROMDescriptors.interface(alternate: 0, name: 4) + ROMDescriptors.interface(alternate: 0, name: 5)
        let total = 9 + twice.count
        #expect(throws: DescriptorError.self) {
            try USBConfiguration(parsing: [9, 0x02, UInt8(total), 0, 1, 1, 0, 0xC0, 0x32] + twice)
        }
    }

    @Test func rejectsANestedConfigurationDescriptor() {
        let nested: [UInt8] = [9, 0x02, 18, 0, 0, 1, 0, 0xC0, 0x32, 9, 0x02, 9, 0, 0, 1, 0, 0xC0, 0x32]
        #expect(throws: DescriptorError.self) { try USBConfiguration(parsing: nested) }
    }

    @Test func splitRejectsAOneByteTail() {
        #expect(throws: DescriptorError.self) { try splitDescriptors([2, 0x24, 7], context: "test") }
        #expect(throws: DescriptorError.self) { try splitDescriptors([1, 0x24], context: "test") }
        #expect((try? splitDescriptors([], context: "test"))?.isEmpty == true)
    }

    /// Every prefix and every single-byte corruption of a real configuration parses or fails cleanly.
    @Test func survivesEveryTruncationAndByteFlip() {
        let bytes = ROMDescriptors.configuration()
        for cut in 0...bytes.count {
            _ = try? USBConfiguration(parsing: Array(bytes.prefix(cut)))
        }
        for index in bytes.indices {
            for value: UInt8 in [0, 1, 2, 0x7F, 0xFF] {
                var corrupted = bytes
                corrupted[index] = value
                if let configuration = try? USBConfiguration(parsing: corrupted) {
                    _ = try? DFUInterfaceDescription.find(in: configuration)
                }
            }
        }
    }
}

@Suite("DFU functional descriptor")
struct DFUFunctionalDescriptorTests {
    @Test func findsTheDescriptorAfterTheLastAlternateSettingAsSTROMsPlaceIt() throws {
        let configuration = try USBConfiguration(parsing: ROMDescriptors.configuration())
        let interfaces = try DFUInterfaceDescription.find(in: configuration)
        let dfu = try #require(interfaces.first)
        #expect(interfaces.count == 1)
        #expect(dfu.isDFUMode)
        #expect(dfu.settings.map(\.alternateSetting) == [0, 1, 2, 3])
        #expect(dfu.functionalDescriptor.transferSize == 2048)
        #expect(dfu.functionalDescriptor.isDfuSe)
        #expect(dfu.functionalDescriptor.canUpload)
    }

    @Test func findsTheDescriptorAfterTheFirstAlternateSettingToo() throws {
        let configuration = try USBConfiguration(parsing: ROMDescriptors.configuration(functionalAfter: 0))
        #expect(try DFUInterfaceDescription.find(in: configuration).first?.functionalDescriptor.transferSize == 2048)
    }

    @Test func reportsADFUInterfaceWithoutFunctionalDescriptor() throws {
        let configuration = try USBConfiguration(parsing: ROMDescriptors.configuration(functional: []))
        let error = try #require(throws: DescriptorError.self) { try DFUInterfaceDescription.find(in: configuration) }
        #expect(error.problem.contains("no DFU functional descriptor"))
    }

    @Test func acceptsASevenByteDFU10Descriptor() throws {
        let descriptor = try DFUFunctionalDescriptorParser.parse([7, 0x21, 0x03, 0xFF, 0x00, 0x00, 0x04], context: "test")
        #expect(descriptor.transferSize == 1024)
        #expect(descriptor.dfuVersion == 0x0100)
    }

    @Test(arguments: [
        [UInt8]([9, 0x21, 0x0B, 0xFF, 0x00, 0x00, 0x00, 0x1A, 0x01]), // wTransferSize 0
        [6, 0x21, 0x0B, 0xFF, 0x00, 0x00], // too short for any DFU version
        [9, 0x21, 0x0B, 0xFF, 0x00], // bLength past the bytes
        [9, 0x24, 0x0B, 0xFF, 0x00, 0x00, 0x08, 0x1A, 0x01] // not type 0x21
    ])
    func rejectsABrokenFunctionalDescriptor(bytes: [UInt8]) {
        #expect(throws: DescriptorError.self) { try DFUFunctionalDescriptorParser.parse(bytes, context: "test") }
    }

    @Test func ignoresInterfacesOfOtherClasses() throws {
        let hid: [UInt8] = [9, 0x04, 0, 0, 1, 0x03, 0, 0, 0, 9, 0x21, 0x11, 0x01, 0, 1, 0x22, 34, 0] // HID descriptor is also 0x21
        let total = 9 + hid.count
        let configuration = try USBConfiguration(parsing: [9, 0x02, UInt8(total), 0, 1, 1, 0, 0xC0, 0x32] + hid)
        #expect(try DFUInterfaceDescription.find(in: configuration).isEmpty)
    }
}

@Suite("String descriptors")
struct StringDescriptorTests {
    @Test func decodesALayoutString() throws {
        let layout = "@Internal Flash  /0x08000000/04*016Kg,01*064Kg,07*128Kg"
        #expect(try USBStringDescriptor.decode(ROMDescriptors.string(layout), index: 4) == layout)
    }

    @Test func decodesNonASCIIAndDropsTrailingNULs() throws {
        #expect(try USBStringDescriptor.decode(ROMDescriptors.string("Grüße\u{0}\u{0}"), index: 1) == "Grüße")
    }

    @Test func toleratesAnOddLengthAndAnUnpairedSurrogate() throws {
        #expect(try USBStringDescriptor.decode([5, 0x03, 0x41, 0x00, 0x42], index: 1) == "A")
        #expect(try USBStringDescriptor.decode([4, 0x03, 0x00, 0xD8], index: 1) == "\u{FFFD}")
    }

    @Test(arguments: [
        [UInt8](),
        [2],
        [4, 0x02, 0x41, 0x00], // wrong type
        [10, 0x03, 0x41, 0x00], // bLength past the bytes
        [0, 0x03] // bLength 0
    ])
    func rejectsABrokenString(bytes: [UInt8]) {
        #expect(throws: DescriptorError.self) { try USBStringDescriptor.decode(bytes, index: 2) }
    }

    @Test func readsTheLanguageList() throws {
        #expect(try USBStringDescriptor.languages([6, 0x03, 0x09, 0x04, 0x07, 0x04]) == [0x0409, 0x0407])
        #expect(try USBStringDescriptor.languages([2, 0x03]) == [])
        #expect(try USBStringDescriptor.languages([5, 0x03, 0x09, 0x04, 0x07]) == [0x0409])
    }
}
