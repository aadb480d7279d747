/* blinky-f407: the smallest realistic dfuhop application for an STM32F407 (STM32F4-Discovery: the
 * green LED on PD12). It reserves the dfuhop image descriptor (protocols/image-descriptor.md) and
 * points word 8 of its vector table at it; `dfuhop image stamp` fills it in after the build.
 * Registers: RM0090 §7.3.10 (RCC_AHB1ENR), §8.4 (GPIO). */
#include <stdint.h>

#define RCC_AHB1ENR (*(volatile uint32_t *)0x40023830u)
#define GPIOD_MODER (*(volatile uint32_t *)0x40020C00u)
#define GPIOD_ODR (*(volatile uint32_t *)0x40020C14u)

extern uint32_t _stack_top; /* from the linker script: the end of SRAM1/2 */

void reset_handler(void);

static void halt(void) {
    for (;;) {
    }
}

/* The 64 bytes `dfuhop image stamp` writes: zeros until then. */
__attribute__((section(".dfuhop_descriptor"), used)) const uint8_t dfuhop_descriptor[64] = {0};

/* Armv7-M vector table; word 8 (reserved by the architecture) holds the descriptor's address. */
__attribute__((section(".isr_vector"), used)) const void *const vector_table[16] = {
    &_stack_top,       /* 0: initial stack pointer */
    reset_handler,     /* 1: reset */
    halt,              /* 2: NMI */
    halt,              /* 3: HardFault */
    halt,              /* 4: MemManage */
    halt,              /* 5: BusFault */
    halt,              /* 6: UsageFault */
    0,                 /* 7: reserved */
    dfuhop_descriptor, /* 8: reserved; dfuhop's image descriptor */
    0,                 /* 9: reserved */
    0,                 /* 10: reserved */
    halt,              /* 11: SVCall */
    halt,              /* 12: DebugMonitor */
    0,                 /* 13: reserved */
    halt,              /* 14: PendSV */
    halt,              /* 15: SysTick */
};

void reset_handler(void) {
    RCC_AHB1ENR |= 1u << 3;                                 /* GPIODEN */
    GPIOD_MODER = (GPIOD_MODER & ~(3u << 24)) | (1u << 24); /* PD12: general-purpose output */
    for (;;) {
        GPIOD_ODR ^= 1u << 12;
        for (volatile uint32_t i = 0; i < 400000u; i++) {
        }
    }
}
