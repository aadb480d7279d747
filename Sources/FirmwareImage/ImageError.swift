import HexFormat

/// The one error type of the FirmwareImage layer: which file, where in it, and what is wrong, in words a
/// person can act on ("blinky.hex, line 12: checksum is 0x3C, the record needs 0x3D").
public struct ImageError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of failure, so the CLI can map it to a fixed exit status.
    public enum Kind: String, Sendable, Hashable {
        /// The bytes are not a valid image of the format (or the image cannot be right).
        case malformed
        /// The file cannot be opened or read.
        case cannotRead
        /// The output cannot be written.
        case cannotWrite
        /// The image is valid but cannot be expressed in the requested output format or operation.
        case unsupported
    }

    /// Where in the input the problem is.
    public enum Location: Sendable, Hashable, CustomStringConvertible {
        /// Nowhere in particular (the file as a whole).
        case file
        /// A 1-based line of a text format.
        case line(Int)
        /// A 0-based byte offset into a binary format.
        case byteOffset(Int)
        /// A target address in the image.
        case address(UInt32)

        public var description: String {
            switch self {
            case .file: ""
            case .line(let line): "line \(line)"
            case .byteOffset(let offset): "byte offset \(offset) (0x\(String(offset, radix: 16, uppercase: true)))"
            case .address(let address): "address 0x\(Hex.digits(address, width: 8))"
            }
        }
    }

    public var kind: Kind
    /// The file name (or another name for the source, e.g. "flash").
    public var file: String
    public var location: Location
    public var problem: String

    public init(_ kind: Kind = .malformed, file: String, at location: Location = .file, _ problem: String) {
        self.kind = kind
        self.file = file
        self.location = location
        self.problem = problem
    }

    public var description: String {
        let place = location.description
        return place.isEmpty ? "\(file): \(problem)" : "\(file), \(place): \(problem)"
    }
}
