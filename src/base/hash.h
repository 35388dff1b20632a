/*
 * Hashing for tables whose keys come from clients: client ids, topic levels, filters. A client
 * that knows the hash can choose keys that all land in one slot and turn every lookup into a
 * scan of them (hash flooding), so every table hashes with a secret random seed of its own.
 *
 * The function is a multiply-xorshift over eight bytes per step: fast for short keys (a few
 * cycles per level name, where byte-at-a-time FNV costs a multiply per byte), and with a secret
 * seed an attacker cannot aim keys at a slot. It is not a cryptographic MAC.
 */
#ifndef VS_BASE_HASH_H
#define VS_BASE_HASH_H

#include <stddef.h>
#include <stdint.h>

/* A random seed, never 0 (getrandom; early in boot, without entropy, a weaker time-based one). */
uint64_t vs_hash_seed(void);
/* Hash of p[0..len) under seed. Never 0, so tables may use 0 for an empty slot. */
uint64_t vs_hash64(uint64_t seed, const void *p, size_t len);

#endif
