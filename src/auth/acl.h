/*
 * Mosquitto ACL files, with Mosquitto 2.0's semantics:
 *
 *   # comment
 *   topic [read|write|readwrite|deny] FILTER    rules before any `user` line: anonymous clients
 *   user NAME                                   the `topic` rules after it: clients with this
 *                                               username (a later `user NAME` for the same name
 *                                               appends to the same list)
 *   pattern [read|write|readwrite|deny] FILTER  for every client, wherever it appears; %c is
 *                                               replaced by the client id, %u by the username
 *
 * No access word means readwrite; FILTER is the rest of the line (it may contain spaces) and
 * must be a valid MQTT topic filter. As in Mosquitto, `topic read` alone is the filter "read".
 *
 * vs_acl_check() decides one access the way Mosquitto 2.0's acl_file does:
 *   1. the client's own list (its username's `user` section, or the anonymous rules when it has
 *      no username; a username without a section has no list): a matching `deny` refuses; else a
 *      matching rule that grants the access allows;
 *   2. then the patterns, only for a client whose id and username contain no '+' or '#' (else
 *      refused): a matching `deny` refuses, a matching grant allows; a pattern using %u never
 *      applies to a client without a username;
 *   3. nothing matched: refused. An ACL with no rules at all refuses everything.
 * So `deny` wins within each list, but a grant in the client's own list is decided before the
 * patterns are looked at (Mosquitto does the same). A topic starting with '$' only matches a rule
 * whose filter starts with '$' ("#" does not give access to $SYS).
 *
 * READ is checked by the broker for each message delivered (including retained ones), WRITE for
 * each PUBLISH and will. SUBSCRIBE is always allowed, as in Mosquitto 2.0, whose acl_file does
 * not restrict subscriptions: a client may subscribe to anything and receives only what READ
 * allows. (Mosquitto's broker-wide $SYS write and $share publish refusals are not file rules and
 * stay with the broker.)
 *
 * A loaded struct vs_acl is immutable and may be checked from any number of threads at once;
 * vs_acl_check() does not allocate.
 */
#ifndef VS_AUTH_ACL_H
#define VS_AUTH_ACL_H

#include <stddef.h>

enum {
	VS_ACL_READ = 1,
	VS_ACL_WRITE = 2,
	VS_ACL_SUBSCRIBE = 4,
};

struct vs_acl;

/* Reads an ACL file. Returns a new ACL (free with vs_acl_free), or NULL with a message in err:
 * "PATH: <strerror>" or "PATH:LINE: why". */
struct vs_acl *vs_acl_load(const char *path, char *err, size_t errlen);

/* The same from memory: text[0..len) named `name` in messages (tests, fuzzing). */
struct vs_acl *vs_acl_parse(const char *text, size_t len, const char *name, char *err,
			    size_t errlen);

/* Whether the client may access topic[0..topiclen) (a topic name, no wildcards) with `access`
 * (one VS_ACL_* value): 1 allowed, 0 denied. client_id is NUL-terminated (NULL: patterns never
 * apply); username is NUL-terminated or NULL for an anonymous client. */
int vs_acl_check(const struct vs_acl *acl, const char *client_id, const char *username,
		 const char *topic, size_t topiclen, int access);

/* Number of rules loaded (all users, anonymous and patterns). */
size_t vs_acl_count(const struct vs_acl *acl);

void vs_acl_free(struct vs_acl *acl);

/* Topic matching used by the ACL, exposed for tests: whether filter[0..flen) (a valid filter)
 * matches topic[0..tlen) (a topic name), with '+', '#' (also matching the parent level) and the
 * '$' rule above. 1 or 0. */
int vs_acl_match(const char *filter, size_t flen, const char *topic, size_t tlen);

/* Whether f[0..n) is a valid topic filter: non-empty, at most 65535 bytes, no NUL, '+' and '#'
 * alone in their level and '#' last. 1 or 0. */
int vs_acl_filter_valid(const char *f, size_t n);

#endif
