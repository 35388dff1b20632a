/*
 * Base64 (RFC 4648 section 4, the standard alphabet), strict: the password file and SCRAM
 * (RFC 5802) must tell a damaged value from a good one, so the decoder accepts only the
 * canonical encoding of its bytes: no whitespace, no stray padding, and zero bits where the last
 * character carries fewer than six. Pure functions: no allocation, outputs into caller memory.
 */
#ifndef VS_BASE_BASE64_H
#define VS_BASE_BASE64_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Padding: '=' up to a multiple of four characters (RFC 4648), or none (libargon2's strings,
 * RFC 4648 section 3.2). */
enum vs_b64_pad { VS_B64_PAD, VS_B64_NOPAD };

/* Characters that n bytes encode to, without the NUL. */
#define VS_B64_LEN(n) (4 * (((size_t)(n) + 2) / 3))
size_t vs_b64_len(size_t n, enum vs_b64_pad pad);

/* Encodes in[0..n) into out, which needs vs_b64_len(n, pad) + 1 bytes; writes a NUL. Returns
 * the length without the NUL. */
size_t vs_b64_encode(const uint8_t *in, size_t n, char *out, enum vs_b64_pad pad);

/* Decodes s[0..len) into out (cap bytes). Returns the number of bytes decoded, or -1 when s is
 * not the canonical encoding of some bytes under `pad` or they do not fit in cap. */
ssize_t vs_b64_decode(const char *s, size_t len, uint8_t *out, size_t cap, enum vs_b64_pad pad);

#endif
