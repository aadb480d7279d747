import USBTransport

/// The bookkeeping of a replay, without locks or I/O. Requests are matched per port, in order, so units
/// upgraded concurrently replay too. The bus is state, not requests, and each port has its own: `devices()`
/// shows at each port what the last snapshot recorded before that port's first request not yet replayed
/// showed there, and a hotplug event becomes due once every request recorded before it on its port has
/// been replayed (each change once, however many subscriptions saw it).
struct ReplayState {
    let lines: [Recording.Line]
    private var streams: [String: [Int]] = [:]
    private var next: [String: Int] = [:]
    private var consumed: [Bool]
    /// Indices of the host's requests, in recorded order, and how many of the first ones are replayed.
    private var hostOrder: [Int] = []
    private var replayedPrefix = 0
    private var hotplugOrder: [Int] = []
    private var hotplugDelivered: [Bool] = []
    private(set) var divergence: Divergence?
    private(set) var requests = 0
    private(set) var transfers = 0

    init(lines: [Recording.Line]) {
        self.lines = lines
        consumed = Array(repeating: false, count: lines.count)
        defer { hotplugDelivered = Array(repeating: false, count: hotplugOrder.count) }
        for (index, line) in lines.enumerated() {
            switch line.record.event {
            case .devices, .result, .boot0Path, .subscribe: break
            case .hotplug: hotplugOrder.append(index)
            default:
                streams[Self.stream(line.record), default: []].append(index)
                hostOrder.append(index)
            }
        }
    }

    static func stream(_ record: Record) -> String { record.port ?? "host" }

    /// The first request not yet replayed, as an index into `lines` (`lines.count` when all are).
    var frontier: Int { replayedPrefix < hostOrder.count ? hostOrder[replayedPrefix] : lines.count }

    /// Matches `request` with the next recorded request on its port: the recorded record, or the divergence
    /// (the first one is kept, and every later request fails with it).
    mutating func take(_ request: Record) -> Result<Recording.Line, Divergence> {
        if let divergence { return .failure(divergence) }
        requests += 1
        let stream = Self.stream(request)
        let position = next[stream, default: 0]
        guard let index = streams[stream].flatMap({ position < $0.count ? $0[position] : nil }) else {
            return diverge(
                Divergence(
                    index: requests, line: (lines.last?.number ?? 1) + 1, stream: stream,
                    expected: "nothing: the recording has no further request on \(stream)", got: request.summary))
        }
        let recorded = lines[index]
        guard recorded.record.request == request.request else {
            return diverge(
                Divergence(
                    index: requests, line: recorded.number, stream: stream, expected: recorded.record.summary,
                    got: request.summary, detail: recorded.record.difference(from: request)))
        }
        next[stream] = position + 1
        consumed[index] = true
        while replayedPrefix < hostOrder.count, consumed[hostOrder[replayedPrefix]] { replayedPrefix += 1 }
        if recorded.record.isTransfer { transfers += 1 }
        return .success(recorded)
    }

    /// The handle of the next recorded request on `stream` (an open adopts it).
    func nextHandle(on stream: String) -> Int? {
        let position = next[stream, default: 0]
        guard let indices = streams[stream], position < indices.count else { return nil }
        return lines[indices[position]].record.handle
    }

    private mutating func diverge(_ found: Divergence) -> Result<Recording.Line, Divergence> {
        divergence = found
        return .failure(found)
    }

    /// Index into `lines` of the first request not yet replayed on `port`, or for no port (a BOOT0 request
    /// that named none, which any port may answer), whichever comes first (`lines.count` when all are).
    func frontier(of port: String) -> Int {
        guard streams[port] != nil else { return frontier }
        return min(first(in: port), first(in: "host"))
    }

    private func first(in stream: String) -> Int {
        guard let indices = streams[stream] else { return lines.count }
        let position = next[stream, default: 0]
        return position < indices.count ? indices[position] : lines.count
    }

    /// The bus now: each port as the last snapshot before that port's frontier showed it (the recording's
    /// first snapshot when the run asks before the recording did); a snapshot's error, if that one failed.
    var snapshot: (devices: [DeviceRecord], error: ErrorRecord?) {
        let snapshots = lines.indices.filter { lines[$0].record.event == .devices }
        guard let first = snapshots.first else { return ([], nil) }
        if let error = lines[snapshots.last { $0 < frontier } ?? first].record.error { return ([], error) }
        var ports: [String] = []
        for index in snapshots {
            for device in lines[index].record.devices ?? [] where !ports.contains(device.port) { ports.append(device.port) }
        }
        let devices = ports.flatMap { port -> [DeviceRecord] in
            let limit = frontier(of: port)
            let index = snapshots.last { $0 < limit } ?? first
            return (lines[index].record.devices ?? []).filter { $0.port == port }
        }
        return (devices, nil)
    }

    /// The hotplug events now due, in recorded order, each change once: the subscriptions of a recording
    /// all saw the same change, and a replay gives it to every subscription open when it becomes due.
    mutating func dueHotplug() -> [Record] {
        var due: [Record] = []
        for (position, index) in hotplugOrder.enumerated() where !hotplugDelivered[position] {
            guard index < frontier(of: lines[index].record.port ?? "host") else { continue }
            hotplugDelivered[position] = true
            var record = lines[index].record
            record.subscription = nil
            if !due.contains(record) { due.append(record) }
        }
        return due
    }

    /// After the run: the divergence, or the first recorded request the run never made.
    mutating func finish() -> Divergence? {
        if let divergence { return divergence }
        guard replayedPrefix < hostOrder.count else { return nil }
        let line = lines[hostOrder[replayedPrefix]]
        divergence = Divergence(
            index: nil, line: line.number, stream: Self.stream(line.record), expected: line.record.summary,
            got: "nothing: the run ended before it")
        return divergence
    }
}
