import USBTransport

/// Where a replayed run stopped doing what the recorded run did: the first request that differs from the
/// next recorded one on its port, or a recorded request the run never made.
public struct Divergence: Error, Sendable, Equatable, CustomStringConvertible {
    /// The request's position among all the run's requests (1 is the first); nil when the run ended early.
    public var index: Int?
    /// The recording's line of the expected request (one past the last line when nothing more was recorded).
    public var line: Int
    /// The port (or `host`) whose requests diverged.
    public var stream: String
    public var expected: String
    public var got: String
    /// What differs, when both are requests of the same kind.
    public var detail: String?

    public var description: String {
        "line \(line)\(index.map { ", request \($0)" } ?? "") on \(stream): expected \(expected); got \(got)"
            + (detail.map { " (\($0))" } ?? "")
    }
}

extension Record {
    /// Only what the host chose: a replayed request must equal the recorded one in these fields.
    var request: Record {
        var request = Record(event, port: port, handle: handle)
        (request.device, request.alternate, request.setup, request.data) = (device, alternate, setup, data)
        (request.reportID, request.length, request.name) = (reportID, length, name)
        (request.action, request.uid) = (action, uid)
        return request
    }

    var isTransfer: Bool {
        [.controlOut, .controlIn, .hidWrite, .hidRead, .getFeatureReport, .sendFeatureReport].contains(event)
    }

    /// One line for people: the request, its setup stage named where it is a DFU request, and a preview of
    /// the data.
    public var summary: String {
        var text = event.rawValue + (handle.map { " #\($0)" } ?? "")
        if let setup {
            let name = setup.bmRequestType == "0x21" || setup.bmRequestType == "0xA1" ? Self.dfuNames[setup.bRequest] : nil
            text +=
                " \(name ?? "bRequest=\(setup.bRequest)") bmRequestType=\(setup.bmRequestType) wValue=\(setup.wValue)"
                + " wIndex=\(setup.wIndex) wLength=\(setup.wLength)"
        }
        if let device { text += " \(device.kind.uppercased()) \(device.vidPid) serial \(device.serial ?? "-") at \(device.port)" }
        if let alternate { text += " alt \(alternate)" }
        if let reportID { text += " report \(reportID)" }
        if let length, setup == nil { text += " length \(length)" }
        if let data { text += " data \(Self.preview(data))" }
        if let name { text += " \(name)" }
        if let action { text += " \(action)\(uid.map { " uid \($0)" } ?? "")" }
        return text
    }

    /// DFU 1.1 Table 3.2: the class requests' numbers.
    static let dfuNames = [0: "DETACH", 1: "DNLOAD", 2: "UPLOAD", 3: "GETSTATUS", 4: "CLRSTATUS", 5: "GETSTATE", 6: "ABORT"]

    static func preview(_ hex: String) -> String {
        "\(hex.count / 2) byte(s)" + (hex.isEmpty ? "" : " " + String(hex.prefix(32)) + (hex.count > 32 ? "…" : ""))
    }

    /// What differs between two requests of the same kind, for the divergence report.
    func difference(from got: Record) -> String? {
        guard event == got.event else { return nil }
        if let data, let sent = got.data, data != sent {
            let a = Array(data.utf8)
            let b = Array(sent.utf8)
            let first = zip(a, b).prefix { $0 == $1 }.count / 2
            if a.count != b.count, first * 2 == min(a.count, b.count) {
                return "the data is \(b.count / 2) bytes, not \(a.count / 2)"
            }
            return "the data differs from byte \(first): recorded 0x\(Self.byte(data, first)), sent 0x\(Self.byte(sent, first))"
        }
        if setup != got.setup { return "the setup stage differs" }
        if device != got.device { return "another device" }
        return nil
    }

    static func byte(_ hex: String, _ index: Int) -> String {
        String(hex.dropFirst(index * 2).prefix(2))
    }
}
