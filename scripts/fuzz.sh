#!/usr/bin/env bash
# Builds every libFuzzer harness in Fuzz/ (each with the sources it tests; the modules they import as libraries)
# and runs each for a bounded time. Exits non-zero if any harness fails to build or finds a crash.
#   scripts/fuzz.sh [SECONDS_PER_TARGET]     default 20
#   FUZZ_TARGETS="IntelHex Elf" scripts/fuzz.sh 60     only some harnesses
#   scripts/fuzz.sh --build-only                       build the harnesses, run none
# A harness newer than every file under Sources/ and Fuzz/ (and this script) is not built again.
# Crashing inputs are kept as Fuzz/bin/crash-<target>-*; new corpus entries go to Fuzz/corpus-run/<target>
# (both ignored by git). Fuzz/README.md says how to run longer and how to reproduce a crash.
set -euo pipefail
cd "$(dirname "$0")/.."

build_only=0
if [ "${1:-}" = --build-only ]; then build_only=1; shift; fi
seconds="${1:-20}"
case "$seconds" in ''|*[!0-9]*) echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET]" >&2; exit 64 ;; esac
targets=(${FUZZ_TARGETS:-IntelHex SRecord Elf DfuSe DfuSuffix Descriptor USBDescriptors DfuStatus Layout Profile Family State})
mkdir -p Fuzz/bin/lib Fuzz/corpus-run

# Harnesses of other modules: the sources compiled with the harness (instrumented), and the modules they
# import, built once as static libraries (not instrumented), dependencies first.
harness_sources() {
    case "$1" in
        USBDescriptors) echo Sources/LibUSBBackend/Descriptors.swift Sources/LibUSBBackend/DFUDescriptors.swift ;;
        DfuStatus) echo Sources/DfuSe/*.swift ;;
        Layout) echo Sources/DeviceProfiles/FlashLayout.swift ;;
        Profile|Family) echo Sources/DeviceProfiles/*.swift ;;
        State) echo Sources/VirtualDevice/*.swift ;;
    esac
}
harness_libraries() {
    case "$1" in
        USBDescriptors) echo HexFormat USBTransport ;;
        DfuStatus) echo HexFormat StrictJSON DfuSeWire USBTransport FirmwareImage DeviceProfiles ;;
        Profile|Family) echo HexFormat StrictJSON ;;
        State) echo HexFormat StrictJSON DfuSeWire USBTransport FirmwareImage DeviceProfiles AppLink ;;
        *) echo HexFormat ;;  # Layout, and the image harnesses (Sources/FirmwareImage imports only HexFormat)
    esac
}
# True when BINARY exists and no source it could be built from changed since: the harnesses are built by plain
# swiftc calls, which know nothing of incremental builds.
fresh() {
    [ -x "$1" ] || return 1
    [ -z "$(find Sources Fuzz scripts/fuzz.sh -path Fuzz/bin -prune -o -path 'Fuzz/corpus*' -prune -o \
        -type f -newer "$1" -print -quit)" ]
}
# Runs a built harness for the bounded time, unless --build-only.
runs() { [ "$build_only" = 0 ]; }
built_libraries=" "
build_library() {
    [[ "$built_libraries" == *" $1 "* ]] && return 0
    swiftc -swift-version 6 -parse-as-library -sanitize=address -module-name "$1" -I Fuzz/bin/lib \
        -emit-module -emit-module-path "Fuzz/bin/lib/$1.swiftmodule" \
        -emit-library -static -o "Fuzz/bin/lib/lib$1.a" Sources/"$1"/*.swift || return 1
    built_libraries+="$1 "
}
instrumented_built=0
build_instrumented_firmware_image() {
    [ "$instrumented_built" = 1 ] && return 0
    mkdir -p Fuzz/bin/fuzzlib
    # -enable-testing: FuzzSupport.swift reaches the reader's internals through @testable import.
    swiftc -O -sanitize=fuzzer,address -parse-as-library -enable-testing -module-name FirmwareImage -I Fuzz/bin/lib \
        -emit-module -emit-module-path Fuzz/bin/fuzzlib/FirmwareImage.swiftmodule \
        -emit-library -static -o Fuzz/bin/fuzzlib/libFirmwareImage.a Sources/FirmwareImage/*.swift || return 1
    instrumented_built=1
}
build_harness() {
    local target="$1" binary="$2" sources libraries links=()
    libraries="$(harness_libraries "$target")"
    for library in $libraries; do
        build_library "$library" || return 1
        links=("-l$library" "${links[@]}")  # dependents before their dependencies
    done
    sources="$(harness_sources "$target")"
    if [ -z "$sources" ]; then
        # The image harnesses share one instrumented build of Sources/FirmwareImage (Fuzz/README.md): compiling
        # it once instead of once per harness saves minutes of a CI run.
        build_instrumented_firmware_image || return 1
        swiftc -O -sanitize=fuzzer,address -parse-as-library -use-ld=lld -I Fuzz/bin/fuzzlib -I Fuzz/bin/lib \
            -L Fuzz/bin/fuzzlib -L Fuzz/bin/lib -lFirmwareImage "${links[@]}" \
            Fuzz/FuzzSupport.swift "Fuzz/Fuzz$target.swift" -o "$binary"
        return
    fi
    swiftc -swift-version 6 -parse-as-library -sanitize=fuzzer,address -use-ld=lld -module-name "Fuzz$target" \
        -I Fuzz/bin/lib -L Fuzz/bin/lib "${links[@]}" $sources "Fuzz/Fuzz$target.swift" -o "$binary"
}

failed=()
for target in "${targets[@]}"; do
    case "$target" in AppLink|Package) continue ;; esac  # their own builds, below
    binary="Fuzz/bin/fuzz-$target"
    if fresh "$binary"; then
        echo "==> $target: built already, no source changed since"
    else
        echo "==> build $target"
        # The linker's notes about ASan's local symbols are noise; real errors still fail the build.
        if ! build_harness "$target" "$binary" 2> >(grep -v "Cannot export local symbol" >&2); then
            failed+=("$target (build)")
            continue
        fi
    fi
    runs || continue
    echo "==> fuzz $target for ${seconds}s"
    mkdir -p "Fuzz/corpus-run/$target"
    if ! "$binary" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
            -print_final_stats=1 -artifact_prefix="Fuzz/bin/crash-$target-" \
            "Fuzz/corpus-run/$target" "Fuzz/corpus/$target" 2> "Fuzz/bin/$target.log"; then
        tail -n 40 "Fuzz/bin/$target.log" >&2
        failed+=("$target")
        continue
    fi
    grep -E "^stat::number_of_executed_units|^Done" "Fuzz/bin/$target.log" || true
done

# AppLink's reply parser: its own build (Fuzz/applink/build.sh), same bounded run.
if [ -z "${FUZZ_TARGETS:-}" ] || [[ " ${FUZZ_TARGETS} " == *" AppLink "* ]]; then
    echo "==> build AppLink"
    if ! fresh Fuzz/bin/applink-fuzz && ! Fuzz/applink/build.sh; then
        failed+=("AppLink (build)")
    elif runs; then
        echo "==> fuzz AppLink for ${seconds}s"
        mkdir -p Fuzz/corpus-run/applink
        if ! Fuzz/bin/applink-fuzz -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=80 \
                -print_final_stats=1 -artifact_prefix="Fuzz/bin/crash-AppLink-" \
                Fuzz/corpus-run/applink Fuzz/applink/seeds 2> Fuzz/bin/AppLink.log; then
            tail -n 40 Fuzz/bin/AppLink.log >&2
            failed+=("AppLink")
        else
            grep -E "^stat::number_of_executed_units|^Done" Fuzz/bin/AppLink.log || true
        fi
    fi
    [[ " ${targets[*]} " == *" AppLink "* ]] || targets+=(AppLink)
fi

# The update-package reader: its own build (it imports FirmwareImage), same bounded run.
if [ -z "${FUZZ_TARGETS:-}" ] || [[ " ${FUZZ_TARGETS} " == *" Package "* ]]; then
    echo "==> build Package"
    if ! fresh Fuzz/bin/package-fuzz && ! Fuzz/package/build.sh 2> >(grep -v "Cannot export local symbol" >&2); then
        failed+=("Package (build)")
    elif runs; then
        echo "==> fuzz Package for ${seconds}s"
        mkdir -p Fuzz/corpus-run/package
        # No single allocation over 16 MiB for a 64 KiB input: nothing is sized from what a header claims.
        if ! Fuzz/bin/package-fuzz -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=16 -max_len=65536 \
                -print_final_stats=1 -artifact_prefix="Fuzz/bin/crash-Package-" \
                Fuzz/corpus-run/package Fuzz/package/seeds 2> Fuzz/bin/Package.log; then
            tail -n 40 Fuzz/bin/Package.log >&2
            failed+=("Package")
        else
            grep -E "^stat::number_of_executed_units|^Done" Fuzz/bin/Package.log || true
        fi
    fi
    [[ " ${targets[*]} " == *" Package "* ]] || targets+=(Package)
fi

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzzing failed: ${failed[*]}" >&2
    exit 1
fi
if runs; then echo "fuzzing: ${#targets[@]} harnesses, ${seconds}s each, no crash"; else echo "fuzzing: ${#targets[@]} harnesses built"; fi
