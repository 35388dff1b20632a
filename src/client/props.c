/*
 * The public properties API (viesti_props_*): a typed front over struct vs_props. The type of
 * each property comes from its identifier (MQTT 5.0 section 2.2.2.2); setters reject an id used
 * with the wrong type, and integer values out of the type's range.
 */
#include "base/vec.h"
#include "client/props.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

enum ptype { P_NONE, P_BYTE, P_U16, P_U32, P_VBI, P_STR, P_BIN, P_PAIR };

static int prop_type(int id)
{
	switch (id) {
	case VS_PROP_PAYLOAD_FORMAT:
	case VS_PROP_REQUEST_PROBLEM_INFO:
	case VS_PROP_REQUEST_RESPONSE_INFO:
	case VS_PROP_MAX_QOS:
	case VS_PROP_RETAIN_AVAILABLE:
	case VS_PROP_WILDCARD_SUB_AVAILABLE:
	case VS_PROP_SUB_ID_AVAILABLE:
	case VS_PROP_SHARED_SUB_AVAILABLE:
		return P_BYTE;
	case VS_PROP_SERVER_KEEPALIVE:
	case VS_PROP_RECEIVE_MAX:
	case VS_PROP_TOPIC_ALIAS_MAX:
	case VS_PROP_TOPIC_ALIAS:
		return P_U16;
	case VS_PROP_MESSAGE_EXPIRY:
	case VS_PROP_SESSION_EXPIRY:
	case VS_PROP_WILL_DELAY:
	case VS_PROP_MAX_PACKET_SIZE:
		return P_U32;
	case VS_PROP_SUB_ID:
		return P_VBI;
	case VS_PROP_CONTENT_TYPE:
	case VS_PROP_RESPONSE_TOPIC:
	case VS_PROP_ASSIGNED_CLIENT_ID:
	case VS_PROP_AUTH_METHOD:
	case VS_PROP_RESPONSE_INFO:
	case VS_PROP_SERVER_REFERENCE:
	case VS_PROP_REASON_STRING:
		return P_STR;
	case VS_PROP_CORRELATION_DATA:
	case VS_PROP_AUTH_DATA:
		return P_BIN;
	case VS_PROP_USER:
		return P_PAIR;
	default:
		return P_NONE;
	}
}

/* The integer field for id, with its width in bytes (4 for the VBI); NULL if not an integer. */
static void *int_field(struct vs_props *p, int id, int *width)
{
	*width = 1;
	switch (id) {
	case VS_PROP_PAYLOAD_FORMAT:
		return &p->payload_format;
	case VS_PROP_REQUEST_PROBLEM_INFO:
		return &p->request_problem_info;
	case VS_PROP_REQUEST_RESPONSE_INFO:
		return &p->request_response_info;
	case VS_PROP_MAX_QOS:
		return &p->max_qos;
	case VS_PROP_RETAIN_AVAILABLE:
		return &p->retain_available;
	case VS_PROP_WILDCARD_SUB_AVAILABLE:
		return &p->wildcard_sub_available;
	case VS_PROP_SUB_ID_AVAILABLE:
		return &p->sub_id_available;
	case VS_PROP_SHARED_SUB_AVAILABLE:
		return &p->shared_sub_available;
	}
	*width = 2;
	switch (id) {
	case VS_PROP_SERVER_KEEPALIVE:
		return &p->server_keepalive;
	case VS_PROP_RECEIVE_MAX:
		return &p->receive_max;
	case VS_PROP_TOPIC_ALIAS_MAX:
		return &p->topic_alias_max;
	case VS_PROP_TOPIC_ALIAS:
		return &p->topic_alias;
	}
	*width = 4;
	switch (id) {
	case VS_PROP_MESSAGE_EXPIRY:
		return &p->message_expiry;
	case VS_PROP_SESSION_EXPIRY:
		return &p->session_expiry;
	case VS_PROP_WILL_DELAY:
		return &p->will_delay;
	case VS_PROP_MAX_PACKET_SIZE:
		return &p->max_packet_size;
	case VS_PROP_SUB_ID:
		return &p->sub_id;
	}
	return NULL;
}

static struct vs_buf *buf_field(struct vs_props *p, int id)
{
	switch (id) {
	case VS_PROP_CONTENT_TYPE:
		return &p->content_type;
	case VS_PROP_RESPONSE_TOPIC:
		return &p->response_topic;
	case VS_PROP_CORRELATION_DATA:
		return &p->correlation_data;
	case VS_PROP_ASSIGNED_CLIENT_ID:
		return &p->assigned_client_id;
	case VS_PROP_AUTH_METHOD:
		return &p->auth_method;
	case VS_PROP_AUTH_DATA:
		return &p->auth_data;
	case VS_PROP_RESPONSE_INFO:
		return &p->response_info;
	case VS_PROP_SERVER_REFERENCE:
		return &p->server_reference;
	case VS_PROP_REASON_STRING:
		return &p->reason_string;
	}
	return NULL;
}

struct viesti_props *viesti_props_new(void)
{
	struct viesti_props *pr = calloc(1, sizeof(*pr));
	if (pr)
		pr->owned = true;
	return pr;
}

void viesti_props_free(struct viesti_props *pr)
{
	if (!pr || !pr->owned)
		return;
	for (size_t i = 0; i < sizeof(pr->strs) / sizeof(pr->strs[0]); i++)
		free(pr->strs[i]);
	for (uint32_t i = 0; i < pr->p.n_user; i++) {
		free((void *)pr->users[i].key.p);
		free((void *)pr->users[i].val.p);
	}
	free(pr->users);
	free(pr);
}

void vs_cprops_view(struct viesti_props *out, const struct vs_props *decoded)
{
	memset(out, 0, sizeof(*out));
	if (decoded)
		out->p = *decoded;
	out->p.users = NULL;
	out->p.sub_ids = NULL;
}

int viesti_props_set_int(struct viesti_props *pr, int id, uint32_t value)
{
	int width;
	void *f = pr && pr->owned ? int_field(&pr->p, id, &width) : NULL;
	if (!f)
		return VIESTI_EINVAL;
	if ((width == 1 && value > 255) || (width == 2 && value > 65535))
		return VIESTI_EINVAL;
	if (id == VS_PROP_SUB_ID && (value == 0 || value > VS_MAX_SUB_ID))
		return VIESTI_EINVAL;
	if (width == 1)
		*(uint8_t *)f = (uint8_t)value;
	else if (width == 2)
		*(uint16_t *)f = (uint16_t)value;
	else
		*(uint32_t *)f = value;
	pr->p.present |= 1ull << id;
	return 0;
}

int viesti_props_set_binary(struct viesti_props *pr, int id, const void *data, size_t len)
{
	struct vs_buf *f = pr && pr->owned ? buf_field(&pr->p, id) : NULL;
	if (!f || len > 65535 || (len && !data))
		return VIESTI_EINVAL;
	uint8_t *copy = malloc(len ? len : 1);
	if (!copy)
		return -ENOMEM;
	if (len)
		memcpy(copy, data, len);
	free(pr->strs[id]);
	pr->strs[id] = copy;
	f->p = copy;
	f->len = len;
	pr->p.present |= 1ull << id;
	return 0;
}

int viesti_props_set_string(struct viesti_props *pr, int id, const char *value)
{
	if (prop_type(id) != P_STR || !value)
		return VIESTI_EINVAL;
	size_t len = strlen(value);
	if (!vs_utf8_valid((const uint8_t *)value, len))
		return VIESTI_EINVAL;
	return viesti_props_set_binary(pr, id, value, len);
}

static int dup_str(const char *s, size_t len, struct vs_buf *out)
{
	char *c = malloc(len + 1);
	if (!c)
		return -ENOMEM;
	memcpy(c, s, len);
	c[len] = 0;
	out->p = (const uint8_t *)c;
	out->len = len;
	return 0;
}

static int add_user_n(struct viesti_props *pr, const char *k, size_t kl, const char *v, size_t vl)
{
	if (!pr || !pr->owned || kl > 65535 || vl > 65535)
		return VIESTI_EINVAL;
	if (!vs_utf8_valid((const uint8_t *)k, kl) || !vs_utf8_valid((const uint8_t *)v, vl))
		return VIESTI_EINVAL;
	if (VS_VEC_GROW(pr->users, pr->cap_users, pr->p.n_user + 1, 4) < 0)
		return -ENOMEM;
	struct vs_user_prop *up = &pr->users[pr->p.n_user];
	if (dup_str(k, kl, &up->key) < 0)
		return -ENOMEM;
	if (dup_str(v, vl, &up->val) < 0) {
		free((void *)up->key.p);
		return -ENOMEM;
	}
	pr->p.n_user++;
	pr->p.users = pr->users;
	return 0;
}

int viesti_props_add_user(struct viesti_props *pr, const char *key, const char *value)
{
	if (!key || !value)
		return VIESTI_EINVAL;
	return add_user_n(pr, key, strlen(key), value, strlen(value));
}

bool viesti_props_has(const struct viesti_props *pr, int id)
{
	if (!pr || id < 0 || id > 63)
		return false;
	if (id == VS_PROP_USER)
		return pr->p.n_user > 0;
	return (pr->p.present >> id) & 1;
}

int viesti_props_get_int(const struct viesti_props *pr, int id, uint32_t *value)
{
	int width;
	struct vs_props tmp;
	if (!viesti_props_has(pr, id))
		return -ENOENT;
	tmp = pr->p;
	void *f = int_field(&tmp, id, &width);
	if (!f)
		return -ENOENT;
	*value = width == 1 ? *(uint8_t *)f : width == 2 ? *(uint16_t *)f : *(uint32_t *)f;
	return 0;
}

int viesti_props_get_binary(const struct viesti_props *pr, int id, const void **data, size_t *len)
{
	struct vs_props tmp;
	if (!viesti_props_has(pr, id))
		return -ENOENT;
	tmp = pr->p;
	struct vs_buf *f = buf_field(&tmp, id);
	if (!f)
		return -ENOENT;
	*data = f->p;
	*len = f->len;
	return 0;
}

/* Copies len bytes and a NUL into buf: the length, or VIESTI_ETOOBIG (buf left empty). */
static int copy_cstr(const void *data, size_t len, char *buf, size_t cap)
{
	if (len >= cap || len > INT_MAX) {
		if (cap)
			buf[0] = 0;
		return VIESTI_ETOOBIG;
	}
	memcpy(buf, data, len);
	buf[len] = 0;
	return (int)len;
}

int viesti_props_get_string(const struct viesti_props *pr, int id, char *buf, size_t cap)
{
	const void *d;
	size_t len;
	int rc = viesti_props_get_binary(pr, id, &d, &len);
	if (rc < 0) {
		if (cap)
			buf[0] = 0;
		return rc;
	}
	return copy_cstr(d, len, buf, cap);
}

int viesti_props_get_user(const struct viesti_props *pr, const char *key, char *buf, size_t cap)
{
	size_t pos = 0, kl, vl, want = strlen(key);
	const char *k, *v;
	while (viesti_props_next_user(pr, &pos, &k, &kl, &v, &vl))
		if (kl == want && !memcmp(k, key, kl))
			return copy_cstr(v, vl, buf, cap);
	if (cap)
		buf[0] = 0;
	return -ENOENT;
}

int viesti_props_next_user(const struct viesti_props *pr, size_t *pos, const char **key,
			   size_t *key_len, const char **value, size_t *value_len)
{
	struct vs_user_prop up;
	if (!pr)
		return 0;
	if (pr->owned) {
		if (*pos >= pr->p.n_user)
			return 0;
		up = pr->users[(*pos)++];
	} else if (!vs_props_next_user(&pr->p, pos, &up)) {
		return 0;
	}
	*key = (const char *)up.key.p;
	*key_len = up.key.len;
	*value = (const char *)up.val.p;
	*value_len = up.val.len;
	return 1;
}

int viesti_props_next_sub_id(const struct viesti_props *pr, size_t *pos, uint32_t *id)
{
	if (!pr || !viesti_props_has(pr, VS_PROP_SUB_ID))
		return 0;
	if (pr->owned) {
		if (*pos > 0)
			return 0;
		*pos = 1;
		*id = pr->p.sub_id;
		return 1;
	}
	return vs_props_next_sub_id(&pr->p, pos, id);
}

int vs_cprops_dup(const struct viesti_props *in, struct viesti_props **out)
{
	*out = NULL;
	if (!in)
		return 0;
	struct viesti_props *c = viesti_props_new();
	if (!c)
		return -ENOMEM;
	for (int id = 1; id < 0x30; id++) {
		uint32_t v;
		const void *d;
		size_t len;
		if (!viesti_props_has(in, id) || id == VS_PROP_USER)
			continue;
		if (viesti_props_get_int(in, id, &v) == 0)
			viesti_props_set_int(c, id, v);
		else if (viesti_props_get_binary(in, id, &d, &len) == 0 &&
			 viesti_props_set_binary(c, id, d, len) < 0)
			goto out_free;
	}
	size_t pos = 0;
	const char *k, *v;
	size_t kl, vl;
	while (viesti_props_next_user(in, &pos, &k, &kl, &v, &vl))
		if (add_user_n(c, k, kl, v, vl) < 0)
			goto out_free;
	*out = c;
	return 0;
out_free:
	viesti_props_free(c);
	return -ENOMEM;
}

/* Length of the value of property id at p (n bytes left), or 0 if it does not fit. */
static size_t value_len(int id, const uint8_t *p, size_t n)
{
	switch (prop_type(id)) {
	case P_BYTE:
		return 1;
	case P_U16:
		return 2;
	case P_U32:
		return 4;
	case P_VBI: {
		uint32_t v;
		int k = vs_vbi_decode(p, n, &v);
		return k > 0 ? (size_t)k : 0;
	}
	case P_STR:
	case P_BIN:
		return n < 2 ? 0 : 2 + ((size_t)p[0] << 8 | p[1]);
	case P_PAIR: {
		if (n < 2)
			return 0;
		size_t a = 2 + ((size_t)p[0] << 8 | p[1]);
		if (n < a + 2)
			return 0;
		return a + 2 + ((size_t)p[a] << 8 | p[a + 1]);
	}
	}
	return 0;
}

int viesti_props_next(const struct viesti_props *pr, size_t *pos, int *id)
{
	if (!pr)
		return 0;
	if (pr->owned) {
		/* ids 1..63 by number, then one entry per user property */
		while (*pos < 64) {
			int k = (int)(*pos)++;
			if (k != VS_PROP_USER && ((pr->p.present >> k) & 1)) {
				*id = k;
				return 1;
			}
		}
		if (*pos - 64 < pr->p.n_user) {
			(*pos)++;
			*id = VS_PROP_USER;
			return 1;
		}
		return 0;
	}
	const uint8_t *b = pr->p.raw.p;
	size_t n = pr->p.raw.len;
	if (*pos >= n)
		return 0;
	int k = b[*pos];
	size_t len = value_len(k, b + *pos + 1, n - *pos - 1);
	if (!len || *pos + 1 + len > n)
		return 0;
	*pos += 1 + len;
	*id = k;
	return 1;
}
