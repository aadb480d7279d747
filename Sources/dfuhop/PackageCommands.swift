import ArgumentParser
import DeviceProfiles
import FirmwareImage
import Foundation
import HexFormat
import UpdatePackage
import UpgradeEngine

/// `dfuhop package …`: signed update packages (docs/packages.md).
struct PackageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "package",
        abstract: "Create, verify and inspect signed update packages (.dfuhop).",
        discussion: """
            A package is a zip holding the image(s), manifest.json (product, family, version, each image's \
            SHA-256 and size, optional minimum version, option bytes and release notes) and manifest.sig, the \
            Ed25519 signature of the manifest's exact bytes. `dfuhop upgrade FILE.dfuhop` verifies it first.

            Examples:
              dfuhop key generate --out release.key
              dfuhop package create app-2.1.0.hex --key release.key -o app-2.1.0.dfuhop --notes "Fixes the LED timing"
              dfuhop package verify app-2.1.0.dfuhop --key release.key.pub
              dfuhop package info app-2.1.0.dfuhop
            """,
        subcommands: [PackageCreateCommand.self, PackageVerifyCommand.self, PackageInfoCommand.self])
}

struct PackageCreateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Check the image(s) against their product's profile, then write a signed package.",
        discussion: """
            Every image must carry a valid descriptor naming a product with a profile, pass that family's \
            checks, and agree with the others on product and version; dfuhop flashes the first image. The \
            private key file must be readable by its owner only (chmod 600) unless --allow-readable-key.
            """)

    @Argument(help: ArgumentHelp("The image file(s), as they go in the package.", valueName: "image"), completion: .file()) var images:
        [String]
    @Option(help: ArgumentHelp("The private key (from `dfuhop key generate`).", valueName: "KEY"), completion: .file()) var key: String
    @Option(name: .shortAndLong, help: ArgumentHelp("The package to write (FILE.dfuhop).", valueName: "file"), completion: .file())
    var output: String
    @Option(help: ArgumentHelp("The oldest version a unit may run to take this package.", valueName: "version")) var minimumVersion: String?
    @Option(help: ArgumentHelp("Release notes (text).", valueName: "text")) var notes: String?
    @Option(help: ArgumentHelp("Release notes from a file.", valueName: "file"), completion: .file()) var notesFile: String?
    @Option(
        help: ArgumentHelp("Product profile file or directory; repeatable (default: the installed profiles).", valueName: "path"),
        completion: .file())
    var profile: [String] = []
    @Flag(help: "Print the manifest as JSON.") var json = false
    @Flag(help: "Use a private key file that group or others can read (refused otherwise: chmod 600 KEY).") var allowReadableKey = false

    func validate() throws {
        if images.isEmpty { throw ValidationError("give at least one image") }
        if notes != nil, notesFile != nil { throw ValidationError("give --notes or --notes-file, not both") }
        if let minimumVersion, FirmwareVersion(parsing: minimumVersion, minimumComponents: 3) == nil {
            throw ValidationError("--minimum-version '\(minimumVersion)' is not a version such as 1.2.0")
        }
        if !output.hasSuffix("." + SignedPackage.fileExtension) {
            throw ValidationError("-o must name a .\(SignedPackage.fileExtension) file")
        }
    }

    func run() async throws {
        try await runCommand("package create", json: json) {
            let signingKey = try SigningKeys.loadPrivateKey(path: key, allowReadable: allowReadableKey)
            if allowReadableKey { Output.message("warning: --allow-readable-key: \(key) is used whatever its mode") }
            var releaseNotes = notes
            if let notesFile {
                guard let data = FileManager.default.contents(atPath: notesFile), let text = String(data: data, encoding: .utf8) else {
                    throw Failure(.noInput, "--notes-file \(notesFile) cannot be read as UTF-8 text")
                }
                releaseNotes = text
            }
            let profiles = try Profiles.load(profile)
            let staging = try StagedImages(images, profiles: profiles)
            defer { staging.remove() }
            let request = PackageBuilder.Request(
                images: staging.paths, minimumVersion: minimumVersion.flatMap { FirmwareVersion(parsing: $0, minimumComponents: 3) },
                releaseNotes: releaseNotes)
            let manifest = try PackageBuilder.create(request, key: signingKey, profiles: profiles, output: output)
            var result = ResultLine("created")
            result.package = PackageJSON(manifest, file: output, verified: true)
            if !json {
                Output.print(
                    "wrote \(output): \(manifest.profile) version \(manifest.version.description), \(manifest.images.count) image(s), "
                        + "signed by \(signingKey.publicKey.rawRepresentation.base64EncodedString())")
            }
            return result
        }
    }
}

/// The images as they go into a package: each one dfuhop can write (.dfu, HEX, S-record, raw binary) padded
/// to whole flash words of its product's part (else the largest STM32 word) in a copy of the same name, so a
/// member taken out of the package and written by another client writes no word twice (issue 25).
struct StagedImages {
    var paths: [String] = []
    private var directory: URL?

    init(_ images: [String], profiles: [ProductProfile]) throws {
        for path in images {
            // An image that cannot be read or normalised goes in as it is: the package's checks refuse it, naming why.
            guard let image = try? ImageFile.read(path: path) else {
                paths.append(path)
                continue
            }
            let rule = UpgradeEngine.profile(for: image, among: profiles).map { FlashWordRule($0.family) } ?? .anySTM32
            guard let (padded, padding) = try? image.paddedToFlashWords(rule), padding.changed else {
                paths.append(path)
                continue
            }
            guard [.dfuse, .intelHex, .srec, .binary].contains(image.format) else {
                for warning in padding.warnings {
                    Output.message("warning: \(path): \(warning) (a \(image.format.displayName) is kept as it is)")
                }
                paths.append(path)
                continue
            }
            let staged = try stagingDirectory().appendingPathComponent(URL(fileURLWithPath: path).lastPathComponent).path
            try ImageFile.write(padded, to: staged, as: image.format)
            Output.message("\(path): \(padding.summary(from: "its product"))")
            paths.append(staged)
        }
    }

    private mutating func stagingDirectory() throws -> URL {
        if let directory { return directory }
        let made = FileManager.default.temporaryDirectory.appendingPathComponent("dfuhop-package-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: made, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        directory = made
        return made
    }

    func remove() {
        if let directory { try? FileManager.default.removeItem(at: directory) }
    }
}

struct PackageVerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check a package's signature, every image's hash and size, and that nothing in it is unsigned or missing.",
        discussion: """
            The trusted keys: --key files, else the signing keys of the product's profile (--profile, else the \
            installed profiles). Then the checks `upgrade` makes on the package's contents: every image's \
            descriptor names the manifest's product and version (read as the profile's family, or the \
            manifest's when no profile is loaded), and the manifest's option bytes are the profile's. Exit 0 \
            when it verifies; 87 when it does not (the message says which key, member, hash or field failed).
            """)

    @Argument(help: ArgumentHelp("The package.", valueName: "file.dfuhop"), completion: .file(extensions: ["dfuhop"])) var package: String
    @Option(
        help: ArgumentHelp("A trusted public key file (KEY.pub); repeatable.", valueName: "KEY.pub"), completion: .file(extensions: ["pub"])
    ) var key: [String] = []
    @Option(
        help: ArgumentHelp("Product profile file or directory; repeatable (default: the installed profiles).", valueName: "path"),
        completion: .file())
    var profile: [String] = []
    @Flag(help: "One JSON object.") var json = false

    func run() async throws {
        try await runCommand("package verify", json: json) {
            let signed = try SignedPackage.read(path: package)
            let profiles = try Profiles.load(profile)
            let productID = signed.manifest.productID
            let product = profiles.first { if case .dfuhop(let id) = $0.application.hidProtocol { id == productID } else { false } }
            let keys: [SigningPublicKey]
            let source: String
            if !key.isEmpty {
                keys = try key.map(SigningKeys.loadPublicKey)
                source = key.joined(separator: ", ")
            } else {
                guard let product else {
                    throw Failure(
                        .untrustedPackage,
                        "\(package): no profile for product 0x\(Hex.digits(productID, width: 8)) is loaded, so no key is trusted",
                        hint: "give --key KEY.pub or --profile")
                }
                keys = try (product.signing?.publicKeys ?? []).map {
                    try SigningPublicKey(base64: Data($0).base64EncodedString(), source: product.id)
                }
                source = "profile \(product.id)"
            }
            let signer = try signed.verify(trusting: keys, keySource: source)
            try signed.checkContents(profile: product)
            var result = ResultLine("verified")
            result.package = PackageJSON(
                signed.manifest, file: package, verified: true, signedBy: signer.base64, packageSHA256: signed.digest)
            if !json {
                PackageInfoCommand.describe(signed.manifest, file: package)
                Output.print("verified: signed by \(signer.base64) (\(source)); every image matches its SHA-256 and size")
            }
            return result
        }
    }
}

struct PackageInfoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info", abstract: "Show a package's manifest (the signature is not checked: use `package verify`).")

    @Argument(help: ArgumentHelp("The package.", valueName: "file.dfuhop"), completion: .file(extensions: ["dfuhop"])) var package: String
    @Flag(help: "One JSON object.") var json = false

    func run() async throws {
        try await runCommand("package info", json: json) {
            let signed = try SignedPackage.read(path: package)
            var result = ResultLine("described")
            result.package = PackageJSON(signed.manifest, file: package, verified: false, packageSHA256: signed.digest)
            if !json {
                Self.describe(signed.manifest, file: package)
                Output.print("signature: not checked (run `dfuhop package verify`)")
            }
            return result
        }
    }

    static func describe(_ manifest: PackageManifest, file: String) {
        Output.print("package:   \(file) (format \(PackageManifest.formatVersion), created \(manifest.created))")
        Output.print(
            "product:   \(manifest.profile), product id 0x\(Hex.digits(manifest.productID, width: 8)), \(manifest.part) (\(manifest.family))"
        )
        Output.print(
            "version:   \(manifest.version.description)"
                + (manifest.minimumVersion.map { ", upgrades units running \($0.description) or later" } ?? ""))
        if !manifest.requiredOptionBytes.isEmpty {
            Output.print("option bytes required: " + manifest.requiredOptionBytes.map { "\($0.name)=\($0.value)" }.joined(separator: ", "))
        }
        for (index, image) in manifest.images.enumerated() {
            Output.print("image:     \(image.file), \(image.size) bytes, SHA-256 \(image.sha256)\(index == 0 ? " (flashed)" : "")")
        }
        if let notes = manifest.releaseNotes {
            Output.print("release notes:")
            for line in notes.split(separator: "\n", omittingEmptySubsequences: false) { Output.print("  \(line)") }
        }
    }

}

extension PackageJSON {
    init(_ manifest: PackageManifest, file: String, verified: Bool, signedBy: String? = nil, packageSHA256: String? = nil) {
        self.init(
            file: file, profile: manifest.profile, productID: Hex.word(manifest.productID), family: manifest.family,
            part: manifest.part, version: manifest.version.description, minimumVersion: manifest.minimumVersion?.description,
            requiredOptionBytes: Dictionary(manifest.requiredOptionBytes.map { ($0.name, $0.value) }) { first, _ in first },
            releaseNotes: manifest.releaseNotes, created: manifest.created,
            images: manifest.images.map { ImageJSON(file: $0.file, sha256: $0.sha256, size: $0.size) },
            verified: verified, signedBy: signedBy, packageSHA256: packageSHA256)
    }
}
