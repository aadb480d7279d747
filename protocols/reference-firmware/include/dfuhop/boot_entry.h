/*
 * Entering the STM32 ROM bootloader from the application (spec §7, seeds 000 and 004).
 *
 * The application never jumps to the ROM from a running system: it leaves DFH_BOOTLOADER_MAGIC in
 * backup register 0 and resets. The first thing the reset handler does is dfh_boot_check(), which
 * finds the magic, clears it (so the next reset boots the application again), puts the core and
 * clocks back the way the ROM expects them (AN2606 "Bootloader activation"), and jumps to the ROM.
 *
 * Build with exactly one -DDFH_PART_<ID>, <ID> a part line of protocols/families in capitals
 * (DFH_PART_G474, DFH_PART_F042; include/dfuhop/parts.generated.h lists them). The older
 * DFH_FAMILY_F4/_L4/_G4/_H7 still select F407, L476, G474 and H753. The product must not use
 * backup register 0 for anything else.
 *
 * On part lines whose ROM cannot be entered by a jump (F04x/F070x6, AN2606) dfh_enter_bootloader
 * instead erases the first flash page and reloads the option bytes, so the ROM's empty check starts
 * it, and dfh_boot_check does nothing; on C071 (no backup register) it sets the empty-check flag and
 * resets; on L0 it returns DFH_ENTRY_NOT_POSSIBLE (PORTING.md, "Entry without a jump").
 */
#ifndef DFUHOP_BOOT_ENTRY_H
#define DFUHOP_BOOT_ENTRY_H

/* Call first in the reset handler, before .data/.bss are set up and before any clock setup: it uses
 * only the stack and constants in flash. Returns when no bootloader entry was requested. */
void dfh_boot_check(void);

typedef enum {
    /* The part line has no software entry (L0: no jump, no empty check; PORTING.md): nothing was changed,
     * the application runs on, and only BOOT0 reaches the ROM. */
    DFH_ENTRY_NOT_POSSIBLE = 1,
} dfh_entry_result;

/* Leaves the magic in the backup register and resets the MCU (or the line's own entry, PORTING.md). Call
 * once the ENTER_BOOTLOADER answer has left the device and its announced reset delay has passed. Returns
 * only on a line without an entry (DFH_BOOTLOADER_ENTRY_POSSIBLE 0 in parts.generated.h), with
 * DFH_ENTRY_NOT_POSSIBLE. */
dfh_entry_result dfh_enter_bootloader(void);

#endif
