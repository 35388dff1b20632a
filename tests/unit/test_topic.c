/*
 * Unit tests of the topic layer: the subscription trie (tree.h) and the retained store
 * (retain.h). The matching rules (MQTT 3.1.1 section 4.7, 5.0 sections 4.7-4.8) are one table of
 * (filter, topic, expected), run against both the tree and the store: they must agree.
 * Multi-threaded tests are in test_topic_mt.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "guard.h"
#include "topic/retain.h"
#include "topic/tree.h"

struct match_case {
	const char *filter;
	const char *topic;
	int expected; /* 1 = matches */
};

static const struct match_case cases[] = {
    /* 4.7.1.2 multi-level wildcard, the spec's examples */
    {"sport/tennis/player1/#", "sport/tennis/player1", 1},
    {"sport/tennis/player1/#", "sport/tennis/player1/ranking", 1},
    {"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", 1},
    {"sport/tennis/player1/#", "sport/tennis/player2", 0},
    {"sport/tennis/player1/#", "sport/tennis", 0},
    {"sport/#", "sport", 1},
    {"sport/#", "sport/", 1},
    {"sport/#", "sports", 0},
    {"#", "sport", 1},
    {"#", "sport/tennis/player1", 1},
    {"#", "/", 1},
    {"#", "/finance", 1},
    /* 4.7.1.3 single-level wildcard, the spec's examples */
    {"sport/tennis/+", "sport/tennis/player1", 1},
    {"sport/tennis/+", "sport/tennis/player2", 1},
    {"sport/tennis/+", "sport/tennis/player1/ranking", 0},
    {"sport/tennis/+", "sport/tennis", 0},
    {"sport/+", "sport", 0},
    {"sport/+", "sport/", 1},
    {"+", "sport", 1},
    {"+/+", "/finance", 1},
    {"/+", "/finance", 1},
    {"+", "/finance", 0},
    {"+/tennis/#", "sport/tennis/player1", 1},
    {"+/tennis/#", "sport/tennis", 1},
    {"sport/+/player1", "sport/tennis/player1", 1},
    {"sport/+/player1", "sport/tennis/player2", 0},
    /* exact filters, empty levels, case */
    {"a/b/c", "a/b/c", 1},
    {"a/b/c", "a/b", 0},
    {"a/b", "a/b/c", 0},
    {"a//b", "a//b", 1},
    {"a//b", "a/b", 0},
    {"a/+/b", "a//b", 1},
    {"a/+/b", "a/x/b", 1},
    {"a/+/b", "a/x/y/b", 0},
    {"/a", "/a", 1},
    {"/a", "a", 0},
    {"a/", "a/", 1},
    {"a/", "a", 0},
    {"a", "a/", 0},
    {"/", "/", 1},
    {"+/+", "/", 1},
    {"+/+", "a/", 1},
    {"+", "/", 0},
    {"//#", "//", 1},
    {"+/#", "a", 1},
    {"+/#", "/", 1},
    {"a/+/#", "a/b", 1},
    {"a/+/#", "a", 0},
    {"+/+/+", "a/b", 0},
    {"ACCOUNTS", "Accounts", 0},
    {"Accounts payable", "Accounts payable", 1},
    {"a verylonglevelname_over_8_bytes/x", "a verylonglevelname_over_8_bytes/x", 1},
    {"a verylonglevelname_over_8_bytes/x", "a verylonglevelname_over_8_bytez/x", 0},
    {"a/b/c/d/e/f/g/h/i/j", "a/b/c/d/e/f/g/h/i/j", 1},
    {"+/+/+/+/+/+/+/+/+/+", "a/b/c/d/e/f/g/h/i/j", 1},
    {"a/+/c/+/e/+/g/+/i/#", "a/b/c/d/e/f/g/h/i/j/k", 1},
    {"a/+/c/+/e/+/g/+/i/#", "a/b/c/d/e/f/g/h/x/j/k", 0},
    /* [MQTT-4.7.2-1] wildcards at the first level do not match $-topics */
    {"#", "$SYS", 0},
    {"#", "$SYS/broker/load", 0},
    {"+", "$SYS", 0},
    {"+/monitor/Clients", "$SYS/monitor/Clients", 0},
    {"+/#", "$SYS/x", 0},
    {"$SYS/#", "$SYS/monitor/Clients", 1},
    {"$SYS/#", "$SYS", 1},
    {"$SYS/monitor/+", "$SYS/monitor/Clients", 1},
    {"$SYS", "$SYS", 1},
    {"$", "$", 1},
    {"#", "$", 0},
    {"$SYS/#", "$SYSX/a", 0},
    /* ...only at the first level */
    {"a/+", "a/$x", 1},
    {"a/#", "a/$x/y", 1},
    {"a/$x", "a/$x", 1},
    {"+/$x", "b/$x", 1},
    /* a filter that looks like a share prefix but is not one is ordinary */
    {"$share", "$share", 1},
    {"$share/", "$share/", 1},
};

/* ------------------------------------------------------------------------------------------ */
/* Tree helpers */

struct call {
	const struct vs_sub *members;
	size_t n;
	atomic_uint *cursor;
};

struct calls {
	struct call v[64];
	size_t n;
};

static void record(void *ctx, const struct vs_sub *members, size_t n, atomic_uint *cursor)
{
	struct calls *c = ctx;

	assert_true(n >= 1);
	if (!cursor)
		assert_int_equal(n, 1);
	if (c->n < 64)
		c->v[c->n] = (struct call){members, n, cursor};
	c->n++;
}

static struct vs_sub sub_of(void *owner, uint8_t qos)
{
	return (struct vs_sub){.owner = owner, .qos = qos};
}

static int add(struct vs_tree *t, const char *filter, void *owner, uint8_t qos)
{
	struct vs_sub s = sub_of(owner, qos);
	return vs_tree_add(t, filter, strlen(filter), &s);
}

static int del(struct vs_tree *t, const char *filter, void *owner)
{
	return vs_tree_remove(t, filter, strlen(filter), owner);
}

static size_t match(struct vs_tree *t, const char *topic, struct calls *c)
{
	size_t n;

	memset(c, 0, sizeof(*c));
	n = vs_tree_match(t, topic, strlen(topic), record, c);
	assert_int_equal(n, c->n);
	return n;
}

/* Picks a group member the way the router does: advance the shared cursor. */
static void *pick(const struct call *c)
{
	unsigned i = atomic_fetch_add(c->cursor, 1);
	return c->members[i % c->n].owner;
}

/* ------------------------------------------------------------------------------------------ */
/* Tree tests */

static void tree_match_table(void **state)
{
	int owner;
	struct calls c;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct vs_tree *t = vs_tree_new();
		assert_non_null(t);
		assert_int_equal(add(t, cases[i].filter, &owner, 1), 1);
		if (match(t, cases[i].topic, &c) != (size_t)cases[i].expected)
			fail_msg("tree: filter '%s' topic '%s': expected %d", cases[i].filter,
				 cases[i].topic, cases[i].expected);
		if (c.n)
			assert_ptr_equal(c.v[0].members[0].owner, &owner);
		vs_tree_free(t);
	}
}

/* All filters in one tree: each topic gets exactly its matching filters, once each. */
static void tree_match_table_shared_tree(void **state)
{
	enum { N = sizeof(cases) / sizeof(cases[0]) };
	struct vs_tree *t = vs_tree_new();
	struct calls c;
	size_t i, j, k;
	int rc;

	/* owner = the first case index with that filter (the same filter twice replaces). */
	for (i = 0; i < N; i++) {
		for (j = 0; j < i && strcmp(cases[j].filter, cases[i].filter) != 0; j++)
			;
		rc = add(t, cases[i].filter, (void *)&cases[j], 0);
		assert_int_equal(rc, j == i ? 1 : 0);
	}
	for (i = 0; i < N; i++) {
		match(t, cases[i].topic, &c);
		/* every reported filter must be distinct (no duplicate delivery) */
		for (j = 0; j < c.n && j < 64; j++) {
			for (k = 0; k < j; k++)
				assert_ptr_not_equal(c.v[j].members, c.v[k].members);
		}
		/* every known-matching filter is among the calls; every known non-match is not */
		for (j = 0; j < N; j++) {
			const struct match_case *owner = NULL;
			bool found = false;
			if (strcmp(cases[j].topic, cases[i].topic) != 0)
				continue;
			for (k = 0; k < N; k++) {
				if (!strcmp(cases[k].filter, cases[j].filter)) {
					owner = &cases[k];
					break;
				}
			}
			for (k = 0; k < c.n && k < 64; k++)
				found |= c.v[k].members[0].owner == owner;
			if (found != (cases[j].expected == 1))
				fail_msg("shared tree: filter '%s' topic '%s': expected %d",
					 cases[j].filter, cases[j].topic, cases[j].expected);
		}
	}
	vs_tree_free(t);
}

static void tree_replace_returns_zero(void **state)
{
	struct vs_tree *t = vs_tree_new();
	int a, b;
	struct calls c;

	assert_int_equal(add(t, "a/+", &a, 0), 1);
	assert_int_equal(add(t, "a/+", &b, 1), 1);
	assert_int_equal(vs_tree_count(t), 2);
	/* [MQTT-3.8.4-3] same owner, same filter: the options are replaced */
	assert_int_equal(add(t, "a/+", &a, 2), 0);
	assert_int_equal(vs_tree_count(t), 2);
	assert_int_equal(match(t, "a/x", &c), 2);
	for (size_t i = 0; i < c.n; i++) {
		if (c.v[i].members[0].owner == &a)
			assert_int_equal(c.v[i].members[0].qos, 2);
		else
			assert_int_equal(c.v[i].members[0].qos, 1);
	}
	vs_tree_free(t);
}

static void tree_remove(void **state)
{
	struct vs_tree *t = vs_tree_new();
	int a, b;
	struct calls c;

	assert_int_equal(del(t, "a/b", &a), 0); /* empty tree */
	assert_int_equal(add(t, "a/b", &a, 0), 1);
	assert_int_equal(add(t, "a/#", &a, 0), 1);
	assert_int_equal(del(t, "a/b", &b), 0);		 /* other owner */
	assert_int_equal(del(t, "a/b/c", &a), 0);	 /* filter below */
	assert_int_equal(del(t, "a", &a), 0);		 /* node on the path, no subscription */
	assert_int_equal(del(t, "a/+", &a), 0);		 /* wildcard not subscribed */
	assert_int_equal(del(t, "$share/g/a/b", &a), 0); /* no such group */
	assert_int_equal(vs_tree_count(t), 2);
	assert_int_equal(match(t, "a/b", &c), 2);
	assert_int_equal(del(t, "a/b", &a), 1);
	assert_int_equal(del(t, "a/b", &a), 0);
	assert_int_equal(match(t, "a/b", &c), 1);
	assert_int_equal(vs_tree_count(t), 1);
	assert_int_equal(del(t, "a/#", &a), 1);
	assert_int_equal(vs_tree_count(t), 0);
	assert_int_equal(vs_tree_nodes(t), 0);
	assert_int_equal(match(t, "a/b", &c), 0);
	vs_tree_free(t);
}

/* Removing a subscription frees the nodes it alone used, and only those. */
static void tree_prunes_empty_nodes(void **state)
{
	struct vs_tree *t = vs_tree_new();
	int a;
	struct calls c;

	assert_int_equal(add(t, "a/b/c/d", &a, 0), 1);
	assert_int_equal(vs_tree_nodes(t), 4);
	assert_int_equal(add(t, "a/b", &a, 0), 1);
	assert_int_equal(add(t, "a/+/#", &a, 0), 1);
	assert_int_equal(vs_tree_nodes(t), 6);
	assert_int_equal(del(t, "a/b/c/d", &a), 1);
	assert_int_equal(vs_tree_nodes(t), 4); /* a, b, +, # */
	assert_int_equal(match(t, "a/b", &c), 2);
	assert_int_equal(del(t, "a/+/#", &a), 1);
	assert_int_equal(vs_tree_nodes(t), 2);
	assert_int_equal(del(t, "a/b", &a), 1);
	assert_int_equal(vs_tree_nodes(t), 0);

	/* churn does not grow the tree */
	for (int i = 0; i < 1000; i++) {
		char f[64];
		snprintf(f, sizeof(f), "x/%d/+/%d/#", i, i * 7);
		assert_int_equal(add(t, f, &a, 0), 1);
		snprintf(f, sizeof(f), "$share/g%d/y/%d", i % 3, i);
		assert_int_equal(add(t, f, &a, 0), 1);
	}
	assert_int_equal(vs_tree_count(t), 2000);
	for (int i = 0; i < 1000; i++) {
		char f[64];
		snprintf(f, sizeof(f), "x/%d/+/%d/#", i, i * 7);
		assert_int_equal(del(t, f, &a), 1);
		snprintf(f, sizeof(f), "$share/g%d/y/%d", i % 3, i);
		assert_int_equal(del(t, f, &a), 1);
	}
	assert_int_equal(vs_tree_count(t), 0);
	assert_int_equal(vs_tree_nodes(t), 0);
	vs_tree_free(t);
}

static const struct call *find_call(const struct calls *c, bool shared, size_t n)
{
	for (size_t i = 0; i < c->n && i < 64; i++) {
		if ((c->v[i].cursor != NULL) == shared && c->v[i].n == n)
			return &c->v[i];
	}
	return NULL;
}

static void tree_share_groups(void **state)
{
	struct vs_tree *t = vs_tree_new();
	int a, b, d;
	struct calls c;
	const struct call *g, *h;

	assert_int_equal(add(t, "$share/g/a/+", &a, 1), 1);
	assert_int_equal(add(t, "$share/g/a/+", &b, 1), 1);
	assert_int_equal(add(t, "$share/h/a/+", &d, 1), 1);
	/* the same owner and filter, ordinary and shared: two subscriptions */
	assert_int_equal(add(t, "a/+", &a, 0), 1);
	assert_int_equal(vs_tree_count(t), 4);
	assert_int_equal(vs_tree_shared_count(t), 3); /* $SYS shared_subscriptions/count */
	/* re-subscribing a member replaces */
	assert_int_equal(add(t, "$share/g/a/+", &a, 2), 0);
	assert_int_equal(vs_tree_count(t), 4);
	assert_int_equal(vs_tree_shared_count(t), 3);

	/* one call per group with all its members, plus the ordinary one */
	assert_int_equal(match(t, "a/x", &c), 3);
	g = find_call(&c, true, 2);
	h = find_call(&c, true, 1);
	assert_non_null(g);
	assert_non_null(h);
	assert_non_null(find_call(&c, false, 1));
	assert_ptr_not_equal(g->cursor, h->cursor);
	assert_true((g->members[0].owner == &a && g->members[1].owner == &b) ||
		    (g->members[0].owner == &b && g->members[1].owner == &a));
	for (size_t i = 0; i < 2; i++) {
		if (g->members[i].owner == &a)
			assert_int_equal(g->members[i].qos, 2);
	}
	assert_ptr_equal(h->members[0].owner, &d);

	/* the cursor belongs to the group: matches of different topics share it */
	{
		void *first = pick(g), *second, *third;
		match(t, "a/y", &c);
		g = find_call(&c, true, 2);
		second = pick(g);
		match(t, "a/z", &c);
		g = find_call(&c, true, 2);
		third = pick(g);
		assert_ptr_not_equal(first, second);
		assert_ptr_equal(first, third);
	}

	/* the topic "$share/g/a/x" is not matched by the group: shares are filters only */
	assert_int_equal(match(t, "$share/g/a/x", &c), 0);

	/* the same group name on another filter is another group */
	assert_int_equal(add(t, "$share/g/a/#", &a, 0), 1);
	match(t, "a/x", &c);
	assert_int_equal(c.n, 4);

	/* member removal, then group removal */
	assert_int_equal(del(t, "$share/g/a/+", &b), 1);
	assert_int_equal(del(t, "$share/g/a/+", &b), 0);
	assert_int_equal(vs_tree_shared_count(t), 3); /* g/a/+ a, h d, g/a/# a */
	match(t, "a/x", &c);
	assert_int_equal(c.n, 4);
	assert_null(find_call(&c, true, 2));
	assert_int_equal(del(t, "$share/g/a/+", &a), 1); /* last member: group g on a/+ is gone */
	match(t, "a/x", &c);
	assert_int_equal(c.n, 3);
	assert_int_equal(del(t, "$share/h/a/+", &a), 0); /* not a member */
	assert_int_equal(del(t, "$share/h/a/+", &d), 1);
	assert_int_equal(del(t, "$share/g/a/#", &a), 1);
	match(t, "a/x", &c);
	assert_int_equal(c.n, 1);
	assert_null(c.v[0].cursor);
	assert_int_equal(vs_tree_count(t), 1);
	assert_int_equal(del(t, "a/+", &a), 1);
	assert_int_equal(vs_tree_nodes(t), 0);
	vs_tree_free(t);
}

/* Shared subscriptions follow the same matching rules, $-topics included. */
static void tree_share_rules(void **state)
{
	struct vs_tree *t = vs_tree_new();
	int a;
	struct calls c;

	assert_int_equal(add(t, "$share/g/#", &a, 0), 1);
	assert_int_equal(add(t, "$share/s/$SYS/#", &a, 0), 1);
	assert_int_equal(match(t, "x/y", &c), 1);
	assert_non_null(c.v[0].cursor);
	assert_int_equal(match(t, "$SYS/x", &c), 1);
	assert_int_equal(match(t, "$SYS", &c), 1);
	vs_tree_free(t);
}

/* One group by its share filter (the cluster's delivery to the group NATS chose this node for):
 * only that group is called, with its own cursor; other groups, ordinary subscriptions and
 * filters without a group are not. */
static void tree_one_group(void **state)
{
	struct vs_tree *t = vs_tree_new();
	int a, b, d;
	struct calls c;

	(void)state;
	assert_int_equal(add(t, "$share/g/a/+", &a, 1), 1);
	assert_int_equal(add(t, "$share/g/a/+", &b, 1), 1);
	assert_int_equal(add(t, "$share/h/a/+", &d, 1), 1);
	assert_int_equal(add(t, "$share/g/a/#", &d, 1), 1);
	assert_int_equal(add(t, "a/+", &d, 1), 1);
	memset(&c, 0, sizeof(c));
	assert_int_equal(vs_tree_group(t, "$share/g/a/+", 12, record, &c), 1);
	assert_int_equal(c.n, 1);
	assert_int_equal(c.v[0].n, 2);
	assert_non_null(c.v[0].cursor);
	void *first = pick(&c.v[0]);
	memset(&c, 0, sizeof(c));
	vs_tree_group(t, "$share/g/a/+", 12, record, &c);
	assert_ptr_not_equal(pick(&c.v[0]), first); /* the group's round robin goes on */
	memset(&c, 0, sizeof(c));
	assert_int_equal(vs_tree_group(t, "$share/h/a/#", 12, record, &c), 0); /* no such group */
	assert_int_equal(vs_tree_group(t, "$share/x/a/+", 12, record, &c), 0);
	assert_int_equal(vs_tree_group(t, "a/+", 3, record, &c), 0); /* not a share */
	assert_int_equal(c.n, 0);
	assert_int_equal(vs_tree_group(t, "$share/g/a/#", 12, record, &c), 1);
	assert_int_equal(c.v[0].n, 1);
	assert_ptr_equal(c.v[0].members[0].owner, &d);
	vs_tree_free(t);
}

/* Many shared groups of one filter: each found by name (a hash probe), each called once per
 * match, each gone with its last member, and the node with the last group. 20,000 groups
 * took a scan of the group list per subscribe before: quadratic. */
static void tree_many_groups(void **state)
{
	enum { N = 20000 };
	struct vs_tree *t = vs_tree_new();
	static int owners[N];
	char f[48];
	struct calls c;

	for (int i = 0; i < N; i++) {
		snprintf(f, sizeof(f), "$share/g%d/a/b", i);
		assert_int_equal(add(t, f, &owners[i], 1), 1);
		assert_int_equal(add(t, f, &owners[(i + 1) % N], 1), 1);
	}
	for (int i = 0; i < N; i++) { /* re-subscribing finds the group: a replacement */
		snprintf(f, sizeof(f), "$share/g%d/a/b", i);
		assert_int_equal(add(t, f, &owners[i], 2), 0);
	}
	assert_int_equal(vs_tree_count(t), 2 * N);
	assert_int_equal(match(t, "a/b", &c), N);
	for (size_t i = 0; i < 64; i++)
		assert_int_equal(c.v[i].n, 2);
	for (int i = 0; i < N; i += 2) {
		snprintf(f, sizeof(f), "$share/g%d/a/b", i);
		assert_int_equal(del(t, f, &owners[i]), 1);
		assert_int_equal(del(t, f, &owners[(i + 1) % N]), 1);
		assert_int_equal(del(t, f, &owners[i]), 0);
	}
	assert_int_equal(match(t, "a/b", &c), N / 2);
	for (int i = 1; i < N; i += 2) {
		snprintf(f, sizeof(f), "$share/g%d/a/b", i);
		assert_int_equal(del(t, f, &owners[i]), 1);
		assert_int_equal(del(t, f, &owners[(i + 1) % N]), 1);
	}
	assert_int_equal(vs_tree_count(t), 0);
	assert_int_equal(vs_tree_nodes(t), 0);
	vs_tree_free(t);
}

/* Many owners on one filter (the owner index past VS_SUBSET_SCAN). */
static void tree_many_owners(void **state)
{
	enum { N = 3000 };
	struct vs_tree *t = vs_tree_new();
	char *owners = malloc(N);
	struct calls c;
	size_t i;

	for (i = 0; i < N; i++) {
		assert_int_equal(add(t, "fan/out", owners + i, 0), 1);
		assert_int_equal(add(t, "$share/g/fan/out", owners + i, 0), 1);
	}
	for (i = 0; i < N; i += 3) {
		assert_int_equal(add(t, "fan/out", owners + i, 1), 0);
		assert_int_equal(add(t, "$share/g/fan/out", owners + i, 1), 0);
	}
	assert_int_equal(vs_tree_count(t), 2 * N);
	assert_int_equal(match(t, "fan/out", &c), N + 1);
	for (i = 0; i < N; i += 2) {
		assert_int_equal(del(t, "fan/out", owners + i), 1);
		assert_int_equal(del(t, "$share/g/fan/out", owners + i), 1);
	}
	for (i = 0; i < N; i += 2)
		assert_int_equal(del(t, "fan/out", owners + i), 0);
	assert_int_equal(vs_tree_count(t), N);
	assert_int_equal(match(t, "fan/out", &c), N / 2 + 1);
	/* the survivors kept their options */
	for (i = 1; i < N; i += 2)
		assert_int_equal(add(t, "fan/out", owners + i, i % 3 == 0), 0);
	for (i = 1; i < N; i += 2) {
		assert_int_equal(del(t, "fan/out", owners + i), 1);
		assert_int_equal(del(t, "$share/g/fan/out", owners + i), 1);
	}
	assert_int_equal(vs_tree_count(t), 0);
	assert_int_equal(vs_tree_nodes(t), 0);
	vs_tree_free(t);
	free(owners);
}

/* Many children of one node (the level hash grows and shrinks). */
static void tree_wide_node(void **state)
{
	enum { N = 5000 };
	struct vs_tree *t = vs_tree_new();
	struct calls c;
	char f[32];
	int a;

	for (int i = 0; i < N; i++) {
		snprintf(f, sizeof(f), "w/%d", i);
		assert_int_equal(add(t, f, &a, 0), 1);
	}
	for (int i = 0; i < N; i++) {
		snprintf(f, sizeof(f), "w/%d", i);
		assert_int_equal(match(t, f, &c), 1);
	}
	assert_int_equal(match(t, "w/5000", &c), 0);
	for (int i = 0; i < N; i += 2) {
		snprintf(f, sizeof(f), "w/%d", i);
		assert_int_equal(del(t, f, &a), 1);
	}
	for (int i = 0; i < N; i++) {
		snprintf(f, sizeof(f), "w/%d", i);
		assert_int_equal(match(t, f, &c), (size_t)(i & 1));
	}
	vs_tree_free(t); /* frees the rest */
}

/* A 32768-level filter and topic: walks and teardown use no stack per level. */
static void tree_deep(void **state)
{
	enum { LEVELS = 32768 };
	size_t len = 2 * LEVELS - 1;
	char *plus = malloc(len + 1), *topic = malloc(len + 1), *exact = malloc(len + 1);
	struct vs_tree *t = vs_tree_new();
	struct vs_sub s = sub_of(&len, 0);
	struct calls c;

	for (size_t i = 0; i < len; i++) {
		plus[i] = i & 1 ? '/' : '+';
		topic[i] = i & 1 ? '/' : 'a';
	}
	memcpy(exact, topic, len);
	assert_int_equal(vs_tree_add(t, plus, len, &s), 1);
	assert_int_equal(vs_tree_add(t, exact, len, &s), 1);
	plus[len - 1] = '#';
	assert_int_equal(vs_tree_add(t, plus, len, &s), 1);
	memset(&c, 0, sizeof(c));
	assert_int_equal(vs_tree_match(t, topic, len, record, &c), 3);
	assert_int_equal(vs_tree_match(t, topic, len - 2, record, &c), 1); /* only via '#' */
	assert_int_equal(vs_tree_remove(t, exact, len, &len), 1);
	vs_tree_free(t);
	free(plus);
	free(topic);
	free(exact);
}

/* ------------------------------------------------------------------------------------------ */
/* Retained store */

struct msg {
	int refs;
	int id;
};

static void msg_ref(void *m)
{
	((struct msg *)m)->refs++;
}

static void msg_unref(void *m)
{
	((struct msg *)m)->refs--;
}

struct seen {
	struct msg *v[256];
	size_t n;
};

static void saw(void *ctx, void *msg)
{
	struct seen *s = ctx;

	if (s->n < 256)
		s->v[s->n] = msg;
	s->n++;
}

static size_t rmatch(struct vs_retain *r, const char *filter, struct seen *s)
{
	size_t n;

	memset(s, 0, sizeof(*s));
	n = vs_retain_match(r, filter, strlen(filter), saw, s);
	assert_int_equal(n, s->n);
	return n;
}

static int rset(struct vs_retain *r, const char *topic, struct msg *m)
{
	return vs_retain_set(r, topic, strlen(topic), m);
}

static bool seen_has(const struct seen *s, const struct msg *m)
{
	for (size_t i = 0; i < s->n && i < 256; i++) {
		if (s->v[i] == m)
			return true;
	}
	return false;
}

static void retain_match_table(void **state)
{
	struct msg m = {0};
	struct seen s;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct vs_retain *r = vs_retain_new(msg_ref, msg_unref);
		assert_int_equal(rset(r, cases[i].topic, &m), 0);
		if (rmatch(r, cases[i].filter, &s) != (size_t)cases[i].expected)
			fail_msg("retain: filter '%s' topic '%s': expected %d", cases[i].filter,
				 cases[i].topic, cases[i].expected);
		vs_retain_free(r);
		assert_int_equal(m.refs, 0);
	}
}

static void count_msg(void *ctx, void *msg)
{
	(*(size_t *)ctx)++;
}

/* Filters and topics are not NUL-terminated: with each one ending right before an inaccessible
 * page, a read past its length faults. */
static void guarded_inputs(void **state)
{
	struct msg m = {0};
	int owner;
	size_t i, n;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t flen = strlen(cases[i].filter), tlen = strlen(cases[i].topic);
		uint8_t *f = guard_copy(cases[i].filter, flen);
		uint8_t *t = guard_copy(cases[i].topic, tlen);
		struct vs_tree *tree = vs_tree_new();
		struct vs_retain *r = vs_retain_new(msg_ref, msg_unref);
		struct vs_sub sub = sub_of(&owner, 0);
		struct calls c = {0};

		assert_int_equal(vs_tree_add(tree, (const char *)f, flen, &sub), 1);
		n = vs_tree_match(tree, (const char *)t, tlen, record, &c);
		assert_int_equal(n, (size_t)cases[i].expected);
		assert_int_equal(vs_tree_remove(tree, (const char *)f, flen, &owner), 1);
		assert_int_equal(vs_retain_set(r, (const char *)t, tlen, &m), 0);
		n = 0;
		vs_retain_match(r, (const char *)f, flen, count_msg, &n);
		assert_int_equal(n, (size_t)cases[i].expected);
		vs_retain_free(r);
		vs_tree_free(tree);
		guard_free(f, flen);
		guard_free(t, tlen);
	}
}

static size_t msg_size(const void *m)
{
	return (size_t)((const struct msg *)m)->id;
}

/* The store adds up the sizes of what it holds: set, replace, remove. */
static void retain_bytes(void **state)
{
	struct vs_retain *r = vs_retain_new(msg_ref, msg_unref);
	struct msg a = {.id = 10}, b = {.id = 3}, c = {.id = 7};
	vs_retain_set_size_fn(r, msg_size);
	assert_int_equal(vs_retain_bytes(r), 0);
	assert_int_equal(rset(r, "t/a", &a), 0);
	assert_int_equal(rset(r, "t/b", &b), 0);
	assert_int_equal(vs_retain_bytes(r), 13);
	assert_int_equal(rset(r, "t/a", &c), 0); /* replaces 10 by 7 */
	assert_int_equal(vs_retain_bytes(r), 10);
	assert_int_equal(vs_retain_set(r, "t/b", 3, NULL), 0);
	assert_int_equal(vs_retain_bytes(r), 7);
	vs_retain_free(r);
	assert_int_equal(a.refs + b.refs + c.refs, 0);
}

/* Every topic of the table stored at once: each filter finds exactly its topics. */
static void retain_match_table_one_store(void **state)
{
	enum { N = sizeof(cases) / sizeof(cases[0]) };
	struct msg *m = calloc(N, sizeof(*m));
	struct vs_retain *r = vs_retain_new(msg_ref, msg_unref);
	struct seen s;
	size_t i, j, k;

	/* message of topic i: the first case with that topic */
	for (i = 0; i < N; i++) {
		for (j = 0; j < i && strcmp(cases[j].topic, cases[i].topic) != 0; j++)
			;
		if (j == i)
			assert_int_equal(rset(r, cases[i].topic, &m[i]), 0);
	}
	for (i = 0; i < N; i++) {
		rmatch(r, cases[i].filter, &s);
		for (j = 0; j < s.n; j++) {
			for (k = 0; k < j; k++)
				assert_ptr_not_equal(s.v[j], s.v[k]);
		}
		for (j = 0; j < N; j++) {
			if (strcmp(cases[j].filter, cases[i].filter) != 0)
				continue;
			for (k = 0; strcmp(cases[k].topic, cases[j].topic) != 0; k++)
				;
			if (seen_has(&s, &m[k]) != (cases[j].expected == 1))
				fail_msg("one store: filter '%s' topic '%s': expected %d",
					 cases[j].filter, cases[j].topic, cases[j].expected);
		}
	}
	vs_retain_free(r);
	for (i = 0; i < N; i++)
		assert_int_equal(m[i].refs, 0);
	free(m);
}

static void retain_set_replace_clear(void **state)
{
	struct vs_retain *r = vs_retain_new(msg_ref, msg_unref);
	struct msg m1 = {.id = 1}, m2 = {.id = 2}, m3 = {.id = 3};
	struct seen s;

	assert_int_equal(vs_retain_count(r), 0);
	assert_int_equal(rset(r, "a/b", NULL), 0); /* clearing nothing */
	assert_int_equal(rset(r, "a/b", &m1), 0);
	assert_int_equal(m1.refs, 1);
	assert_int_equal(vs_retain_count(r), 1);
	assert_int_equal(rset(r, "a/b", &m2), 0); /* replace: the old one is unref'd */
	assert_int_equal(m1.refs, 0);
	assert_int_equal(m2.refs, 1);
	assert_int_equal(vs_retain_count(r), 1);
	assert_int_equal(rset(r, "a", &m3), 0);
	assert_int_equal(vs_retain_count(r), 2);
	assert_int_equal(rmatch(r, "a/b", &s), 1);
	assert_ptr_equal(s.v[0], &m2);
	assert_int_equal(rmatch(r, "a/#", &s), 2);
	/* [MQTT-3.3.1-6] clear */
	assert_int_equal(rset(r, "a/b", NULL), 0);
	assert_int_equal(m2.refs, 0);
	assert_int_equal(vs_retain_count(r), 1);
	assert_int_equal(rmatch(r, "a/b", &s), 0);
	assert_int_equal(rmatch(r, "a/#", &s), 1);
	assert_int_equal(rset(r, "a/b/c", NULL), 0); /* below a cleared topic */
	assert_int_equal(rset(r, "a", NULL), 0);
	assert_int_equal(vs_retain_count(r), 0);
	assert_int_equal(rmatch(r, "#", &s), 0);
	assert_int_equal(m3.refs, 0);
	/* free unrefs what is left */
	assert_int_equal(rset(r, "x/y", &m1), 0);
	assert_int_equal(rset(r, "x", &m2), 0);
	vs_retain_free(r);
	assert_int_equal(m1.refs, 0);
	assert_int_equal(m2.refs, 0);
}

static void retain_wildcards(void **state)
{
	struct vs_retain *r = vs_retain_new(msg_ref, msg_unref);
	struct msg m[8] = {{0}};
	struct seen s;

	rset(r, "sport/tennis/player1", &m[0]);
	rset(r, "sport/tennis/player1/ranking", &m[1]);
	rset(r, "sport/tennis/player2", &m[2]);
	rset(r, "sport/golf", &m[3]);
	rset(r, "$SYS/broker/uptime", &m[4]);
	rset(r, "/finance", &m[5]);
	rset(r, "sport", &m[6]);
	rset(r, "sport/", &m[7]);
	assert_int_equal(vs_retain_count(r), 8);
	assert_int_equal(rmatch(r, "#", &s), 7);
	assert_false(seen_has(&s, &m[4]));
	assert_int_equal(rmatch(r, "sport/#", &s), 6);
	assert_int_equal(rmatch(r, "sport/+", &s), 2);
	assert_true(seen_has(&s, &m[3]) && seen_has(&s, &m[7]));
	assert_int_equal(rmatch(r, "sport/tennis/+", &s), 2);
	assert_int_equal(rmatch(r, "sport/+/player1", &s), 1);
	assert_int_equal(rmatch(r, "+/+", &s), 3); /* sport/golf, sport/, /finance */
	assert_int_equal(rmatch(r, "+/tennis/#", &s), 3);
	assert_int_equal(rmatch(r, "+", &s), 1);
	assert_int_equal(rmatch(r, "+/broker/+", &s), 0);
	assert_int_equal(rmatch(r, "$SYS/#", &s), 1);
	assert_int_equal(rmatch(r, "$SYS/+/uptime", &s), 1);
	assert_int_equal(rmatch(r, "sport/tennis/player1/#", &s), 2);
	assert_int_equal(rmatch(r, "nothing/#", &s), 0);
	vs_retain_free(r);
}

struct snap {
	char topics[16][64];
	struct msg *msgs[16];
	size_t n;
};

static void snap_one(void *ctx, const char *topic, size_t len, void *msg)
{
	struct snap *s = ctx;

	assert_true(s->n < 16 && len < 64);
	assert_int_equal(strlen(topic), len); /* NUL-terminated */
	memcpy(s->topics[s->n], topic, len);
	s->topics[s->n][len] = '\0';
	s->msgs[s->n] = msg;
	s->n++;
}

static void retain_foreach(void **state)
{
	static const char *topics[] = {"a", "a/b", "a/b/c", "/x", "$SYS/y", "a//"};
	enum { N = sizeof(topics) / sizeof(topics[0]) };
	struct vs_retain *r = vs_retain_new(msg_ref, msg_unref);
	struct msg m[N] = {{0}};
	struct snap s = {0};
	size_t i, j;

	assert_int_equal(vs_retain_foreach(r, snap_one, &s), 0);
	for (i = 0; i < N; i++)
		rset(r, topics[i], &m[i]);
	rset(r, "a/b/c/d", &m[0]);
	rset(r, "a/b/c/d", NULL); /* gone again */
	assert_int_equal(vs_retain_foreach(r, snap_one, &s), N);
	for (i = 0; i < N; i++) {
		for (j = 0; j < s.n && strcmp(s.topics[j], topics[i]) != 0; j++)
			;
		assert_true(j < s.n);
		assert_ptr_equal(s.msgs[j], &m[i]);
	}
	vs_retain_free(r);
}

/* A filter of 32768 '+' levels over a topic that deep: no stack per level. */
static void retain_deep(void **state)
{
	enum { LEVELS = 32768 };
	size_t len = 2 * LEVELS - 1;
	char *plus = malloc(len + 1), *topic = malloc(len + 1);
	struct vs_retain *r = vs_retain_new(msg_ref, msg_unref);
	struct msg m = {0};
	struct seen s = {0};

	for (size_t i = 0; i < len; i++) {
		plus[i] = i & 1 ? '/' : '+';
		topic[i] = i & 1 ? '/' : 'a';
	}
	assert_int_equal(vs_retain_set(r, topic, len, &m), 0);
	assert_int_equal(vs_retain_set(r, topic, 3, &m), 0);
	assert_int_equal(vs_retain_match(r, plus, len, saw, &s), 1);
	assert_int_equal(vs_retain_match(r, "#", 1, saw, &s), 2);
	assert_int_equal(vs_retain_set(r, topic, len, NULL), 0);
	assert_int_equal(vs_retain_count(r), 1);
	assert_int_equal(m.refs, 1);
	vs_retain_set(r, topic, len, &m);
	vs_retain_free(r);
	assert_int_equal(m.refs, 0);
	free(plus);
	free(topic);
}

/* foreach rebuilds each topic from the levels on its path (nodes hold only their own level,
 * so a deep topic costs memory linear in its length): a 32768-level topic and one of empty
 * levels come back byte for byte, NUL-terminated, next to its prefixes. */
struct deep_snap {
	const char *want;
	size_t want_len;
	size_t seen, matched;
};

static void snap_deep(void *ctx, const char *topic, size_t len, void *msg)
{
	struct deep_snap *d = ctx;
	d->seen++;
	assert_int_equal(topic[len], '\0');
	if (len == d->want_len && memcmp(topic, d->want, len) == 0)
		d->matched++;
}

static void retain_foreach_deep(void **state)
{
	enum { LEVELS = 32768 };
	size_t len = 2 * LEVELS - 1;
	char *topic = malloc(len + 1);
	struct vs_retain *r = vs_retain_new(msg_ref, msg_unref);
	struct msg m = {0};
	struct deep_snap d = {.want = topic, .want_len = len};

	for (size_t i = 0; i < len; i++)
		topic[i] = i & 1 ? '/' : (char)('a' + (i / 2) % 26);
	topic[len] = '\0';
	assert_int_equal(vs_retain_set(r, topic, len, &m), 0);
	assert_int_equal(vs_retain_set(r, topic, 5, &m), 0); /* "a/b/c", on the same path */
	assert_int_equal(vs_retain_set(r, "///", 3, &m), 0);
	assert_int_equal(vs_retain_foreach(r, snap_deep, &d), 3);
	assert_int_equal(d.matched, 1);
	d.want = "a/b/c";
	d.want_len = 5;
	d.seen = d.matched = 0;
	vs_retain_foreach(r, snap_deep, &d);
	assert_int_equal(d.matched, 1);
	d.want = "///";
	d.want_len = 3;
	d.seen = d.matched = 0;
	vs_retain_foreach(r, snap_deep, &d);
	assert_int_equal(d.matched, 1);
	vs_retain_free(r);
	free(topic);
}

static void retain_wide(void **state)
{
	enum { N = 3000 };
	struct vs_retain *r = vs_retain_new(msg_ref, msg_unref);
	struct msg m = {0};
	struct seen s;
	char tp[32];

	for (int i = 0; i < N; i++) {
		snprintf(tp, sizeof(tp), "w/%d/v", i);
		assert_int_equal(rset(r, tp, &m), 0);
	}
	assert_int_equal(m.refs, N);
	assert_int_equal(rmatch(r, "w/+/v", &s), N);
	assert_int_equal(rmatch(r, "w/#", &s), N);
	assert_int_equal(rmatch(r, "w/17/+", &s), 1);
	for (int i = 0; i < N; i += 2) {
		snprintf(tp, sizeof(tp), "w/%d/v", i);
		assert_int_equal(rset(r, tp, NULL), 0);
	}
	assert_int_equal(vs_retain_count(r), N / 2);
	assert_int_equal(rmatch(r, "+/+/v", &s), N / 2);
	vs_retain_free(r);
	assert_int_equal(m.refs, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(tree_match_table),
	    cmocka_unit_test(tree_match_table_shared_tree),
	    cmocka_unit_test(tree_replace_returns_zero),
	    cmocka_unit_test(tree_remove),
	    cmocka_unit_test(tree_prunes_empty_nodes),
	    cmocka_unit_test(tree_share_groups),
	    cmocka_unit_test(tree_share_rules),
	    cmocka_unit_test(tree_one_group),
	    cmocka_unit_test(tree_many_owners),
	    cmocka_unit_test(tree_many_groups),
	    cmocka_unit_test(tree_wide_node),
	    cmocka_unit_test(tree_deep),
	    cmocka_unit_test(retain_match_table),
	    cmocka_unit_test(retain_match_table_one_store),
	    cmocka_unit_test(retain_bytes),
	    cmocka_unit_test(retain_set_replace_clear),
	    cmocka_unit_test(retain_wildcards),
	    cmocka_unit_test(retain_foreach),
	    cmocka_unit_test(retain_deep),
	    cmocka_unit_test(retain_foreach_deep),
	    cmocka_unit_test(retain_wide),
	    cmocka_unit_test(guarded_inputs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
