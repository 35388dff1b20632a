/*
 * The on-disk format shared by the writer (store.c), the reader (scan.c) and the check tool.
 * Internal to src/persist. docs/persistence.md describes the same layout for humans.
 *
 * File header (20 bytes): "VSDB", kind ('L' log segment, 'S' snapshot), format version (1),
 * two zero bytes, epoch (u64 LE), CRC32C of the previous 16 bytes (u32 LE).
 * Record: body length (u32 LE), type (u8), version (u8), CRC32C (u32 LE) of the first six header
 * bytes followed by the body, then the body. All integers are little-endian.
 */
#ifndef VS_PERSIST_FORMAT_H
#define VS_PERSIST_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "persist/store.h"

#define VS_FILE_HDR_SIZE  20
#define VS_FILE_FORMAT	  1
#define VS_FILE_KIND_LOG  'L'
#define VS_FILE_KIND_SNAP 'S'
#define VS_REC_HDR_SIZE	  10
/* Largest body accepted: a 256 MiB payload plus every other field at its limit. A length above
 * this is corruption, not a record. */
#define VS_REC_MAX_BODY (300u << 20)
/* The last record of a sealed snapshot: body = u64 count of records before it. Never passed to
 * replay callbacks. */
#define VS_REC_SNAP_END 255

/* Writes a file header for kind/epoch into out[VS_FILE_HDR_SIZE]. */
void vs_file_hdr_encode(uint8_t *out, char kind, uint64_t epoch);

/* Checks a file header. Returns 0 and sets *epoch, VS_EPROTO for a damaged header (bad magic,
 * CRC or kind), or VS_ETOOBIG for a valid header of a newer format version. */
int vs_file_hdr_check(const uint8_t *p, size_t len, char kind, uint64_t *epoch, unsigned *format);

/* Appends the snapshot end record (count records before it). Returns 0 or -ENOMEM. */
int vs_rec_append_snap_end(struct vs_store_buf *b, uint64_t count);

/* How a scanned file ended. */
enum vs_scan_end {
	VS_SCAN_CLEAN = 0,   /* every byte belonged to a valid record */
	VS_SCAN_TORN = 1,    /* garbage/zeros/short record at the end, nothing valid after it */
	VS_SCAN_CORRUPT = 2, /* a bad record with valid-looking records after it */
	VS_SCAN_BADHDR = 3,  /* the file header is damaged or missing */
	VS_SCAN_NEWER = 4,   /* the file has a newer format version than this build reads */
};

struct vs_scan {
	enum vs_scan_end end;
	uint64_t epoch;	  /* from the header */
	unsigned format;  /* from the header */
	size_t valid_end; /* offset just after the last valid record (or the header) */
	size_t size;	  /* bytes scanned */
	uint64_t records; /* valid known records passed to fn */
	uint64_t per_type[VS_REC_TYPE_MAX + 1];
	uint64_t unknown;      /* valid records of unknown type or newer version */
	uint64_t after;	       /* valid-looking records found after the damage (not passed to fn) */
	bool sealed;	       /* snapshot: an end record was found ... */
	uint64_t sealed_count; /* ... claiming this many records before it */
	unsigned last_unknown_type, last_unknown_version;
};

/* Scans a whole file image buf[0..len) of the given kind, calling fn for every valid known
 * record up to the first damage. Returns 0, fn's negative value, or -ENOMEM (no memory to
 * decode a record's subscription identifiers); on a negative return the scan stopped and *out
 * says nothing about damage: nothing may be repaired on its word. */
int vs_scan_file(const uint8_t *buf, size_t len, char kind, vs_store_replay_fn fn, void *ctx,
		 struct vs_scan *out);

/* Whether the bytes of buf after sc->valid_end (a torn tail) are all zeros: space written ahead
 * by policy batch (store.c), or a write whose data never landed. */
bool vs_scan_zero_tail(const uint8_t *buf, const struct vs_scan *sc);

/* ---- Files in a store directory ---- */

struct vs_store_file {
	char kind; /* VS_FILE_KIND_LOG, VS_FILE_KIND_SNAP, or 'T' for a snap-*.tmp */
	uint64_t epoch;
	char name[48];
};

/* Names: log-<epoch>.vlog, snap-<epoch>.vdb, snap-<epoch>.tmp, epoch zero-padded to 8 digits. */
void vs_store_file_name(char *out, size_t n, char kind, uint64_t epoch);

/* Lists the store files of dirfd sorted by (epoch, kind), ignoring anything else (lock,
 * *.corrupt-*). Returns the count (the array in *out, free it) or -errno. */
int vs_store_list(int dirfd, struct vs_store_file **out);

/* Reads the whole file name in dirfd into a malloc'd buffer. Returns 0 or -errno. */
int vs_store_read_file(int dirfd, const char *name, uint8_t **buf, size_t *len);

#endif
