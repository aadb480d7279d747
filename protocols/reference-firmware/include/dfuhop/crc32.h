/* CRC-32 as zlib computes it: reflected polynomial 0xEDB88320, init and final XOR 0xFFFFFFFF. */
#ifndef DFUHOP_CRC32_H
#define DFUHOP_CRC32_H

#include <stddef.h>
#include <stdint.h>

/* Start with dfh_crc32_begin(), feed bytes, finish with dfh_crc32_end(): "123456789" gives 0xCBF43926. */
static inline uint32_t dfh_crc32_begin(void) { return 0xFFFFFFFFu; }
uint32_t dfh_crc32_update(uint32_t crc, const uint8_t *bytes, size_t length);
static inline uint32_t dfh_crc32_end(uint32_t crc) { return ~crc; }

#endif
