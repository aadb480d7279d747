import Foundation

/// protocols/test-vectors/hid-app.txt, read as the file's header describes it. The fixture lines
/// (`fixture`, `erase`, `flash`) are for device implementations; the host side only needs the reports.
struct VectorFile {
    enum Kind: String {
        case request
        case deviceInput = "device-input"
        case response, reply
        case badReply = "bad-reply"
    }

    struct Vector: CustomStringConvertible {
        var kind: Kind
        var name: String
        /// Nil for a `response ... none` line (the device sends nothing).
        var bytes: [UInt8]?
        var fields: [String: String]
        var line: Int

        var description: String { "\(kind.rawValue) \(name) (line \(line))" }

        func field(_ key: String) throws -> String {
            guard let value = fields[key] else { throw VectorError("\(self): no \(key)= field") }
            return value
        }

        func number(_ key: String) throws -> UInt64 {
            let text = try field(key)
            let value = text.hasPrefix("0x") ? UInt64(text.dropFirst(2), radix: 16) : UInt64(text)
            guard let value else { throw VectorError("\(self): \(key)=\(text) is not a number") }
            return value
        }

        func hexBytes(_ key: String) throws -> [UInt8] {
            let text = try field(key)
            guard let bytes = VectorFile.hex(text) else { throw VectorError("\(self): \(key)=\(text) is not hex") }
            return bytes
        }
    }

    struct VectorError: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    /// A line that sets up the fixture device, in file order with the vectors.
    enum Step {
        case fixture(key: String, value: String)
        case erase
        case flash(address: UInt32, bytes: [UInt8])
        case vector(Vector)
    }

    var steps: [Step] = []
    var vectors: [Vector] {
        steps.compactMap { if case .vector(let vector) = $0 { vector } else { nil } }
    }

    static let url = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("protocols/test-vectors/hid-app.txt")

    static func load() throws -> VectorFile {
        try VectorFile(text: String(contentsOf: url, encoding: .utf8))
    }

    init(text: String) throws {
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let tokens = line.split(separator: " ").map(String.init)
            guard let first = tokens.first, !first.hasPrefix("#") else { continue }
            switch first {
            case "fixture" where tokens.count == 3:
                steps.append(.fixture(key: tokens[1], value: tokens[2]))
                continue
            case "erase":
                steps.append(.erase)
                continue
            case "flash" where tokens.count == 3:
                guard tokens[1].hasPrefix("0x"), let address = UInt32(tokens[1].dropFirst(2), radix: 16), let bytes = Self.hex(tokens[2])
                else {
                    throw VectorError("line \(index + 1): cannot read \(line)")
                }
                steps.append(.flash(address: address, bytes: bytes))
                continue
            default:
                break
            }
            guard let kind = Kind(rawValue: first), tokens.count >= 3 else {
                throw VectorError("line \(index + 1): cannot read \(line)")
            }
            var bytes: [UInt8]?
            if tokens[2] != "none" {
                guard let parsed = Self.hex(tokens[2]) else { throw VectorError("line \(index + 1): bad hex \(tokens[2])") }
                bytes = parsed
            }
            var fields: [String: String] = [:]
            for token in tokens.dropFirst(3) {
                guard let equals = token.firstIndex(of: "=") else { throw VectorError("line \(index + 1): \(token) is not key=value") }
                fields[String(token[..<equals])] = String(token[token.index(after: equals)...])
            }
            steps.append(.vector(Vector(kind: kind, name: tokens[1], bytes: bytes, fields: fields, line: index + 1)))
        }
    }

    func of(_ kind: Kind) -> [Vector] { vectors.filter { $0.kind == kind } }

    func named(_ name: String) throws -> Vector {
        guard let vector = vectors.first(where: { $0.name == name && ($0.kind == .request || $0.kind == .deviceInput) }) else {
            throw VectorError("no request named \(name)")
        }
        return vector
    }

    /// HEX, HEX~N (zero-padded to N bytes) or `empty`.
    static func hex(_ text: String) -> [UInt8]? {
        if text == "empty" { return [] }
        let parts = text.split(separator: "~", omittingEmptySubsequences: false)
        guard parts.count <= 2, parts[0].count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        var index = parts[0].startIndex
        while index < parts[0].endIndex {
            let next = parts[0].index(index, offsetBy: 2)
            guard let byte = UInt8(parts[0][index..<next], radix: 16) else { return nil }
            bytes.append(byte)
            index = next
        }
        if parts.count == 2 {
            guard let total = Int(parts[1]), total >= bytes.count else { return nil }
            bytes += [UInt8](repeating: 0, count: total - bytes.count)
        }
        return bytes
    }
}
