/*
 * The start-up check and the bootloader request (spec §7), for every part line in
 * protocols/families/ with USB DFU. The per-line addresses come from
 * include/dfuhop/parts.generated.h (scripts/gen-device-kit: the family files, plus
 * parts-backup-domain.json with ST's CMSIS device headers); build with one -DDFH_PART_<ID>.
 * Core registers: the ARMv6-M, ARMv7-M and ARMv8-M Architecture Reference Manuals.
 */
#include "dfuhop/boot_entry.h"

#include <stdint.h>

#include "dfuhop/app_protocol.h"

/* The names of the first kit (F4, L4, G4, H7) still select the part line they were written for. */
#if defined(DFH_FAMILY_F4) && !defined(DFH_PART_F407)
#define DFH_PART_F407
#elif defined(DFH_FAMILY_L4) && !defined(DFH_PART_L476)
#define DFH_PART_L476
#elif defined(DFH_FAMILY_G4) && !defined(DFH_PART_G474)
#define DFH_PART_G474
#elif defined(DFH_FAMILY_H7) && !defined(DFH_PART_H753)
#define DFH_PART_H753
#endif

#include "dfuhop/parts.generated.h"

/* The part line's core and the compiler's target must agree: a jump sequence built for another
 * architecture would touch registers the core does not have. */
#if defined(__arm__)
#if (defined(DFH_PART_CPU_CORTEX_M0) || defined(DFH_PART_CPU_CORTEX_M0PLUS)) && !defined(__ARM_ARCH_6M__)
#error "this part line is Cortex-M0/M0+: build with -mcpu=cortex-m0 or -mcpu=cortex-m0plus"
#elif defined(DFH_PART_CPU_CORTEX_M3) && !defined(__ARM_ARCH_7M__)
#error "this part line is Cortex-M3: build with -mcpu=cortex-m3"
#elif (defined(DFH_PART_CPU_CORTEX_M4) || defined(DFH_PART_CPU_CORTEX_M7)) && !defined(__ARM_ARCH_7EM__)
#error "this part line is Cortex-M4/M7: build with -mcpu=cortex-m4 or -mcpu=cortex-m7"
#elif defined(DFH_PART_CPU_CORTEX_M33) && !defined(__ARM_ARCH_8M_MAIN__)
#error "this part line is Cortex-M33: build with -mcpu=cortex-m33"
#endif
#endif

#if defined(DFH_HOST_TEST)
/* test/boot_entry_host.c: registers simulated, and the primitives below recorded instead of run. */
#include "boot_entry_host.h"
#else
#define REG(address) (*(volatile uint32_t *)(uintptr_t)(address))
#define DFH_RAMFUNC __attribute__((section(".RamFunc"), noinline, noreturn, long_call))
#define IN_SRAM(address) ((address) >= 0x20000000u && (address) < 0x40000000u) /* ARMv6-M/v7-M memory map */

static inline void dsb(void) { __asm volatile("dsb sy" ::: "memory"); }
static inline void isb(void) { __asm volatile("isb sy" ::: "memory"); }
static inline void interrupts_off(void) { __asm volatile("cpsid i" ::: "memory"); }

/* CONTROL = 0: privileged, main stack, no FP context. Then PRIMASK back to 0: every NVIC line is off,
 * and the ROM's USB driver needs interrupts enabled. On ARMv8-M the main stack limit goes too (the
 * ROM's stack is not the application's). MSP last, then the jump: nothing may touch the old stack in
 * between. */
__attribute__((noreturn, always_inline)) static inline void start_rom(uint32_t stack, uint32_t entry)
{
    __asm volatile(
        "msr control, %[zero]\n"
        "isb\n"
#if defined(__ARM_ARCH_8M_MAIN__)
        "msr msplim, %[zero]\n"
#endif
        "cpsie i\n"
        "msr msp, %[stack]\n"
        "bx %[entry]\n"
        :
        : [zero] "r"(0u), [stack] "r"(stack), [entry] "r"(entry)
        : "memory");
    __builtin_unreachable();
}

/* After a reset request: the reset comes within a few cycles. */
__attribute__((noreturn)) static inline void wait_for_reset(void)
{
    for (;;) {
    }
}
#endif

/* Cortex-M core registers (ARMv7-M Architecture Reference Manual B3; the same addresses on ARMv6-M and ARMv8-M). */
#define SYST_CSR 0xE000E010u
#define SYST_RVR 0xE000E014u
#define SYST_CVR 0xE000E018u
#define NVIC_ICER0 0xE000E180u
#define NVIC_ICPR0 0xE000E280u
#define SCB_ICSR 0xE000ED04u
#define SCB_VTOR 0xE000ED08u
#define SCB_AIRCR 0xE000ED0Cu
#define SCB_CCR 0xE000ED14u
#define SCB_CCSIDR 0xE000ED80u
#define SCB_CSSELR 0xE000ED84u
#define MPU_TYPE 0xE000ED90u
#define MPU_CTRL 0xE000ED94u
#define SCB_ICIALLU 0xE000EF50u
#define SCB_DCCISW 0xE000EF74u

#define ICSR_PENDSTCLR (1u << 25)
#define ICSR_PENDSVCLR (1u << 27)
#define CCR_DC (1u << 16)
#define CCR_IC (1u << 17)
#define MPU_TYPE_DREGION (0xFFu << 8) /* zero: no MPU */
#define AIRCR_VECTKEY (0x05FAu << 16)
#define AIRCR_PRIGROUP (7u << 8)
#define AIRCR_SYSRESETREQ (1u << 2)

/* NVIC interrupt clear-enable/clear-pending registers: one on ARMv6-M (32 lines), eight on
 * ARMv7-M (240), sixteen on ARMv8-M Mainline (480). More would touch reserved addresses. */
#if defined(__ARM_ARCH_6M__)
#define NVIC_REGISTERS 1u
#elif defined(__ARM_ARCH_8M_MAIN__)
#define NVIC_REGISTERS 16u
#else
#define NVIC_REGISTERS 8u
#endif

/* Oscillators start in microseconds; this bounds a wait on a part that would never set its flag. */
#define READY_SPINS 1000000u

#if defined(DFH_ENTRY_JUMP) || defined(DFH_ENTRY_ERASE_FIRST_PAGE)
static void wait_until(uint32_t reg, uint32_t mask, uint32_t value)
{
    for (uint32_t spins = 0; spins < READY_SPINS && (REG(reg) & mask) != value; spins++) {
    }
}
#endif

#if defined(DFH_ENTRY_JUMP)

/* Sets `bit` in `reg` if the part has it; returns what to give back to restore_bit. */
static uint32_t set_bit(uint32_t reg, uint32_t bit)
{
    if (reg == 0) return 0;
    uint32_t was = REG(reg) & bit;
    REG(reg) |= bit;
    (void)REG(reg); /* the read-back makes the clock enable take effect before the next access */
    return was;
}

static void restore_bit(uint32_t reg, uint32_t bit, uint32_t was)
{
    if (reg != 0 && !was) REG(reg) &= ~bit;
}


/* Backup register 0 as one 32-bit value; on F1 two 16-bit registers (BKP_DR1 low, BKP_DR2 high). */
static uint32_t read_backup_register(void)
{
    if (DFH_BACKUP_REGISTER_HIGH == 0) return REG(DFH_BACKUP_REGISTER);
    return (REG(DFH_BACKUP_REGISTER_HIGH) & 0xFFFFu) << 16 | (REG(DFH_BACKUP_REGISTER) & 0xFFFFu);
}

/* Backup-domain write access: the PWR clock, the backup registers' bus clock, then DBP (each line's
 * reference manual, PWR chapter, "Backup domain"; registers from parts.generated.h). */
static void write_backup_register(uint32_t value)
{
    uint32_t pwr = set_bit(DFH_PWR_CLOCK_REGISTER, DFH_PWR_CLOCK_BIT);
    uint32_t bus = set_bit(DFH_BACKUP_CLOCK_REGISTER, DFH_BACKUP_CLOCK_BIT);
    REG(DFH_DBP_REGISTER) |= DFH_DBP_BIT;
    while (!(REG(DFH_DBP_REGISTER) & DFH_DBP_BIT)) {
    }
    if (DFH_BACKUP_REGISTER_HIGH == 0) {
        REG(DFH_BACKUP_REGISTER) = value;
    } else {
        REG(DFH_BACKUP_REGISTER) = value & 0xFFFFu;
        REG(DFH_BACKUP_REGISTER_HIGH) = value >> 16;
    }
    (void)REG(DFH_BACKUP_REGISTER);
    REG(DFH_DBP_REGISTER) &= ~DFH_DBP_BIT;
    restore_bit(DFH_BACKUP_CLOCK_REGISTER, DFH_BACKUP_CLOCK_BIT, bus);
    restore_bit(DFH_PWR_CLOCK_REGISTER, DFH_PWR_CLOCK_BIT, pwr);
}

#if DFH_HAS_L1_CACHE
/* Cortex-M7: turn the L1 caches off, the data cache cleaned first (ARMv7-M Architecture Reference Manual, cache maintenance operations). */
static void disable_caches(void)
{
    if (REG(SCB_CCR) & CCR_DC) {
        REG(SCB_CSSELR) = 0; /* level 1 data cache */
        dsb();
        REG(SCB_CCR) &= ~CCR_DC;
        dsb();
        uint32_t ccsidr = REG(SCB_CCSIDR);
        uint32_t sets = ((ccsidr >> 13) & 0x7FFFu) + 1, ways = ((ccsidr >> 3) & 0x3FFu) + 1;
        uint32_t set_shift = (ccsidr & 7u) + 4; /* log2 of the line size in bytes */
        uint32_t way_shift = ways > 1 ? (uint32_t)__builtin_clz(ways - 1) : 0;
        for (uint32_t set = 0; set < sets; set++)
            for (uint32_t way = 0; way < ways; way++) REG(SCB_DCCISW) = (way << way_shift) | (set << set_shift);
        dsb();
        isb();
    }
    if (REG(SCB_CCR) & CCR_IC) {
        dsb();
        isb();
        REG(SCB_CCR) &= ~CCR_IC;
        REG(SCB_ICIALLU) = 0;
        dsb();
        isb();
    }
}
#endif

/* Interrupts masked, SysTick off, every NVIC line disabled and un-pended, MPU and caches off. */
static void quiesce_core(void)
{
    interrupts_off();
    REG(SYST_CSR) = 0; /* SysTick off, and its pending exception cleared */
    REG(SYST_RVR) = 0;
    REG(SYST_CVR) = 0;
    REG(SCB_ICSR) = ICSR_PENDSTCLR | ICSR_PENDSVCLR;
    for (uint32_t i = 0; i < NVIC_REGISTERS; i++) { /* unimplemented lines ignore the write */
        REG(NVIC_ICER0 + 4 * i) = 0xFFFFFFFFu;
        REG(NVIC_ICPR0 + 4 * i) = 0xFFFFFFFFu;
    }
    dsb();
    isb();
#if !defined(DFH_PART_CPU_CORTEX_M0) /* the Cortex-M0 has no MPU; elsewhere MPU_TYPE.DREGION says */
    if (REG(MPU_TYPE) & MPU_TYPE_DREGION) REG(MPU_CTRL) = 0; /* the ROM runs with the default memory map */
#endif
#if DFH_HAS_L1_CACHE
    disable_caches();
#endif
}

/* AN2606 "Bootloader activation": interrupts off and nothing pending, SysTick off, the reset clock
 * tree, system memory mapped, the ROM's stack and reset handler. Seed 004's hand-written jump
 * skipped most of this and left the rest to luck. */
__attribute__((noreturn)) static void jump_to_system_memory(void)
{
    quiesce_core();

    /* The reset clock: its oscillator on and selected, prescalers /1, HSE and PLLs off. */
    REG(DFH_RCC_CR) |= DFH_RESET_OSCILLATOR_ON;
    wait_until(DFH_RCC_CR, DFH_RESET_OSCILLATOR_READY, DFH_RESET_OSCILLATOR_READY);
    REG(DFH_RCC_CFGR) = DFH_CFGR_SW;
    wait_until(DFH_RCC_CFGR, DFH_SWS_MASK, DFH_SWS_RESET);
    REG(DFH_RCC_CR) &= ~DFH_OSCILLATORS_OFF;

    if (DFH_REMAP_REGISTER != 0) { /* MEM_MODE = 01: system memory at 0 */
        uint32_t syscfg = set_bit(DFH_SYSCFG_CLOCK_REGISTER, DFH_SYSCFG_CLOCK_BIT);
        REG(DFH_REMAP_REGISTER) = (REG(DFH_REMAP_REGISTER) & ~DFH_REMAP_MASK) | 1u;
        restore_bit(DFH_SYSCFG_CLOCK_REGISTER, DFH_SYSCFG_CLOCK_BIT, syscfg);
    }
#if !defined(DFH_PART_CPU_CORTEX_M0) /* no VTOR on the Cortex-M0: the remap above is what points at the ROM */
    REG(SCB_VTOR) = DFH_SYSTEM_MEMORY;
#endif

    start_rom(REG(DFH_SYSTEM_MEMORY), REG(DFH_SYSTEM_MEMORY + 4)); /* the ROM's stack and reset handler */
}

void dfh_boot_check(void)
{
    uint32_t bus = set_bit(DFH_BACKUP_CLOCK_REGISTER, DFH_BACKUP_CLOCK_BIT);
    uint32_t requested = read_backup_register() == DFH_BOOTLOADER_MAGIC;
    restore_bit(DFH_BACKUP_CLOCK_REGISTER, DFH_BACKUP_CLOCK_BIT, bus);
    if (!requested) return;
    /* Cleared before the jump: whatever the ROM does, the next reset boots the application. */
    write_backup_register(0);
    jump_to_system_memory();
}

dfh_entry_result dfh_enter_bootloader(void)
{
    interrupts_off();
    write_backup_register(DFH_BOOTLOADER_MAGIC);
    dsb();
    REG(SCB_AIRCR) = AIRCR_VECTKEY | (REG(SCB_AIRCR) & AIRCR_PRIGROUP) | AIRCR_SYSRESETREQ;
    dsb();
    wait_for_reset();
}

#elif defined(DFH_ENTRY_ERASE_FIRST_PAGE)

/* Lines whose ROM cannot be reached by a jump (AN2606; parts.generated.h says which) but which
 * start it when the first flash word is empty: erase the page holding the vector table, then reload
 * the option bytes, which resets the part and evaluates the boot mode again (RM0091 FLASH_CR
 * OBL_LAUNCH). The ROM starts; dfuhop writes the vector table last. Trade-off in PORTING.md.
 * Runs from RAM: it erases the page the vector table, and maybe this code, live in. The section is
 * ".RamFunc", which ST's generated linker scripts copy into RAM with .data; dfh_enter_bootloader
 * checks that it got there. */
DFH_RAMFUNC static void erase_first_page_and_reload(void)
{
    REG(DFH_FLASH_KEYR) = DFH_FLASH_KEY1; /* unlock FLASH_CR */
    REG(DFH_FLASH_KEYR) = DFH_FLASH_KEY2;
    REG(DFH_FLASH_OPTKEYR) = DFH_FLASH_KEY1; /* OPTWRE: the option-byte reload below */
    REG(DFH_FLASH_OPTKEYR) = DFH_FLASH_KEY2;
    while (REG(DFH_FLASH_SR) & DFH_FLASH_BSY) {
    }
    REG(DFH_FLASH_CR) |= DFH_FLASH_PER;
    REG(DFH_FLASH_AR) = DFH_FLASH_BASE;
    REG(DFH_FLASH_CR) |= DFH_FLASH_STRT;
    dsb();
    while (REG(DFH_FLASH_SR) & DFH_FLASH_BSY) {
    }
    REG(DFH_FLASH_SR) = DFH_FLASH_EOP; /* write 1 to clear */
    REG(DFH_FLASH_CR) &= ~DFH_FLASH_PER;
    REG(DFH_FLASH_CR) |= DFH_FLASH_OBLLAUNCH; /* resets the part */
    wait_for_reset();
}

/* Nothing is stored across the reset: an erased first page is the request, and the ROM, not this
 * code, runs when it is there. */
void dfh_boot_check(void) {}

dfh_entry_result dfh_enter_bootloader(void)
{
    interrupts_off(); /* the vector table is about to go */
    REG(SYST_CSR) = 0;
    /* The flash interface erases on the HSI (RM0091, flash program and erase operations). */
    REG(DFH_RCC_CR) |= DFH_RESET_OSCILLATOR_ON;
    wait_until(DFH_RCC_CR, DFH_RESET_OSCILLATOR_READY, DFH_RESET_OSCILLATOR_READY);
    /* Only from the SRAM region (0x20000000-0x3FFFFFFF). A linker script that left
     * .RamFunc in flash gets a plain reset: the application starts again and dfuhop, not finding the
     * ROM, says so; nothing is erased. */
    uintptr_t code = (uintptr_t)&erase_first_page_and_reload;
    if (IN_SRAM(code)) erase_first_page_and_reload();
    dsb();
    REG(SCB_AIRCR) = AIRCR_VECTKEY | AIRCR_SYSRESETREQ;
    wait_for_reset();
}

#elif defined(DFH_ENTRY_FORCE_EMPTY_FLAG)

/* Lines with the empty check and no backup register the kit can use (C071): set the empty-check flag
 * (FLASH_ACR.PROGEMPTY) and reset. A system reset keeps the flag, only an option-byte load evaluates it
 * again (ST's HAL_FLASHEx_ForceFlashEmpty), so the part boots its ROM; nothing is erased. */
dfh_entry_result dfh_enter_bootloader(void)
{
    interrupts_off();
    REG(DFH_FLASH_ACR) |= DFH_FLASH_ACR_EMPTY;
    dsb();
    REG(SCB_AIRCR) = AIRCR_VECTKEY | (REG(SCB_AIRCR) & AIRCR_PRIGROUP) | AIRCR_SYSRESETREQ;
    dsb();
    wait_for_reset();
}

/* The application runs, so its first word is programmed: a flag still set (a ROM that did not clear it
 * and left by a jump) would send the next reset to the ROM. */
void dfh_boot_check(void)
{
    if (REG(DFH_FLASH_ACR) & DFH_FLASH_ACR_EMPTY) REG(DFH_FLASH_ACR) &= ~DFH_FLASH_ACR_EMPTY;
}

#elif defined(DFH_ENTRY_NONE)

/* No jump, no empty check (L0): no software entry the kit can make safe. BOOT0 only (PORTING.md). */
void dfh_boot_check(void) {}

dfh_entry_result dfh_enter_bootloader(void) { return DFH_ENTRY_NOT_POSSIBLE; }

#elif !defined(DFH_ENTRY_REFUSED) /* refused lines have had their #error from parts.generated.h */
#error "parts.generated.h gave this part line no entry method"
#endif
