/* Client-id claims on the wire (see claim.h). */
#include "cluster/claim.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

int vs_claim_encode(char *out, size_t cap, const char *node, bool clean, int64_t wall_ms,
		    const char *client_id, size_t id_len)
{
	int n = snprintf(out, cap, "%s\n%d\n%" PRId64 "\n", node, clean ? 1 : 0, wall_ms);
	if (n < 0 || (size_t)n + id_len > cap)
		return -1;
	memcpy(out + n, client_id, id_len);
	return n + (int)id_len;
}

/* The line at *p (up to '\n'), which must be there; *p moves past it. */
static int line(const char **p, const char *end, const char **s, size_t *n)
{
	const char *nl = memchr(*p, '\n', (size_t)(end - *p));
	if (!nl)
		return -1;
	*s = *p;
	*n = (size_t)(nl - *p);
	*p = nl + 1;
	return 0;
}

int vs_claim_decode(const char *buf, size_t len, struct vs_claim *c)
{
	const char *p = buf, *end = buf + len, *s;
	size_t n;
	if (line(&p, end, &c->node, &c->node_len) < 0 || c->node_len == 0)
		return -1;
	if (line(&p, end, &s, &n) < 0 || n != 1 || (s[0] != '0' && s[0] != '1'))
		return -1;
	c->clean = s[0] == '1';
	if (line(&p, end, &s, &n) < 0 || n == 0 || n > 18)
		return -1;
	int64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	c->wall_ms = v;
	c->client_id = p;
	c->id_len = (size_t)(end - p);
	return 0;
}

bool vs_claim_wins(int64_t wall_ms, const char *node, size_t node_len, int64_t here_ms,
		   const char *here)
{
	if (wall_ms != here_ms)
		return wall_ms > here_ms;
	size_t hl = strlen(here);
	int cmp = memcmp(node, here, node_len < hl ? node_len : hl);
	return cmp > 0 || (cmp == 0 && node_len > hl);
}
