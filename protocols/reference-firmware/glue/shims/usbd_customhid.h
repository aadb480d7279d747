/*
 * NOT ST's USB Device library. A declaration-only stand-in with the names, members and signatures
 * glue/stm32cube/dfh_stm32cube.c uses, as ST's middleware declares them (Core/Inc/usbd_def.h and
 * Class/CustomHID/Inc/usbd_customhid.h), so CI can compile the glue where no STM32Cube is packaged.
 * The real structures have more members; the glue only names the ones below. A product compiles the
 * glue against its CubeMX-generated tree and never sees this file.
 */
#ifndef DFUHOP_SHIM_USBD_CUSTOMHID_H
#define DFUHOP_SHIM_USBD_CUSTOMHID_H

#include <stdint.h>

#ifndef USBD_CUSTOMHID_OUTREPORT_BUF_SIZE
#define USBD_CUSTOMHID_OUTREPORT_BUF_SIZE 64U
#endif

typedef enum {
    USBD_OK = 0U,
    USBD_BUSY,
    USBD_EMEM,
    USBD_FAIL,
} USBD_StatusTypeDef;

typedef struct _USBD_HandleTypeDef {
    void *pClassData;
    void *pUserData;
} USBD_HandleTypeDef;

typedef enum {
    CUSTOM_HID_IDLE = 0U,
    CUSTOM_HID_BUSY,
} CUSTOM_HID_StateTypeDef;

typedef struct _USBD_CUSTOM_HID_Itf {
    uint8_t *pReport;
    int8_t (*Init)(void);
    int8_t (*DeInit)(void);
    int8_t (*OutEvent)(uint8_t event_idx, uint8_t state);
} USBD_CUSTOM_HID_ItfTypeDef;

typedef struct {
    uint8_t Report_buf[USBD_CUSTOMHID_OUTREPORT_BUF_SIZE];
    uint32_t Protocol;
    uint32_t IdleState;
    uint32_t AltSetting;
    uint32_t IsReportAvailable;
    CUSTOM_HID_StateTypeDef state;
} USBD_CUSTOM_HID_HandleTypeDef;

uint8_t USBD_CUSTOM_HID_SendReport(USBD_HandleTypeDef *pdev, uint8_t *report, uint16_t len);
uint8_t USBD_CUSTOM_HID_ReceivePacket(USBD_HandleTypeDef *pdev);
uint8_t USBD_CUSTOM_HID_RegisterInterface(USBD_HandleTypeDef *pdev, USBD_CUSTOM_HID_ItfTypeDef *fops);

#endif
