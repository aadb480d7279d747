/*
 * The HID report descriptor of dfuhop's application interface (protocols/hid-app-protocol.md §2.1):
 * usage page 0xFFDF, usage 1; output report 1 (requests) and input report 2 (responses), 63 data bytes
 * each. DFH_REPORT_DESCRIPTOR_BYTES is an initializer list, so a product can place the array where its
 * USB stack wants it (STM32Cube wants a non-const, aligned array; TinyUSB takes a const pointer).
 * The Swift side holds the same bytes (AppLinkProtocol.reportDescriptor); a test compares the two.
 */
#ifndef DFUHOP_REPORT_DESCRIPTOR_H
#define DFUHOP_REPORT_DESCRIPTOR_H

#include <stdint.h>

#define DFH_REPORT_DESCRIPTOR_LENGTH 29u

/* clang-format off */
#define DFH_REPORT_DESCRIPTOR_BYTES \
    0x06, 0xDF, 0xFF,  /* Usage Page (0xFFDF, vendor-defined) */ \
    0x09, 0x01,        /* Usage (0x01) */ \
    0xA1, 0x01,        /* Collection (Application) */ \
    0x15, 0x00,        /*   Logical Minimum (0) */ \
    0x26, 0xFF, 0x00,  /*   Logical Maximum (255) */ \
    0x75, 0x08,        /*   Report Size (8) */ \
    0x95, 0x3F,        /*   Report Count (63) */ \
    0x85, 0x01,        /*   Report ID (1) */ \
    0x09, 0x02,        /*   Usage (0x02) */ \
    0x91, 0x02,        /*   Output (Data, Variable, Absolute): requests */ \
    0x85, 0x02,        /*   Report ID (2) */ \
    0x09, 0x03,        /*   Usage (0x03) */ \
    0x81, 0x02,        /*   Input (Data, Variable, Absolute): responses */ \
    0xC0               /* End Collection */
/* clang-format on */

/* The descriptor as a ready array, for stacks that take a const pointer. */
static const uint8_t dfh_report_descriptor[DFH_REPORT_DESCRIPTOR_LENGTH] = {DFH_REPORT_DESCRIPTOR_BYTES};

#endif
