/*
 * The start-up check and the bootloader request (spec §7). Registers are written by address, each
 * commented with its reference-manual section: RM0090 (F405/407), RM0351 (L476), RM0440 (G474),
 * RM0433 (H743/753), and the Cortex-M4/M7 generic user guides for the core registers.
 */
#include "dfuhop/boot_entry.h"

#include <stdint.h>

#include "dfuhop/app_protocol.h"

#define REG(address) (*(volatile uint32_t *)(uintptr_t)(address))

/* Everything that differs between families, as data. A zero register address means "not on this part". */
typedef struct {
    uint32_t backup_register;     /* where the magic lives (McuFamily.backupRegister on the host side) */
    uint32_t pwr_clock_register;  /* RCC register with PWREN */
    uint32_t pwr_clock_bit;
    uint32_t rtc_clock_register;  /* RCC register with RTCAPBEN (the backup registers' bus clock) */
    uint32_t rtc_clock_bit;
    uint32_t pwr_dbp_register;    /* PWR register with DBP: backup-domain write protection off */
    uint32_t syscfg_clock_register;
    uint32_t syscfg_clock_bit;
    uint32_t syscfg_memrmp;       /* SYSCFG_MEMRMP: MEM_MODE = 1 maps system memory at 0 */
    uint32_t system_memory;       /* the ROM's vector table: word 0 its stack, word 1 its reset handler */
    uint32_t rcc_cr;
    uint32_t reset_oscillator_on; /* the oscillator the part resets to: HSI, or MSI on L4 */
    uint32_t reset_oscillator_ready;
    uint32_t oscillators_off;     /* HSE and PLL enable bits, cleared once the reset oscillator runs */
    uint32_t rcc_cfgr;
    uint32_t cfgr_reset;          /* RCC_CFGR's reset value: system clock from the reset oscillator */
    uint32_t sws_mask;            /* system clock switch status */
    uint32_t sws_reset;
    uint8_t has_l1_cache;         /* Cortex-M7 instruction and data caches */
} dfh_family;

#define DBP_BIT (1u << 8) /* the same bit on all four: PWR_CR.DBP, PWR_CR1.DBP */

#if defined(DFH_FAMILY_F4)
static const dfh_family family = {
    .backup_register = 0x40002850u,       /* RTC_BKP0R, RM0090 RTC registers */
    .pwr_clock_register = 0x40023840u,    /* RCC_APB1ENR, RM0090 RCC registers */
    .pwr_clock_bit = 1u << 28,            /* PWREN */
    .pwr_dbp_register = 0x40007000u,      /* PWR_CR, RM0090 PWR registers */
    .syscfg_clock_register = 0x40023844u, /* RCC_APB2ENR, RM0090 RCC registers */
    .syscfg_clock_bit = 1u << 14,         /* SYSCFGEN */
    .syscfg_memrmp = 0x40013800u,         /* SYSCFG_MEMRMP, RM0090 SYSCFG registers */
    .system_memory = 0x1FFF0000u,         /* AN2606 */
    .rcc_cr = 0x40023800u,                /* RCC_CR, RM0090 RCC registers */
    .reset_oscillator_on = 1u << 0,       /* HSION */
    .reset_oscillator_ready = 1u << 1,    /* HSIRDY */
    .oscillators_off = (1u << 16) | (1u << 24) | (1u << 26), /* HSEON, PLLON, PLLI2SON */
    .rcc_cfgr = 0x40023808u,              /* RCC_CFGR, RM0090 RCC registers: SW = 00 HSI */
    .cfgr_reset = 0x00000000u,
    .sws_mask = 3u << 2,
    .sws_reset = 0u << 2,
};
#elif defined(DFH_FAMILY_L4)
static const dfh_family family = {
    .backup_register = 0x40002850u,       /* RTC_BKP0R, RM0351 RTC registers */
    .pwr_clock_register = 0x40021058u,    /* RCC_APB1ENR1, RM0351 RCC registers */
    .pwr_clock_bit = 1u << 28,            /* PWREN; the L476 RTC's bus clock needs no enable */
    .pwr_dbp_register = 0x40007000u,      /* PWR_CR1, RM0351 PWR registers */
    .syscfg_clock_register = 0x40021060u, /* RCC_APB2ENR, RM0351 RCC registers */
    .syscfg_clock_bit = 1u << 0,          /* SYSCFGEN */
    .syscfg_memrmp = 0x40010000u,         /* SYSCFG_MEMRMP, RM0351 SYSCFG registers */
    .system_memory = 0x1FFF0000u,         /* AN2606 */
    .rcc_cr = 0x40021000u,                /* RCC_CR, RM0351 RCC registers */
    .reset_oscillator_on = 1u << 0,       /* MSION: L4 resets to MSI 4 MHz */
    .reset_oscillator_ready = 1u << 1,    /* MSIRDY */
    .oscillators_off = (1u << 16) | (1u << 24) | (1u << 26) | (1u << 28), /* HSEON, PLLON, PLLSAI1ON, PLLSAI2ON */
    .rcc_cfgr = 0x40021008u,              /* RCC_CFGR, RM0351 RCC registers: SW = 00 MSI */
    .cfgr_reset = 0x00000000u,
    .sws_mask = 3u << 2,
    .sws_reset = 0u << 2,
};
#elif defined(DFH_FAMILY_G4)
static const dfh_family family = {
    .backup_register = 0x40002500u,       /* TAMP_BKP0R, RM0440 TAMP registers */
    .pwr_clock_register = 0x40021058u,    /* RCC_APB1ENR1, RM0440 RCC registers */
    .pwr_clock_bit = 1u << 28,            /* PWREN */
    .rtc_clock_register = 0x40021058u,
    .rtc_clock_bit = 1u << 10,            /* RTCAPBEN: RTC and TAMP register access */
    .pwr_dbp_register = 0x40007000u,      /* PWR_CR1, RM0440 PWR registers */
    .syscfg_clock_register = 0x40021060u, /* RCC_APB2ENR, RM0440 RCC registers */
    .syscfg_clock_bit = 1u << 0,          /* SYSCFGEN */
    .syscfg_memrmp = 0x40010000u,         /* SYSCFG_MEMRMP, RM0440 SYSCFG registers */
    .system_memory = 0x1FFF0000u,         /* AN2606 */
    .rcc_cr = 0x40021000u,                /* RCC_CR, RM0440 RCC registers */
    .reset_oscillator_on = 1u << 8,       /* HSION */
    .reset_oscillator_ready = 1u << 10,   /* HSIRDY */
    .oscillators_off = (1u << 16) | (1u << 24), /* HSEON, PLLON */
    .rcc_cfgr = 0x40021008u,              /* RCC_CFGR, RM0440 RCC registers: SW = 01 HSI16 */
    .cfgr_reset = 0x00000005u,
    .sws_mask = 3u << 2,
    .sws_reset = 1u << 2,
};
#elif defined(DFH_FAMILY_H7)
static const dfh_family family = {
    .backup_register = 0x58004050u,       /* RTC_BKP0R, RM0433 RTC registers */
    .rtc_clock_register = 0x580244F4u,    /* RCC_APB4ENR, RM0433 RCC registers (the H7's PWR needs no clock enable) */
    .rtc_clock_bit = 1u << 16,            /* RTCAPBEN */
    .pwr_dbp_register = 0x58024800u,      /* PWR_CR1, RM0433 PWR registers */
    .system_memory = 0x1FF09800u,         /* AN2606: H743/753 (not 0x1FF00000 as on F7) */
    .rcc_cr = 0x58024400u,                /* RCC_CR, RM0433 RCC registers */
    .reset_oscillator_on = 1u << 0,       /* HSION */
    .reset_oscillator_ready = 1u << 2,    /* HSIRDY */
    .oscillators_off = (1u << 16) | (1u << 24) | (1u << 26) | (1u << 28), /* HSEON, PLL1ON, PLL2ON, PLL3ON */
    .rcc_cfgr = 0x58024410u,              /* RCC_CFGR, RM0433 RCC registers: SW = 000 HSI */
    .cfgr_reset = 0x00000000u,
    .sws_mask = 7u << 3,
    .sws_reset = 0u << 3,
    .has_l1_cache = 1,
};
#else
#error "define one of DFH_FAMILY_F4, DFH_FAMILY_L4, DFH_FAMILY_G4, DFH_FAMILY_H7"
#endif

/* Cortex-M core registers (ARMv7-M Architecture Reference Manual B3). */
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
#define MPU_CTRL 0xE000ED94u
#define SCB_ICIALLU 0xE000EF50u
#define SCB_DCCISW 0xE000EF74u

#define ICSR_PENDSTCLR (1u << 25)
#define ICSR_PENDSVCLR (1u << 27)
#define CCR_DC (1u << 16)
#define CCR_IC (1u << 17)
#define AIRCR_VECTKEY (0x05FAu << 16)
#define AIRCR_PRIGROUP (7u << 8)
#define AIRCR_SYSRESETREQ (1u << 2)

/* Oscillators start in microseconds; this bounds a wait on a part that would never set its flag. */
#define READY_SPINS 1000000u

static inline void dsb(void) { __asm volatile("dsb 0xF" ::: "memory"); }
static inline void isb(void) { __asm volatile("isb 0xF" ::: "memory"); }

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

/* Backup-domain write access: PWR clock on, then DBP (each manual's PWR chapter, "Battery backup domain"). */
static void write_backup_register(uint32_t value)
{
    uint32_t pwr = set_bit(family.pwr_clock_register, family.pwr_clock_bit);
    uint32_t rtc = set_bit(family.rtc_clock_register, family.rtc_clock_bit);
    REG(family.pwr_dbp_register) |= DBP_BIT;
    while (!(REG(family.pwr_dbp_register) & DBP_BIT)) {
    }
    REG(family.backup_register) = value;
    (void)REG(family.backup_register);
    REG(family.pwr_dbp_register) &= ~DBP_BIT;
    restore_bit(family.rtc_clock_register, family.rtc_clock_bit, rtc);
    restore_bit(family.pwr_clock_register, family.pwr_clock_bit, pwr);
}

static void wait_until(uint32_t reg, uint32_t mask, uint32_t value)
{
    for (uint32_t spins = 0; spins < READY_SPINS && (REG(reg) & mask) != value; spins++) {
    }
}

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

/* AN2606 "Bootloader activation": interrupts off and nothing pending, SysTick off, the reset clock
 * tree, system memory mapped, the ROM's stack and reset handler. Seed 004's hand-written jump
 * skipped most of this and left the rest to luck. */
__attribute__((noreturn)) static void jump_to_system_memory(void)
{
    __asm volatile("cpsid i" ::: "memory");

    REG(SYST_CSR) = 0; /* SysTick off, and its pending exception cleared */
    REG(SYST_RVR) = 0;
    REG(SYST_CVR) = 0;
    REG(SCB_ICSR) = ICSR_PENDSTCLR | ICSR_PENDSVCLR;
    for (uint32_t i = 0; i < 8; i++) { /* every NVIC line disabled and not pending (unimplemented ones ignore it) */
        REG(NVIC_ICER0 + 4 * i) = 0xFFFFFFFFu;
        REG(NVIC_ICPR0 + 4 * i) = 0xFFFFFFFFu;
    }
    dsb();
    isb();

    REG(MPU_CTRL) = 0; /* the ROM runs with the default memory map */
    if (family.has_l1_cache) disable_caches();

    /* The reset clock: its oscillator on and selected, prescalers reset, HSE and PLLs off. */
    REG(family.rcc_cr) |= family.reset_oscillator_on;
    wait_until(family.rcc_cr, family.reset_oscillator_ready, family.reset_oscillator_ready);
    REG(family.rcc_cfgr) = family.cfgr_reset;
    wait_until(family.rcc_cfgr, family.sws_mask, family.sws_reset);
    REG(family.rcc_cr) &= ~family.oscillators_off;

    if (family.syscfg_memrmp != 0) {
        uint32_t syscfg = set_bit(family.syscfg_clock_register, family.syscfg_clock_bit);
        REG(family.syscfg_memrmp) = (REG(family.syscfg_memrmp) & ~7u) | 1u; /* MEM_MODE = 001: system memory at 0 */
        restore_bit(family.syscfg_clock_register, family.syscfg_clock_bit, syscfg);
    }
    REG(SCB_VTOR) = family.system_memory;

    uint32_t stack = REG(family.system_memory);
    uint32_t entry = REG(family.system_memory + 4);
    /* CONTROL = 0: privileged, main stack, no FP context. Then PRIMASK back to 0: every NVIC line is
     * off, and the ROM's USB driver needs interrupts enabled. MSP last, then the jump: nothing may
     * touch the old stack in between. */
    __asm volatile(
        "msr control, %[zero]\n"
        "isb\n"
        "cpsie i\n"
        "msr msp, %[stack]\n"
        "bx %[entry]\n"
        :
        : [zero] "r"(0u), [stack] "r"(stack), [entry] "r"(entry)
        : "memory");
    __builtin_unreachable();
}

void dfh_boot_check(void)
{
    uint32_t rtc = set_bit(family.rtc_clock_register, family.rtc_clock_bit);
    uint32_t requested = REG(family.backup_register) == DFH_BOOTLOADER_MAGIC;
    restore_bit(family.rtc_clock_register, family.rtc_clock_bit, rtc);
    if (!requested) return;
    /* Cleared before the jump: whatever the ROM does, the next reset boots the application. */
    write_backup_register(0);
    jump_to_system_memory();
}

void dfh_enter_bootloader(void)
{
    __asm volatile("cpsid i" ::: "memory");
    write_backup_register(DFH_BOOTLOADER_MAGIC);
    dsb();
    REG(SCB_AIRCR) = AIRCR_VECTKEY | (REG(SCB_AIRCR) & AIRCR_PRIGROUP) | AIRCR_SYSRESETREQ;
    dsb();
    for (;;) {
    }
}
