/*
 * dfuhop HID application protocol 1.0, device side (protocols/hid-app-protocol.md).
 * The command handler is a pure function from a request report to a response report: it knows
 * nothing of the USB stack, and reads flash only through the pointer the caller gives it.
 */
#ifndef DFUHOP_APP_PROTOCOL_H
#define DFUHOP_APP_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#define DFH_USAGE_PAGE 0xFFDFu
#define DFH_USAGE 0x0001u
#define DFH_REQUEST_REPORT_ID 0x01u
#define DFH_RESPONSE_REPORT_ID 0x02u
/* Report id byte + 63 data bytes: one full-speed interrupt packet (spec §2). */
#define DFH_REPORT_LENGTH 64u
#define DFH_PROTOCOL_MAJOR 1u
#define DFH_PROTOCOL_MINOR 0u
#define DFH_REQUEST_HEADER 5u
#define DFH_RESPONSE_HEADER 6u
#define DFH_MAX_REQUEST_PAYLOAD (DFH_REPORT_LENGTH - DFH_REQUEST_HEADER)
#define DFH_MAX_RESPONSE_PAYLOAD (DFH_REPORT_LENGTH - DFH_RESPONSE_HEADER)
#define DFH_MAX_SECTOR_RANGES 12u
#define DFH_MAX_RESET_DELAY_MS 1000u

/* ENTER_BOOTLOADER carries it; the application leaves it in the backup register (spec §5.5, §7). */
#define DFH_BOOTLOADER_MAGIC 0xB007104Du
/* "DFHP" as a little-endian word: the image descriptor's first four bytes (spec §6). */
#define DFH_DESCRIPTOR_MAGIC 0x50484644u
#define DFH_DESCRIPTOR_FORMAT 1u
/* Word 8 of the vector table (offset 0x20, a reserved exception slot) holds the descriptor's address. */
#define DFH_DESCRIPTOR_POINTER_OFFSET 0x20u

enum dfh_command {
    DFH_CMD_GET_INFO = 0x01,
    DFH_CMD_GET_DESCRIPTOR = 0x02,
    DFH_CMD_GET_SECTOR_CRCS = 0x03,
    DFH_CMD_CHECK_IMAGE = 0x04,
    DFH_CMD_ENTER_BOOTLOADER = 0x10,
};

enum dfh_status {
    DFH_STATUS_OK = 0x00,
    DFH_STATUS_UNKNOWN_COMMAND = 0x01,
    DFH_STATUS_BAD_LENGTH = 0x02,
    DFH_STATUS_BAD_ARGUMENT = 0x03,
    DFH_STATUS_BAD_ADDRESS = 0x04,
    DFH_STATUS_BAD_MAGIC = 0x05,
    DFH_STATUS_WRONG_UNIT = 0x06,
    DFH_STATUS_UNSUPPORTED_VERSION = 0x07,
    DFH_STATUS_NO_DESCRIPTOR = 0x08,
    DFH_STATUS_BUSY = 0x09,
};

enum dfh_capability {
    DFH_CAP_DESCRIPTOR_READ = 1u << 0,
    DFH_CAP_SECTOR_CRCS = 1u << 1,
    DFH_CAP_IMAGE_CHECK = 1u << 2,
};

enum dfh_descriptor_state {
    DFH_DESCRIPTOR_VALID = 0,
    DFH_DESCRIPTOR_ABSENT = 1,
    DFH_DESCRIPTOR_UNSUPPORTED = 2,
};

enum dfh_check_result {
    DFH_CHECK_INTACT = 0,
    DFH_CHECK_MISMATCH = 1,
    DFH_CHECK_OUT_OF_RANGE = 2,
};

/* The 64-byte image descriptor (spec §6). Little-endian, 4-byte aligned in flash. */
typedef struct __attribute__((packed, aligned(4))) {
    uint32_t magic;       /* DFH_DESCRIPTOR_MAGIC */
    uint16_t format;      /* DFH_DESCRIPTOR_FORMAT */
    uint16_t size;        /* sizeof(dfh_image_descriptor) */
    uint32_t product_id;
    uint16_t version[4];  /* major, minor, patch, build */
    uint32_t image_size;  /* bytes from the vector table the CRC covers */
    uint32_t image_crc;   /* CRC-32 (zlib) of the image with these four bytes read as zero */
    uint32_t flags;
    char name[32];        /* NUL-padded */
} dfh_image_descriptor;

_Static_assert(sizeof(dfh_image_descriptor) == 64, "the image descriptor is 64 bytes (spec §6)");
_Static_assert(offsetof(dfh_image_descriptor, image_crc) == 24, "image_crc sits at offset 24 (spec §6)");
_Static_assert(offsetof(dfh_image_descriptor, name) == 32, "name sits at offset 32 (spec §6)");

/* What the handler knows about the device it runs on. */
typedef struct {
    uint32_t flash_address;      /* where flash starts on the bus, e.g. 0x08000000 */
    uint32_t flash_size;         /* bytes */
    const uint8_t *flash;        /* the flash as this CPU reads it: (const uint8_t *)flash_address on target */
    uint32_t image_base;         /* the running image's vector table */
    uint8_t uid[12];             /* the 96-bit unique ID, in memory order */
    uint16_t dev_id;             /* DBGMCU_IDCODE DEV_ID */
    uint16_t rev_id;             /* DBGMCU_IDCODE REV_ID */
    uint16_t reset_delay_ms;     /* announced in the ENTER_BOOTLOADER answer, at most 1000 */
    uint8_t bootloader_blocked;  /* nonzero: ENTER_BOOTLOADER answers BUSY (the product is mid-task) */
} dfh_device;

typedef enum {
    DFH_NO_REPLY = 0,                    /* not a request of this protocol: send nothing */
    DFH_REPLY = 1,                       /* send `response` */
    DFH_REPLY_THEN_ENTER_BOOTLOADER = 2, /* send `response`, wait reset_delay_ms, then dfh_enter_bootloader() */
} dfh_outcome;

/*
 * Answers one output report (`length` bytes, report id first) into `response` (64 bytes, report id
 * first). Never reads outside `request[0..length)`, `response`, and the flash range the device names.
 */
dfh_outcome dfh_handle_request(const dfh_device *device, const uint8_t *request, size_t length,
                               uint8_t response[DFH_REPORT_LENGTH]);

#endif
