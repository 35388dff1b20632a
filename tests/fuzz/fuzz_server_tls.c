/*
 * Fuzzes the broker's TLS record path: a real broker with a TLS listener (certificate, client
 * certificates, PSK) and two clients on socketpairs, which shake hands through libviesti's
 * client TLS code inside the worker's loop and then send what the input says: MQTT inside valid
 * records, raw bytes in the middle of the stream (forged or broken records), close_notify, key
 * updates, hang-ups, publishes large enough to span records both ways. Any input must leave the
 * broker whole: no crash, no sanitizer report, no leak once it is shut down.
 *
 * Input: one byte of set-up, then operations.
 *   set-up bit 0  require_certificate (the clients then need bit 1 to get in)
 *          bit 1  the clients present a certificate
 *          bit 2  the clients stop at TLS 1.2
 *          bit 3  the clients use TLS-PSK instead of certificates
 *          bit 4  client 0 shakes no hands: its bytes go raw from the first (a ClientHello, plain
 *                 MQTT on a TLS port, garbage)
 *          bit 5  client 1 resumes client 0's session
 *          bit 6  use_identity_as_username (the certificate's CN or the PSK identity)
 *          bit 7  the clients speak MQTT 5.0, else 3.1.1
 *   operation: a byte (client = op & 1; kind = (op >> 1) % 6) and a length byte, then:
 *     0  that many bytes of the input, written through TLS
 *     1  that many bytes of the input, written raw to the socket
 *     2  close_notify                 3  hang up
 *     4  a key update (TLS 1.3)       5  a PUBLISH to "big" of length * 97 bytes, through TLS
 *   after each, the worker takes turns while the clients read what it sent.
 * The key, certificate and PSK file are made once per process, under /tmp.
 */
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <netinet/in.h>
#include <sys/stat.h>

#include "client/tls.h"
#include "fuzz_server_common.h"
#include "net/tls.h"
#include "viesti.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { CLIENTS = 2, ROUNDS = 8 };

static char dir[64], cert_path[96], key_path[96], psk_path[96];
static int port;
/* Client contexts by set-up bits 1..3 (certificate, TLS 1.2, PSK): made once, read-only after. */
static struct vs_tls_ctx *ctxs[8];
/* VS_FUZZ_VERBOSE=1: what each client went through, to check that seeds get where they should. */
static bool verbose;

static void die(const char *what)
{
	fprintf(stderr, "fuzz set-up: %s\n", what);
	ERR_print_errors_fp(stderr);
	abort();
}

/* A P-256 key and a self-signed CA certificate for CN=localhost (also its DNS name), which
 * serves as the server's certificate, the client's, and the trust anchor of both. */
static void make_pki(void)
{
	snprintf(dir, sizeof(dir), "/tmp/vs-fuzz-tls-%d", (int)getpid());
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		die("mkdir");
	snprintf(cert_path, sizeof(cert_path), "%s/cert.pem", dir);
	snprintf(key_path, sizeof(key_path), "%s/key.pem", dir);
	snprintf(psk_path, sizeof(psk_path), "%s/psk", dir);
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	if (!key || !x)
		die("key");
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 30L * 86400);
	X509_NAME *name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1,
				   -1, 0);
	X509_set_issuer_name(x, name);
	X509_set_pubkey(x, key);
	X509V3_CTX v3;
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	const char *exts[][2] = {{"basicConstraints", "critical,CA:TRUE"},
				 {"keyUsage", "digitalSignature,keyCertSign"},
				 {"subjectAltName", "DNS:localhost"}};
	for (size_t i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) {
		X509_EXTENSION *e = X509V3_EXT_conf(NULL, &v3, exts[i][0], exts[i][1]);
		if (!e || !X509_add_ext(x, e, -1))
			die("extension");
		X509_EXTENSION_free(e);
	}
	if (!X509_sign(x, key, EVP_sha256()))
		die("sign");
	FILE *f = fopen(cert_path, "w");
	if (!f || !PEM_write_X509(f, x) || fclose(f))
		die("cert.pem");
	f = fopen(key_path, "w");
	if (!f || !PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) || fclose(f))
		die("key.pem");
	f = fopen(psk_path, "w");
	if (!f || fputs("fuzzer:00112233445566778899aabbccddeeff\n", f) < 0 || fclose(f))
		die("psk");
	X509_free(x);
	EVP_PKEY_free(key);
}

/* A loopback port nobody listens on, for this process's listener (the broker binds it per input
 * with SO_REUSEADDR; no connection ever reaches it). */
static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0)
		die("port");
	close(fd);
	return ntohs(a.sin_port);
}

static struct vs_tls_ctx *client_ctx(unsigned bits)
{
	if (ctxs[bits])
		return ctxs[bits];
	struct viesti_tls o = {0};
	char err[256];
	if (bits & 4) {
		o.psk = "00112233445566778899aabbccddeeff";
		o.psk_identity = "fuzzer";
	} else {
		o.cafile = cert_path;
		if (bits & 1)
			o.certfile = cert_path, o.keyfile = key_path;
	}
	o.alpn = "mqtt";
	if (vs_tls_ctx_new(&o, &ctxs[bits], err, sizeof(err)) < 0)
		die(err);
	if (bits & 2)
		SSL_CTX_set_max_proto_version(ctxs[bits]->ssl, TLS1_2_VERSION);
	return ctxs[bits];
}

struct client {
	int k;
	long got;  /* plaintext bytes read */
	int fd;	   /* -1: hung up */
	SSL *ssl;  /* NULL: raw, or TLS failed */
	bool shut; /* close_notify sent */
};

static void hang_up(struct client *cl)
{
	if (cl->ssl)
		SSL_free(cl->ssl);
	if (cl->fd >= 0)
		close(cl->fd);
	if (verbose)
		fprintf(stderr, "client %d: hangs up, %ld bytes read\n", cl->k, cl->got);
	*cl = (struct client){.k = cl->k, .fd = -1};
}

/* Drops a client whose TLS failed; its socket stays, for raw bytes. */
static void tls_failed(struct client *cl)
{
	if (verbose)
		fprintf(stderr, "client %d: TLS ends\n", cl->k);
	SSL_free(cl->ssl);
	cl->ssl = NULL;
}

/* Reads and drops what the broker sent, whatever the state of the session. */
static void drain(struct client *cl)
{
	uint8_t buf[VS_TLS_RECORD];
	char err[256];
	if (cl->fd < 0)
		return;
	if (!cl->ssl) {
		while (read(cl->fd, buf, sizeof(buf)) > 0)
			;
		return;
	}
	ssize_t n;
	while ((n = vs_tls_read(cl->ssl, buf, sizeof(buf), err, sizeof(err))) > 0)
		cl->got += n;
	if (n != -EAGAIN) {
		if (verbose)
			fprintf(stderr, "client %d: read %zd (%s)\n", cl->k, n, n ? err : "end");
		tls_failed(cl);
	}
}

/* Turns of the worker, the clients reading in between, so that large writes go through. */
static void turns(struct fuzz_server *fs, struct client *cls)
{
	for (int r = 0; r < ROUNDS; r++) {
		vs_worker_poll(fs->w);
		for (int k = 0; k < CLIENTS; k++)
			drain(&cls[k]);
	}
}

/* Writes through TLS; a session that fails or fills its socket is dropped. */
static void send_tls(struct client *cl, const uint8_t *p, size_t len)
{
	char err[256];
	while (cl->ssl && !cl->shut && len) {
		ssize_t n = vs_tls_write(cl->ssl, p, len, err, sizeof(err));
		if (n <= 0) {
			tls_failed(cl);
			return;
		}
		p += n, len -= (size_t)n;
	}
}

static void handshake(struct fuzz_server *fs, struct client *cls, int k)
{
	char err[256];
	uint32_t wait;
	for (int r = 0; r < 32; r++) {
		int rc = vs_tls_handshake(cls[k].ssl, &wait, err, sizeof(err));
		if (rc == 0) {
			if (verbose)
				fprintf(stderr, "client %d: %s%s\n", k, SSL_get_version(cls[k].ssl),
					SSL_session_reused(cls[k].ssl) ? ", resumed" : "");
			return;
		}
		if (rc != -EAGAIN) {
			if (verbose)
				fprintf(stderr, "client %d: handshake: %s\n", k, err);
			break;
		}
		vs_worker_poll(fs->w);
	}
	tls_failed(&cls[k]);
}

static void start_client(struct fuzz_server *fs, struct client *cls, int k, uint8_t setup,
			 SSL_SESSION *resume)
{
	char err[256];
	cls[k] = (struct client){.k = k, .fd = fuzz_server_connect(fs)};
	if (k == 0 && (setup & 16))
		return;
	if (vs_tls_session_new(client_ctx((setup >> 1) & 7), cls[k].fd, "localhost", &cls[k].ssl,
			       err, sizeof(err)) < 0)
		die(err);
	if (resume)
		SSL_set_session(cls[k].ssl, resume);
	handshake(fs, cls, k);
	uint8_t pkt[80];
	char id[8];
	snprintf(id, sizeof(id), "t%d", k);
	size_t n = fuzz_connect_packet(pkt, setup & 128 ? 5 : 4, id);
	send_tls(&cls[k], pkt, n);
	if (k == 1) { /* client 1 subscribes to everything, so that deliveries cross TLS too */
		static const uint8_t sub4[] = {0x82, 6, 0, 1, 0, 1, '#', 1};
		static const uint8_t sub5[] = {0x82, 7, 0, 1, 0, 0, 1, '#', 1};
		if (setup & 128)
			send_tls(&cls[k], sub5, sizeof(sub5));
		else
			send_tls(&cls[k], sub4, sizeof(sub4));
	}
	turns(fs, cls);
}

/* A QoS 0 PUBLISH to "big" with len bytes of payload, through TLS. */
static void send_big(struct client *cl, size_t len, bool v5)
{
	size_t body = 2 + 3 + (v5 ? 1 : 0) + len, n = 0;
	uint8_t *p = malloc(body + 5);
	if (!p)
		abort();
	p[n++] = 0x30;
	for (size_t rest = body; n == 1 || rest;) {
		p[n++] = (uint8_t)((rest & 0x7F) | (rest > 0x7F ? 0x80 : 0));
		rest >>= 7;
	}
	p[n++] = 0, p[n++] = 3, memcpy(p + n, "big", 3), n += 3;
	if (v5)
		p[n++] = 0;
	memset(p + n, 'b', len);
	send_tls(cl, p, n + len);
	free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (!port) {
		make_pki();
		verbose = getenv("VS_FUZZ_VERBOSE");
		port = free_port();
	}
	uint8_t setup = data[0];
	char extra[1024];
	snprintf(extra, sizeof(extra),
		 "certfile %s\nkeyfile %s\ncafile %s\npsk_hint fuzz\n%s%s"
		 "psk_file %s\n",
		 cert_path, key_path, cert_path, setup & 1 ? "require_certificate true\n" : "",
		 setup & 64 ? "use_identity_as_username true\n" : "", psk_path);
	struct fuzz_server fs;
	fuzz_server_start(&fs, port, extra);
	struct client cls[CLIENTS] = {{.k = 0, .fd = -1}, {.k = 1, .fd = -1}};
	start_client(&fs, cls, 0, setup, NULL);
	SSL_SESSION *resume = (setup & 32) && cls[0].ssl ? SSL_get1_session(cls[0].ssl) : NULL;
	start_client(&fs, cls, 1, setup, resume);
	SSL_SESSION_free(resume);
	for (size_t i = 1; i + 1 < size;) {
		uint8_t op = data[i++];
		size_t len = data[i++];
		struct client *cl = &cls[op & 1];
		switch ((op >> 1) % 6) {
		case 0:
		case 1:
			if (len > size - i)
				len = size - i;
			if ((op >> 1) % 6 == 0)
				send_tls(cl, data + i, len);
			else if (cl->fd >= 0)
				(void)!write(cl->fd, data + i, len);
			i += len;
			break;
		case 2:
			if (cl->ssl && !cl->shut)
				SSL_shutdown(cl->ssl), cl->shut = true;
			break;
		case 3:
			hang_up(cl);
			break;
		case 4:
			if (cl->ssl && !cl->shut && SSL_version(cl->ssl) == TLS1_3_VERSION &&
			    SSL_key_update(cl->ssl, SSL_KEY_UPDATE_REQUESTED))
				send_tls(cl, (const uint8_t *)"\xc0\x00",
					 2); /* carried by a PINGREQ */
			break;
		case 5:
			send_big(cl, len * 97, setup & 128);
			break;
		}
		turns(&fs, cls);
	}
	for (int k = 0; k < CLIENTS; k++)
		hang_up(&cls[k]);
	fuzz_server_stop(&fs);
	ERR_clear_error();
	return 0;
}
