/*
 * The demo image's vector table and reset handler. Word 8 of the table (offset 0x20, a reserved
 * exception slot on Cortex-M) points at the image descriptor (spec §6).
 */
#include <stddef.h>
#include <stdint.h>

#include "dfuhop/app_protocol.h"
#include "dfuhop/boot_entry.h"

extern uint32_t _estack, _sidata, _sdata, _edata, _sbss, _ebss;
extern const dfh_image_descriptor dfh_descriptor;
int main(void);

typedef void (*handler)(void);

/* The first 16 words: the core's exceptions (ARMv7-M ARM B1.5.3). The demo enables no device interrupt. */
typedef struct {
    uint32_t *initial_stack;
    handler reset, nmi, hard_fault, mem_manage, bus_fault, usage_fault;
    uint32_t reserved7;
    const dfh_image_descriptor *descriptor; /* word 8 */
    uint32_t reserved9, reserved10;
    handler svcall, debug_monitor;
    uint32_t reserved13;
    handler pendsv, systick;
} vector_table;

_Static_assert(offsetof(vector_table, descriptor) == DFH_DESCRIPTOR_POINTER_OFFSET, "word 8 holds the descriptor's address");

/* Faults park the core where a debugger can see them. */
__attribute__((noreturn)) static void halt(void)
{
    for (;;) {
    }
}

__attribute__((noreturn)) static void reset_handler(void)
{
    /* Before anything else: the start-up check may hand the MCU to the ROM bootloader (spec §7). */
    dfh_boot_check();

    const uint32_t *from = &_sidata;
    for (uint32_t *to = &_sdata; to < &_edata;) *to++ = *from++;
    for (uint32_t *to = &_sbss; to < &_ebss;) *to++ = 0;
    main();
    halt();
}

__attribute__((section(".isr_vector"), used)) const vector_table dfh_vector_table = {
    .initial_stack = &_estack,
    .reset = reset_handler,
    .nmi = halt,
    .hard_fault = halt,
    .mem_manage = halt,
    .bus_fault = halt,
    .usage_fault = halt,
    .descriptor = &dfh_descriptor,
    .svcall = halt,
    .debug_monitor = halt,
    .pendsv = halt,
    .systick = halt,
};
