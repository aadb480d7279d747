/*
 * What the USB-stack glue (glue/tinyusb, glue/stm32cube) needs from the product, and what it offers.
 * The glue turns the stack's callbacks into calls of dfh_handle_request and sends the answer; it asks
 * the product for its dfh_device (UID, ID codes, flash) and leaves the reset into the ROM to the
 * product's main loop, because it must happen after the answer has left the IN endpoint (spec §5.5).
 */
#ifndef DFUHOP_GLUE_H
#define DFUHOP_GLUE_H

#include <stdbool.h>
#include <stdint.h>

#include "dfuhop/app_protocol.h"

/* Hook the product implements: fills in the device description for one request (called per request,
 * so `bootloader_blocked` can follow the product's state). */
void dfh_glue_describe_device(dfh_device *device);

/* Call from the main loop (not from an interrupt). Once an ENTER_BOOTLOADER answer has been sent
 * completely, waits the announced delay with the product's `delay_ms` and calls dfh_enter_bootloader(),
 * which does not return. Returns false while there is nothing to do. */
bool dfh_glue_poll(void (*delay_ms)(uint32_t ms));

#endif
