import USBTransport

/// The bookkeeping of a replay, without locks or I/O. Requests are matched per port, in order, so units
/// upgraded concurrently replay too. The bus is state, not requests, and each port has its own: `devices()`
/// shows at each port what the last snapshot recorded before that port's first request not yet replayed
/// showed there, and a hotplug event becomes due once every request recorded before it on its port has
/// been replayed (each change once, however many subscriptions saw it).
///
/// Only indices into `lines` are kept (records are decoded when reached), and every step costs time in
/// proportion to what it takes or delivers: a long recording replays in linear time.
struct ReplayState {
    let lines: Recording.Lines
    /// The host's requests per stream (port, or `host`), in recorded order, and how many of each are replayed.
    private var streams: [String: [Int32]] = [:]
    private var next: [String: Int] = [:]
    private var consumed: [Bool]
    /// Indices of the host's requests, in recorded order, and how many of the first ones are replayed.
    private var hostOrder: [Int32] = []
    private var replayedPrefix = 0
    /// The `devices` snapshots, and the ports they show in order of first appearance.
    private var snapshots: [Int32] = []
    private var snapshotPorts: [String] = []
    /// Hotplug events not yet due: per stream that has requests (due by that stream's frontier), and those
    /// of every other port in one queue (due by the overall frontier).
    private var hotplug: [String: HotplugQueue] = [:]
    private var hotplugElsewhere = HotplugQueue()
    /// Streams whose hotplug events a request replayed since the last `dueHotplug` may have made due.
    private var touched: Set<String> = []
    private var touchedAll = true
    private(set) var divergence: Divergence?
    private(set) var requests = 0
    private(set) var transfers = 0

    struct HotplugQueue {
        var indices: [Int32] = []
        var next = 0

        /// Takes the events recorded before `limit`.
        mutating func take(before limit: Int, into due: inout [Int32]) {
            while next < indices.count, Int(indices[next]) < limit {
                due.append(indices[next])
                next += 1
            }
        }
    }

    init(lines: Recording.Lines) {
        self.lines = lines
        consumed = Array(repeating: false, count: lines.count)
        var hotplugOrder: [Int32] = []
        var shown = Set<String>()
        for index in lines.indices {
            switch lines.event(at: index) {
            case .result, .boot0Path, .subscribe: break
            case .devices:
                snapshots.append(Int32(index))
                for device in lines[index].record.devices ?? [] where shown.insert(device.port).inserted {
                    snapshotPorts.append(device.port)
                }
            case .hotplug: hotplugOrder.append(Int32(index))
            default:
                streams[lines.port(at: index) ?? "host", default: []].append(Int32(index))
                hostOrder.append(Int32(index))
            }
        }
        for index in hotplugOrder {
            let stream = lines.port(at: Int(index)) ?? "host"
            if streams[stream] != nil {
                hotplug[stream, default: HotplugQueue()].indices.append(index)
            } else {
                hotplugElsewhere.indices.append(index)
            }
        }
    }

    static func stream(_ record: Record) -> String { record.port ?? "host" }

    /// The first request not yet replayed, as an index into `lines` (`lines.count` when all are).
    var frontier: Int { replayedPrefix < hostOrder.count ? Int(hostOrder[replayedPrefix]) : lines.count }

    /// Matches `request` with the next recorded request on its port: the recorded record, or the divergence
    /// (the first one is kept, and every later request fails with it).
    mutating func take(_ request: Record) -> Result<Recording.Line, Divergence> {
        if let divergence { return .failure(divergence) }
        requests += 1
        let stream = Self.stream(request)
        let position = next[stream, default: 0]
        guard let index = streams[stream].flatMap({ position < $0.count ? Int($0[position]) : nil }) else {
            let last = lines.isEmpty ? 1 : lines.number(at: lines.count - 1)
            return diverge(
                Divergence(
                    index: requests, line: last + 1, stream: stream,
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
        touched.insert(stream)
        while replayedPrefix < hostOrder.count, consumed[Int(hostOrder[replayedPrefix])] { replayedPrefix += 1 }
        if recorded.record.isTransfer { transfers += 1 }
        return .success(recorded)
    }

    /// The handle of the next recorded request on `stream` (an open adopts it).
    func nextHandle(on stream: String) -> Int? {
        let position = next[stream, default: 0]
        guard let indices = streams[stream], position < indices.count else { return nil }
        return lines[Int(indices[position])].record.handle
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
        return position < indices.count ? Int(indices[position]) : lines.count
    }

    /// The last snapshot recorded before `limit` (a binary search: snapshots are in recorded order).
    private func snapshot(before limit: Int) -> Int32? {
        var (low, high) = (0, snapshots.count)
        while low < high {
            let middle = (low + high) / 2
            if Int(snapshots[middle]) < limit { low = middle + 1 } else { high = middle }
        }
        return low > 0 ? snapshots[low - 1] : nil
    }

    /// The bus now: each port as the last snapshot before that port's frontier showed it (the recording's
    /// first snapshot when the run asks before the recording did); a snapshot's error, if that one failed.
    /// Each snapshot shown is decoded once, and one at a time.
    var snapshot: (devices: [DeviceRecord], error: ErrorRecord?) {
        guard let first = snapshots.first else { return ([], nil) }
        if let error = lines[Int(snapshot(before: frontier) ?? first)].record.error { return ([], error) }
        let shown = snapshotPorts.enumerated().map {
            (order: $0.offset, port: $0.element, index: snapshot(before: frontier(of: $0.element)) ?? first)
        }
        var devices: [(order: Int, devices: [DeviceRecord])] = []
        for group in Dictionary(grouping: shown, by: \.index).sorted(by: { $0.key < $1.key }) {
            let recorded = lines[Int(group.key)].record.devices ?? []
            for entry in group.value { devices.append((entry.order, recorded.filter { $0.port == entry.port })) }
        }
        return (devices.sorted { $0.order < $1.order }.flatMap(\.devices), nil)
    }

    /// The hotplug events now due, as indices into `lines` in recorded order, each change once: the
    /// subscriptions of a recording all saw the same change, and a replay gives it to every subscription
    /// open when it becomes due. Only the queues of streams a request moved on are looked at (all of them
    /// after a request for no port); an event whose device a replay cannot show is left out. Indices, not
    /// records: a subscriber decodes each event when it takes it, so a flood of events costs no memory.
    /// `subscriptions`: how many `events()` streams the replayed run has opened so far. An event the recorded
    /// run gave a later subscription is kept for it (`heldFor`): in the recording that subscription existed when
    /// the event came, so the replay's must have it even if it opens after the event became due.
    mutating func dueHotplug(subscriptions: Int) -> [Int32] {
        var indices: [Int32] = []
        let streams = touchedAll || touched.contains("host") ? Array(hotplug.keys) : touched.filter { hotplug[$0] != nil }
        for stream in streams {
            let limit = frontier(of: stream)
            hotplug[stream]?.take(before: limit, into: &indices)
        }
        hotplugElsewhere.take(before: frontier, into: &indices)
        (touched, touchedAll) = ([], false)
        var due: [Int32] = []
        var seen: [Int: [Int32]] = [:]
        for index in indices.sorted() {
            let record = lines[Int(index)].record
            if let number = record.subscription, number > subscriptions { heldFor[number, default: []].append(index) }
            let change = Self.change(record)
            guard Self.discoveryEvent(change) != nil else { continue }
            let hash = change.hashValue
            if let earlier = seen[hash], earlier.contains(where: { Self.change(lines[Int($0)].record) == change }) { continue }
            seen[hash, default: []].append(index)
            due.append(index)
        }
        return due
    }

    /// Events recorded for a subscription the replayed run has not opened yet, by its number.
    private var heldFor: [Int: [Int32]] = [:]

    /// The events held for subscription `number`, which the replayed run has just opened.
    mutating func held(for number: Int) -> [Int32] { heldFor.removeValue(forKey: number) ?? [] }

    /// A hotplug record as the change it is, whichever subscription it was recorded for.
    static func change(_ record: Record) -> Record {
        var change = record
        change.subscription = nil
        return change
    }

    /// The event a hotplug record gives a subscriber; nil when its device is not fully described.
    static func discoveryEvent(_ record: Record) -> DiscoveryEvent? {
        guard let device = record.device?.discovered else { return nil }
        return record.change == "left" ? .left(device) : .arrived(device)
    }

    /// After the run: the divergence, or the first recorded request the run never made.
    mutating func finish() -> Divergence? {
        if let divergence { return divergence }
        guard replayedPrefix < hostOrder.count else { return nil }
        let line = lines[Int(hostOrder[replayedPrefix])]
        divergence = Divergence(
            index: nil, line: line.number, stream: Self.stream(line.record), expected: line.record.summary,
            got: "nothing: the run ended before it")
        return divergence
    }
}
