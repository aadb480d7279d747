import HexFormat

/// The memory of the part an image is meant for, as the checks need it. The CLI fills it from
/// `McuFamily` (this module has no package dependencies, so it takes plain ranges).
public struct TargetMemoryMap: Sendable, Hashable {
    /// Where the part is named in messages, e.g. "STM32F405/407".
    public var partName: String
    public var ram: [ClosedRange<UInt32>]
    /// The internal flash; empty when unknown.
    public var flash: [ClosedRange<UInt32>]

    public init(partName: String, ram: [ClosedRange<UInt32>], flash: [ClosedRange<UInt32>] = []) {
        self.partName = partName
        self.ram = ram
        self.flash = flash
    }
}

/// One thing the checks found, with the address it is about.
public struct ImageFinding: Sendable, Hashable, CustomStringConvertible {
    public enum Severity: String, Sendable, Hashable, Codable {
        /// Unusual, maybe intended; the image may still be right.
        case warning
        /// The image cannot be right: flashing it would leave a unit that does not start.
        case error
    }

    /// What to do about it, where a front end names the step its own way (a command): `message` says it
    /// neutrally, ending with `NextStep.clause` (issue 23: library text names no command or flag).
    public enum NextStep: Sendable, Hashable {
        /// Write the descriptor's size, CRC and version into the image.
        case stamp

        /// The words of `message` that say this step.
        public var clause: String {
            switch self {
            case .stamp: "stamp the image"
            }
        }
    }

    public var severity: Severity
    public var address: UInt32?
    public var message: String
    public var next: NextStep?

    public init(_ severity: Severity, at address: UInt32?, _ message: String, next: NextStep? = nil) {
        self.severity = severity
        self.address = address
        self.message = message
        self.next = next
    }

    public var description: String {
        (address.map { "\(severity.rawValue) at 0x\(Hex.digits($0, width: 8)): " } ?? "\(severity.rawValue): ") + message
    }
}

/// The first words of an Armv7-M vector table (ARMv7-M ARM §B1.5.3).
public struct VectorTable: Sendable, Hashable {
    public var address: UInt32
    /// Word 0: the initial main stack pointer.
    public var initialStackPointer: UInt32
    /// Word 1: the reset handler, with the Thumb bit (bit 0) set.
    public var resetHandler: UInt32
    /// Word 8 (reserved by the architecture): dfuhop's descriptor address, or 0.
    public var descriptorPointer: UInt32?
}

public struct ImageReport: Sendable, Hashable {
    public var vectorTable: VectorTable?
    public var descriptor: DescriptorStatus?
    public var findings: [ImageFinding]

    public var errors: [ImageFinding] { findings.filter { $0.severity == .error } }
    public var warnings: [ImageFinding] { findings.filter { $0.severity == .warning } }
}

/// Checks an image the way a careful engineer would before flashing it (docs/guarantees.md: "refuse an image
/// that cannot be right for the unit").
public enum ImageCheck {
    /// Cortex-M's SRAM region (ARMv7-M ARM §B3.1), used when the part's RAM is not known.
    static let architecturalSRAM: ClosedRange<UInt32> = 0x2000_0000...0x3FFF_FFFF

    /// At most this many segments outside the flash are named one by one; the rest are counted in one more
    /// finding, so a hostile file of 100,000 stray segments does not cost a finding (and a line) each.
    static let outsideFlashNamed = 8

    /// An error for each segment outside the part's flash: the first `outsideFlashNamed`, then how many more.
    static func outsideFlash(_ image: NormalizedImage, _ target: TargetMemoryMap) -> [ImageFinding] {
        let flash = "the flash of \(target.partName) (\(target.flash.map(describe).joined(separator: ", ")))"
        let outside = image.segments.lazy.filter { segment in !target.flash.contains { covers($0, segment) } }
        var findings: [ImageFinding] = []
        var more = 0
        for segment in outside {
            guard findings.count < outsideFlashNamed else {
                more += 1
                continue
            }
            findings.append(ImageFinding(.error, at: segment.address, "segment \(segment.extent) lies outside \(flash)"))
        }
        if more > 0 { findings.append(ImageFinding(.error, at: nil, "\(more) more segment(s) lie outside \(flash)")) }
        return findings
    }

    public static func check(_ image: NormalizedImage, for target: TargetMemoryMap? = nil, source: String) -> ImageReport {
        var findings: [ImageFinding] = []
        guard let base = image.baseAddress else {
            return ImageReport(vectorTable: nil, descriptor: nil, findings: [ImageFinding(.error, at: nil, "the image is empty")])
        }
        if let target, !target.flash.isEmpty {
            findings += outsideFlash(image, target)
            if base != target.flash[0].lowerBound {
                findings.append(
                    ImageFinding(
                        .warning, at: base,
                        "the image starts at 0x\(Hex.digits(base, width: 8)), not at the flash base 0x\(Hex.digits(target.flash[0].lowerBound, width: 8)) the part boots from"
                    ))
            }
        }
        if base % 0x200 != 0 {
            findings.append(
                ImageFinding(
                    .warning, at: base,
                    "the vector table at 0x\(Hex.digits(base, width: 8)) is not 512-byte aligned, as VTOR needs on STM32 parts"))
        }
        guard let stackPointer = image.word(at: base), let resetHandler = image.word(at: base &+ 4) else {
            findings.append(ImageFinding(.error, at: base, "no vector table: the image has fewer than 8 bytes at its base"))
            return ImageReport(vectorTable: nil, descriptor: nil, findings: findings)
        }
        let table = VectorTable(
            address: base, initialStackPointer: stackPointer, resetHandler: resetHandler,
            descriptorPointer: image.word(at: base &+ ImageDescriptor.pointerOffset))
        checkStackPointer(stackPointer, base: base, target: target, into: &findings)
        checkResetHandler(resetHandler, image: image, base: base, into: &findings)
        let descriptor = ImageDescriptor.inspect(image, base: base, source: source)
        switch descriptor {
        case .absent(let pointer):
            findings.append(
                ImageFinding(
                    .warning, at: base &+ ImageDescriptor.pointerOffset,
                    "no image descriptor (word 8 of the vector table is 0x\(Hex.digits(pointer, width: 8))): the version cannot be checked on the unit"
                ))
        case .unstamped(_, let address), .reserved(let address):
            findings.append(
                ImageFinding(
                    .warning, at: address, "the image descriptor is reserved but not stamped; \(ImageFinding.NextStep.stamp.clause)",
                    next: .stamp))
        case .invalid(let error):
            let address: UInt32? = if case .address(let address) = error.location { address } else { nil }
            findings.append(ImageFinding(.error, at: address, error.problem))
        case .valid(let found, let address):
            // Bytes past the declared size would be flashed but not covered by the CRC.
            let declaredEnd = UInt64(base) + UInt64(found.imageSize)
            if image.end > declaredEnd, let stray = firstProgrammedByte(in: image, from: declaredEnd) {
                findings.append(
                    ImageFinding(
                        .error, at: stray,
                        "data at 0x\(Hex.digits(stray, width: 8)) lies beyond the \(found.imageSize) bytes the descriptor at 0x\(Hex.digits(address, width: 8)) covers; stamp the image again"
                    ))
            }
        }
        return ImageReport(vectorTable: table, descriptor: descriptor, findings: findings)
    }

    private static func checkStackPointer(
        _ stackPointer: UInt32, base: UInt32, target: TargetMemoryMap?, into findings: inout [ImageFinding]
    ) {
        if stackPointer == 0xFFFF_FFFF {
            findings.append(
                ImageFinding(
                    .error, at: base, "the initial stack pointer is 0xFFFFFFFF (erased): there is no vector table at the image base"))
            return
        }
        // The initial SP is the top of the stack: one past its highest byte, so the end of a RAM region counts.
        let inRegion = { (region: ClosedRange<UInt32>) in
            stackPointer > region.lowerBound && UInt64(stackPointer) <= UInt64(region.upperBound) + 1
        }
        if let target {
            if !target.ram.contains(where: inRegion) {
                findings.append(
                    ImageFinding(
                        .error, at: base,
                        "the initial stack pointer 0x\(Hex.digits(stackPointer, width: 8)) is outside the RAM of \(target.partName) (\(target.ram.map(describe).joined(separator: ", ")))"
                    ))
            }
        } else if !inRegion(architecturalSRAM) {
            findings.append(
                ImageFinding(
                    .warning, at: base,
                    "the initial stack pointer 0x\(Hex.digits(stackPointer, width: 8)) is outside the Cortex-M SRAM region (0x20000000-0x3FFFFFFF); name the part to check it against its RAM"
                ))
        }
        if stackPointer % 8 != 0 {
            findings.append(
                ImageFinding(
                    .warning, at: base, "the initial stack pointer 0x\(Hex.digits(stackPointer, width: 8)) is not 8-byte aligned (AAPCS)"))
        }
    }

    private static func checkResetHandler(_ handler: UInt32, image: NormalizedImage, base: UInt32, into findings: inout [ImageFinding]) {
        let address = handler & ~1
        if handler & 1 == 0 {
            findings.append(
                ImageFinding(
                    .error, at: base &+ 4,
                    "the reset handler 0x\(Hex.digits(handler, width: 8)) has the Thumb bit (bit 0) clear; a Cortex-M faults on it"))
        }
        if image.byte(at: address) == nil {
            findings.append(
                ImageFinding(
                    .error, at: base &+ 4,
                    "the reset handler 0x\(Hex.digits(handler, width: 8)) points outside the image"))
        }
        if let entry = image.entryPoint, entry & ~1 != address, entry != base {
            findings.append(
                ImageFinding(
                    .warning, at: entry,
                    "the file's start address 0x\(Hex.digits(entry, width: 8)) is neither the reset handler 0x\(Hex.digits(handler, width: 8)) nor the vector table"
                ))
        }
    }

    private static func firstProgrammedByte(in image: NormalizedImage, from start: UInt64) -> UInt32? {
        for segment in image.segments where segment.end > start {
            let from = Int(max(start, UInt64(segment.address)) - UInt64(segment.address))
            if let index = segment.bytes[from...].firstIndex(where: { $0 != 0xFF }) {
                return segment.address + UInt32(index)
            }
        }
        return nil
    }

    private static func covers(_ region: ClosedRange<UInt32>, _ segment: Segment) -> Bool {
        region.lowerBound <= segment.address && segment.end <= UInt64(region.upperBound) + 1
    }

    private static func describe(_ region: ClosedRange<UInt32>) -> String {
        "0x\(Hex.digits(region.lowerBound, width: 8))-0x\(Hex.digits(region.upperBound, width: 8))"
    }
}
