/*
 * The demo application: identifies itself from its descriptor and the MCU's ID registers, answers
 * dfuhop's HID requests, and resets into the ROM bootloader when asked. Built for G474 and F407,
 * version 1.0.0 and 2.0.0 (DEMO_VERSION_*), the images the README's upgrade command moves between.
 */
#include <stdint.h>
#include <string.h>

#include "dfuhop/app_protocol.h"
#include "dfuhop/boot_entry.h"
#include "port.h"

#define REG(address) (*(volatile uint32_t *)(uintptr_t)(address))

#if defined(DEMO_BOARD_G474)
#define UID_BASE 0x1FFF7590u   /* RM0440, device electronic signature */
#define FLASH_SIZE_REG 0x1FFF75E0u
#elif defined(DEMO_BOARD_F407)
#define UID_BASE 0x1FFF7A10u   /* RM0090, device electronic signature */
#define FLASH_SIZE_REG 0x1FFF7A22u
#else
#error "define DEMO_BOARD_G474 or DEMO_BOARD_F407"
#endif
#define DBGMCU_IDCODE 0xE0042000u
#define SCB_VTOR 0xE000ED08u
#define FLASH_ADDRESS 0x08000000u

#define SYST_CSR 0xE000E010u
#define SYST_RVR 0xE000E014u
#define SYST_CVR 0xE000E018u
/* The demo never changes the clock: it runs on the 16 MHz HSI both parts reset to. */
#define CORE_HZ 16000000u

/* The descriptor, right after the vector table. `dfuhop image stamp` fills in image_size and
 * image_crc after linking (and writes product id, version and name again from its arguments). */
__attribute__((section(".dfuhop_descriptor"), used)) const dfh_image_descriptor dfh_descriptor = {
    .magic = DFH_DESCRIPTOR_MAGIC,
    .format = DFH_DESCRIPTOR_FORMAT,
    .size = sizeof(dfh_image_descriptor),
    .product_id = DEMO_PRODUCT_ID,
    .version = {DEMO_VERSION_MAJOR, DEMO_VERSION_MINOR, DEMO_VERSION_PATCH, 0},
    .name = DEMO_NAME,
};

size_t __attribute__((weak)) dfh_port_receive(uint8_t report[DFH_REPORT_LENGTH])
{
    (void)report;
    return 0;
}

void __attribute__((weak)) dfh_port_send(const uint8_t report[DFH_REPORT_LENGTH]) { (void)report; }

void __attribute__((weak)) dfh_port_flush(void) {}

/* Busy-waits with SysTick, no interrupt. */
static void delay_ms(uint32_t ms)
{
    REG(SYST_RVR) = CORE_HZ / 1000u - 1u;
    REG(SYST_CVR) = 0;
    REG(SYST_CSR) = 5u; /* processor clock, enabled, no interrupt */
    for (uint32_t elapsed = 0; elapsed < ms;)
        if (REG(SYST_CSR) & (1u << 16)) elapsed++; /* COUNTFLAG: one millisecond passed */
    REG(SYST_CSR) = 0;
}

static void describe_device(dfh_device *device)
{
    device->flash_address = FLASH_ADDRESS;
    device->flash_size = (REG(FLASH_SIZE_REG) & 0xFFFFu) * 1024u;
    device->flash = (const uint8_t *)(uintptr_t)FLASH_ADDRESS;
    device->image_base = REG(SCB_VTOR) == 0 ? FLASH_ADDRESS : REG(SCB_VTOR); /* VTOR 0 aliases flash at boot */
    memcpy(device->uid, (const void *)(uintptr_t)UID_BASE, sizeof device->uid);
    uint32_t idcode = REG(DBGMCU_IDCODE);
    device->dev_id = (uint16_t)(idcode & 0xFFFu);
    device->rev_id = (uint16_t)(idcode >> 16);
    device->reset_delay_ms = 50;
    device->bootloader_blocked = 0;
}

int main(void)
{
    static dfh_device device;
    static uint8_t request[DFH_REPORT_LENGTH], response[DFH_REPORT_LENGTH];
    describe_device(&device);
    volatile uint32_t heartbeat = 0;
    for (;;) {
        size_t length = dfh_port_receive(request);
        if (length > 0) {
            dfh_outcome outcome = dfh_handle_request(&device, request, length, response);
            if (outcome != DFH_NO_REPLY) dfh_port_send(response);
            if (outcome == DFH_REPLY_THEN_ENTER_BOOTLOADER) {
                dfh_port_flush();
                delay_ms(device.reset_delay_ms);
                (void)dfh_enter_bootloader(); /* returns only on a line without an entry */
            }
        }
        /* The product's own work goes here; the two demo versions differ in their pace. */
        if (++heartbeat == DEMO_HEARTBEAT_LOOPS) heartbeat = 0;
    }
}
