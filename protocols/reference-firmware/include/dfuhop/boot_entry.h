/*
 * Entering the STM32 ROM bootloader from the application (spec §7, seeds 000 and 004).
 *
 * The application never jumps to the ROM from a running system: it leaves DFH_BOOTLOADER_MAGIC in
 * backup register 0 and resets. The first thing the reset handler does is dfh_boot_check(), which
 * finds the magic, clears it (so the next reset boots the application again), puts the core and
 * clocks back the way the ROM expects them (AN2606 "Bootloader activation"), and jumps to the ROM.
 *
 * Build with exactly one of DFH_FAMILY_F4, DFH_FAMILY_L4, DFH_FAMILY_G4, DFH_FAMILY_H7.
 * The product must not use backup register 0 for anything else.
 */
#ifndef DFUHOP_BOOT_ENTRY_H
#define DFUHOP_BOOT_ENTRY_H

/* Call first in the reset handler, before .data/.bss are set up and before any clock setup: it uses
 * only the stack and constants in flash. Returns when no bootloader entry was requested. */
void dfh_boot_check(void);

/* Leaves the magic in the backup register and resets the MCU. Call once the ENTER_BOOTLOADER answer
 * has left the device and its announced reset delay has passed. */
__attribute__((noreturn)) void dfh_enter_bootloader(void);

#endif
