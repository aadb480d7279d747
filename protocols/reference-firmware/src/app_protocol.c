/* dfuhop HID application protocol 1.0, device side: protocols/hid-app-protocol.md §3.3 and §5. */
#include "dfuhop/app_protocol.h"

#include <string.h>

#include "dfuhop/crc32.h"

/* Offsets inside the descriptor (spec §6). */
enum { DESC_FORMAT = 4, DESC_SIZE = 6, DESC_PRODUCT_ID = 8, DESC_IMAGE_SIZE = 20, DESC_IMAGE_CRC = 24 };

static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* Whether [address, address + length) lies in flash; 64-bit so a hostile range cannot wrap. */
static int in_flash(const dfh_device *d, uint64_t address, uint64_t length)
{
    return address >= d->flash_address && address + length <= (uint64_t)d->flash_address + d->flash_size;
}

static const uint8_t *flash_at(const dfh_device *d, uint32_t address) { return d->flash + (address - d->flash_address); }

/* Finds the running image's descriptor (spec §6): word 8 of the vector table, 4-byte aligned, in flash. */
static enum dfh_descriptor_state find_descriptor(const dfh_device *d, uint32_t *address)
{
    uint64_t pointer = (uint64_t)d->image_base + DFH_DESCRIPTOR_POINTER_OFFSET;
    if (!in_flash(d, pointer, 4)) return DFH_DESCRIPTOR_ABSENT;
    uint32_t at = get32(flash_at(d, (uint32_t)pointer));
    if (at % 4 != 0 || !in_flash(d, at, sizeof(dfh_image_descriptor))) return DFH_DESCRIPTOR_ABSENT;
    const uint8_t *desc = flash_at(d, at);
    if (get32(desc) != DFH_DESCRIPTOR_MAGIC) return DFH_DESCRIPTOR_ABSENT;
    *address = at;
    if (get16(desc + DESC_FORMAT) != DFH_DESCRIPTOR_FORMAT || get16(desc + DESC_SIZE) != sizeof(dfh_image_descriptor))
        return DFH_DESCRIPTOR_UNSUPPORTED;
    return DFH_DESCRIPTOR_VALID;
}

/* Starts a response echoing the request's sequence and command bytes (spec §3.2). */
static dfh_outcome answer(const uint8_t *request, uint8_t status, uint8_t *response)
{
    memset(response, 0, DFH_REPORT_LENGTH);
    response[0] = DFH_RESPONSE_REPORT_ID;
    response[1] = DFH_PROTOCOL_MAJOR;
    response[2] = request[2];
    response[3] = request[3];
    response[4] = status;
    response[5] = 0;
    return DFH_REPLY;
}

static uint8_t *payload_of(uint8_t *response, uint8_t length)
{
    response[5] = length;
    return response + DFH_RESPONSE_HEADER;
}

static dfh_outcome get_info(const dfh_device *d, const uint8_t *request, uint8_t *response)
{
    uint32_t desc_address = 0;
    enum dfh_descriptor_state state = find_descriptor(d, &desc_address);
    answer(request, DFH_STATUS_OK, response);
    uint8_t *p = payload_of(response, 52);
    p[0] = DFH_PROTOCOL_MAJOR;
    p[1] = DFH_PROTOCOL_MINOR;
    put16(p + 2, DFH_CAP_DESCRIPTOR_READ | DFH_CAP_SECTOR_CRCS | DFH_CAP_IMAGE_CHECK);
    put16(p + 4, d->dev_id);
    put16(p + 6, d->rev_id);
    memcpy(p + 8, d->uid, sizeof d->uid);
    put32(p + 20, d->image_base);
    put16(p + 24, (uint16_t)(d->flash_size / 1024u));
    p[26] = (uint8_t)state;
    p[27] = 0;
    if (state == DFH_DESCRIPTOR_VALID) {
        /* product id, version, image size, image CRC, flags: descriptor bytes 8..31 as they are. */
        memcpy(p + 28, flash_at(d, desc_address) + DESC_PRODUCT_ID, 24);
    }
    return DFH_REPLY;
}

static dfh_outcome get_descriptor(const dfh_device *d, const uint8_t *request, uint8_t *response)
{
    uint8_t offset = request[5], length = request[6];
    if (length == 0 || offset + length > (int)sizeof(dfh_image_descriptor))
        return answer(request, DFH_STATUS_BAD_ARGUMENT, response);
    uint32_t desc_address = 0;
    if (find_descriptor(d, &desc_address) != DFH_DESCRIPTOR_VALID)
        return answer(request, DFH_STATUS_NO_DESCRIPTOR, response);
    answer(request, DFH_STATUS_OK, response);
    memcpy(payload_of(response, length), flash_at(d, desc_address) + offset, length);
    return DFH_REPLY;
}

static dfh_outcome get_sector_crcs(const dfh_device *d, const uint8_t *request, uint8_t *response)
{
    uint32_t address = get32(request + 5), size = get32(request + 9);
    uint8_t count = request[13];
    if (size == 0 || count == 0 || count > DFH_MAX_SECTOR_RANGES) return answer(request, DFH_STATUS_BAD_ARGUMENT, response);
    if (!in_flash(d, address, (uint64_t)size * count)) return answer(request, DFH_STATUS_BAD_ADDRESS, response);
    answer(request, DFH_STATUS_OK, response);
    uint8_t *p = payload_of(response, (uint8_t)(9 + 4 * count));
    memcpy(p, request + 5, 9);
    for (uint8_t i = 0; i < count; i++) {
        const uint8_t *range = flash_at(d, address + (uint32_t)i * size);
        put32(p + 9 + 4 * i, dfh_crc32_end(dfh_crc32_update(dfh_crc32_begin(), range, size)));
    }
    return DFH_REPLY;
}

static dfh_outcome check_image(const dfh_device *d, const uint8_t *request, uint8_t *response)
{
    uint32_t desc_address = 0;
    if (find_descriptor(d, &desc_address) != DFH_DESCRIPTOR_VALID)
        return answer(request, DFH_STATUS_NO_DESCRIPTOR, response);
    const uint8_t *desc = flash_at(d, desc_address);
    uint32_t image_size = get32(desc + DESC_IMAGE_SIZE), stored = get32(desc + DESC_IMAGE_CRC);
    uint8_t result = DFH_CHECK_OUT_OF_RANGE;
    uint32_t computed = 0;
    if (in_flash(d, d->image_base, image_size)) {
        /* The CRC covers the image with the descriptor's own CRC field read as zero (spec §6). */
        static const uint8_t zero[4] = {0, 0, 0, 0};
        uint64_t field = (uint64_t)desc_address + DESC_IMAGE_CRC;
        uint64_t end = (uint64_t)d->image_base + image_size;
        const uint8_t *image = flash_at(d, d->image_base);
        uint32_t crc = dfh_crc32_begin();
        if (field >= d->image_base && field + 4 <= end) {
            size_t before = (size_t)(field - d->image_base);
            crc = dfh_crc32_update(crc, image, before);
            crc = dfh_crc32_update(crc, zero, 4);
            crc = dfh_crc32_update(crc, image + before + 4, image_size - before - 4);
        } else {
            crc = dfh_crc32_update(crc, image, image_size);
        }
        computed = dfh_crc32_end(crc);
        result = computed == stored ? DFH_CHECK_INTACT : DFH_CHECK_MISMATCH;
    }
    answer(request, DFH_STATUS_OK, response);
    uint8_t *p = payload_of(response, 16);
    p[0] = result;
    put32(p + 4, stored);
    put32(p + 8, computed);
    put32(p + 12, image_size);
    return DFH_REPLY;
}

static dfh_outcome enter_bootloader(const dfh_device *d, const uint8_t *request, uint8_t *response)
{
    if (get32(request + 5) != DFH_BOOTLOADER_MAGIC) return answer(request, DFH_STATUS_BAD_MAGIC, response);
    if (memcmp(request + 13, d->uid, sizeof d->uid) != 0) return answer(request, DFH_STATUS_WRONG_UNIT, response);
    if (d->bootloader_blocked) return answer(request, DFH_STATUS_BUSY, response);
    answer(request, DFH_STATUS_OK, response);
    uint8_t *p = payload_of(response, 6);
    memcpy(p, request + 9, 4); /* the nonce */
    uint16_t delay = d->reset_delay_ms > DFH_MAX_RESET_DELAY_MS ? DFH_MAX_RESET_DELAY_MS : d->reset_delay_ms;
    put16(p + 4, delay);
    return DFH_REPLY_THEN_ENTER_BOOTLOADER;
}

/* The checks in the order of spec §3.3. */
dfh_outcome dfh_handle_request(const dfh_device *d, const uint8_t *request, size_t length, uint8_t response[DFH_REPORT_LENGTH])
{
    if (length < DFH_REQUEST_HEADER || length > DFH_REPORT_LENGTH || request[0] != DFH_REQUEST_REPORT_ID) return DFH_NO_REPLY;
    if (request[1] != DFH_PROTOCOL_MAJOR) return answer(request, DFH_STATUS_UNSUPPORTED_VERSION, response);
    size_t payload = request[4];
    if (payload > DFH_MAX_REQUEST_PAYLOAD || DFH_REQUEST_HEADER + payload > length)
        return answer(request, DFH_STATUS_BAD_LENGTH, response);

    size_t expected;
    dfh_outcome (*handler)(const dfh_device *, const uint8_t *, uint8_t *);
    switch (request[3]) {
    case DFH_CMD_GET_INFO: expected = 0; handler = get_info; break;
    case DFH_CMD_GET_DESCRIPTOR: expected = 2; handler = get_descriptor; break;
    case DFH_CMD_GET_SECTOR_CRCS: expected = 9; handler = get_sector_crcs; break;
    case DFH_CMD_CHECK_IMAGE: expected = 0; handler = check_image; break;
    case DFH_CMD_ENTER_BOOTLOADER: expected = 20; handler = enter_bootloader; break;
    default: return answer(request, DFH_STATUS_UNKNOWN_COMMAND, response);
    }
    if (payload != expected) return answer(request, DFH_STATUS_BAD_LENGTH, response);
    return handler(d, request, response);
}
