#!/usr/bin/env bash
# Builds the package-reading fuzzer into Fuzz/bin/package-fuzz (see README.md next to this file).
# The package reader imports FirmwareImage, so that module is built first as a static library; the
# reader's pure files (no Crypto, no ZIPFoundation) and the harness are then one module.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p Fuzz/bin
swiftc -swift-version 6 -parse-as-library -sanitize=address -module-name FirmwareImage \
    -emit-module -emit-module-path Fuzz/bin/FirmwareImage.swiftmodule \
    -emit-library -static -o Fuzz/bin/libFirmwareImage.a Sources/FirmwareImage/*.swift
swiftc -swift-version 6 -parse-as-library -sanitize=fuzzer,address -use-ld=lld -module-name PackageFuzz \
    -I Fuzz/bin -L Fuzz/bin -lFirmwareImage \
    Sources/UpdatePackage/PackageError.swift Sources/UpdatePackage/ZipArchive.swift Sources/UpdatePackage/Manifest.swift \
    Fuzz/package/main.swift -o Fuzz/bin/package-fuzz
