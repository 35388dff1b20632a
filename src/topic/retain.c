/*
 * The retained-message store (see retain.h for the contract).
 *
 * A trie of topic levels (level.h), one node per level of every topic that has a retained
 * message; each node holds at most one message and only its own level's name, so a topic costs
 * memory linear in its length however many levels it has (a node used to copy the whole topic
 * prefix, which made one 32,768-level topic cost a gigabyte). foreach rebuilds each topic in a
 * buffer as it walks. Topics have no wildcards, so, unlike the subscription
 * tree, here the filter carries them: a match walks the trie along the filter, visiting one
 * child for an exact level, every child for '+', and the whole subtree for '#'.
 *
 * Like the tree's match, the walks use no stack: they climb back through parent pointers and
 * resume among a parent's children at vs_level_slot_of() + 1. Nothing is allocated while
 * matching, and depth costs no stack.
 *
 * Invariants: every node other than the root holds a message or has children (set(NULL) frees
 * the emptied path); count is the number of nodes holding a message.
 */
#include "topic/retain.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "topic/level.h"

struct rnode {
	struct vs_level lv; /* first: parent link, children, this level's name (in name[]) */
	void *msg;	    /* the retained message (the store holds a reference), or NULL */
	char name[];	    /* this level's name only (lv.len bytes, not NUL-terminated) */
};

struct vs_retain {
	pthread_rwlock_t lock;
	struct rnode *root; /* the level above the first; holds no message */
	uint64_t seed;
	atomic_size_t count;
	atomic_size_t bytes;		 /* sum of size(msg) of the stored messages */
	size_t (*size)(const void *msg); /* or NULL: bytes stays 0 */
	uint64_t version;		 /* bumped by every set, under the write lock */
	void (*ref)(void *msg);
	void (*unref)(void *msg);
};

static struct rnode *parent_of(const struct rnode *n)
{
	return (struct rnode *)n->lv.parent;
}

/* End of the level starting at start: the next '/' or len. */
static size_t level_end(const char *s, size_t len, size_t start)
{
	const char *slash = memchr(s + start, '/', len - start);
	return slash ? (size_t)(slash - s) : len;
}

static size_t level_start(const char *s, size_t end)
{
	const char *slash = memrchr(s, '/', end);
	return slash ? (size_t)(slash - s) + 1 : 0;
}

/* A node for the level name[0..len). */
static struct rnode *node_new(const char *name, size_t len, uint32_t hash)
{
	struct rnode *n = calloc(1, sizeof(*n) + len);

	if (!n)
		return NULL;
	memcpy(n->name, name, len);
	n->lv.name = n->name;
	n->lv.len = (uint32_t)len;
	n->lv.hash = hash;
	return n;
}

static void node_free(struct vs_retain *r, struct rnode *n)
{
	if (n->msg)
		r->unref(n->msg);
	vs_level_fini(&n->lv);
	free(n);
}

/* Frees n and its ancestors while they hold nothing. */
static void prune(struct vs_retain *r, struct rnode *n)
{
	struct rnode *p;

	while (n != r->root && !n->msg && !n->lv.n) {
		p = parent_of(n);
		vs_level_detach(&p->lv, &n->lv);
		node_free(r, n);
		n = p;
	}
}

/* The node of topic, created with its path if create is set. NULL if absent or -ENOMEM (nodes
 * created by the failed call are freed again). */
static struct rnode *find_node(struct vs_retain *r, const char *topic, size_t len, bool create)
{
	struct rnode *n = r->root, *c;
	size_t start = 0, end;
	uint32_t hash;

	for (;;) {
		end = level_end(topic, len, start);
		hash = vs_level_hash(r->seed, topic + start, end - start);
		c = (struct rnode *)vs_level_find(&n->lv, topic + start, end - start, hash);
		if (!c && create) {
			c = node_new(topic + start, end - start, hash);
			if (c && vs_level_attach(&n->lv, &c->lv) < 0) {
				free(c);
				c = NULL;
			}
			if (!c) {
				prune(r, n);
				return NULL;
			}
		}
		if (!c || end == len)
			return c;
		n = c;
		start = end + 1;
	}
}

struct vs_retain *vs_retain_new(void (*ref)(void *msg), void (*unref)(void *msg))
{
	struct vs_retain *r = calloc(1, sizeof(*r));
	pthread_rwlockattr_t attr;

	if (!r)
		return NULL;
	r->root = node_new("", 0, 0);
	if (!r->root)
		goto out_free_store;
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	if (pthread_rwlock_init(&r->lock, &attr) != 0) {
		pthread_rwlockattr_destroy(&attr);
		goto out_free_root;
	}
	pthread_rwlockattr_destroy(&attr);
	r->seed = vs_level_seed();
	r->ref = ref;
	r->unref = unref;
	atomic_init(&r->count, 0);
	atomic_init(&r->bytes, 0);
	return r;

out_free_root:
	free(r->root);
out_free_store:
	free(r);
	return NULL;
}

void vs_retain_free(struct vs_retain *r)
{
	struct rnode *n, *c, *p;
	uint32_t i = 0;

	if (!r)
		return;
	/* Post-order without a stack or unlinking (see vs_tree_free): resume a parent's walk
	 * after the slot of the child just freed. */
	n = r->root;
	for (;;) {
		c = (struct rnode *)vs_level_next(&n->lv, &i);
		if (c) {
			n = c;
			i = 0;
			continue;
		}
		p = parent_of(n);
		if (p)
			i = vs_level_slot_of(&p->lv, &n->lv) + 1;
		node_free(r, n);
		if (!p)
			break;
		n = p;
	}
	pthread_rwlock_destroy(&r->lock);
	free(r);
}

int vs_retain_set(struct vs_retain *r, const char *topic, size_t len, void *msg)
{
	return vs_retain_put(r, topic, len, msg, NULL);
}

uint64_t vs_retain_version(struct vs_retain *r)
{
	return __atomic_load_n(&r->version, __ATOMIC_RELAXED);
}

void vs_retain_version_floor(struct vs_retain *r, uint64_t v)
{
	pthread_rwlock_wrlock(&r->lock);
	if (r->version < v)
		r->version = v;
	pthread_rwlock_unlock(&r->lock);
}

int vs_retain_put(struct vs_retain *r, const char *topic, size_t len, void *msg, uint64_t *version)
{
	struct rnode *n;
	void *old;
	int rc = 0;

	pthread_rwlock_wrlock(&r->lock);
	__atomic_store_n(&r->version, r->version + 1, __ATOMIC_RELAXED);
	if (version)
		*version = r->version;
	n = find_node(r, topic, len, msg != NULL);
	if (!n) {
		rc = msg ? -ENOMEM : 0;
		goto out_unlock;
	}
	old = n->msg;
	if (r->size && msg)
		atomic_fetch_add_explicit(&r->bytes, r->size(msg), memory_order_relaxed);
	if (r->size && old)
		atomic_fetch_sub_explicit(&r->bytes, r->size(old), memory_order_relaxed);
	if (msg)
		r->ref(msg);
	n->msg = msg;
	if (old)
		r->unref(old);
	if (!old && msg)
		atomic_fetch_add_explicit(&r->count, 1, memory_order_relaxed);
	else if (old && !msg)
		atomic_fetch_sub_explicit(&r->count, 1, memory_order_relaxed);
	/* [MQTT-3.3.1-6] a zero-length retained message removes the topic's message */
	if (!msg)
		prune(r, n);
out_unlock:
	pthread_rwlock_unlock(&r->lock);
	return rc;
}

/* One filter match in progress. */
struct rmatch {
	struct rnode *root;
	uint64_t seed;
	const char *f;
	size_t len;
	bool guard; /* [MQTT-4.7.2-1] filter starts with a wildcard: skip "$..." topics */
	void (*fn)(void *ctx, void *msg);
	void *ctx;
	size_t calls;
};

static void deliver(struct rmatch *m, struct rnode *n)
{
	if (n->msg) {
		m->fn(m->ctx, n->msg);
		m->calls++;
	}
}

/* n's child in the first slot at or after i that the filter may visit, or NULL. */
static struct rnode *child_from(struct rmatch *m, struct rnode *n, uint32_t i)
{
	struct vs_level *c;

	while ((c = vs_level_next(&n->lv, &i)) != NULL) {
		if (!(n == m->root && m->guard && c->len && c->name[0] == '$'))
			return (struct rnode *)c;
		i++;
	}
	return NULL;
}

static struct rnode *next_sibling(struct rmatch *m, struct rnode *c)
{
	struct rnode *p = parent_of(c);

	return child_from(m, p, vs_level_slot_of(&p->lv, &c->lv) + 1);
}

/* '#': delivers s and everything below it, in pre-order. */
static void deliver_subtree(struct rmatch *m, struct rnode *s)
{
	struct rnode *n = s, *next;

	deliver(m, s);
	for (;;) {
		next = child_from(m, n, 0);
		/* No child: the next sibling of n or of its nearest ancestor below s. */
		while (!next && n != s) {
			next = next_sibling(m, n);
			if (!next)
				n = parent_of(n);
		}
		if (!next)
			return;
		n = next;
		deliver(m, n);
	}
}

static struct rnode *exact_child(struct rmatch *m, struct rnode *n, const char *lv, size_t len)
{
	uint32_t hash = vs_level_hash(m->seed, lv, len);

	return (struct rnode *)vs_level_find(&n->lv, lv, len, hash);
}

static bool is_wild(const char *lv, size_t len, char w)
{
	return len == 1 && lv[0] == w;
}

/*
 * The walk arrives at n with the filter levels above it matched; [start, end) is the filter
 * level below n, start > len once every level is matched. From a child it climbs back to n
 * ("from"), it continues with the next child only when the level is '+'.
 */
static void walk(struct rmatch *m)
{
	struct rnode *n = m->root, *from = NULL, *next = NULL;
	size_t start = 0, end = 0, llen;
	const char *lv;

	for (;;) {
		if (start > m->len) {
			deliver(m, n); /* every filter level matched */
			next = NULL;
		} else {
			end = level_end(m->f, m->len, start);
			lv = m->f + start;
			llen = end - start;
			if (is_wild(lv, llen, '#')) {
				deliver_subtree(m, n); /* "a/#" matches "a" and all below it */
				next = NULL;
			} else if (is_wild(lv, llen, '+')) {
				next = from ? next_sibling(m, from) : child_from(m, n, 0);
			} else {
				next = from ? NULL : exact_child(m, n, lv, llen);
			}
		}
		if (next) {
			n = next;
			from = NULL;
			start = end + 1;
			continue;
		}
		if (n == m->root)
			return;
		from = n;
		n = parent_of(n);
		end = start - 1;
		start = level_start(m->f, end);
	}
}

size_t vs_retain_match(struct vs_retain *r, const char *filter, size_t len,
		       void (*fn)(void *ctx, void *msg), void *ctx)
{
	struct rmatch m = {
	    .root = r->root,
	    .seed = r->seed,
	    .f = filter,
	    .len = len,
	    .guard = len > 0 && (filter[0] == '+' || filter[0] == '#'),
	    .fn = fn,
	    .ctx = ctx,
	};

	pthread_rwlock_rdlock(&r->lock);
	walk(&m);
	pthread_rwlock_unlock(&r->lock);
	return m.calls;
}

/* The length of the topic of n's parent, given the length of n's topic (the path buffer of
 * foreach holds "level/level/..." with no leading '/'). */
static size_t parent_len(const struct rnode *root, const struct rnode *n, size_t len)
{
	size_t up = len - n->lv.len;
	return parent_of(n) == root ? up : up - 1;
}

/* Appends n's level to the path of its parent (plen bytes); returns the new length. */
static size_t path_push(char *path, const struct rnode *root, const struct rnode *n, size_t plen)
{
	if (parent_of(n) != root)
		path[plen++] = '/';
	memcpy(path + plen, n->name, n->lv.len);
	return plen + n->lv.len;
}

size_t vs_retain_foreach(struct vs_retain *r,
			 void (*fn)(void *ctx, const char *topic, size_t len, void *msg), void *ctx)
{
	struct rmatch m = {.root = r->root};
	struct rnode *n, *next;
	size_t calls = 0, len = 0;
	/* A topic is an MQTT string: at most 65535 bytes, plus the NUL handed to fn. The path is
	 * rebuilt level by level as the walk goes down and cut back as it climbs. */
	char *path = malloc(65536 + 1);

	if (!path)
		return 0;
	pthread_rwlock_rdlock(&r->lock);
	/* Pre-order over the whole trie, as deliver_subtree() but with the topic at hand. */
	n = r->root;
	for (;;) {
		if (n->msg) {
			path[len] = '\0';
			fn(ctx, path, len, n->msg);
			calls++;
		}
		next = child_from(&m, n, 0);
		if (next) {
			n = next;
			len = path_push(path, r->root, n, len);
			continue;
		}
		while (!next && n != r->root) {
			len = parent_len(r->root, n, len);
			next = next_sibling(&m, n);
			if (!next)
				n = parent_of(n);
		}
		if (!next)
			break;
		n = next;
		len = path_push(path, r->root, n, len);
	}
	pthread_rwlock_unlock(&r->lock);
	free(path);
	return calls;
}

void vs_retain_set_size_fn(struct vs_retain *r, size_t (*size)(const void *msg))
{
	r->size = size;
}

size_t vs_retain_bytes(struct vs_retain *r)
{
	return atomic_load_explicit(&r->bytes, memory_order_relaxed);
}

size_t vs_retain_count(struct vs_retain *r)
{
	return atomic_load_explicit(&r->count, memory_order_relaxed);
}
