"""The Debian package (issue 17, item 8): `make deb`, then `dpkg -x` into a throw-away root.

What must hold: the package holds the broker and tools (/usr/bin/viesti), libviesti (static and
shared) with its header and a pkg-config file that compiles and links a program, man pages made
from docs/ that render, a systemd unit with Type=notify and hardening that systemd-analyze
accepts, /etc/viesti/viesti.conf as a conffile, and maintainer scripts that create the `viesti`
system user. The extracted broker, run with the shipped configuration (paths and port moved into
the test's directory), serves clients on localhost.

Building takes minutes (a release build): the module builds once, and is marked serial. Set
VIESTI_DEB=/path/to/viesti_X_arch.deb to test a package built beforehand.
"""

import glob
import gzip
import os
import re
import shutil
import signal
import subprocess

import pytest

from conftest import free_port, wait_until
from mqtt_raw import PUBLISH, RawClient

pytestmark = [pytest.mark.viesti_only, pytest.mark.serial]

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


@pytest.fixture(scope="module")
def deb(tmp_path_factory):
	if not shutil.which("dpkg-deb"):
		pytest.skip("dpkg-deb is needed to build and open the package")
	given = os.environ.get("VIESTI_DEB")
	if given:
		return given
	out = tmp_path_factory.mktemp("dist")
	r = subprocess.run(["make", "--no-print-directory", "deb", "DEBOUT=%s" % out, "JOBS=2"],
		cwd=REPO, capture_output=True, timeout=3600)
	assert r.returncode == 0, "make deb failed:\n%s\n%s" % (
		r.stdout.decode()[-2000:], r.stderr.decode()[-3000:])
	debs = glob.glob(str(out / "viesti_*.deb"))
	assert len(debs) == 1, debs
	return debs[0]


@pytest.fixture(scope="module")
def root(deb, tmp_path_factory):
	d = tmp_path_factory.mktemp("root")
	subprocess.run(["dpkg-deb", "-x", deb, str(d)], check=True, timeout=60)
	subprocess.run(["dpkg-deb", "-e", deb, str(d / "DEBIAN")], check=True, timeout=60)
	return d


def field(deb, name):
	return subprocess.run(["dpkg-deb", "-f", deb, name], check=True, capture_output=True,
		timeout=30).stdout.decode().strip()


def test_control_and_scripts(deb, root):
	assert field(deb, "Package") == "viesti"
	assert re.match(r"^\d+\.\d+\.\d+-1$", field(deb, "Version"))
	depends = [d.strip() for d in field(deb, "Depends").split(",")]
	assert "adduser" in depends and "libssl3" in depends, depends
	assert "liburing2" in depends, depends  # the broker's batched reads and writes
	assert (root / "DEBIAN" / "conffiles").read_text().split() == [
		"/etc/viesti/viesti.conf", "/etc/logrotate.d/viesti"]
	postinst = (root / "DEBIAN" / "postinst").read_text()
	assert re.search(r"adduser --system --group .*viesti", postinst.replace("\\\n", " "))
	assert os.access(root / "DEBIAN" / "postinst", os.X_OK)
	r = subprocess.run(["sh", "-n", str(root / "DEBIAN" / "postinst")], capture_output=True)
	assert r.returncode == 0, r.stderr
	# md5sums covers every file shipped
	sums = (root / "DEBIAN" / "md5sums").read_text().splitlines()
	assert any(ln.endswith(" usr/bin/viesti") for ln in sums)


def test_files(root):
	assert os.access(root / "usr/bin/viesti", os.X_OK)
	r = subprocess.run([str(root / "usr/bin/viesti"), "--version"], capture_output=True,
		timeout=10)
	assert r.returncode == 0 and r.stdout.strip(), r
	libdir = glob.glob(str(root / "usr/lib/*/libviesti.a")) or glob.glob(
		str(root / "usr/lib/libviesti.a"))
	assert libdir, "no libviesti.a"
	libdir = os.path.dirname(libdir[0])
	assert glob.glob(os.path.join(libdir, "libviesti.so.*"))
	assert os.path.islink(os.path.join(libdir, "libviesti.so"))
	assert (root / "usr/include/viesti.h").is_file()
	# The .pc file finds its prefix from where it is installed (${pcfiledir}): installed in
	# the package's usr/lib/<triplet>/pkgconfig, pkg-config must answer the package's usr.
	pcdir = os.path.join(libdir, "pkgconfig")
	r = subprocess.run(["pkg-config", "--variable=prefix", "viesti"], capture_output=True,
		text=True, env=dict(os.environ, PKG_CONFIG_PATH=pcdir, PKG_CONFIG_LIBDIR=pcdir))
	assert r.returncode == 0, r.stderr
	assert os.path.realpath(r.stdout.strip()) == os.path.realpath(str(root / "usr")), r.stdout
	conf = (root / "etc/viesti/viesti.conf").read_text()
	for want in ("pid_file /run/viesti/viesti.pid", "persistence_location /var/lib/viesti/",
			"log_dest file /var/log/viesti/viesti.log", "include_dir /etc/viesti/conf.d"):
		assert want in conf
	assert (root / "etc/viesti/conf.d").is_dir()
	assert "postrotate" in (root / "etc/logrotate.d/viesti").read_text()
	assert (root / "usr/share/doc/viesti/configuration.md").is_file()


MAN_PAGES = ["man1/viesti.1.gz", "man8/viesti-broker.8.gz", "man5/viesti.conf.5.gz",
	"man1/viesti-pub.1.gz", "man1/viesti-sub.1.gz", "man1/viesti-rr.1.gz",
	"man1/viesti-passwd.1.gz", "man1/viesti-bench.1.gz"]


@pytest.mark.parametrize("page", MAN_PAGES)
def test_man_pages_render(root, page):
	path = root / "usr/share/man" / page
	text = gzip.open(path).read().decode()
	assert text.startswith(".TH ")
	if not shutil.which("groff"):
		pytest.skip("groff is needed to render man pages")
	r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z"], input=text.encode(),
		capture_output=True, timeout=60)
	problems = [ln for ln in r.stderr.decode().splitlines() if "cannot adjust" not in ln]
	assert r.returncode == 0 and not problems, problems
	if page.startswith("man5/"):
		# made from docs/configuration.md: every directive section is there
		for d in ("log_dest", "sys_interval", "listener PORT", "pid_file"):
			assert d in text.replace("\\-", "-"), d


def test_systemd_unit(root, tmp_path):
	unit = (root / "lib/systemd/system/viesti.service").read_text()
	for want in ("Type=notify", "ExecStart=/usr/bin/viesti broker -c /etc/viesti/viesti.conf",
			"ExecReload=/bin/kill -HUP $MAINPID", "User=viesti", "NoNewPrivileges=yes",
			"ProtectSystem=strict", "PrivateTmp=yes", "StateDirectory=viesti",
			"RuntimeDirectory=viesti", "LogsDirectory=viesti", "SystemCallFilter=@system-service",
			"SystemCallFilter=io_uring_setup io_uring_enter io_uring_register"):
		assert want in unit.splitlines(), want
	if not shutil.which("systemd-analyze"):
		pytest.skip("systemd-analyze is not installed: the unit's syntax was not verified")
	# verify checks that ExecStart's binary exists: give it the extracted tree's as /usr/bin.
	unit_dir = tmp_path / "units"
	unit_dir.mkdir()
	path = unit_dir / "viesti.service"
	path.write_text(unit.replace("/usr/bin/viesti", str(root / "usr/bin/viesti")))
	r = subprocess.run(["systemd-analyze", "verify", "--man=no", str(path)],
		capture_output=True, timeout=60, env=dict(os.environ, SYSTEMD_LOG_LEVEL="warning"))
	out = (r.stdout + r.stderr).decode()
	# Complaints about the host (no systemd running in a container, no `viesti` user here) are
	# not the unit's; anything about viesti.service's own lines is.
	lines = [ln for ln in out.splitlines() if "viesti.service" in ln and
		"Failed to" not in ln and "not running" not in ln]
	assert not lines, out
	assert r.returncode == 0 or "viesti.service" not in out, out


def test_library_links(root, tmp_path):
	cc = shutil.which("cc")
	if not cc or not shutil.which("pkg-config"):
		pytest.skip("cc and pkg-config are needed to build against the package")
	pc_dir = glob.glob(str(root / "usr/lib/*/pkgconfig")) or [str(root / "usr/lib/pkgconfig")]
	env = dict(os.environ, PKG_CONFIG_PATH=pc_dir[0], PKG_CONFIG_SYSROOT_DIR=str(root))
	flags = subprocess.run(["pkg-config", "--cflags", "--libs", "viesti"],
		capture_output=True, check=True, env=env, timeout=30).stdout.decode().split()
	libdir = [f[2:] for f in flags if f.startswith("-L")]
	assert libdir and all(d.startswith(str(root)) for d in libdir), flags
	src = tmp_path / "p.c"
	src.write_text('#include <viesti.h>\n#include <stdio.h>\n'
		'int main(void) { struct viesti_props *p = viesti_props_new();\n'
		'  int ok = p && viesti_props_set_int(p, 0x02, 60) == 0 && viesti_props_has(p, 0x02);\n'
		'  viesti_props_free(p); puts(ok ? "ok" : "bad"); return !ok; }\n')
	exe = tmp_path / "p"
	r = subprocess.run([cc, str(src), "-o", str(exe)] + flags, capture_output=True, timeout=120)
	assert r.returncode == 0, r.stderr.decode()
	# It runs against the package's libviesti.so.0 (the soname the link recorded).
	r = subprocess.run([str(exe)], capture_output=True, timeout=10,
		env=dict(os.environ, LD_LIBRARY_PATH=libdir[0]))
	assert r.stdout == b"ok\n", r
	needed = subprocess.run(["ldd", str(exe)], capture_output=True, timeout=10,
		env=dict(os.environ, LD_LIBRARY_PATH=libdir[0])).stdout.decode()
	assert re.search(r"libviesti\.so\.0 => %s" % re.escape(libdir[0]), needed), needed


def test_shipped_config_serves(root, tmp_path):
	"""The package's binary with its own viesti.conf, its paths moved into tmp_path and the
	default listener on a free port (-p): what `dpkg -i` starts on localhost:1883."""
	text = (root / "etc/viesti/viesti.conf").read_text()
	run, lib, log, confd = (tmp_path / d for d in ("run", "lib", "log", "conf.d"))
	for d in (run, lib, log, confd):
		d.mkdir()
	text = (text.replace("/run/viesti/", "%s/" % run).replace("/var/lib/viesti/", "%s/" % lib)
		.replace("/var/log/viesti/", "%s/" % log).replace("/etc/viesti/conf.d", str(confd)))
	conf = tmp_path / "viesti.conf"
	conf.write_text(text)
	port = free_port()
	p = subprocess.Popen([str(root / "usr/bin/viesti"), "broker", "-c", str(conf), "-p",
		str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=str(tmp_path))
	try:
		def up():
			assert p.poll() is None, (log / "viesti.log").read_text()
			try:
				RawClient(port).close()
				return True
			except OSError:
				return False
		wait_until(up, 10, what="the packaged broker to listen on %d" % port)
		with RawClient(port, version=5) as sub, RawClient(port) as pub:
			sub.connect("pkg-sub")  # anonymous: the default listener is localhost only
			sub.subscribe([("pkg/#", 1)])
			pub.connect("pkg-pub")
			pub.publish("pkg/t", b"from the package", qos=1)
			assert sub.expect(PUBLISH, timeout=5).payload == b"from the package"
		assert int((run / "viesti.pid").read_text()) == p.pid
		assert "listening on" in (log / "viesti.log").read_text()
		p.send_signal(signal.SIGTERM)
		assert p.wait(10) == 0
		assert os.listdir(lib), "persistence wrote nothing under %s" % lib
	finally:
		if p.poll() is None:
			p.kill()
			p.wait(5)
