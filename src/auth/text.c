/*
 * Line-oriented reading shared by the password and ACL parsers (see text.h).
 */
#include "auth/text.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "base/error.h"

int vs_auth_read_file(const char *path, char **out, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap + 1);
	int rc = 0;
	if (!buf) {
		rc = -ENOMEM;
		goto out_close;
	}
	for (;;) {
		if (n == cap) {
			if (cap >= VS_AUTH_FILE_MAX) {
				rc = -EFBIG;
				goto out_free;
			}
			char *nb = realloc(buf, cap * 2 + 1);
			if (!nb) {
				rc = -ENOMEM;
				goto out_free;
			}
			buf = nb;
			cap *= 2;
		}
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			goto out_free;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	close(fd);
	return 0;

out_free:
	free(buf);
out_close:
	close(fd);
	return rc;
}

void vs_auth_lines_init(struct vs_auth_lines *it, const char *text, size_t len)
{
	it->p = text;
	it->end = text + len;
	it->lineno = 0;
}

int vs_auth_lines_next(struct vs_auth_lines *it, const char **s, size_t *n)
{
	if (it->p >= it->end)
		return 0;
	const char *nl = memchr(it->p, '\n', (size_t)(it->end - it->p));
	const char *stop = nl ? nl : it->end;
	*s = it->p;
	*n = (size_t)(stop - it->p);
	if (*n > 0 && (*s)[*n - 1] == '\r')
		(*n)--;
	it->p = nl ? nl + 1 : it->end;
	it->lineno++;
	return 1;
}

void vs_auth_trim(const char **s, size_t *n)
{
	while (*n > 0 && (**s == ' ' || **s == '\t')) {
		(*s)++;
		(*n)--;
	}
	while (*n > 0 && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
		(*n)--;
}

int vs_auth_err(char *err, size_t errlen, const char *name, unsigned line, const char *fmt, ...)
{
	if (!err || errlen == 0)
		return VS_ECONF;
	int k = line ? snprintf(err, errlen, "%s:%u: ", name, line)
		     : snprintf(err, errlen, "%s: ", name);
	if (k < 0)
		k = 0;
	if ((size_t)k < errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err + k, errlen - (size_t)k, fmt, ap);
		va_end(ap);
	}
	return VS_ECONF;
}

int vs_auth_each_line(const char *text, size_t len, const char *name,
		      int (*fn)(void *ctx, const char *s, size_t n, unsigned lineno), void *ctx,
		      char *err, size_t errlen)
{
	struct vs_auth_lines it;
	const char *s;
	size_t n;
	vs_auth_lines_init(&it, text, len);
	while (vs_auth_lines_next(&it, &s, &n)) {
		const char *t = s;
		size_t tn = n;
		vs_auth_trim(&t, &tn);
		if (tn == 0 || t[0] == '#')
			continue;
		int rc = fn(ctx, s, n, it.lineno);
		if (rc == -ENOMEM)
			vs_auth_err(err, errlen, name, it.lineno, "out of memory");
		if (rc)
			return rc;
	}
	return 0;
}

void *vs_auth_load(const char *path,
		   void *(*parse)(const char *text, size_t len, const char *name, char *err,
				  size_t errlen),
		   char *err, size_t errlen)
{
	char *text;
	size_t len;
	int rc = vs_auth_read_file(path, &text, &len);
	if (rc) {
		vs_auth_err(err, errlen, path, 0, "%s",
			    rc == -EFBIG ? "file too large" : strerror(-rc));
		return NULL;
	}
	void *out = parse(text, len, path, err, errlen);
	OPENSSL_cleanse(text, len);
	free(text);
	return out;
}
