# Sourced by scripts/install and scripts/package: the release binary and its man page, built once and reused.
#
#   release_build        sets $binary (the release dfuhop, Swift runtime linked in) and $manual (dfuhop.1)
#
# The build shares the checkout's .build with `swift build` (DFUHOP_SCRATCH overrides), so a finished
# `swift build -c release --product dfuhop --static-swift-stdlib` is reused: SwiftPM finds it up to date and
# relinks nothing (seconds, not the minutes of a build). A release build without --static-swift-stdlib shares
# the compiled modules too and is only relinked. The caller has cd'ed to the checkout.

scratch=${DFUHOP_SCRATCH:-.build}
step() { printf '==> %s\n' "$*"; }

release_build() {
    step "release build, Swift runtime linked statically (reused when up to date)"
    swift build -c release --scratch-path "$scratch" --static-swift-stdlib --product dfuhop
    binary="$scratch/release/dfuhop"
    # The binary must run where Swift is not installed: no Swift runtime library may be left to load.
    if command -v ldd >/dev/null && ldd "$binary" | grep -E 'libswift|libFoundation|libdispatch|libBlocksRuntime|lib_Foundation|/opt/swift'; then
        echo "$0: $binary still needs the Swift runtime libraries above" >&2
        exit 70
    fi

    # The man page, from the built binary's own command tree (--experimental-dump-help) by argument-parser's
    # generate-manual tool. Built on its own from the resolved checkout: a few small modules, where the
    # package plugin would compile all of dfuhop a second time. Works offline (no dependency of its own).
    step "man page (argument-parser's generate-manual)"
    local parser="$scratch/checkouts/swift-argument-parser"
    swift build -c release --package-path "$parser" --scratch-path "$scratch/generate-manual" --product generate-manual
    local mandir="$scratch/man"
    rm -rf "$mandir" && mkdir -p "$mandir"
    "$scratch/generate-manual/release/generate-manual" "$binary" --section 1 --authors "the dfuhop authors" \
        --date "$(git log -1 --format=%cs 2>/dev/null || date +%F)" --output-directory "$mandir"
    manual="$mandir/dfuhop.1"
    [ -s "$manual" ] || { echo "$0: generate-manual wrote no $manual" >&2; exit 70; }
}
