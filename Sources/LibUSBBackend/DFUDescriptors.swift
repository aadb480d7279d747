import USBTransport

/// DFU 1.1 §4.1.2 / §4.2.3: how a DFU interface shows itself.
public enum DFUInterfaceClass {
    /// Application specific.
    public static let interfaceClass: UInt8 = 0xFE
    public static let interfaceSubclass: UInt8 = 0x01
    /// Run-time: the application offers DETACH.
    public static let runtimeProtocol: UInt8 = 0x01
    /// DFU mode: the device is ready for DNLOAD/UPLOAD (the ST ROM).
    public static let dfuModeProtocol: UInt8 = 0x02
}

/// A DFU interface of a configuration: its number, its alternate settings, its functional descriptor.
public struct DFUInterfaceDescription: Sendable, Hashable {
    public struct Setting: Sendable, Hashable {
        public var alternateSetting: UInt8
        /// iInterface of the setting; for DfuSe its string is the memory layout.
        public var nameIndex: UInt8
    }

    public var interfaceNumber: UInt8
    /// True in DFU mode (bInterfaceProtocol 2), false for a run-time DFU interface (protocol 1).
    public var isDFUMode: Bool
    public var settings: [Setting]
    public var functionalDescriptor: DFUFunctionalDescriptor

    /// The DFU interfaces of `configuration`. A DFU interface without a usable functional descriptor
    /// is an error: without wTransferSize no client can talk to it safely.
    public static func find(in configuration: USBConfiguration) throws(DescriptorError) -> [DFUInterfaceDescription] {
        let dfuSettings = configuration.settings.filter {
            $0.interfaceClass == DFUInterfaceClass.interfaceClass && $0.interfaceSubclass == DFUInterfaceClass.interfaceSubclass
        }
        var interfaceNumbers: [UInt8] = []
        for setting in dfuSettings where !interfaceNumbers.contains(setting.interfaceNumber) {
            interfaceNumbers.append(setting.interfaceNumber)
        }
        var result: [DFUInterfaceDescription] = []
        for number in interfaceNumbers {
            let settings = dfuSettings.filter { $0.interfaceNumber == number }
            // ST ROMs put the functional descriptor after the last alternate setting, so libusb attaches
            // it to that setting's extra bytes; others put it after the first. Search them all, then the
            // configuration's own extra bytes (dfu-util does the same).
            var functional: DFUFunctionalDescriptor?
            for setting in settings where functional == nil {
                functional = try DFUFunctionalDescriptorParser.find(
                    in: setting.extra, context: "interface \(number) alternate setting \(setting.alternateSetting)")
            }
            if functional == nil {
                functional = try DFUFunctionalDescriptorParser.find(in: configuration.extra, context: "configuration")
            }
            guard let functional else {
                throw DescriptorError(
                    "DFU interface \(number)", offset: 0,
                    "no DFU functional descriptor (type 0x21) in any of its \(settings.count) alternate settings")
            }
            result.append(
                DFUInterfaceDescription(
                    interfaceNumber: number,
                    isDFUMode: settings.contains { $0.interfaceProtocol == DFUInterfaceClass.dfuModeProtocol },
                    settings: settings.map { Setting(alternateSetting: $0.alternateSetting, nameIndex: $0.nameIndex) },
                    functionalDescriptor: functional))
        }
        return result
    }
}

/// Reads the DFU functional descriptor (DFU 1.1 §4.1.3) out of class-specific descriptor bytes.
public enum DFUFunctionalDescriptorParser {
    /// The first functional descriptor in `extra`, or nil when there is none.
    public static func find(in extra: [UInt8], context: String) throws(DescriptorError) -> DFUFunctionalDescriptor? {
        for descriptor in try splitDescriptors(extra, context: context) where descriptor.type == DescriptorType.dfuFunctional {
            return try parse(descriptor.bytes, context: "\(context), DFU functional descriptor at byte \(descriptor.offset)")
        }
        return nil
    }

    /// Parses one functional descriptor. DFU 1.0 devices send 7 bytes without bcdDFUVersion; they count as 0x0100.
    public static func parse(_ bytes: [UInt8], context: String) throws(DescriptorError) -> DFUFunctionalDescriptor {
        guard bytes.count >= 2, bytes[1] == DescriptorType.dfuFunctional else {
            throw DescriptorError(context, offset: 1, "not a DFU functional descriptor")
        }
        let length = Int(bytes[0])
        guard length >= 7, bytes.count >= length else {
            throw DescriptorError(context, offset: 0, "bLength \(length) with \(bytes.count) bytes; need 7 (DFU 1.0) or 9")
        }
        let transferSize = UInt16(bytes[5]) | UInt16(bytes[6]) << 8
        guard transferSize > 0 else {
            throw DescriptorError(context, offset: 5, "wTransferSize 0: no block could ever be sent")
        }
        let version: UInt16 = length >= 9 ? UInt16(bytes[7]) | UInt16(bytes[8]) << 8 : 0x0100
        return DFUFunctionalDescriptor(
            attributes: bytes[2], detachTimeoutMs: UInt16(bytes[3]) | UInt16(bytes[4]) << 8,
            transferSize: transferSize, dfuVersion: version)
    }
}
