/*
 * One level of a topic trie, and the table of its exact-name children. Internal to src/topic/:
 * the subscription tree (tree.c) and the retained store (retain.c) embed a struct vs_level as the
 * first member of their nodes.
 *
 * The children table is intrusive: it holds pointers to the child levels, and each child keeps
 * its own name, length and hash, so a lookup allocates nothing and compares a 32-bit hash before
 * any bytes. Open addressing with linear probing and backward-shift deletion (no tombstones), so
 * a table that churns does not fill with dead slots; the table shrinks when it falls below 1/8
 * full and is freed when empty. A level with one or two children (most levels of a real trie:
 * "dev/42/temp") keeps them in a small array inside the level and allocates no table at all.
 * (On bench/match's 100k-subscription tree a match is memory-bound, ~600 ns, about two cache
 * misses per level visited; neither the inline array nor hashes kept in the slots moved that
 * measurably on our noisy 2-core machine. They save allocations and probe work, not misses.)
 *
 * Every level keeps a parent pointer. That lets the tree and the store walk the trie with no
 * stack at all: a walk goes back up through parents, and vs_level_slot_of() tells where to
 * resume among a parent's children. Walks therefore never allocate and never recurse, however
 * deep a topic is.
 *
 * Not thread-safe: the owner of the trie locks.
 */
#ifndef VS_TOPIC_LEVEL_H
#define VS_TOPIC_LEVEL_H

#include <stddef.h>
#include <stdint.h>

/* A slot of a children table: the child and a copy of its hash, so that a probe that meets
 * another child rejects it without touching that child's memory. */
struct vs_level_slot {
	struct vs_level *child; /* NULL = empty */
	uint32_t hash;
};

struct vs_level {
	struct vs_level *parent; /* NULL for a root */
	const char *name; /* this level's bytes (not NUL-terminated), owned by the container */
	uint32_t len;	  /* bytes of name (a level is at most 65535 bytes) */
	uint32_t hash;	  /* vs_level_hash(seed, name, len), set before vs_level_attach() */
	struct vs_level_slot *slot;    /* exact-name children: cap slots; NULL when cap 0 */
	uint32_t cap;		       /* 0 or a power of two; 2 with slot == small while inline */
	uint32_t n;		       /* occupied slots */
	struct vs_level_slot small[2]; /* the table of a level with one or two children */
};

/* A per-trie random seed, so that level names chosen to collide cannot be precomputed. */
uint64_t vs_level_seed(void);
uint32_t vs_level_hash(uint64_t seed, const char *s, size_t len);

/* Returns p's child named s[0..len) (hash = vs_level_hash() of it), or NULL. */
struct vs_level *vs_level_find(const struct vs_level *p, const char *s, size_t len, uint32_t hash);

/* Adds c (name, len and hash set, not already a child) to p's children and sets c->parent.
 * Returns 0 or -ENOMEM (p unchanged). */
int vs_level_attach(struct vs_level *p, struct vs_level *c);

/* Removes child c from p's children. Never fails (a shrink that cannot allocate is skipped). */
void vs_level_detach(struct vs_level *p, struct vs_level *c);

/* Iteration over children: the child in the first occupied slot at or after i, with *i set to
 * its slot; NULL when none is left. Resume with i = slot + 1, or with vs_level_slot_of() + 1
 * after a walk has been below the child. */
struct vs_level *vs_level_next(const struct vs_level *p, uint32_t *i);
/* The slot of child c in p's table (c must be a child of p). */
uint32_t vs_level_slot_of(const struct vs_level *p, const struct vs_level *c);

/* Frees the children table (not the children). */
void vs_level_fini(struct vs_level *l);

#endif
