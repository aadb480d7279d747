#!/usr/bin/env bash
# Builds the package-reading fuzzer into Fuzz/bin/package-fuzz (see README.md next to this file).
# The package reader imports FirmwareImage and StrictJSON (its JSON reader), so those modules and
# theirs are built first as static libraries, dependencies first; the reader's pure files (no Crypto, no
# ZIPFoundation) and the harness are then one module.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p Fuzz/bin
for module in HexFormat StrictJSON FirmwareImage; do
    swiftc -swift-version 6 -parse-as-library -sanitize=address -module-name "$module" -I Fuzz/bin \
        -emit-module -emit-module-path "Fuzz/bin/$module.swiftmodule" \
        -emit-library -static -o "Fuzz/bin/lib$module.a" Sources/"$module"/*.swift
done
swiftc -swift-version 6 -parse-as-library -sanitize=fuzzer,address -use-ld=lld -module-name PackageFuzz \
    -I Fuzz/bin -L Fuzz/bin -lFirmwareImage -lStrictJSON -lHexFormat \
    Sources/UpdatePackage/PackageError.swift Sources/UpdatePackage/ZipArchive.swift Sources/UpdatePackage/Manifest.swift \
    Fuzz/package/main.swift -o Fuzz/bin/package-fuzz
