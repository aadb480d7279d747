#!/usr/bin/env bash
# Builds the AppLink reply-parser fuzzer into Fuzz/bin/applink-fuzz (see README.md next to this file).
# AppLink imports USBTransport, so that module is built first as a static library.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p Fuzz/bin
swiftc -swift-version 6 -parse-as-library -sanitize=address -module-name USBTransport \
    -emit-module -emit-module-path Fuzz/bin/USBTransport.swiftmodule \
    -emit-library -static -o Fuzz/bin/libUSBTransport.a Sources/USBTransport/*.swift
swiftc -swift-version 6 -parse-as-library -sanitize=fuzzer,address -use-ld=lld -module-name AppLinkFuzz \
    -I Fuzz/bin -L Fuzz/bin -lUSBTransport \
    Sources/AppLink/*.swift Fuzz/applink/main.swift -o Fuzz/bin/applink-fuzz
