/*
 * Unit tests for the client's TLS (src/client/tls.c, tls_ctx.c) without a broker: option
 * checks, files that cannot be used, PSK hex, a whole handshake over a socketpair against an
 * OpenSSL server in this process (with the host-name check, --insecure and a wrong CA), and the
 * client's connect deadline against a listener that never answers the handshake.
 *
 * The certificates are made here with OpenSSL's API (a CA, and a leaf for localhost and
 * 127.0.0.1 signed by it; a second CA that signed nothing we meet) and written to a temporary
 * directory as PEM.
 */
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "base/bytes.h"
#include "client/tls.h"
#include "viesti.h"

struct pki {
	char dir[64];
	char ca[96], otherca[96], cert[96], key[96], otherkey[96], garbage[96];
	X509 *leaf;
	EVP_PKEY *leaf_key;
};

static struct pki P;

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX v3;
	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
	X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
	assert_non_null(e);
	X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
}

/* A certificate for key, named cn, signed by issuer (itself when NULL) with signer. */
static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *signer,
		       const char *san)
{
	static long serial = 1;
	X509 *x = X509_new();
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, key);
	X509_NAME *name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
	add_ext(x, issuer ? issuer : x, NID_basic_constraints,
		san ? "CA:FALSE" : "critical,CA:TRUE");
	if (san)
		add_ext(x, issuer, NID_subject_alt_name, san);
	else
		add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign");
	assert_true(X509_sign(x, signer ? signer : key, EVP_sha256()) > 0);
	return x;
}

static void write_pem(const char *path, X509 *x, EVP_PKEY *k)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_true(x ? PEM_write_X509(f, x)
		      : PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL));
	fclose(f);
}

static int make_pki(void **state)
{
	snprintf(P.dir, sizeof(P.dir), "/tmp/vs-tls-XXXXXX");
	assert_non_null(mkdtemp(P.dir));
	snprintf(P.ca, sizeof(P.ca), "%s/ca.crt", P.dir);
	snprintf(P.otherca, sizeof(P.otherca), "%s/otherca.crt", P.dir);
	snprintf(P.cert, sizeof(P.cert), "%s/leaf.crt", P.dir);
	snprintf(P.key, sizeof(P.key), "%s/leaf.key", P.dir);
	snprintf(P.otherkey, sizeof(P.otherkey), "%s/other.key", P.dir);
	snprintf(P.garbage, sizeof(P.garbage), "%s/garbage.crt", P.dir);
	EVP_PKEY *ca_key = EVP_EC_gen("P-256"), *other_key = EVP_EC_gen("P-256");
	P.leaf_key = EVP_EC_gen("P-256");
	X509 *ca = make_cert(ca_key, "Test CA", NULL, NULL, NULL);
	X509 *other = make_cert(other_key, "Other CA", NULL, NULL, NULL);
	P.leaf = make_cert(P.leaf_key, "localhost", ca, ca_key, "DNS:localhost,IP:127.0.0.1");
	write_pem(P.ca, ca, NULL);
	write_pem(P.otherca, other, NULL);
	write_pem(P.cert, P.leaf, NULL);
	write_pem(P.key, NULL, P.leaf_key);
	write_pem(P.otherkey, NULL, other_key);
	FILE *f = fopen(P.garbage, "w");
	fputs("not a certificate\n", f);
	fclose(f);
	X509_free(ca);
	X509_free(other);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(other_key);
	return 0;
}

static int remove_pki(void **state)
{
	const char *files[] = {P.ca, P.otherca, P.cert, P.key, P.otherkey, P.garbage};
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		unlink(files[i]);
	rmdir(P.dir);
	X509_free(P.leaf);
	EVP_PKEY_free(P.leaf_key);
	return 0;
}

/* ---- options and files through viesti_new() --------------------------------------------- */

static char last_log[512];

static void on_log(struct viesti *v, void *ud, int level, const char *line)
{
	if (level == VIESTI_LOG_ERR)
		snprintf(last_log, sizeof(last_log), "%s", line);
}

/* viesti_new() with tls; returns its error (the client, if made, is freed). */
static int try_new(const struct viesti_tls *tls)
{
	struct viesti_options o;
	viesti_options_init(&o);
	o.tls = tls;
	struct viesti_callbacks cb = {.on_log = on_log};
	int err = 1;
	last_log[0] = 0;
	struct viesti *v = viesti_new(&o, &cb, NULL, &err);
	if (v) {
		assert_int_equal(err, 0);
		viesti_free(v);
	} else {
		assert_true(err < 0);
	}
	return err;
}

static void test_defaults_keep_tls_off(void **state)
{
	struct viesti_options o;
	viesti_options_init(&o);
	assert_null(o.tls);
	assert_int_equal(o.port, 1883);
}

static void test_contradictory_options_rejected(void **state)
{
	const struct viesti_tls bad[] = {
	    {.cafile = P.ca, .certfile = P.cert}, /* a certificate needs its key */
	    {.cafile = P.ca, .keyfile = P.key},
	    {.cafile = P.ca, .tls_version = "tlsv1.1"},
	    {.cafile = P.ca, .tls_version = "TLSv1.2"},
	    {.cafile = P.ca, .alpn = ""},
	    {.psk = "00ff", .cafile = P.ca, .psk_identity = "id"}, /* PSK or certificates */
	    {.psk = "00ff", .certfile = P.cert, .keyfile = P.key, .psk_identity = "id"},
	    {.psk = "00ff"}, /* no identity */
	    {.psk = "00ff", .psk_identity = ""},
	    {.psk = "0x00ff", .psk_identity = "id"}, /* not hex */
	    {.psk = "", .psk_identity = "id"},
	    {.psk_identity = "id"}, /* an identity without a key */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(try_new(&bad[i]), VIESTI_EINVAL);
		assert_true(strncmp(last_log, "TLS: ", 5) == 0);
	}
	char alpn[300];
	memset(alpn, 'a', sizeof(alpn) - 1);
	alpn[sizeof(alpn) - 1] = 0;
	assert_int_equal(try_new(&(struct viesti_tls){.alpn = alpn}), VIESTI_EINVAL);
}

static void test_good_options_accepted(void **state)
{
	assert_int_equal(try_new(&(struct viesti_tls){0}), 0); /* the system store */
	assert_int_equal(try_new(&(struct viesti_tls){.cafile = P.ca, .os_certs = true}), 0);
	assert_int_equal(try_new(&(struct viesti_tls){.capath = P.dir}), 0);
	assert_int_equal(try_new(&(struct viesti_tls){.cafile = P.ca,
						      .certfile = P.cert,
						      .keyfile = P.key,
						      .insecure = true,
						      .tls_version = "tlsv1.3",
						      .alpn = "mqtt"}),
			 0);
	assert_int_equal(try_new(&(struct viesti_tls){.psk = "abc", .psk_identity = "id"}), 0);
}

static void test_unusable_files(void **state)
{
	char missing[128];
	snprintf(missing, sizeof(missing), "%s/missing.crt", P.dir);
	assert_int_equal(try_new(&(struct viesti_tls){.cafile = missing}), -ENOENT);
	assert_non_null(strstr(last_log, "cannot read CA file"));
	assert_non_null(strstr(last_log, missing));
	assert_int_equal(try_new(&(struct viesti_tls){.capath = missing}), -ENOENT);
	assert_int_equal(try_new(&(struct viesti_tls){.cafile = P.garbage}), VIESTI_ETLS);
	assert_non_null(strstr(last_log, "cannot load CA certificates"));
	assert_int_equal(try_new(&(struct viesti_tls){.certfile = P.garbage, .keyfile = P.key}),
			 VIESTI_ETLS);
	assert_non_null(strstr(last_log, "cannot load certificate file"));
	/* A key that is not the certificate's. */
	assert_int_equal(try_new(&(struct viesti_tls){.certfile = P.cert, .keyfile = P.otherkey}),
			 VIESTI_ETLS);
	assert_non_null(strstr(last_log, "mismatch"));
}

static void test_hex_decode(void **state)
{
	uint8_t b[4];
	assert_int_equal(vs_hex_decode("00A1ff", b, sizeof(b)), 3);
	assert_memory_equal(b, "\x00\xa1\xff", 3);
	/* An odd count of digits reads with a leading 0, as Mosquitto's BN_hex2bn does. */
	assert_int_equal(vs_hex_decode("abc", b, sizeof(b)), 2);
	assert_memory_equal(b, "\x0a\xbc", 2);
	assert_int_equal(vs_hex_decode("0", b, sizeof(b)), 1);
	assert_int_equal(b[0], 0);
	assert_int_equal(vs_hex_decode("", b, sizeof(b)), VIESTI_EINVAL);
	assert_int_equal(vs_hex_decode("0g", b, sizeof(b)), VIESTI_EINVAL);
	assert_int_equal(vs_hex_decode("g", b, sizeof(b)), VIESTI_EINVAL);
	assert_int_equal(vs_hex_decode("0102030405", b, sizeof(b)), VIESTI_EINVAL);
	assert_int_equal(vs_hex_decode("01020304", b, sizeof(b)), 4);
}

/* ---- a handshake over a socketpair --------------------------------------------------------- */

struct pair {
	struct vs_tls_ctx *ctx;
	SSL_CTX *server_ctx;
	SSL *client, *server;
	int fd[2];
	char err[256];
};

static void pair_open(struct pair *p, const struct viesti_tls *o, const char *host)
{
	memset(p, 0, sizeof(*p));
	assert_int_equal(vs_tls_ctx_new(o, &p->ctx, p->err, sizeof(p->err)), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, p->fd), 0);
	p->server_ctx = SSL_CTX_new(TLS_server_method());
	assert_int_equal(SSL_CTX_use_certificate(p->server_ctx, P.leaf), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(p->server_ctx, P.leaf_key), 1);
	p->server = SSL_new(p->server_ctx);
	SSL_set_fd(p->server, p->fd[1]);
	SSL_set_accept_state(p->server);
	assert_int_equal(
	    vs_tls_session_new(p->ctx, p->fd[0], host, &p->client, p->err, sizeof(p->err)), 0);
}

static void pair_close(struct pair *p)
{
	vs_tls_session_free(p->client);
	SSL_free(p->server);
	SSL_CTX_free(p->server_ctx);
	vs_tls_ctx_free(p->ctx);
	close(p->fd[0]);
	close(p->fd[1]);
}

/* Steps both sides until the client's handshake ends; returns its result. The first client
 * step must wait for the server's answer (EPOLLIN), not spin on a writable socket. */
static int pair_handshake(struct pair *p)
{
	uint32_t wait = 0;
	int rc = vs_tls_handshake(p->client, &wait, p->err, sizeof(p->err));
	assert_int_equal(rc, -EAGAIN);
	assert_int_equal(wait, EPOLLIN);
	for (int i = 0; i < 20 && rc == -EAGAIN; i++) {
		SSL_do_handshake(p->server);
		rc = vs_tls_handshake(p->client, &wait, p->err, sizeof(p->err));
	}
	return rc;
}

static void test_handshake_and_data(void **state)
{
	struct pair p;
	pair_open(&p, &(struct viesti_tls){.cafile = P.ca}, "localhost");
	assert_int_equal(pair_handshake(&p), 0);
	assert_int_equal(SSL_do_handshake(p.server), 1);
	assert_int_equal(vs_tls_write(p.client, "\x10\x00", 2, p.err, sizeof(p.err)), 2);
	char buf[VS_TLS_RECORD];
	assert_int_equal(SSL_read(p.server, buf, sizeof(buf)), 2);
	assert_int_equal(SSL_write(p.server, "\x20\x02\x00\x00", 4), 4);
	ssize_t n;
	do /* TLS 1.3 session tickets come first: -EAGAIN until the data */
		n = vs_tls_read(p.client, buf, sizeof(buf), p.err, sizeof(p.err));
	while (n == -EAGAIN);
	assert_int_equal(n, 4);
	assert_memory_equal(buf, "\x20\x02\x00\x00", 4);
	assert_int_equal(vs_tls_read(p.client, buf, sizeof(buf), p.err, sizeof(p.err)), -EAGAIN);
	/* An orderly close is the end of the stream. */
	SSL_shutdown(p.server);
	assert_int_equal(vs_tls_read(p.client, buf, sizeof(buf), p.err, sizeof(p.err)), 0);
	pair_close(&p);
}

static void test_handshake_by_ip_address(void **state)
{
	struct pair p;
	pair_open(&p, &(struct viesti_tls){.cafile = P.ca}, "127.0.0.1");
	assert_int_equal(pair_handshake(&p), 0);
	pair_close(&p);
	pair_open(&p, &(struct viesti_tls){.cafile = P.ca}, "127.0.0.2");
	assert_int_equal(pair_handshake(&p), VIESTI_ETLS);
	assert_string_equal(p.err, "certificate verify failed: IP address mismatch");
	pair_close(&p);
}

static void test_host_name_mismatch_and_insecure(void **state)
{
	struct pair p;
	pair_open(&p, &(struct viesti_tls){.cafile = P.ca}, "elsewhere.test");
	assert_int_equal(pair_handshake(&p), VIESTI_ETLS);
	assert_string_equal(p.err, "certificate verify failed: hostname mismatch");
	pair_close(&p);
	pair_open(&p, &(struct viesti_tls){.cafile = P.ca, .insecure = true}, "elsewhere.test");
	assert_int_equal(pair_handshake(&p), 0);
	pair_close(&p);
}

static void test_wrong_ca_refused_even_insecure(void **state)
{
	struct pair p;
	pair_open(&p, &(struct viesti_tls){.cafile = P.otherca, .insecure = true}, "localhost");
	assert_int_equal(pair_handshake(&p), VIESTI_ETLS);
	assert_non_null(strstr(p.err, "certificate verify failed: unable to get local issuer"));
	pair_close(&p);
}

/* ---- the connect deadline covers the handshake --------------------------------------------- */

static double cpu_seconds(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
	       ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A listener that never accepts: the kernel completes TCP, nobody answers the ClientHello. */
static void test_silent_server_times_out_without_spinning(void **state)
{
	int l = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(l, 4), 0);
	assert_int_equal(getsockname(l, (struct sockaddr *)&a, &len), 0);
	struct viesti_tls tls = {.cafile = P.ca};
	struct viesti_options o;
	viesti_options_init(&o);
	o.host = "127.0.0.1";
	o.port = ntohs(a.sin_port);
	o.tls = &tls;
	o.reconnect = false;
	o.connect_timeout_ms = 400;
	int err;
	struct viesti *v = viesti_new(&o, NULL, NULL, &err);
	assert_non_null(v);
	double t0 = now_s(), c0 = cpu_seconds();
	assert_int_equal(viesti_connect_wait(v, 5000), -ETIMEDOUT);
	double took = now_s() - t0, cpu = cpu_seconds() - c0;
	assert_true(took >= 0.35 && took < 3.0);
	/* Waiting for EPOLLOUT on a connected socket would burn the whole 400 ms. */
	assert_true(cpu < took / 2);
	viesti_free(v);
	close(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults_keep_tls_off),
	    cmocka_unit_test(test_contradictory_options_rejected),
	    cmocka_unit_test(test_good_options_accepted),
	    cmocka_unit_test(test_unusable_files),
	    cmocka_unit_test(test_hex_decode),
	    cmocka_unit_test(test_handshake_and_data),
	    cmocka_unit_test(test_handshake_by_ip_address),
	    cmocka_unit_test(test_host_name_mismatch_and_insecure),
	    cmocka_unit_test(test_wrong_ca_refused_even_insecure),
	    cmocka_unit_test(test_silent_server_times_out_without_spinning),
	};
	return cmocka_run_group_tests(tests, make_pki, remove_pki);
}
