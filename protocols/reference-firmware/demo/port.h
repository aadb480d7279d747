/*
 * Where a product's USB stack meets the command handler. The demo has no USB stack: these are weak
 * and do nothing, so the image builds and runs (start-up check, descriptor, main loop) on a bare
 * board. A product defines them over its HID interface (usage page 0xFFDF, reports 1 out and 2 in).
 */
#ifndef DFUHOP_DEMO_PORT_H
#define DFUHOP_DEMO_PORT_H

#include <stddef.h>
#include <stdint.h>

#include "dfuhop/app_protocol.h"

/* Copies the next output report (report id first) into `report`; returns its length, 0 when none. */
size_t dfh_port_receive(uint8_t report[DFH_REPORT_LENGTH]);
/* Queues an input report (report id first) on the interrupt IN endpoint. */
void dfh_port_send(const uint8_t report[DFH_REPORT_LENGTH]);
/* Returns once every queued input report has been taken by the host (spec §5.5: answer, then reset). */
void dfh_port_flush(void);

#endif
