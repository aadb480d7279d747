import Foundation

extension Recording {
    /// The records of a recording, in file order, kept as the file's bytes: each one is decoded when it is
    /// read and dropped after, so a replay holds one copy of the file and an index of about a dozen bytes per
    /// record (a record line is at least 24 bytes), never the decoded records of the whole file.
    public struct Lines: RandomAccessCollection, Sendable {
        static let newline = UInt8(ascii: "\n")
        static let eventCases = Record.Event.allCases

        /// Built by the pass that checks every line: where each record starts, its line number, its event
        /// and its port (an index into `ports`; 0 for none).
        struct Builder {
            var starts: [UInt32] = []
            var numbers: [UInt32] = []
            var events: [UInt8] = []
            var portIDs: [UInt16] = []
            var ports: [String] = []
            private var portIndex: [String: UInt16] = [:]

            /// Adds a checked record; false when it names one port more than a recording may.
            mutating func add(_ record: Record, start: Int, number: Int) -> Bool {
                var named = [record.port, record.device?.port] + (record.devices ?? []).map(\.port)
                named.append(record.interface?.device.port)
                for port in named.compactMap({ $0 }) where portIndex[port] == nil {
                    guard ports.count < Recording.maximumPorts else { return false }
                    ports.append(port)
                    portIndex[port] = UInt16(ports.count)
                }
                starts.append(UInt32(start))
                numbers.append(UInt32(number))
                events.append(UInt8(Lines.eventCases.firstIndex(of: record.event) ?? 0))
                portIDs.append(record.port.flatMap { portIndex[$0] } ?? 0)
                return true
            }
        }

        private let bytes: [UInt8]
        private let starts: [UInt32]
        private let numbers: [UInt32]
        private let events: [UInt8]
        private let portIDs: [UInt16]
        private let ports: [String]

        init(bytes: [UInt8], index: Builder) {
            self.bytes = bytes
            (starts, numbers, events) = (index.starts, index.numbers, index.events)
            (portIDs, ports) = (index.portIDs, index.ports)
        }

        public var startIndex: Int { 0 }
        public var endIndex: Int { starts.count }

        /// The record at `position`, decoded from the file's bytes (checked when the recording was read).
        public subscript(position: Int) -> Line {
            let start = Int(starts[position])
            let end = bytes[start...].firstIndex(of: Self.newline) ?? bytes.endIndex
            guard let record = try? JSONDecoder().decode(Record.self, from: Data(bytes[start..<end])) else {
                preconditionFailure("line \(numbers[position]) decoded when the recording was read, and not now")
            }
            return Line(number: Int(numbers[position]), record: record)
        }

        /// The event of the record at `position`, without decoding it.
        public func event(at position: Int) -> Record.Event { Self.eventCases[Int(events[position])] }

        /// The port of the record at `position`, without decoding it.
        public func port(at position: Int) -> String? {
            let id = Int(portIDs[position])
            return id == 0 ? nil : ports[id - 1]
        }

        /// The line number of the record at `position`, without decoding it.
        public func number(at position: Int) -> Int { Int(numbers[position]) }

        /// The first record of `event`, without decoding the others.
        public func first(_ event: Record.Event) -> Line? {
            indices.first { self.event(at: $0) == event }.map { self[$0] }
        }
    }
}
