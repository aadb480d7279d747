#!/usr/bin/env bash
# Builds the AppLink reply-parser fuzzer into Fuzz/bin/applink-fuzz (see README.md next to this file).
# AppLink imports HexFormat, USBTransport, FirmwareImage and DeviceProfiles (a legacy protocol's description), and
# DeviceProfiles imports StrictJSON, so those modules are built first as static libraries, dependencies first.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p Fuzz/bin
for module in HexFormat StrictJSON USBTransport FirmwareImage DeviceProfiles; do
    swiftc -swift-version 6 -parse-as-library -sanitize=address -module-name "$module" -I Fuzz/bin \
        -emit-module -emit-module-path "Fuzz/bin/$module.swiftmodule" \
        -emit-library -static -o "Fuzz/bin/lib$module.a" Sources/"$module"/*.swift
done
swiftc -swift-version 6 -parse-as-library -sanitize=fuzzer,address -use-ld=lld -module-name AppLinkFuzz \
    -I Fuzz/bin -L Fuzz/bin -lDeviceProfiles -lStrictJSON -lFirmwareImage -lUSBTransport -lHexFormat \
    Sources/AppLink/*.swift Fuzz/applink/main.swift -o Fuzz/bin/applink-fuzz
