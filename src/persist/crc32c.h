/*
 * CRC32C (Castagnoli), the checksum of every record and file header in the store. It detects
 * all burst errors up to 32 bits and is what ext4, btrfs and iSCSI use for the same job. On x86
 * with SSE4.2 the crc32 instruction does 8 bytes per step; elsewhere a 256-entry table does one.
 */
#ifndef VS_PERSIST_CRC32C_H
#define VS_PERSIST_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Continues crc (0 to start) over p[0..n). crc32c("123456789") == 0xe3069283. */
uint32_t vs_crc32c(uint32_t crc, const void *p, size_t n);

#endif
