"""Every directive that the configuration reader stores must be used by the broker.

docs/configuration.md promises that no directive is accepted and then ignored. This reads the
directive table in src/conf/parse.c (its GLOBAL, LISTENER, SECURITY and BRIDGE rows name the struct
field each value lands in) and looks for a use of each field (`->field` or `.field`) in src/
outside src/conf/. A field nobody reads fails the test with the directive's name: implement it,
or mark the directive UNSUPPORTED in the table so that a configuration using it is refused.
"""

import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.path.join(HERE, "..", "..", "src"))

ROW = re.compile(r'^\s*(GLOBAL|LISTENER|SECURITY|BRIDGE)\("([^"]+)",\s*\w+,\s*(\w+)(?:,\s*(\w+))?', re.M)


# Parsed, but vs_config_validate() refuses any value other than the default (a clear "not
# supported yet" for the configurations that would need it).
REFUSED_WHEN_SET = {"bridge_require_ocsp"}


def table_rows():
	with open(os.path.join(SRC, "conf", "parse.c")) as f:
		text = f.read()
	start = text.index("static const struct directive directives[]")
	rows = []
	for m in ROW.finditer(text, start):
		kind, name, field, lfield = m.groups()
		fields = [field]
		if kind == "SECURITY":
			fields.append(lfield)  # the per-listener copy (per_listener_settings)
		rows.append((name, fields))
	return rows


def sources_outside_conf():
	text = []
	for root, dirs, files in os.walk(SRC):
		if os.path.relpath(root, SRC).split(os.sep)[0] == "conf":
			continue
		for fn in files:
			if fn.endswith((".c", ".h")):
				with open(os.path.join(root, fn), encoding="utf-8", errors="replace") as f:
					# Comments do not count as a use.
					body = re.sub(r"/\*.*?\*/", "", f.read(), flags=re.S)
					text.append(re.sub(r"//[^\n]*", "", body))
	return "\n".join(text)


def test_table_is_read():
	rows = table_rows()
	names = [n for n, _ in rows]
	# The parse must have found the table (a format change would otherwise pass vacuously).
	assert len(rows) > 60 and "user" in names and "mount_point" in names, names


def test_every_stored_directive_is_used():
	code = sources_outside_conf()
	unused = []
	for name, fields in table_rows():
		if name in REFUSED_WHEN_SET:
			continue
		for field in fields:
			if not re.search(r"(->|\.)%s\b" % re.escape(field), code):
				unused.append("%s (field %s)" % (name, field))
	assert not unused, ("directives parsed by src/conf/parse.c but never used outside src/conf: "
		"%s" % ", ".join(unused))
