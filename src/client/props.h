/*
 * The inside of struct viesti_props: a struct vs_props the codec can encode directly, plus the
 * storage it points into. A list is either built by the caller (`owned`: every string and the
 * user-property array are heap copies freed with the list) or a view of a decoded packet handed
 * to a callback (not owned: strings point into the input buffer, user properties and subscription
 * identifiers are walked in the raw block).
 */
#ifndef VS_CLIENT_PROPS_H
#define VS_CLIENT_PROPS_H

#include <stdbool.h>

#include "codec/codec.h"
#include "viesti.h"

struct viesti_props {
	struct vs_props p;	    /* what the codec reads; string views point into strs[] */
	bool owned;		    /* built by the API (true) or a decoded view (false) */
	uint8_t *strs[0x20];	    /* owned string/binary values, indexed by property id */
	struct vs_user_prop *users; /* owned user properties (p.users == users) */
	uint32_t cap_users;
};

/* A view of decoded properties, for callbacks. */
void vs_cprops_view(struct viesti_props *out, const struct vs_props *decoded);
/* Deep copy; *out is NULL when in is NULL. Returns 0 or -ENOMEM. */
int vs_cprops_dup(const struct viesti_props *in, struct viesti_props **out);

#endif
