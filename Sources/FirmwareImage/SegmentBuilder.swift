/// Collects bytes that readers find at addresses into sparse segments. Every byte goes into one payload
/// buffer in arrival order, and each run of consecutive addresses is one 16-byte index entry, so a file
/// of many tiny records costs no array per record. `finish` sorts the runs and joins every run that
/// continues another (in any order) into one segment. Gaps are never allocated; overlaps are left for
/// `normalize` to judge (overlapping runs stay separate segments).
struct SegmentBuilder {
    /// Each segment costs an array of its own (about 64 bytes with its header), so a file of scattered
    /// 1-byte records (13 characters each) would cost 5 times its size. Allowed: one segment per
    /// `textBytesPerSegment` characters of the file, or `minimumSegmentAllowance`, whichever is more; that
    /// keeps what a read holds under 3 times the file (payload at most half the text, plus 64 / 32 per
    /// character). A linker writes a few dozen segments; a HEX file of 16-byte records each in a gap of its
    /// own still passes.
    static let textBytesPerSegment = 32
    static let minimumSegmentAllowance = 1024

    /// 12 bytes: a 1-byte record (at least 13 characters of text) costs less than its line.
    private struct Run {
        var address: UInt32
        var length: UInt32
        /// Where the run's bytes start in `payload`.
        var offset: UInt32
        var end: UInt64 { UInt64(address) + UInt64(length) }
        var payloadRange: Range<Int> { Int(offset)..<Int(offset) + Int(length) }
    }

    private var payload: [UInt8] = []
    private var runs: [Run] = []

    /// `expectedPayload` is a reader's estimate; untouched capacity costs address space, not memory.
    init(expectedPayload: Int = 0) {
        payload.reserveCapacity(max(0, min(expectedPayload, 1 << 30)))
    }

    /// Adds `bytes` at `address`. The caller has checked that the run ends within 4 GiB.
    mutating func append(address: UInt32, _ bytes: UnsafeBufferPointer<UInt8>) throws(SegmentLimit) {
        guard !bytes.isEmpty else { return }
        // Overlapping records could repeat the 4 GiB address space; 32-bit offsets hold all that is real.
        guard UInt64(payload.count) + UInt64(bytes.count) <= UInt64(UInt32.max) else { throw .tooMuchData }
        if let last = runs.last, last.end == UInt64(address), last.payloadRange.upperBound == payload.count {
            runs[runs.count - 1].length += UInt32(bytes.count)
        } else {
            runs.append(Run(address: address, length: UInt32(bytes.count), offset: UInt32(payload.count)))
        }
        payload.append(contentsOf: bytes)
    }

    /// The segments, in address order. `textBytes` is the size of the text they came from; throws when there
    /// are more segments than it allows (see `textBytesPerSegment`). The caller names the file.
    mutating func finish(textBytes: Int) throws(SegmentLimit) -> [Segment] {
        let allowed = max(Self.minimumSegmentAllowance, textBytes / Self.textBytesPerSegment)
        defer {
            payload = []
            runs = []
        }
        if runs.count == 1 {
            return [Segment(address: runs[0].address, bytes: payload)] // one run: hand the buffer over, no copy
        }
        runs.sort { ($0.address, $0.offset) < ($1.address, $1.offset) }
        var groups: [Range<Int>] = []
        var start = 0
        while start < runs.count {
            var next = start + 1
            while next < runs.count, runs[next].address == UInt32(truncatingIfNeeded: runs[next - 1].end),
                runs[next - 1].end < 0x1_0000_0000
            {
                next += 1
            }
            groups.append(start..<next)
            guard groups.count <= allowed else { throw .tooManySegments(allowed: allowed, textBytes: textBytes) }
            start = next
        }
        return groups.map { group in
            var bytes = [UInt8]()
            bytes.reserveCapacity(runs[group].reduce(0) { $0 + Int($1.length) })
            for run in runs[group] { bytes.append(contentsOf: payload[run.payloadRange]) }
            return Segment(address: runs[group.lowerBound].address, bytes: bytes)
        }
    }
}

/// Where a file goes beyond what `SegmentBuilder` holds.
enum SegmentLimit: Error {
    case tooManySegments(allowed: Int, textBytes: Int)
    case tooMuchData

    var problem: String {
        switch self {
        case .tooManySegments(let allowed, let textBytes):
            "the file holds more than \(allowed) separate runs of data in \(textBytes) bytes of text (one per "
                + "\(SegmentBuilder.textBytesPerSegment) bytes at most); no firmware image is that fragmented"
        case .tooMuchData:
            "the records hold more than 4 GiB of data (the address space is 4 GiB): records repeat the same addresses"
        }
    }
}
