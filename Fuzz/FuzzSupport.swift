// Shared by every harness: what "survives hostile input" means for a reader.
@testable import FirmwareImage

/// Reads text in two chunks split at an input-dependent point (exercising lines that straddle chunks);
/// a successful read must round-trip through the writer.
func fuzzTextFormat(_ format: ImageFormat, _ input: UnsafeBufferPointer<UInt8>) {
    let split = input.isEmpty ? 0 : Int(input[0]) % (input.count + 1)
    var reader = ImageReader(format: format, file: "fuzz", expectedSize: input.count)
    do {
        try reader.consume(UnsafeBufferPointer(rebasing: input[..<split]))
        try reader.consume(UnsafeBufferPointer(rebasing: input[split...]))
        checkRoundTrip(try reader.finish(), as: format)
    } catch {
        precondition(!error.problem.isEmpty, "an ImageError must say what is wrong")
    }
}

func fuzzBinaryFormat(_ format: ImageFormat, _ bytes: [UInt8]) {
    do {
        let image = try ImageReader.read(bytes, file: "fuzz", format: format)
        if let normalized = try? image.normalized(granularity: 32) {
            let report = ImageCheck.check(
                normalized,
                for: TargetMemoryMap(
                    partName: "fuzz", ram: [0x2000_0000...0x2001_FFFF],
                    flash: [0x0800_0000...0x080F_FFFF]), source: "fuzz")
            _ = report.errors
        }
        if image.format == .dfuse { checkRoundTrip(image, as: .dfuse) }
    } catch {
        precondition(!error.problem.isEmpty, "an ImageError must say what is wrong")
    }
}

/// Normalised content must come back unchanged from write → read (overlapping images are refused).
func checkRoundTrip(_ image: FirmwareImage, as format: ImageFormat) {
    guard image.targets.allSatisfy({ (try? FirmwareImage.normalize($0.segments, granularity: 1, entryPoint: nil)) != nil }) else { return }
    var canonical = image
    for index in canonical.targets.indices {
        canonical.targets[index].segments =
            (try? FirmwareImage.normalize(canonical.targets[index].segments, granularity: 1, entryPoint: nil).segments) ?? []
    }
    guard let written = try? ImageWriter.bytes(canonical, as: format) else { return }
    guard let back = try? ImageReader.read(written, file: "fuzz-roundtrip", format: format) else {
        preconditionFailure("dfuhop cannot read what it wrote (\(format))")
    }
    for (original, copy) in zip(canonical.targets, back.targets) {
        let again = (try? FirmwareImage.normalize(copy.segments, granularity: 1, entryPoint: nil).segments) ?? []
        precondition(again == original.segments, "round trip through \(format) changed the segments")
    }
}

/// The bytes with a correct DFU suffix CRC, so mutations reach past the CRC check.
func resealed(_ bytes: [UInt8]) -> [UInt8] {
    guard bytes.count >= 16 else { return bytes }
    var copy = bytes
    let crc = CRC32.dfu(copy[0..<copy.count - 4])
    for index in 0..<4 { copy[copy.count - 4 + index] = UInt8(truncatingIfNeeded: crc >> (8 * UInt32(index))) }
    return copy
}
