/*
 * The subscription trie (see tree.h for the contract).
 *
 * Shape. One node per filter level. A node's exact-name children are in its struct vs_level
 * table (level.h); '+' and '#' children hang off dedicated pointers, so a match tries at most
 * three children per level: the exact one (one hash probe), '+', and '#' (which is a leaf:
 * '#' is always a filter's last level). A node holds the ordinary subscriptions of the filter
 * that ends there and a table of the shared groups ($share/{group}/{filter}) of that filter, by
 * group name (a struct vs_level whose children are the groups, so finding one of 100,000 groups
 * of one filter is a hash probe, not a scan); subscriptions and group members are owner-keyed
 * sets (subset.h). The root is the level above the first one and never holds
 * subscriptions.
 *
 * Matching, without a stack. A '+' child makes the walk branch, so a match is a depth-first
 * walk; instead of a stack, it climbs back through parent pointers and knows where to continue
 * from which child it climbs out of (exact child done -> try '+'; '+' done -> climb further).
 * The topic position is re-derived on the way up with memrchr(). So a match allocates nothing
 * and uses constant stack, even for a 32k-level topic against a 32k-level filter.
 *
 * Invariants, which remove() and add()'s error path keep: every node other than the root has
 * a subscription, a group, or a child (empty nodes are freed, so memory follows the live
 * subscriptions, not the history); a group has at least one member; count is the number of
 * ordinary subscriptions plus shared members.
 *
 * Locking: one rwlock, preferring writers so that a steady stream of matches cannot starve a
 * SUBSCRIBE. count is atomic so vs_tree_count() takes no lock.
 */
#include "topic/tree.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "topic/level.h"
#include "topic/subset.h"

#define SHARE_PREFIX	 "$share/"
#define SHARE_PREFIX_LEN 7

/* The members of one $share/{group}/{filter}, with their round-robin cursor. */
struct group {
	struct vs_level lv;	  /* first: the group name (in name[]), an entry of node.groups */
	struct vs_subset members; /* never empty while linked */
	atomic_uint cursor;	  /* advanced by the match callback to pick a member */
	char name[];		  /* the group name (not NUL-terminated) */
};

struct node {
	struct vs_level lv;	 /* first: parent link, exact children, this level's name */
	struct node *plus;	 /* the '+' child, or NULL */
	struct node *hash;	 /* the '#' child, or NULL (always a leaf) */
	struct vs_subset subs;	 /* ordinary subscriptions to the filter ending here */
	struct vs_level *groups; /* shared groups of the filter ending here, by name (its
				  * children are struct group); NULL when there are none */
	char name[];		 /* lv.name points here */
};

struct vs_tree {
	pthread_rwlock_t lock;
	struct node *root;
	uint64_t seed; /* level hash seed */
	atomic_size_t count;
	atomic_size_t shared; /* of count, members of $share groups */
	size_t nodes;	      /* nodes below the root (under the lock) */
};

/* A filter split into its share group (if any) and the filter proper. */
struct filter {
	const char *group; /* NULL for an ordinary subscription */
	size_t group_len;
	const char *f;
	size_t len;
};

static struct node *parent_of(const struct node *n)
{
	return (struct node *)n->lv.parent;
}

/* $share/{group}/{filter}; input is valid, but a malformed share is treated as ordinary. */
static void parse_filter(const char *s, size_t len, struct filter *out)
{
	const char *slash;

	*out = (struct filter){.f = s, .len = len};
	if (len <= SHARE_PREFIX_LEN || memcmp(s, SHARE_PREFIX, SHARE_PREFIX_LEN) != 0)
		return;
	slash = memchr(s + SHARE_PREFIX_LEN, '/', len - SHARE_PREFIX_LEN);
	if (!slash || slash == s + SHARE_PREFIX_LEN || slash + 1 == s + len)
		return;
	out->group = s + SHARE_PREFIX_LEN;
	out->group_len = (size_t)(slash - out->group);
	out->f = slash + 1;
	out->len = len - (size_t)(out->f - s);
}

/* End of the level starting at start: the next '/' or len. */
static size_t level_end(const char *s, size_t len, size_t start)
{
	const char *slash = memchr(s + start, '/', len - start);
	return slash ? (size_t)(slash - s) : len;
}

/* Start of the level ending at end (the one before it ends at a '/' or it starts at 0). */
static size_t level_start(const char *s, size_t end)
{
	const char *slash = memrchr(s, '/', end);
	return slash ? (size_t)(slash - s) + 1 : 0;
}

static bool node_empty(const struct node *n)
{
	return !n->subs.n && !n->groups && !n->plus && !n->hash && !n->lv.n;
}

static struct node *node_new(const char *name, size_t len, uint32_t hash)
{
	struct node *n = calloc(1, sizeof(*n) + len);

	if (!n)
		return NULL;
	memcpy(n->name, name, len);
	n->lv.name = n->name;
	n->lv.len = (uint32_t)len;
	n->lv.hash = hash;
	return n;
}

static void group_free(struct group *g)
{
	vs_subset_fini(&g->members);
	vs_level_fini(&g->lv);
	free(g);
}

/* The next group of n at or after slot *i (advance *i past it to continue), or NULL. */
static struct group *next_group(const struct node *n, uint32_t *i)
{
	return n->groups ? (struct group *)vs_level_next(n->groups, i) : NULL;
}

static void node_free(struct node *n)
{
	struct group *g;
	uint32_t i = 0;

	while ((g = next_group(n, &i)) != NULL) {
		group_free(g);
		i++;
	}
	if (n->groups) {
		vs_level_fini(n->groups);
		free(n->groups);
	}
	vs_subset_fini(&n->subs);
	vs_level_fini(&n->lv);
	free(n);
}

/* Unlinks n (empty, not the root) from its parent. */
static void node_unlink(struct node *n)
{
	struct node *p = parent_of(n);

	if (p->plus == n)
		p->plus = NULL;
	else if (p->hash == n)
		p->hash = NULL;
	else
		vs_level_detach(&p->lv, &n->lv);
}

/* Frees n and its ancestors while they are empty, keeping the no-empty-node invariant. */
static void prune(struct vs_tree *t, struct node *n)
{
	struct node *p;

	while (n != t->root && node_empty(n)) {
		p = parent_of(n);
		node_unlink(n);
		node_free(n);
		t->nodes--;
		n = p;
	}
}

/* Child of n for filter level s[0..len), created if create is set. NULL if absent or -ENOMEM. */
static struct node *child(struct vs_tree *t, struct node *n, const char *s, size_t len, bool create)
{
	struct node **wild = NULL, *c;
	uint32_t hash = 0;

	if (len == 1 && s[0] == '+')
		wild = &n->plus;
	else if (len == 1 && s[0] == '#')
		wild = &n->hash;
	if (wild) {
		if (!*wild && create && (*wild = node_new(s, 1, 0)) != NULL) {
			(*wild)->lv.parent = &n->lv;
			t->nodes++;
		}
		return *wild;
	}
	hash = vs_level_hash(t->seed, s, len);
	c = (struct node *)vs_level_find(&n->lv, s, len, hash);
	if (c || !create)
		return c;
	c = node_new(s, len, hash);
	if (!c)
		return NULL;
	if (vs_level_attach(&n->lv, &c->lv) < 0) {
		free(c);
		return NULL;
	}
	t->nodes++;
	return c;
}

/* The node of filter f, created (with its path) if create is set. On -ENOMEM, returns NULL
 * with the nodes it created already freed. */
static struct node *find_node(struct vs_tree *t, const struct filter *f, bool create)
{
	struct node *n = t->root, *c;
	size_t start = 0, end;

	for (;;) {
		end = level_end(f->f, f->len, start);
		c = child(t, n, f->f + start, end - start, create);
		if (!c) {
			if (create)
				prune(t, n);
			return NULL;
		}
		n = c;
		if (end == f->len)
			return n;
		start = end + 1;
	}
}

static struct group *find_group(struct vs_tree *t, struct node *n, const struct filter *f,
				uint32_t *hash)
{
	*hash = vs_level_hash(t->seed, f->group, f->group_len);
	if (!n->groups)
		return NULL;
	return (struct group *)vs_level_find(n->groups, f->group, f->group_len, *hash);
}

/* Adds sub to the shared group of f at n, creating the group. Returns 1, 0 or -ENOMEM. */
static int group_add(struct vs_tree *t, struct node *n, const struct filter *f,
		     const struct vs_sub *sub)
{
	uint32_t hash;
	struct group *g = find_group(t, n, f, &hash);
	int rc;

	if (g)
		return vs_subset_put(&g->members, sub);
	if (!n->groups && !(n->groups = calloc(1, sizeof(*n->groups))))
		return -ENOMEM;
	g = calloc(1, sizeof(*g) + f->group_len);
	if (!g)
		goto out_groups;
	memcpy(g->name, f->group, f->group_len);
	g->lv.name = g->name;
	g->lv.len = (uint32_t)f->group_len;
	g->lv.hash = hash;
	atomic_init(&g->cursor, 0);
	rc = vs_subset_put(&g->members, sub);
	if (rc < 0 || vs_level_attach(n->groups, &g->lv) < 0) {
		vs_subset_fini(&g->members);
		free(g);
		goto out_groups;
	}
	return rc;

out_groups:
	if (!n->groups->n) {
		free(n->groups);
		n->groups = NULL;
	}
	return -ENOMEM;
}

/* Removes owner from the shared group of f at n; frees the group when it empties, and the
 * table with its last group. */
static int group_remove(struct vs_tree *t, struct node *n, const struct filter *f,
			const void *owner)
{
	uint32_t hash;
	struct group *g = find_group(t, n, f, &hash);
	int rc;

	if (!g)
		return 0;
	rc = vs_subset_del(&g->members, owner);
	if (!g->members.n) {
		vs_level_detach(n->groups, &g->lv);
		group_free(g);
		if (!n->groups->n) {
			vs_level_fini(n->groups);
			free(n->groups);
			n->groups = NULL;
		}
	}
	return rc;
}

struct vs_tree *vs_tree_new(void)
{
	struct vs_tree *t = calloc(1, sizeof(*t));
	pthread_rwlockattr_t attr;

	if (!t)
		return NULL;
	t->root = node_new("", 0, 0);
	if (!t->root)
		goto out_free_tree;
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	if (pthread_rwlock_init(&t->lock, &attr) != 0) {
		pthread_rwlockattr_destroy(&attr);
		goto out_free_root;
	}
	pthread_rwlockattr_destroy(&attr);
	t->seed = vs_level_seed();
	atomic_init(&t->count, 0);
	atomic_init(&t->shared, 0);
	return t;

out_free_root:
	free(t->root);
out_free_tree:
	free(t);
	return NULL;
}

/*
 * Teardown: post-order without a stack and without unlinking children one by one (removing
 * from a wide level's table and rescanning it would be quadratic). Coming back up from a child,
 * the parent's walk resumes after that child's slot; '+' and '#' children come first.
 */
void vs_tree_free(struct vs_tree *t)
{
	struct node *n, *c, *p;
	uint32_t i = 0;

	if (!t)
		return;
	n = t->root;
	for (;;) {
		c = n->plus ? n->plus : n->hash;
		if (!c)
			c = (struct node *)vs_level_next(&n->lv, &i);
		if (c) {
			n = c;
			i = 0;
			continue;
		}
		p = parent_of(n);
		if (p && p->plus == n) {
			p->plus = NULL;
			i = 0;
		} else if (p && p->hash == n) {
			p->hash = NULL;
			i = 0;
		} else if (p) {
			i = vs_level_slot_of(&p->lv, &n->lv) + 1;
		}
		node_free(n);
		if (!p)
			break;
		n = p;
	}
	pthread_rwlock_destroy(&t->lock);
	free(t);
}

int vs_tree_add(struct vs_tree *t, const char *filter, size_t len, const struct vs_sub *sub)
{
	struct filter f;
	struct node *n;
	int rc = -ENOMEM;

	parse_filter(filter, len, &f);
	pthread_rwlock_wrlock(&t->lock);
	n = find_node(t, &f, true);
	if (!n)
		goto out_unlock;
	rc = f.group ? group_add(t, n, &f, sub) : vs_subset_put(&n->subs, sub);
	if (rc < 0)
		prune(t, n);
	else if (rc == 1)
		atomic_fetch_add_explicit(&t->count, 1, memory_order_relaxed);
	if (rc == 1 && f.group)
		atomic_fetch_add_explicit(&t->shared, 1, memory_order_relaxed);
out_unlock:
	pthread_rwlock_unlock(&t->lock);
	return rc;
}

int vs_tree_remove(struct vs_tree *t, const char *filter, size_t len, const void *owner)
{
	struct filter f;
	struct node *n;
	int rc = 0;

	parse_filter(filter, len, &f);
	pthread_rwlock_wrlock(&t->lock);
	n = find_node(t, &f, false);
	if (n) {
		rc = f.group ? group_remove(t, n, &f, owner) : vs_subset_del(&n->subs, owner);
		prune(t, n);
	}
	if (rc == 1)
		atomic_fetch_sub_explicit(&t->count, 1, memory_order_relaxed);
	if (rc == 1 && f.group)
		atomic_fetch_sub_explicit(&t->shared, 1, memory_order_relaxed);
	pthread_rwlock_unlock(&t->lock);
	return rc;
}

int vs_tree_group(struct vs_tree *t, const char *share, size_t len, vs_tree_match_fn fn, void *ctx)
{
	struct filter f;
	uint32_t hash;
	int rc = 0;

	parse_filter(share, len, &f);
	if (!f.group)
		return 0;
	pthread_rwlock_rdlock(&t->lock);
	struct node *n = find_node(t, &f, false);
	struct group *g = n ? find_group(t, n, &f, &hash) : NULL;
	if (g) {
		fn(ctx, g->members.v, g->members.n, &g->cursor);
		rc = 1;
	}
	pthread_rwlock_unlock(&t->lock);
	return rc;
}

/* One match in progress. */
struct match {
	struct vs_tree *t;
	const char *topic;
	size_t len;
	bool dollar; /* [MQTT-4.7.2-1] topic starts with '$' */
	vs_tree_match_fn fn;
	void *ctx;
	size_t calls;
};

/* Calls back every subscription stored at n: ordinary ones singly, groups whole. */
static void deliver(struct match *m, struct node *n)
{
	struct group *g;
	uint32_t i;

	for (i = 0; i < n->subs.n; i++)
		m->fn(m->ctx, &n->subs.v[i], 1, NULL);
	m->calls += n->subs.n;
	for (i = 0; (g = next_group(n, &i)) != NULL; i++) {
		m->fn(m->ctx, g->members.v, g->members.n, &g->cursor);
		m->calls++;
	}
}

/*
 * The walk arrives at n with the topic levels above it consumed; start is the next level's
 * start, or len + 1 when every level is consumed. Delivers what n and its '#' child hold.
 */
static void arrive(struct match *m, struct node *n, size_t start)
{
	if (start > m->len) {
		deliver(m, n);
		/* "sport/#" matches "sport": '#' also matches the parent level. */
		if (n->hash)
			deliver(m, n->hash);
		return;
	}
	/* [MQTT-4.7.2-1] "#" does not match "$SYS/...". */
	if (n->hash && !(n == m->t->root && m->dollar))
		deliver(m, n->hash);
}

/* n's '+' child if it may match the level at start. */
static struct node *plus_child(struct match *m, struct node *n, size_t start)
{
	if (start > m->len)
		return NULL; /* '+' needs a level, even an empty one */
	if (n == m->t->root && m->dollar)
		return NULL; /* [MQTT-4.7.2-1] "+/x" does not match "$SYS/x" */
	return n->plus;
}

static void walk(struct match *m)
{
	struct node *root = m->t->root, *n = root, *from = NULL, *next;
	size_t start = 0, end = 0; /* the topic level below n: [start, end) */

	for (;;) {
		if (!from) {
			/* Arrived from above: deliver, then the exact child, then '+'. */
			arrive(m, n, start);
			next = NULL;
			if (start <= m->len) {
				end = level_end(m->topic, m->len, start);
				next = child(m->t, n, m->topic + start, end - start, false);
			}
			if (!next)
				next = plus_child(m, n, start);
		} else if (from != n->plus) {
			next = plus_child(m, n, start); /* back from the exact child */
		} else {
			next = NULL; /* back from '+': n is done */
		}
		if (next) {
			n = next;
			from = NULL;
			start = end + 1;
			continue;
		}
		if (n == root)
			return;
		/* Climb: the level n consumed ended just before the one below it started. */
		from = n;
		n = parent_of(n);
		end = start - 1;
		start = level_start(m->topic, end);
	}
}

size_t vs_tree_match(struct vs_tree *t, const char *topic, size_t len, vs_tree_match_fn fn,
		     void *ctx)
{
	struct match m = {
	    .t = t,
	    .topic = topic,
	    .len = len,
	    .dollar = len > 0 && topic[0] == '$',
	    .fn = fn,
	    .ctx = ctx,
	};

	pthread_rwlock_rdlock(&t->lock);
	walk(&m);
	pthread_rwlock_unlock(&t->lock);
	return m.calls;
}

size_t vs_tree_count(struct vs_tree *t)
{
	return atomic_load_explicit(&t->count, memory_order_relaxed);
}

size_t vs_tree_shared_count(struct vs_tree *t)
{
	return atomic_load_explicit(&t->shared, memory_order_relaxed);
}

size_t vs_tree_nodes(struct vs_tree *t)
{
	size_t n;

	pthread_rwlock_rdlock(&t->lock);
	n = t->nodes;
	pthread_rwlock_unlock(&t->lock);
	return n;
}
