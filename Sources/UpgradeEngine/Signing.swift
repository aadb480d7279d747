import DeviceProfiles
import FirmwareImage
import HexFormat

/// Who vouches for an image, and what the station requires (docs/packages.md, "policy"). The engine makes
/// the signing decision once, on the reading of the image that is flashed: its descriptor as the unit's
/// own part line lays the image out. The product rule (`Rules.swift`) makes sure that product is the unit's.
public struct SigningPolicy: Sendable, Hashable {
    /// The product a trusted key signed the input for (a verified package's manifest); nil: no trusted key
    /// signed it (a bare image, or a package whose product has no profile listing keys).
    public var signedProduct: UInt32?
    /// Every write on this station needs a trusted signature, blank units and products without a profile
    /// included (the station's policy).
    public var stationRequiresSignature = false
    /// The operator accepts an unsigned image where a product's profile requires signatures: said in a
    /// warning and in the result, never silently.
    public var allowUnsigned = false

    public init(signedProduct: UInt32? = nil, stationRequiresSignature: Bool = false, allowUnsigned: Bool = false) {
        self.signedProduct = signedProduct
        self.stationRequiresSignature = stationRequiresSignature
        self.allowUnsigned = allowUnsigned
    }
}

extension UpgradeEngine {
    /// The signing decision for an image whose flashed reading names `productID` (nil: no descriptor).
    func checkSigning(productID: UInt32?, policy: SigningPolicy, profiles: [ProductProfile], source: String) throws(UpgradeError) {
        let signed = productID != nil && policy.signedProduct == productID
        if policy.stationRequiresSignature, !signed {
            throw UpgradeError(
                .untrusted(.stationRequiresSignature(source: source)),
                phase: .plan, hint: "nothing was written; use the vendor's signed .dfuhop package (the station's policy)")
        }
        guard let productID, !signed,
            let profile = profiles.first(where: { $0.imageProductID == productID }), profile.signing?.required == true
        else { return }
        guard policy.allowUnsigned else {
            throw UpgradeError(
                .untrusted(
                    .profileRequiresSignature(source: source, product: profile.name, productID: productID, profile: profile.id)),
                phase: .plan, hint: "nothing was written; use the vendor's signed .dfuhop package")
        }
        onEvent(
            .warning("\(source) is not signed, and \(profile.name)'s profile requires signed packages: written as the caller allows"))
    }

    /// One image, one reading: the descriptor found when the image is laid out for the unit's part line
    /// must be the one every other part line's write unit finds too. An image whose data starts off a word
    /// boundary can read as one product on a part with a 2-byte write unit and as another once padded to 8
    /// bytes; such an image is refused as ambiguous, whichever reading would be flashed.
    public static func checkSingleReading(_ file: FirmwareImage, flashed: ImageDescriptor?, source: String) throws(UpgradeError) {
        let granularities = Set(McuFamily.all.map(\.writeGranularity)).sorted()
        for granularity in granularities {
            let reading = descriptorReading(file, granularity: granularity)
            guard reading?.productID != flashed?.productID || reading?.version != flashed?.version else { continue }
            throw UpgradeError(
                .untrusted(.twoReadings(source: source, flashed: flashed, other: reading, granularity: granularity)),
                phase: .plan, hint: "nothing was written; rebuild the image so that it starts on a flash-word boundary")
        }
    }

    /// The descriptor of `file` laid out with `granularity`-byte words; nil when it has none.
    public static func descriptorReading(_ file: FirmwareImage, granularity: Int) -> ImageDescriptor? {
        do {
            let image = try file.normalized(granularity: granularity)
            guard let base = image.baseAddress else { return nil }
            return try ImageDescriptor.validate(image, base: base, source: "")
        } catch { return nil }
    }
}
