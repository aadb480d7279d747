/*
 * NOT TinyUSB. A declaration-only stand-in with the names and signatures glue/tinyusb/dfh_tinyusb.c uses,
 * as TinyUSB declares them (src/class/hid/hid.h, src/class/hid/hid_device.h, release 0.16), so CI can
 * compile the glue where no TinyUSB is packaged. A product compiles the glue against its real TinyUSB
 * (its include path comes first) and never sees this file.
 */
#ifndef DFUHOP_SHIM_TUSB_H
#define DFUHOP_SHIM_TUSB_H

#include <stdbool.h>
#include <stdint.h>

typedef enum {
    HID_REPORT_TYPE_INVALID = 0,
    HID_REPORT_TYPE_INPUT,
    HID_REPORT_TYPE_OUTPUT,
    HID_REPORT_TYPE_FEATURE,
} hid_report_type_t;

bool tud_hid_n_ready(uint8_t instance);
bool tud_hid_n_report(uint8_t instance, uint8_t report_id, void const *report, uint16_t len);

/* Callbacks the application defines. */
uint8_t const *tud_hid_descriptor_report_cb(uint8_t instance);
uint16_t tud_hid_get_report_cb(uint8_t instance, uint8_t report_id, hid_report_type_t report_type, uint8_t *buffer,
                               uint16_t reqlen);
void tud_hid_set_report_cb(uint8_t instance, uint8_t report_id, hid_report_type_t report_type, uint8_t const *buffer,
                           uint16_t bufsize);
void tud_hid_report_complete_cb(uint8_t instance, uint8_t const *report, uint16_t len);

#endif
