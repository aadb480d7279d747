/// Collects bytes that readers find at addresses into sparse segments: a run that continues where the
/// previous one ended grows that segment; anything else starts a new one. Gaps are never allocated;
/// order and overlaps are left for `normalize` to judge.
struct SegmentBuilder {
    private(set) var segments: [Segment] = []
    private var current: [UInt8] = []
    private var currentStart: UInt32 = 0
    private var currentEnd: UInt64 = 0
    /// Capacity reserved for the first segment (a reader's estimate of its payload). Untouched capacity
    /// costs address space, not memory, so an over-estimate is cheap; later segments grow normally.
    private var firstCapacity: Int

    init(expectedPayload: Int = 0) {
        firstCapacity = max(0, min(expectedPayload, 1 << 30))
    }

    /// Adds `bytes` at `address`. The caller has checked that the run ends within 4 GiB.
    mutating func append(address: UInt32, _ bytes: UnsafeBufferPointer<UInt8>) {
        guard !bytes.isEmpty else { return }
        if UInt64(address) != currentEnd || current.isEmpty {
            closeCurrent()
            currentStart = address
            currentEnd = UInt64(address)
            if segments.isEmpty && firstCapacity > 0 {
                current.reserveCapacity(firstCapacity)
                firstCapacity = 0
            }
        }
        current.append(contentsOf: bytes)
        currentEnd += UInt64(bytes.count)
    }

    mutating func append(address: UInt32, _ bytes: [UInt8]) {
        bytes.withUnsafeBufferPointer { append(address: address, $0) }
    }

    /// One past the last byte of the run being built, where the next contiguous byte would go.
    var end: UInt64 { current.isEmpty ? 0 : currentEnd }

    private mutating func closeCurrent() {
        guard !current.isEmpty else { return }
        segments.append(Segment(address: currentStart, bytes: current))
        current = []
    }

    mutating func finish() -> [Segment] {
        closeCurrent()
        return segments
    }
}
