/*
 * viesti passwd: manages Mosquitto password files, with mosquitto_passwd's interface and exit
 * codes (0 done, 1 error, 2 the two passwords typed differ), so scripts written for it work:
 *
 *   viesti passwd [-H HASH] [-I N] [-c | -D] FILE USER   (asks for the password)
 *   viesti passwd [-H HASH] [-I N] [-c] -b FILE USER PASSWORD
 *   viesti passwd [-H HASH] [-I N] -U FILE
 *
 * HASH as mosquitto_passwd 2.1 spells it: sha512-pbkdf2 ($7$), argon2id, sha512 ($6$); and
 * scram-sha-256, ours (MQTT 5 SCRAM-SHA-256 credentials, which also check plain passwords).
 * The default stays sha512-pbkdf2, which Mosquitto 2.0 reads too (2.1 defaults to argon2id).
 *
 * Where it differs, it is on purpose: every change is written to a temporary file in the same
 * directory and renamed over the original (mosquitto_passwd rewrites in place, and 2.0.11
 * truncates the file after a line it cannot parse); lines it does not manage (comments, blank
 * lines, other users) are kept byte for byte; -U leaves lines that already hold a hash alone
 * instead of hashing the hash; a password read from a pipe may be given once or twice.
 *
 * The one global is the signal flag (STYLE.md's exception): Ctrl-C during a prompt must give the
 * terminal its echo back before exiting.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "auth/passwd.h"
#include "base/bytes.h"
#include "cmd/cmd.h"

#define PW_MAX 65535 /* an MQTT password is at most 65535 bytes */

enum { EXIT_OK = 0, EXIT_ERR = 1, EXIT_MISMATCH = 2 };

static volatile sig_atomic_t interrupted;

struct opts {
	bool create, delete, batch, update;
	enum vs_passwd_type type;
	unsigned iterations;
	const char *file, *user, *password;
};

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: viesti passwd [-H HASH] [-I ITER] [-c | -D] FILE USER\n"
	    "       viesti passwd [-H HASH] [-I ITER] [-c] -b FILE USER PASSWORD\n"
	    "       viesti passwd [-H HASH] [-I ITER] -U FILE\n\n"
	    "Manages a Mosquitto-compatible password file (mosquitto_passwd's options).\n\n"
	    "  -b       batch mode: the password is the last argument\n"
	    "  -c       create FILE with this one user, replacing any existing file\n"
	    "  -D       delete USER from FILE\n"
	    "  -U       hash every plain-text user:password line of FILE\n"
	    "  -H HASH  the hash for new entries:\n"
	    "             sha512-pbkdf2  $7$, the default: Mosquitto 2.0 and 2.1 read it\n"
	    "             argon2id       $argon2id$ (m=%d KiB, t=%d, p=%d), Mosquitto 2.1's\n"
	    "                            default; Mosquitto 2.0 cannot read it\n"
	    "             sha512         $6$, Mosquitto <= 1.6\n"
	    "             scram-sha-256  $scram-sha-256$: for MQTT 5 SCRAM-SHA-256 clients and\n"
	    "                            plain passwords alike; a Viesti extension that\n"
	    "                            Mosquitto cannot read\n"
	    "  -I ITER  iterations: sha512-pbkdf2 (default %d), scram-sha-256 (default and\n"
	    "           minimum %d); not for argon2id\n"
	    "  -h, --help  show this help\n\n"
	    "Without -b the password is asked for twice on a terminal, or read from standard\n"
	    "input (one line, or two equal lines) otherwise. Exit status: 0 done, 1 error,\n"
	    "2 the passwords did not match. See docs/passwd.md.\n",
	    VS_PASSWD_ARGON2_M, VS_PASSWD_ARGON2_T, VS_PASSWD_ARGON2_P, VS_PASSWD_ITERATIONS,
	    VS_SCRAM_ITERATIONS);
}

/* -H as mosquitto_passwd 2.1 spells it. Its usage text says "argon2" where its parser wants
 * "argon2id": both are taken. Returns -1 or an exit status. */
static int parse_hash(const char *v, enum vs_passwd_type *type)
{
	if (!strcmp(v, "sha512"))
		*type = VS_PASSWD_SHA512;
	else if (!strcmp(v, "sha512-pbkdf2"))
		*type = VS_PASSWD_PBKDF2;
	else if (!strcmp(v, "argon2id") || !strcmp(v, "argon2"))
		*type = VS_PASSWD_ARGON2ID;
	else if (!strcmp(v, "scram-sha-256"))
		*type = VS_PASSWD_SCRAM;
	else {
		fprintf(stderr, "Error: Unknown hash type '%s'\n", v);
		return EXIT_ERR;
	}
	return -1;
}

static int parse_iterations(const char *v, struct opts *o)
{
	char *end;
	errno = 0;
	long n = strtol(v, &end, 10);
	if (errno || *end || end == v || n < 1 || n > INT_MAX) {
		fprintf(stderr, "Error: Number of iterations must be > 0.\n");
		return EXIT_ERR;
	}
	o->iterations = (unsigned)n;
	return -1;
}

/* -I against -H, once both are known. Returns -1 or an exit status. */
static int check_iterations(struct opts *o)
{
	if (!o->iterations)
		return -1;
	if (o->type == VS_PASSWD_ARGON2ID) {
		fprintf(stderr, "Error: -I applies to sha512-pbkdf2 and scram-sha-256, not to "
				"argon2id.\n");
		return EXIT_ERR;
	}
	if (o->type == VS_PASSWD_SCRAM && o->iterations < VS_SCRAM_ITERATIONS) {
		fprintf(stderr, "Error: scram-sha-256 needs at least %d iterations (RFC 7677).\n",
			VS_SCRAM_ITERATIONS);
		return EXIT_ERR;
	}
	if (o->type == VS_PASSWD_SHA512)
		o->iterations = 0; /* $6$ has none: ignored, as mosquitto_passwd does */
	return -1;
}

/* Returns -1 to continue, or an exit status. */
static int parse_args(int argc, char **argv, struct opts *o)
{
	memset(o, 0, sizeof(*o));
	o->type = VS_PASSWD_PBKDF2;
	o->iterations = 0; /* the type's default */
	int i = 1;
	for (; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return EXIT_OK;
		} else if (!strcmp(a, "-c")) {
			o->create = true;
		} else if (!strcmp(a, "-D")) {
			o->delete = true;
		} else if (!strcmp(a, "-b")) {
			o->batch = true;
		} else if (!strcmp(a, "-U")) {
			o->update = true;
		} else if (!strcmp(a, "-H") || !strcmp(a, "-I")) {
			if (i + 1 >= argc) {
				fprintf(stderr, "Error: %s needs an argument.\n", a);
				return EXIT_ERR;
			}
			const char *v = argv[++i];
			int rc = a[1] == 'H' ? parse_hash(v, &o->type) : parse_iterations(v, o);
			if (rc >= 0)
				return rc;
		} else {
			fprintf(stderr, "Error: Unknown option '%s'.\n", a);
			return EXIT_ERR;
		}
	}
	int rc = check_iterations(o);
	if (rc >= 0)
		return rc;
	if (o->create && o->delete) {
		fprintf(stderr, "Error: -c and -D cannot be used together.\n");
		return EXIT_ERR;
	}
	if (o->update && (o->create || o->delete || o->batch)) {
		fprintf(stderr, "Error: -U cannot be used with -c, -D or -b.\n");
		return EXIT_ERR;
	}
	if (o->delete &&o->batch) {
		fprintf(stderr, "Error: -D and -b cannot be used together.\n");
		return EXIT_ERR;
	}
	int want = o->update ? 1 : o->batch ? 3 : 2;
	if (argc - i != want) {
		usage(stderr);
		return EXIT_ERR;
	}
	o->file = argv[i];
	o->user = o->update ? NULL : argv[i + 1];
	o->password = o->batch ? argv[i + 2] : NULL;
	if (o->user && !vs_passwd_user_valid(o->user)) {
		if (strchr(o->user, ':'))
			fprintf(stderr, "Error: Username must not contain the ':' character.\n");
		else
			fprintf(stderr, "Error: Invalid username '%s'.\n", o->user);
		return EXIT_ERR;
	}
	return -1;
}

/* ---- reading the password ---- */

static void on_signal(int sig)
{
	interrupted = sig;
}

/* Reads one line from fd 0 into buf (NUL-terminated, without "\n" / "\r\n"). Returns its length,
 * -1 at end of input before any byte, -2 when too long, -3 when interrupted. */
static long read_line(char *buf, size_t cap)
{
	size_t n = 0;
	for (;;) {
		char c;
		ssize_t r = read(0, &c, 1);
		if (r < 0 && errno == EINTR && !interrupted)
			continue;
		if (r < 0)
			return interrupted ? -3 : -1;
		if (r == 0) {
			if (n == 0)
				return -1;
			break;
		}
		if (c == '\n')
			break;
		if (n + 1 >= cap)
			return -2;
		buf[n++] = c;
	}
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	buf[n] = '\0';
	return (long)n;
}

/* Prompts with echo off. Echo goes off before the prompt is shown, and with TCSANOW rather than
 * TCSAFLUSH: whatever is typed (or pasted, or written by a test) after the prompt appears must
 * be read, not discarded. Returns read_line()'s result. */
static long prompt(const char *text, char *buf, size_t cap)
{
	struct termios old, quiet;
	bool tio = tcgetattr(0, &old) == 0;
	if (tio) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(0, TCSANOW, &quiet);
	}
	fputs(text, stderr);
	fflush(stderr);
	long n = read_line(buf, cap);
	if (tio)
		tcsetattr(0, TCSANOW, &old);
	fputc('\n', stderr);
	return n;
}

/* Gets the password into pw (cap PW_MAX + 2). Returns -1 on success or an exit status. */
static int get_password(char *pw, char *again, size_t cap)
{
	bool tty = isatty(0);
	struct sigaction sa = {.sa_handler = on_signal}, oint, oterm;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &oint); /* no SA_RESTART: read() returns EINTR */
	sigaction(SIGTERM, &sa, &oterm);
	int rc = -1;
	long n1 = tty ? prompt("Password: ", pw, cap) : read_line(pw, cap);
	long n2 = -1;
	if (n1 > 0)
		n2 = tty ? prompt("Reenter password: ", again, cap) : read_line(again, cap);
	sigaction(SIGINT, &oint, NULL);
	sigaction(SIGTERM, &oterm, NULL);
	if (n1 == -3 || n2 == -3) {
		rc = EXIT_ERR;
	} else if (n1 == -2 || n2 == -2) {
		fprintf(stderr, "Error: Password longer than %d bytes.\n", PW_MAX);
		rc = EXIT_ERR;
	} else if (n1 <= 0 || (tty && n2 <= 0)) {
		fprintf(stderr, "Error: Empty password.\n");
		rc = EXIT_ERR;
	} else if ((tty || n2 >= 0) && strcmp(pw, again) != 0) {
		/* On a pipe a single line is enough; a second one must agree. */
		fprintf(stderr, "Error: Passwords do not match.\n");
		rc = EXIT_MISMATCH;
	}
	return rc;
}

/* ---- the file ---- */

/* Appends "user:HASH\n" for pw to out. Returns 0 or an exit status. */
static int append_entry(struct vs_bytes *out, const struct opts *o, const char *user, size_t ulen,
			const char *pw, size_t pwlen)
{
	struct vs_passwd_hash h;
	char text[VS_PASSWD_HASH_STRMAX];
	if (vs_passwd_hash_init(&h, o->type, o->iterations) ||
	    vs_passwd_hash_make(&h, true, (const uint8_t *)pw, pwlen) ||
	    vs_passwd_hash_format(&h, text, sizeof(text)) < 0) {
		fprintf(stderr, "Error: Unable to hash the password.\n");
		return EXIT_ERR;
	}
	OPENSSL_cleanse(&h, sizeof(h));
	if (vs_bytes_append(out, user, ulen) || vs_bytes_append(out, ":", 1) ||
	    vs_bytes_append(out, text, strlen(text)) || vs_bytes_append(out, "\n", 1)) {
		fprintf(stderr, "Error: Out of memory.\n");
		return EXIT_ERR;
	}
	return 0;
}

/* The username of a line ([s, s + n) without its newline), or NULL for a line that holds none
 * (blank, comment, no ':'). */
static const char *line_user(const char *s, size_t n, size_t *ulen)
{
	const char *t = s;
	size_t tn = n;
	while (tn && (*t == ' ' || *t == '\t')) {
		t++;
		tn--;
	}
	const char *colon = memchr(t, ':', tn);
	if (tn == 0 || *t == '#' || !colon)
		return NULL;
	size_t k = (size_t)(colon - t);
	while (k && (t[k - 1] == ' ' || t[k - 1] == '\t'))
		k--;
	*ulen = k;
	return t;
}

/* Reads the whole existing file. Returns 0, or an exit status after a message. */
static int read_existing(const char *path, char **text, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "Error: Unable to open password file %s. %s.\n", path,
			strerror(errno));
		return EXIT_ERR;
	}
	struct vs_bytes b = {0};
	char chunk[4096];
	size_t r;
	while ((r = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (vs_bytes_append(&b, chunk, r)) {
			fclose(f);
			vs_bytes_fini(&b);
			fprintf(stderr, "Error: Out of memory.\n");
			return EXIT_ERR;
		}
	int bad = ferror(f);
	fclose(f);
	if (bad || vs_bytes_append(&b, "", 1)) {
		vs_bytes_fini(&b);
		fprintf(stderr, "Error reading password file %s.\n", path);
		return EXIT_ERR;
	}
	*text = (char *)b.data;
	*len = b.len - 1;
	return 0;
}

/* Copies text to out, replacing (-b) or dropping (-D) the lines of o->user, or hashing plain
 * passwords (-U). Returns 0 or an exit status. */
static int rewrite(const struct opts *o, const char *text, size_t len, const char *pw,
		   struct vs_bytes *out)
{
	bool found = false;
	size_t ulen = o->user ? strlen(o->user) : 0;
	unsigned lineno = 0;
	for (const char *p = text, *end = text + len; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *next = nl ? nl + 1 : end;
		size_t n = (size_t)((nl ? nl : end) - p), lu;
		if (n && p[n - 1] == '\r')
			n--;
		lineno++;
		const char *u = line_user(p, n, &lu);
		const char *keep = p;
		size_t keepn = (size_t)(next - p);
		if (o->update && u) {
			const char *v = memchr(p, ':', n) + 1;
			size_t vn = (size_t)(p + n - v);
			struct vs_passwd_hash h;
			const char *tv = v;
			size_t tvn = vn;
			while (tvn && (*tv == ' ' || *tv == '\t')) {
				tv++;
				tvn--;
			}
			while (tvn && (tv[tvn - 1] == ' ' || tv[tvn - 1] == '\t'))
				tvn--;
			const char *why = NULL;
			if (vs_passwd_hash_parse(&h, tv, tvn, &why) != 0 &&
			    vs_passwd_hash_like(tv, tvn)) {
				/* a damaged hash, not a password: hashing it would hide the damage
				 */
				fprintf(stderr, "Error: Corrupt password file at line %u: %s.\n",
					lineno, why);
				return EXIT_ERR;
			}
			if (!why) {
				/* already hashed: keep the line */
			} else {
				int rc = append_entry(out, o, u, lu, v, vn);
				if (rc)
					return rc;
				keepn = 0;
			}
		} else if (o->update && !u && n && *p != '#' && *p != ' ' && *p != '\t') {
			fprintf(stderr, "Error: Corrupt password file at line %u.\n", lineno);
			return EXIT_ERR;
		} else if (u && lu == ulen && !memcmp(u, o->user, ulen)) {
			if (!o->delete &&!found) {
				int rc = append_entry(out, o, u, lu, pw, strlen(pw));
				if (rc)
					return rc;
			}
			found = true;
			keepn = 0;
		}
		if (keepn && vs_bytes_append(out, keep, keepn))
			return EXIT_ERR;
		p = next;
	}
	if (o->delete &&!found) {
		fprintf(stderr, "Warning: User %s not found in password file.\n", o->user);
		return EXIT_ERR;
	}
	if (!o->delete &&!o->update && !found) {
		if (out->len && out->data[out->len - 1] != '\n' && vs_bytes_append(out, "\n", 1))
			return EXIT_ERR;
		return append_entry(out, o, o->user, ulen, pw, strlen(pw));
	}
	return 0;
}

/* Replaces path with data atomically: a temporary file next to it, then rename(2). Keeps an
 * existing file's mode (and owner, when we may); a new file gets 0666 minus the umask, as
 * mosquitto_passwd's does. Returns 0 or an exit status. */
static int write_atomic(const char *path, const uint8_t *data, size_t len)
{
	char *real = realpath(path, NULL); /* write through a symlink, not over it */
	const char *target = real ? real : path;
	struct stat st;
	bool exists = stat(target, &st) == 0;
	size_t tlen = strlen(target) + 16;
	char *tmp = malloc(tlen);
	int rc = EXIT_ERR, fd = -1;
	if (!tmp)
		goto out;
	snprintf(tmp, tlen, "%s.tmpXXXXXX", target);
	fd = mkstemp(tmp);
	if (fd < 0) {
		fprintf(stderr, "Error: Unable to create %s: %s.\n", tmp, strerror(errno));
		goto out;
	}
	mode_t mode;
	if (exists) {
		mode = st.st_mode & 07777;
		if (fchown(fd, st.st_uid, st.st_gid)) {
			/* not ours to give away: the file becomes ours, which is what we can do */
		}
	} else {
		mode_t mask = umask(0);
		umask(mask);
		mode = 0666 & ~mask;
	}
	size_t off = 0;
	while (off < len) {
		ssize_t w = write(fd, data + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			goto out_unlink;
		off += (size_t)w;
	}
	if (fchmod(fd, mode) || fsync(fd) || close(fd)) {
		fd = -1;
		goto out_unlink;
	}
	fd = -1;
	if (rename(tmp, target))
		goto out_unlink;
	char *dcopy = strdup(target);
	if (dcopy) {
		int dfd = open(dirname(dcopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0) {
			(void)fsync(dfd); /* the rename itself survives a crash */
			close(dfd);
		}
		free(dcopy);
	}
	rc = 0;
	goto out;

out_unlink:
	fprintf(stderr, "Error: Unable to write password file %s: %s.\n", target, strerror(errno));
	if (fd >= 0)
		close(fd);
	unlink(tmp);
out:
	free(tmp);
	free(real);
	return rc;
}

int vs_cmd_passwd(int argc, char **argv)
{
	struct opts o;
	int rc = parse_args(argc, argv, &o);
	if (rc >= 0)
		return rc;
	char *pw = NULL, *again = NULL, *text = NULL;
	size_t len = 0;
	struct vs_bytes out = {0};
	if (!o.create) {
		rc = read_existing(o.file, &text, &len);
		if (rc)
			goto out;
	}
	if (!o.delete &&!o.update && !o.batch) {
		pw = calloc(1, PW_MAX + 2);
		again = calloc(1, PW_MAX + 2);
		rc = pw && again ? get_password(pw, again, PW_MAX + 2) : EXIT_ERR;
		if (rc >= 0)
			goto out;
	}
	const char *password = o.batch ? o.password : pw;
	if (o.create)
		rc = append_entry(&out, &o, o.user, strlen(o.user), password, strlen(password));
	else
		rc = rewrite(&o, text, len, password, &out);
	if (rc == 0)
		rc = write_atomic(o.file, out.data, out.len);
out:
	if (pw)
		OPENSSL_cleanse(pw, PW_MAX + 2);
	if (again)
		OPENSSL_cleanse(again, PW_MAX + 2);
	if (text)
		OPENSSL_cleanse(text, len);
	if (out.data)
		OPENSSL_cleanse(out.data, out.cap);
	free(pw);
	free(again);
	free(text);
	vs_bytes_fini(&out);
	return rc;
}
