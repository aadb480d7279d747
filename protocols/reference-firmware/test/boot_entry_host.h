/*
 * Included by src/boot_entry.c when built with -DDFH_HOST_TEST (test/boot_entry_host.c): every
 * register access goes to a simulated register file that logs it, and the primitives that cannot run
 * on the host (barriers, interrupt masking, the jump into the ROM, the wait for a reset) are recorded.
 */
#ifndef DFUHOP_BOOT_ENTRY_HOST_H
#define DFUHOP_BOOT_ENTRY_HOST_H

#include <stdint.h>

volatile uint32_t *dfh_sim_register(uint32_t address);
void dfh_sim_barrier(void);
void dfh_sim_interrupts_off(void);
__attribute__((noreturn)) void dfh_sim_start_rom(uint32_t stack, uint32_t entry);
__attribute__((noreturn)) void dfh_sim_wait_for_reset(void);

#define REG(address) (*dfh_sim_register(address))
#define DFH_RAMFUNC __attribute__((noinline, noreturn))
#define IN_SRAM(address) ((void)(address), 1) /* the host's code is wherever it is */
#define dsb dfh_sim_barrier
#define isb dfh_sim_barrier
#define interrupts_off dfh_sim_interrupts_off
#define start_rom dfh_sim_start_rom
#define wait_for_reset dfh_sim_wait_for_reset

#endif
