/* The Custom HID interface operations dfuhop's glue provides: pass it to USBD_CUSTOM_HID_RegisterInterface. */
#ifndef DFUHOP_STM32CUBE_H
#define DFUHOP_STM32CUBE_H

#include "usbd_customhid.h"

extern USBD_CUSTOM_HID_ItfTypeDef dfh_cube_fops;

#endif
