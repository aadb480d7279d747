// swift-tools-version: 6.1
// An application that embeds dfuhop's engine: it upgrades a virtual STM32G474 through the library.
import PackageDescription

let package = Package(
    name: "embed-upgrade",
    platforms: [.macOS(.v15)], // as dfuhop: Mutex and TaskExecutor
    dependencies: [
        // In your product: .package(url: "<the dfuhop repository>", from: "0.1.0").
        .package(name: "dfuhop", path: "../..")
    ],
    targets: [
        .executableTarget(name: "embed-upgrade", dependencies: [.product(name: "DfuHop", package: "dfuhop")])
    ],
    swiftLanguageModes: [.v6]
)
