/// One upgrade attempt as a station records it: a row of the history database, a `dfuhop history` line
/// and an `upgrade --report` record, with the same field names everywhere (docs/json.md, "Upgrade history
/// and factory reports"). Fields that do not apply or are not known are nil (absent in JSON, NULL in the database).
public struct HistoryRecord: Codable, Equatable, Sendable {
    /// When the attempt started: ISO 8601 in UTC with milliseconds, so text order is time order.
    public var time: String
    public var station: String
    public var `operator`: String?
    public var lot: String?
    public var uid: String?
    public var port: String?
    public var romSerial: String?
    public var family: String?
    public var productID: String?
    public var oldVersion: String?
    public var newVersion: String?
    /// The image or package given, as named on the command line.
    public var image: String
    /// SHA-256 of the image's content from its base to its end, gaps as 0xFF: what `image info` prints.
    public var imageSHA256: String?
    public var imageCRC32: String?
    /// SHA-256 of the exact file given (a package's, for a package).
    public var fileSHA256: String
    /// upgraded, up-to-date, planned or failed.
    public var outcome: String
    public var exitCode: Int32
    public var seconds: Double
    public var sectorsWritten: Int?
    public var sectorsSkipped: Int?
    /// True when what was written was read back and matched; false with --no-verify; nil when not known.
    public var verified: Bool?
    /// True for a virtual unit (`--simulate`); absent for hardware.
    public var simulated: Bool?
    public var dfuhopVersion: String
    public var error: String?

    public init(
        time: String, station: String, image: String, fileSHA256: String, outcome: String, exitCode: Int32, seconds: Double,
        dfuhopVersion: String
    ) {
        self.time = time
        self.station = station
        self.image = image
        self.fileSHA256 = fileSHA256
        self.outcome = outcome
        self.exitCode = exitCode
        self.seconds = seconds
        self.dfuhopVersion = dfuhopVersion
    }

    /// The field names in column order: the CSV header, the JSON keys and the database's columns.
    public static let fields = [
        "time", "station", "operator", "lot", "uid", "port", "romSerial", "family", "productID", "oldVersion", "newVersion", "image",
        "imageSHA256", "imageCRC32", "fileSHA256", "outcome", "exitCode", "seconds", "sectorsWritten", "sectorsSkipped", "verified",
        "simulated", "dfuhopVersion", "error"
    ]

    /// The fields that are numbers or flags (a spreadsheet may read them as such); every other is text.
    public static let numericFields: Set<String> = ["exitCode", "seconds", "sectorsWritten", "sectorsSkipped", "verified", "simulated"]

    /// The values in `fields` order, as the database stores them.
    var values: [SQLiteValue] {
        [
            .text(time), .text(station), SQLiteValue(`operator`), SQLiteValue(lot), SQLiteValue(uid), SQLiteValue(port),
            SQLiteValue(romSerial), SQLiteValue(family), SQLiteValue(productID), SQLiteValue(oldVersion), SQLiteValue(newVersion),
            .text(image), SQLiteValue(imageSHA256), SQLiteValue(imageCRC32), .text(fileSHA256), .text(outcome),
            .integer(Int64(exitCode)), .real(seconds), SQLiteValue(sectorsWritten), SQLiteValue(sectorsSkipped), SQLiteValue(verified),
            SQLiteValue(simulated == true ? true : nil), .text(dfuhopVersion), SQLiteValue(error)
        ]
    }

    /// A row read back in `fields` order; nil when a column that must hold a value does not.
    init?(row: [SQLiteValue]) {
        guard row.count == Self.fields.count, let time = row[0].text, let station = row[1].text, let image = row[11].text,
            let fileSHA256 = row[14].text, let outcome = row[15].text, let exitCode = row[16].integer.flatMap(Int32.init(exactly:)),
            let seconds = row[17].real, let dfuhopVersion = row[22].text
        else { return nil }
        self.init(
            time: time, station: station, image: image, fileSHA256: fileSHA256, outcome: outcome, exitCode: exitCode, seconds: seconds,
            dfuhopVersion: dfuhopVersion)
        (`operator`, lot, uid, port, romSerial) = (row[2].text, row[3].text, row[4].text, row[5].text, row[6].text)
        (family, productID, oldVersion, newVersion) = (row[7].text, row[8].text, row[9].text, row[10].text)
        (imageSHA256, imageCRC32) = (row[12].text, row[13].text)
        (sectorsWritten, sectorsSkipped, verified) = (row[18].integer, row[19].integer, row[20].flag)
        simulated = row[21].flag == true ? true : nil
        error = row[23].text
    }
}
