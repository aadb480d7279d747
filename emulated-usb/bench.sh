#!/usr/bin/env bash
# Flashes the same image to the same emulated STM32F407 ROM (the VirtualDevice model behind umockdev)
# with unmodified dfu-util and with dfuhop (verify on), in one run; prints both times and the ratio.
# Device time is virtual here, so the figures are host + USB-protocol cost: set-address per block and
# wasted polls show, flash timings do not.
#   emulated-usb/bench.sh [KIB]        default 512; needs umockdev, dfu-util and a release build
set -euo pipefail
cd "$(dirname "$0")/.."
kib="${1:-512}"
swift build -c release --product dfuhop >&2
swift build -c release --product dfuhop-usb-peer >&2
make -s -C emulated-usb build/dfuhop-usb-server
bin=.build/release
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# An application-shaped image: SP in RAM, Thumb reset handler inside, then pseudo-random code bytes.
python3 - "$work/app.bin" "$kib" <<'PY'
import random, struct, sys
random.seed(7)
size = int(sys.argv[2]) * 1024
vectors = struct.pack("<9I", 0x20020000, 0x08000101, *([0x08000181] * 6), 0)  # word 8 = 0: no descriptor
body = vectors + bytes(random.getrandbits(8) for _ in range(size - len(vectors)))
open(sys.argv[1], "wb").write(body)
PY

run() {  # run NAME PEER-OPTION COMMAND...: wall seconds of one flash through a fresh emulated unit
    local name=$1 timing=$2; shift 2
    local start end
    start=$(date +%s.%N)
    "$bin/dfuhop-usb-peer" --server emulated-usb/build/dfuhop-usb-server --simulate f407:dfu $timing \
        --state "$work/$name.json" -- "$@" > "$work/$name.log" 2>&1 || { cat "$work/$name.log" >&2; exit 1; }
    end=$(date +%s.%N)
    echo "$end - $start" | bc
}

report() {  # report LABEL PEER-OPTION
    local dfu_util dfuhop
    dfu_util=$(run "dfu-util$2" "$2" dfu-util -a 0 -s 0x08000000 -D "$work/app.bin")
    dfuhop=$(run "dfuhop$2" "$2" "$bin/dfuhop" flash "$work/app.bin")
    echo "$1"
    printf "  dfu-util -D (no verify)      %6.2f s\n" "$dfu_util"
    printf "  dfuhop flash (verify on)     %6.2f s   %s\n" "$dfuhop" "$(tail -1 "$work/dfuhop$2.log")"
    printf "  ratio dfu-util / dfuhop      %6.2fx\n" "$(echo "$dfu_util / $dfuhop" | bc -l)"
}

echo "emulated-usb flash of ${kib} KiB to a virtual STM32F407 (same image, same device model)"
report "with the datasheet's erase and program times (both tools wait the poll timeouts in real time):" ""
report "with zero flash time (host and USB-protocol cost only; goal: dfuhop at least 1.3x faster):" "--no-flash-time"
