/*
 * dfuhop's HID interface on the STM32Cube USB Device library, Custom HID class. The product's
 * usbd_custom_hid_if.c registers dfh_cube_fops (below) with USBD_CUSTOM_HID_RegisterInterface instead of
 * the generated USBD_CustomHID_fops_FS, and usbd_conf.h sets
 *   USBD_CUSTOM_HID_REPORT_DESC_SIZE   29  (DFH_REPORT_DESCRIPTOR_LENGTH)
 *   USBD_CUSTOMHID_OUTREPORT_BUF_SIZE  64  (DFH_REPORT_LENGTH)
 *   CUSTOM_HID_EPIN_SIZE, CUSTOM_HID_EPOUT_SIZE  64
 * The class hands every output report (from the OUT endpoint or SET_REPORT) to OutEvent, with the
 * whole report, id first, in the class handle's Report_buf.
 */
#include <string.h>

#include "dfh_stm32cube.h"

#include "dfuhop/app_protocol.h"
#include "dfuhop/boot_entry.h"
#include "dfuhop/report_descriptor.h"
#include "../dfh_glue.h"

/* The USB device handle CubeMX generates in usb_device.c. */
extern USBD_HandleTypeDef hUsbDeviceFS;

/* Middleware releases from 2.6 re-arm the OUT endpoint only when the application asks
 * (USBD_CUSTOM_HID_ReceivePacket); older ones re-arm in their DataOut themselves: define it to 0 there. */
#ifndef DFH_CUBE_REARM_OUT
#define DFH_CUBE_REARM_OUT 1
#endif

/* The class reads the descriptor through a non-const pointer; aligned as the class's own arrays are. */
static uint8_t report_descriptor[DFH_REPORT_DESCRIPTOR_LENGTH] __attribute__((aligned(4))) = {DFH_REPORT_DESCRIPTOR_BYTES};
static uint8_t response[DFH_REPORT_LENGTH] __attribute__((aligned(4)));
static volatile bool enter_pending;
static volatile uint16_t enter_delay_ms;

static int8_t dfh_cube_init(void) { return (int8_t)USBD_OK; }

static int8_t dfh_cube_deinit(void) { return (int8_t)USBD_OK; }

static int8_t dfh_cube_out_event(uint8_t event_idx, uint8_t state)
{
    (void)event_idx;
    (void)state;
    USBD_CUSTOM_HID_HandleTypeDef *handle = (USBD_CUSTOM_HID_HandleTypeDef *)hUsbDeviceFS.pClassData;
    if (handle == NULL) return (int8_t)USBD_FAIL;
    dfh_device device;
    memset(&device, 0, sizeof device);
    dfh_glue_describe_device(&device);
    dfh_outcome outcome = dfh_handle_request(&device, handle->Report_buf, DFH_REPORT_LENGTH, response);
    if (outcome != DFH_NO_REPLY && USBD_CUSTOM_HID_SendReport(&hUsbDeviceFS, response, DFH_REPORT_LENGTH) == (uint8_t)USBD_OK
        && outcome == DFH_REPLY_THEN_ENTER_BOOTLOADER) {
        enter_delay_ms = device.reset_delay_ms;
        enter_pending = true;
    }
#if DFH_CUBE_REARM_OUT
    if (USBD_CUSTOM_HID_ReceivePacket(&hUsbDeviceFS) != (uint8_t)USBD_OK) return (int8_t)USBD_FAIL;
#endif
    return (int8_t)USBD_OK;
}

USBD_CUSTOM_HID_ItfTypeDef dfh_cube_fops = {
    report_descriptor,
    dfh_cube_init,
    dfh_cube_deinit,
    dfh_cube_out_event,
};

/* The class marks the IN endpoint idle again (state CUSTOM_HID_IDLE) once the host has taken the report. */
bool dfh_glue_poll(void (*delay_ms)(uint32_t ms))
{
    if (!enter_pending) return false;
    USBD_CUSTOM_HID_HandleTypeDef *handle = (USBD_CUSTOM_HID_HandleTypeDef *)hUsbDeviceFS.pClassData;
    if (handle != NULL && handle->state != CUSTOM_HID_IDLE) return false;
    delay_ms(enter_delay_ms);
    (void)dfh_enter_bootloader(); /* returns only on a line without an entry: carry on */
    enter_pending = false;
    return true;
}
