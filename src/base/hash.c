#include "base/hash.h"

#include <string.h>
#include <sys/random.h>
#include <time.h>

uint64_t vs_hash_seed(void)
{
	uint64_t seed = 0;
	struct timespec ts;

	if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed)) {
		/* No entropy yet (early boot): a weaker seed still beats a fixed one. */
		clock_gettime(CLOCK_MONOTONIC, &ts);
		seed = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)&seed;
	}
	return seed ? seed : 1; /* 0 means "not drawn yet" to its users */
}

static uint64_t mix(uint64_t h)
{
	h ^= h >> 32;
	h *= 0xd6e8feb86659fd93ull;
	h ^= h >> 32;
	return h;
}

uint64_t vs_hash64(uint64_t seed, const void *p, size_t len)
{
	const unsigned char *s = p;
	uint64_t h = seed ^ ((uint64_t)len * 0x9e3779b97f4a7c15ull);
	uint64_t w;

	while (len >= 8) {
		memcpy(&w, s, 8);
		h = mix(h ^ w);
		s += 8;
		len -= 8;
	}
	w = 0;
	if (len)
		memcpy(&w, s, len);
	h = mix(h ^ w);
	return h ? h : 1;
}
