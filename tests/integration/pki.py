"""A test PKI made with the openssl command, for every TLS test of the suite.

make_pki(dir) returns a dict of paths:
  ca, otherca                 CA certificates (otherca: unrelated to everything else)
  server, wrongname           (certificate, key): localhost + 127.0.0.1, and elsewhere.invalid
  client                      (certificate, key) for CN=alice, signed by ca
  client_bob                  (certificate, key) for CN=bob, O=Example, signed by ca
  otherclient                 (certificate, key) signed by otherca
  expired                     (certificate, key) signed by ca, valid only in 2020
  revoked                     (certificate, key) signed by ca, revoked in crl
  crl                         the CA's revocation list (PEM)
  psk_file                    "identity:hexkey" with PSK_IDENTITY / PSK_KEY
Keys are P-256. Certificates are issued with `openssl ca`, which can backdate (expired) and
revoke (crl); everything lives two days.
"""

import os
import shutil
import subprocess

OPENSSL = shutil.which("openssl")

PSK_IDENTITY = "viesti-test"
PSK_KEY = "00a1b2c3d4e5f60718293a4b5c6d7e8f"

OPENSSL_CNF = """
[req]
distinguished_name = dn
[dn]
[ca]
default_ca = own
[own]
dir = .
database = index.txt
new_certs_dir = issued
serial = serial
crlnumber = crlnumber
default_md = sha256
default_days = 2
default_crl_days = 2
policy = any
unique_subject = no
copy_extensions = none
[any]
commonName = supplied
organizationName = optional
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1
[wrongname]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:elsewhere.invalid
[client]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
"""


def openssl(d, *args):
	r = subprocess.run([OPENSSL] + list(args), cwd=d, capture_output=True, timeout=30)
	assert r.returncode == 0, (args, r.stderr)
	return r


def _ca_dir(d, name):
	"""A directory for `openssl ca` of CA `name` (its database, serial, issued certs)."""
	cd = os.path.join(d, name + ".db")
	os.makedirs(os.path.join(cd, "issued"), exist_ok=True)
	open(os.path.join(cd, "index.txt"), "w").close()
	with open(os.path.join(cd, "serial"), "w") as f:
		f.write("1000\n")
	with open(os.path.join(cd, "crlnumber"), "w") as f:
		f.write("1000\n")
	shutil.copy(os.path.join(d, "openssl.cnf"), os.path.join(cd, "openssl.cnf"))
	return cd


def make_ca(d, name):
	openssl(d, "req", "-x509", "-config", "openssl.cnf", "-extensions", "ca_ext", "-newkey", "ec",
		"-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", name + ".key",
		"-out", name + ".crt", "-days", "2", "-subj", "/CN=%s" % name)
	return _ca_dir(d, name)


def make_cert(d, ca, name, ext, subj=None, dates=None):
	"""Issues name.crt/name.key from CA ca with extensions ext; dates = (start, end) as
	YYYYMMDDHHMMSSZ backdates it."""
	openssl(d, "req", "-config", "openssl.cnf", "-newkey", "ec", "-pkeyopt",
		"ec_paramgen_curve:prime256v1", "-nodes", "-keyout", name + ".key", "-out",
		name + ".csr", "-subj", subj or "/CN=%s" % name)
	cd = os.path.join(d, ca + ".db")
	args = ["ca", "-batch", "-config", "openssl.cnf", "-name", "own", "-cert",
		os.path.join(d, ca + ".crt"), "-keyfile", os.path.join(d, ca + ".key"), "-in",
		os.path.join(d, name + ".csr"), "-out", os.path.join(d, name + ".crt"),
		"-extfile", os.path.join(d, "openssl.cnf"), "-extensions", ext, "-notext"]
	if dates:
		args += ["-startdate", dates[0], "-enddate", dates[1]]
	openssl(cd, *args)


def revoke(d, ca, name):
	cd = os.path.join(d, ca + ".db")
	cak = ["-cert", os.path.join(d, ca + ".crt"), "-keyfile", os.path.join(d, ca + ".key")]
	openssl(cd, "ca", "-config", "openssl.cnf", "-name", "own", *cak, "-revoke",
		os.path.join(d, name + ".crt"))
	openssl(cd, "ca", "-config", "openssl.cnf", "-name", "own", *cak, "-gencrl", "-out",
		os.path.join(d, ca + ".crl"))


def make_pki(d):
	d = str(d)
	os.makedirs(d, exist_ok=True)
	with open(os.path.join(d, "openssl.cnf"), "w") as f:
		f.write(OPENSSL_CNF)
	make_ca(d, "ca")
	make_ca(d, "otherca")
	make_cert(d, "ca", "server", "server", subj="/CN=localhost")
	make_cert(d, "ca", "wrongname", "wrongname")
	make_cert(d, "ca", "client", "client", subj="/CN=alice")
	make_cert(d, "ca", "client_bob", "client", subj="/CN=bob/O=Example")
	make_cert(d, "otherca", "otherclient", "client", subj="/CN=alice")
	make_cert(d, "ca", "expired", "client", subj="/CN=alice",
		dates=("20200101000000Z", "20200102000000Z"))
	make_cert(d, "ca", "revoked", "client", subj="/CN=alice")
	revoke(d, "ca", "revoked")
	p = lambda n: os.path.join(d, n)  # noqa: E731
	with open(p("psk.txt"), "w") as f:
		f.write("%s:%s\n" % (PSK_IDENTITY, PSK_KEY))
	pair = lambda n: (p(n + ".crt"), p(n + ".key"))  # noqa: E731
	return {
		"dir": d, "ca": p("ca.crt"), "otherca": p("otherca.crt"), "psk_file": p("psk.txt"),
		"crl": p("ca.crl"), "server": pair("server"), "wrongname": pair("wrongname"),
		"client": pair("client"), "client_bob": pair("client_bob"),
		"otherclient": pair("otherclient"), "expired": pair("expired"),
		"revoked": pair("revoked"),
	}
