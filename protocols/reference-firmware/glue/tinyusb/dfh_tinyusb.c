/*
 * dfuhop's HID interface on TinyUSB (device stack, class HID, CFG_TUD_HID >= 1). The product's
 * configuration descriptor declares the HID interface with TUD_HID_INOUT_DESCRIPTOR (an OUT endpoint)
 * or TUD_HID_DESCRIPTOR (SET_REPORT only) and DFH_REPORT_DESCRIPTOR_LENGTH; this file supplies the
 * report descriptor and answers the reports. DFH_TINYUSB_INSTANCE selects the HID instance (default 0).
 * A product with other HID instances routes their callbacks itself and calls dfh_tinyusb_* from them.
 */
#include <string.h>

#include "tusb.h"

#include "dfuhop/app_protocol.h"
#include "dfuhop/boot_entry.h"
#include "dfuhop/report_descriptor.h"
#include "../dfh_glue.h"

#ifndef DFH_TINYUSB_INSTANCE
#define DFH_TINYUSB_INSTANCE 0u
#endif

/* Set once the ENTER_BOOTLOADER answer is queued; `sent` once TinyUSB reports it delivered. */
static volatile bool enter_pending;
static volatile bool enter_sent;
static volatile uint16_t enter_delay_ms;

uint8_t const *tud_hid_descriptor_report_cb(uint8_t instance)
{
    (void)instance;
    return dfh_report_descriptor;
}

/* A request: from the OUT endpoint TinyUSB passes report id 0 and the report id as the buffer's first
 * byte; from SET_REPORT(Output) it passes the id separately and strips it from the buffer. */
void tud_hid_set_report_cb(uint8_t instance, uint8_t report_id, hid_report_type_t report_type, uint8_t const *buffer,
                           uint16_t bufsize)
{
    if (instance != DFH_TINYUSB_INSTANCE || report_type == HID_REPORT_TYPE_FEATURE || report_type == HID_REPORT_TYPE_INPUT) return;
    uint8_t request[DFH_REPORT_LENGTH] = {0};
    size_t length = 0;
    if (report_id != 0) {
        request[length++] = report_id;
    }
    size_t copied = bufsize < DFH_REPORT_LENGTH - length ? bufsize : DFH_REPORT_LENGTH - length;
    memcpy(request + length, buffer, copied);
    length += copied;

    dfh_device device;
    memset(&device, 0, sizeof device);
    dfh_glue_describe_device(&device);
    uint8_t response[DFH_REPORT_LENGTH];
    dfh_outcome outcome = dfh_handle_request(&device, request, length, response);
    if (outcome == DFH_NO_REPLY) return;
    /* tud_hid_n_report puts the report id in front of the data itself. */
    if (!tud_hid_n_report(DFH_TINYUSB_INSTANCE, response[0], response + 1, DFH_REPORT_LENGTH - 1u)) return;
    if (outcome == DFH_REPLY_THEN_ENTER_BOOTLOADER) {
        enter_delay_ms = device.reset_delay_ms;
        enter_sent = false;
        enter_pending = true;
    }
}

/* Responses are interrupt IN reports only; a GET_REPORT is answered with a stall (length 0). */
uint16_t tud_hid_get_report_cb(uint8_t instance, uint8_t report_id, hid_report_type_t report_type, uint8_t *buffer,
                               uint16_t reqlen)
{
    (void)instance;
    (void)report_id;
    (void)report_type;
    (void)buffer;
    (void)reqlen;
    return 0;
}

void tud_hid_report_complete_cb(uint8_t instance, uint8_t const *report, uint16_t len)
{
    (void)report;
    (void)len;
    if (instance == DFH_TINYUSB_INSTANCE && enter_pending) enter_sent = true;
}

bool dfh_glue_poll(void (*delay_ms)(uint32_t ms))
{
    if (!enter_pending || !enter_sent) return false;
    delay_ms(enter_delay_ms);
    (void)dfh_enter_bootloader(); /* returns only on a line without an entry: carry on */
    enter_pending = false;
    enter_sent = false;
    return true;
}
