// swift-tools-version: 6.1
// dfuhop: field upgrades of STM32-based USB HID products over the ROM's DfuSe bootloader.
import PackageDescription

// hidapi's pkg-config name: the hidraw backend on Linux; Homebrew's hidapi (IOHIDManager) on macOS.
#if os(macOS)
    let hidapiPackage = "hidapi"
#else
    let hidapiPackage = "hidapi-hidraw"
#endif

let package = Package(
    name: "dfuhop",
    // macOS 15: the code uses Mutex (Synchronization) and TaskExecutor.
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "dfuhop", targets: ["dfuhop"]),
        // The engine, for tools that embed it: `import DfuHop` is the entry point (Sources/DfuHop).
        .library(
            name: "DfuHop",
            targets: [
                "DfuHop", "USBTransport", "StrictJSON", "DeviceProfiles", "FirmwareImage", "DfuSeWire", "DfuSe", "AppLink", "VirtualDevice",
                "LibUSBBackend", "HIDAPIBackend", "USBDiscovery", "UpgradeEngine", "UpdatePackage", "Recording"
            ])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.0.0"..<"5.0.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.0"),
        .package(url: "https://github.com/weichsel/ZIPFoundation", from: "0.9.20")
    ],
    targets: [
        // Upper-case hex for messages, files and JSON, and hex digits read back: the one copy every module uses.
        .target(name: "HexFormat"),
        // SplitMix64: seeded pseudo-random numbers, so randomised tests and benchmarks replay from a printed seed.
        .target(name: "SeededRandom"),
        // The one strict JSON reader (profiles, family files, package manifests): duplicate keys, unknown keys and
        // integers that are not integers refused, naming the path. Imports only HexFormat, so the fuzzers build it alone.
        .target(name: "StrictJSON", dependencies: ["HexFormat"]),
        // Layer 0: the contracts every backend implements (DFU, HID, discovery, clocks).
        .target(name: "USBTransport", dependencies: ["HexFormat"]),
        // MCU families and their quirks, and product profiles, as data (a legacy product's protocol too:
        // AppLink runs it as loaded).
        .target(name: "DeviceProfiles", dependencies: ["HexFormat", "StrictJSON"]),
        // Firmware files: read, normalise, check, write. No dependencies, so the fuzzers build it alone.
        .target(name: "FirmwareImage", dependencies: ["HexFormat"]),
        // DFU 1.1 and DfuSe on the wire (requests, states, status codes, commands): what the client and the
        // virtual ROM share, so the device model does not depend on the client.
        .target(name: "DfuSeWire"),
        // The DfuSe client, layout strings and the flash plan.
        .target(name: "DfuSe", dependencies: ["HexFormat", "DfuSeWire", "USBTransport", "DeviceProfiles", "FirmwareImage"]),
        // The application side: dfuhop's custom HID protocol (protocols/hid-app-protocol.md).
        .target(name: "AppLink", dependencies: ["HexFormat", "FirmwareImage", "USBTransport", "DeviceProfiles"]),
        // An STM32 in memory: ROM DFU, flash model, faults, virtual clock.
        .target(
            name: "VirtualDevice", dependencies: ["HexFormat", "USBTransport", "DeviceProfiles", "FirmwareImage", "DfuSeWire", "AppLink"]),
        // The workflow: classify, plan, enter, re-enumerate, flash, leave, confirm.
        .target(
            name: "UpgradeEngine",
            dependencies: [
                "HexFormat", "StrictJSON",
                "USBTransport", "DeviceProfiles", "FirmwareImage", "DfuSeWire", "DfuSe", "AppLink",
                .product(name: "Crypto", package: "swift-crypto")
            ]),
        // `--record` and `dfuhop replay` (docs/recordings.md): a DeviceDiscovery that writes every request and
        // answer as JSON lines, and one that serves them back and reports where a run diverges.
        .target(name: "Recording", dependencies: ["HexFormat", "USBTransport"]),
        // Signed update packages (docs/packages.md): a zip of images, a manifest and its Ed25519 signature.
        .target(
            name: "DfuHop",
            dependencies: [
                "UpgradeEngine", "FirmwareImage", "DeviceProfiles", "USBTransport", "VirtualDevice", "USBDiscovery", "AppLink",
                "HIDAPIBackend"
            ]),
        .target(
            name: "UpdatePackage",
            dependencies: [
                "HexFormat", "StrictJSON",
                "FirmwareImage", "DeviceProfiles",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ZIPFoundation", package: "ZIPFoundation")
            ]),
        // Real USB: the C libraries (system-library targets), thin typed wrappers, and discovery over both.
        .systemLibrary(
            name: "CLibUSB", pkgConfig: "libusb-1.0",
            providers: [.apt(["libusb-1.0-0-dev"]), .brew(["libusb"])]),
        // Linked by the pkg-config name's `--libs` (the module map names no library, as it differs per OS).
        .systemLibrary(name: "CHIDAPI", pkgConfig: hidapiPackage, providers: [.apt(["libhidapi-dev"]), .brew(["hidapi"])]),
        .target(name: "LibUSBBackend", dependencies: ["HexFormat", "CLibUSB", "USBTransport"]),
        // A station's upgrade history (`dfuhop history`): the system SQLite and a thin typed wrapper over it.
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"]), .brew(["sqlite"])]),
        .target(name: "StationHistory", dependencies: ["CSQLite"]),
        .target(name: "HIDAPIBackend", dependencies: ["HexFormat", "CHIDAPI", "USBTransport"]),
        .target(name: "USBDiscovery", dependencies: ["LibUSBBackend", "HIDAPIBackend", "USBTransport"]),
        // Runs the libusb backend inside a umockdev testbed for the emulated-USB tests (emulated-usb/README.md).
        .executableTarget(
            name: "dfuhop-usb-probe",
            dependencies: ["HexFormat", "HIDAPIBackend", "LibUSBBackend", "USBDiscovery", "USBTransport"],
            path: "emulated-usb/probe"),
        // Answers the emulated-USB server from the VirtualDevice model (emulated-usb/PROTOCOL.md).
        .executableTarget(
            name: "dfuhop-usb-peer", dependencies: ["HexFormat", "VirtualDevice", "AppLink", "USBTransport"],
            path: "emulated-usb/peer"),
        .executableTarget(
            name: "dfuhop",
            dependencies: [
                "HexFormat", "StrictJSON",
                "USBTransport", "DeviceProfiles", "FirmwareImage", "DfuSeWire", "DfuSe", "AppLink", "VirtualDevice",
                "LibUSBBackend", "HIDAPIBackend", "USBDiscovery", "UpgradeEngine", "UpdatePackage", "Recording", "StationHistory",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto")
            ], plugins: ["BuildInfo"]),
        // Records the git commit in the dfuhop executable (`dfuhop --version`).
        .plugin(name: "BuildInfo", capability: .buildTool()),
        .executableTarget(
            name: "dfuhop-bench",
            dependencies: [
                "SeededRandom",
                "FirmwareImage", "DfuSe", "VirtualDevice", "DeviceProfiles", "USBTransport", "UpgradeEngine"
            ]),

        // What tests share: scratch directories, and child processes run and waited for off the cooperative pool.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        // Samples of every reason the engine gives, for the engine's and the CLI's tests alike.
        .target(
            name: "ReasonSamples", dependencies: ["UpgradeEngine", "DeviceProfiles", "FirmwareImage", "USBTransport"],
            path: "Tests/ReasonSamples"),
        .testTarget(name: "HexFormatTests", dependencies: ["HexFormat"]),
        .testTarget(name: "SeededRandomTests", dependencies: ["SeededRandom"]),
        // The strict reader on its own, and the three readers built on it held to one rule.
        .testTarget(
            name: "StrictJSONTests",
            dependencies: [
                "StrictJSON", "SeededRandom", "DeviceProfiles", "UpdatePackage"
            ]),
        .testTarget(name: "USBTransportTests", dependencies: ["USBTransport"]),
        .testTarget(
            name: "VirtualDeviceTests",
            dependencies: [
                "HexFormat",
                "VirtualDevice", "DfuSeWire", "DfuSe", "AppLink", "DeviceProfiles", "USBTransport", "FirmwareImage"
            ]),
        .testTarget(
            name: "UpgradeEngineTests",
            dependencies: [
                "HexFormat", "SeededRandom",
                "UpgradeEngine", "VirtualDevice", "DfuSeWire", "DfuSe", "AppLink", "DeviceProfiles", "FirmwareImage", "USBTransport",
                "ReasonSamples"
            ]),
        .testTarget(
            name: "AppLinkTests", dependencies: ["FirmwareImage", "SeededRandom", "AppLink", "DeviceProfiles", "USBTransport"]),
        .testTarget(name: "DeviceProfilesTests", dependencies: ["FirmwareImage", "SeededRandom", "DeviceProfiles", "AppLink"]),
        .testTarget(
            name: "FirmwareImageTests",
            dependencies: [
                "SeededRandom", "TestSupport",
                "FirmwareImage", .product(name: "PropertyBased", package: "swift-property-based")
            ]),
        .testTarget(
            name: "DfuSeTests",
            dependencies: [
                "DfuSeWire", "DfuSe", "VirtualDevice", "FirmwareImage", "DeviceProfiles", "USBTransport"
            ]),
        .testTarget(
            name: "LibUSBBackendTests",
            dependencies: [
                "HexFormat",
                "LibUSBBackend", "USBDiscovery", "USBTransport", "dfuhop-usb-probe", "dfuhop-usb-peer", "dfuhop",
                "VirtualDevice", "FirmwareImage", "DeviceProfiles"
            ]),
        .testTarget(name: "HIDAPIBackendTests", dependencies: ["HIDAPIBackend", "USBTransport"]),
        .testTarget(
            name: "USBDiscoveryTests",
            dependencies: ["USBDiscovery", "LibUSBBackend", "HIDAPIBackend", "USBTransport", "SeededRandom"]),
        .testTarget(
            name: "UpdatePackageTests",
            dependencies: [
                "SeededRandom",
                "UpdatePackage", "FirmwareImage", "DeviceProfiles", .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ZIPFoundation", package: "ZIPFoundation")
            ]),
        .testTarget(name: "StationHistoryTests", dependencies: ["StationHistory"]),
        .testTarget(name: "RecordingTests", dependencies: ["HexFormat", "Recording", "USBTransport", "VirtualDevice", "DeviceProfiles"]),
        .testTarget(
            name: "dfuhopTests",
            dependencies: [
                "dfuhop", "FirmwareImage", "UpgradeEngine", "USBTransport", "Recording", "VirtualDevice", "DeviceProfiles", "DfuSe",
                "StationHistory", "TestSupport", "ReasonSamples"
            ])
    ],
    swiftLanguageModes: [.v6]
)
