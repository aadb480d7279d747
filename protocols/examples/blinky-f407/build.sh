#!/usr/bin/env bash
# Rebuilds ../blinky-f407.hex: compile with the Arm GNU toolchain, then stamp with dfuhop.
#   protocols/examples/blinky-f407/build.sh [path/to/dfuhop]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dfuhop="${1:-$here/../../../.build/debug/dfuhop}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
arm-none-eabi-gcc -mcpu=cortex-m4 -mthumb -Os -ffreestanding -nostdlib -Wall -Wextra -Werror \
    -T "$here/link.ld" -Wl,--gc-sections -o "$work/blinky.elf" "$here/main.c"
"$dfuhop" image stamp "$work/blinky.elf" "$here/../blinky-f407.hex" \
    --product-id 0x0483F407 --version 1.0.0 --name blinky-f407
"$dfuhop" image info "$here/../blinky-f407.hex" --family f407
