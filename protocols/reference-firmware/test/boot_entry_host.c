/*
 * Runs src/boot_entry.c for one part line (-DDFH_PART_<ID> -DDFH_HOST_TEST) against simulated
 * registers and prints what parts.generated.h gives the line and what the code did, for
 * test/check-parts to compare with the family file:
 *
 *   id, deviceID, core, systemMemory, flashBase, entry, cache   the header's constants
 *   magicWrite A       the backup register the request wrote the magic to (the low half on F1)
 *   romVectors A       where the start-up check read the ROM's stack pointer
 *   erasePage A        the flash page the request erased (erase-first-page)
 *   emptyFlag A        the register whose empty-check bit the request set (force-empty-flag)
 *
 * It checks the order itself and exits 1 on a violation: the magic is written only while DBP and the
 * line's clocks are on, DBP and those clocks are off again before the reset, the reset comes last; the
 * start-up check clears the magic before the jump, and does nothing without the magic.
 */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>

#include "dfuhop/app_protocol.h"
#include "dfuhop/boot_entry.h"
#include "dfuhop/parts.generated.h"
#include "boot_entry_host.h"

#define SLOTS 512
#define AIRCR 0xE000ED0Cu
#define VTOR 0xE000ED08u

static struct {
    uint32_t address, value;
} slots[SLOTS];
static size_t used;
static volatile uint32_t *pending;   /* the slot handed out last, and its value then: a change is a write */
static uint32_t pending_address, pending_value;
static jmp_buf escape;
static int failures, resets, jumped;
static struct {
    uint32_t magic_address, erased_page; /* observed: where the magic went, which page was erased */
} seen;
static uint32_t jump_stack, jump_entry;

/* The header's constants for this line. */
static void describe(const char *entry)
{
    printf("id %s\n", DFH_PART_ID);
    printf("deviceID 0x%03X\n", DFH_PART_DEV_ID);
    printf("core %s\n", DFH_PART_CORE);
    printf("systemMemory 0x%08X\n", DFH_SYSTEM_MEMORY);
    printf("flashBase 0x%08X\n", DFH_FLASH_BASE);
    printf("entry %s\n", entry);
    printf("cache %d\n", DFH_HAS_L1_CACHE);
}

static void fail(const char *what)
{
    fprintf(stderr, "boot_entry_host %s: %s\n", DFH_PART_ID, what);
    failures++;
}

static void on_write(uint32_t address, uint32_t value);

static volatile uint32_t *slot(uint32_t address)
{
    for (size_t i = 0; i < used; i++)
        if (slots[i].address == address) return &slots[i].value;
    if (used == SLOTS) {
        fail("more than 512 registers touched");
        exit(1);
    }
    slots[used].address = address;
    slots[used].value = 0;
    return &slots[used++].value;
}

/* A write through the pointer handed out last shows as a changed value at the next access: nothing
 * else has been touched in between, so the other registers are as they were at the write. */
static void settle(void)
{
    if (pending && *pending != pending_value) on_write(pending_address, *pending);
    pending = NULL;
}

volatile uint32_t *dfh_sim_register(uint32_t address)
{
    settle();
    pending = slot(address);
    pending_address = address;
    pending_value = *pending;
    return pending;
}

static uint32_t peek(uint32_t address)
{
    settle();
    return *slot(address);
}

void dfh_sim_barrier(void) {}
void dfh_sim_interrupts_off(void) {}

void dfh_sim_start_rom(uint32_t stack, uint32_t entry)
{
    settle();
    jumped = 1;
    jump_stack = stack;
    jump_entry = entry;
    longjmp(escape, 1);
}

void dfh_sim_wait_for_reset(void)
{
    settle();
    resets++;
    longjmp(escape, 1);
}

#if defined(DFH_ENTRY_JUMP)
static void poke(uint32_t address, uint32_t value)
{
    settle();
    *slot(address) = value;
}
static void reset_registers(void)
{
    pending = NULL;
    used = 0;
}

static int bit_on(uint32_t reg, uint32_t bit) { return reg == 0 || (*slot(reg) & bit) != 0; }

/* A value written to backup register 0 (either half on F1) needs DBP and the line's clocks on then. */
static void on_write(uint32_t address, uint32_t value)
{
    if (address != DFH_BACKUP_REGISTER && (DFH_BACKUP_REGISTER_HIGH == 0 || address != DFH_BACKUP_REGISTER_HIGH))
        return;
    if (resets) fail("backup register written after the reset request");
    if (!bit_on(DFH_DBP_REGISTER, DFH_DBP_BIT)) fail("backup register written with DBP off");
    if (!bit_on(DFH_PWR_CLOCK_REGISTER, DFH_PWR_CLOCK_BIT)) fail("backup register written with the PWR clock off");
    if (!bit_on(DFH_BACKUP_CLOCK_REGISTER, DFH_BACKUP_CLOCK_BIT))
        fail("backup register written with its bus clock off");
    if (value == DFH_BOOTLOADER_MAGIC || (DFH_BACKUP_REGISTER_HIGH && value == (DFH_BOOTLOADER_MAGIC & 0xFFFFu)))
        seen.magic_address = address;
}
#elif defined(DFH_ENTRY_ERASE_FIRST_PAGE)
/* A page erase starts when STRT is set with PER: the page is FLASH_AR's value then. */
static void on_write(uint32_t address, uint32_t value)
{
    if (address == DFH_FLASH_CR && (value & DFH_FLASH_STRT) && (value & DFH_FLASH_PER))
        seen.erased_page = *slot(DFH_FLASH_AR);
}
#else
static void on_write(uint32_t address, uint32_t value)
{
    (void)address;
    (void)value;
}
#endif

#if defined(DFH_ENTRY_JUMP)
/* Every address the magic could be in, with the line's clocks and DBP as they are now. */
static void request(void)
{
    reset_registers();
    resets = 0;
    if (setjmp(escape) == 0) dfh_enter_bootloader();
    if (resets != 1) fail("the request did not end in one reset");
    if (!(peek(AIRCR) & (1u << 2)) || (peek(AIRCR) >> 16) != 0x05FAu) fail("no AIRCR.SYSRESETREQ with VECTKEY");
    uint32_t stored = DFH_BACKUP_REGISTER_HIGH == 0
                          ? peek(DFH_BACKUP_REGISTER)
                          : (peek(DFH_BACKUP_REGISTER_HIGH) << 16 | (peek(DFH_BACKUP_REGISTER) & 0xFFFFu));
    if (stored != DFH_BOOTLOADER_MAGIC) fail("the magic is not in the backup register");
    if (DFH_DBP_REGISTER == 0 || bit_on(DFH_DBP_REGISTER, DFH_DBP_BIT)) fail("DBP still set after the request");
    if (DFH_PWR_CLOCK_REGISTER != 0 && bit_on(DFH_PWR_CLOCK_REGISTER, DFH_PWR_CLOCK_BIT))
        fail("PWR clock left on (it was off before)");
    printf("magicWrite 0x%08X\n", seen.magic_address);
}

static void check_without_magic(void)
{
    reset_registers();
    jumped = resets = 0;
    if (setjmp(escape) == 0) dfh_boot_check();
    if (jumped) fail("the start-up check jumped without the magic");
    if (peek(DFH_BACKUP_REGISTER) != 0) fail("the start-up check wrote the backup register without the magic");
}

static void check_with_magic(void)
{
    reset_registers();
    if (DFH_BACKUP_REGISTER_HIGH == 0) {
        poke(DFH_BACKUP_REGISTER, DFH_BOOTLOADER_MAGIC);
    } else {
        poke(DFH_BACKUP_REGISTER, DFH_BOOTLOADER_MAGIC & 0xFFFFu);
        poke(DFH_BACKUP_REGISTER_HIGH, DFH_BOOTLOADER_MAGIC >> 16);
    }
    poke(DFH_SYSTEM_MEMORY, 0x20001234u); /* the ROM's vector table: stack, reset handler */
    poke(DFH_SYSTEM_MEMORY + 4, 0x1FFF1235u);
    jumped = resets = 0;
    if (setjmp(escape) == 0) dfh_boot_check();
    if (!jumped) fail("the start-up check did not jump with the magic");
    if (peek(DFH_BACKUP_REGISTER) != 0 || (DFH_BACKUP_REGISTER_HIGH && peek(DFH_BACKUP_REGISTER_HIGH) != 0))
        fail("the magic was not cleared before the jump");
    if (jump_stack != 0x20001234u || jump_entry != 0x1FFF1235u) fail("the jump did not use the ROM's words 0 and 1");
#if DFH_REMAP_MASK != 0
    if ((peek(DFH_REMAP_REGISTER) & DFH_REMAP_MASK) != 1u) fail("MEM_MODE is not 01");
#endif
    if ((peek(DFH_RCC_CFGR) & 0xFFu & ~DFH_SWS_MASK) != DFH_CFGR_SW) fail("RCC_CFGR SW is not the reset oscillator");
#if defined(DFH_PART_CPU_CORTEX_M0)
    if (peek(VTOR) != 0) fail("VTOR written on a Cortex-M0, which has none");
#else
    if (peek(VTOR) != DFH_SYSTEM_MEMORY) fail("VTOR does not point at the ROM");
#endif
    for (size_t i = 0; i < used; i++) /* the register the stack pointer came from */
        if (slots[i].value == jump_stack) printf("romVectors 0x%08X\n", slots[i].address);
}

int main(void)
{
    describe("jump");
    request();
    check_without_magic();
    check_with_magic();
    return failures ? 1 : 0;
}

#elif defined(DFH_ENTRY_ERASE_FIRST_PAGE)
int main(void)
{
    describe("erase-first-page");
    resets = 0;
    if (setjmp(escape) == 0) dfh_enter_bootloader();
    if (resets != 1) fail("the request did not end in one reset");
    if (!(peek(DFH_FLASH_CR) & DFH_FLASH_OBLLAUNCH)) fail("no option-byte reload (OBL_LAUNCH)");
    if (peek(DFH_FLASH_CR) & DFH_FLASH_PER) fail("page erase left selected");
    printf("erasePage 0x%08X\n", seen.erased_page);
    uint32_t before = (uint32_t)used;
    dfh_boot_check();
    if (used != before) fail("the start-up check touched a register on a line without the magic");
    return failures ? 1 : 0;
}

#elif defined(DFH_ENTRY_FORCE_EMPTY_FLAG)
int main(void)
{
    describe("force-empty-flag");
    (void)seen; /* nothing to observe on the way: the flag is checked below */
    resets = 0;
    if (setjmp(escape) == 0) (void)dfh_enter_bootloader();
    if (resets != 1) fail("the request did not end in one reset");
    if (!(peek(DFH_FLASH_ACR) & DFH_FLASH_ACR_EMPTY)) fail("the empty-check flag is not set at the reset");
    if (!(peek(AIRCR) & (1u << 2)) || (peek(AIRCR) >> 16) != 0x05FAu) fail("no AIRCR.SYSRESETREQ with VECTKEY");
    printf("emptyFlag 0x%08X\n", DFH_FLASH_ACR);
    dfh_boot_check();
    if (peek(DFH_FLASH_ACR) & DFH_FLASH_ACR_EMPTY) fail("the start-up check left the empty-check flag set");
    return failures ? 1 : 0;
}

#elif defined(DFH_ENTRY_NONE)
int main(void)
{
    describe("none");
    (void)seen;
    if (dfh_enter_bootloader() != DFH_ENTRY_NOT_POSSIBLE) fail("the request did not say it is not possible");
    dfh_boot_check();
    if (used != 0 || peek(AIRCR) != 0) fail("a line without an entry touched a register");
    return failures ? 1 : 0;
}
#endif
