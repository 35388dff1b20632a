#!/usr/bin/python3
"""Makes a man page (roff, man(7) macros) from one of docs/*.md.

usage: md2man.py SOURCE.md NAME SECTION "one-line description" VERSION > NAME.SECTION

Enough Markdown for our docs: headings, paragraphs, bullet lists, fenced code blocks, tables
(each row becomes a tagged paragraph: the first cell, then the others labelled by their
column), `code`, **bold**, *italic* and [links](target). No dependency beyond Python 3.
"""

import re
import sys


def esc(text):
	"""roff-escapes plain text: backslashes, and a leading dot or quote."""
	text = text.replace("\\", "\\e")
	text = "".join(c if ord(c) < 128 else "\\[u%04X]" % ord(c) for c in text)
	if text.startswith((".", "'")):
		text = "\\&" + text
	return text


def inline(text):
	text = text.replace("\\|", "|")
	out = []
	pos = 0
	for m in re.finditer(r"`([^`]*)`", text):
		out.append(spans(esc(text[pos:m.start()])))
		out.append("\\fB" + esc(m.group(1)).replace("-", "\\-") + "\\fR")
		pos = m.end()
	out.append(spans(esc(text[pos:])))
	line = "".join(out)
	return "\\&" + line if line.startswith((".", "'")) else line


def spans(text):
	text = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", text)
	text = re.sub(r"\*\*([^*]+)\*\*", r"\\fB\1\\fR", text)
	text = re.sub(r"(?<![\w*])\*([^*\s][^*]*)\*(?![\w*])", r"\\fI\1\\fR", text)
	return text


def cells(row):
	row = row.strip().strip("|")
	return [c.strip() for c in re.split(r"(?<!\\)\|", row)]


def convert(lines, name, section, desc, version):
	out = ['.TH %s %s "" "Viesti %s" "Viesti"' % (name.upper(), section, version),
		".SH NAME", "%s \\- %s" % (name.replace("-", "\\-"), esc(desc))]
	para = []
	i = 0

	def flush():
		if para:
			out.append(".PP")
			out.append(inline(" ".join(para)))
			para.clear()
	while i < len(lines):
		line = lines[i].rstrip("\n")
		if line.startswith("```"):
			flush()
			out += [".PP", ".RS 4", ".nf"]
			i += 1
			while i < len(lines) and not lines[i].startswith("```"):
				out.append(esc(lines[i].rstrip("\n")) or "\\&")
				i += 1
			out += [".fi", ".RE"]
		elif line.startswith("#"):
			flush()
			level = len(line) - len(line.lstrip("#"))
			title = line.lstrip("#").strip()
			if level == 1:
				pass  # the page's NAME says it
			elif level == 2:
				out.append(".SH " + inline(title.upper()))
			else:
				out.append(".SS " + inline(title))
		elif line.startswith("|"):
			flush()
			head = cells(line)
			i += 1
			if i < len(lines) and re.match(r"^\|[\s\-:|]+\|?\s*$", lines[i]):
				i += 1
			while i < len(lines) and lines[i].startswith("|"):
				row = cells(lines[i])
				out.append(".TP")
				out.append(inline(row[0]))
				extra = ["%s: %s" % (h, c) for h, c in zip(head[1:-1], row[1:-1]) if c]
				body = "; ".join(extra)
				if len(row) > 1:
					body = (body + ". " if body else "") + row[-1]
				out.append(inline(body))
				i += 1
			continue
		elif re.match(r"^\s*([-*]|\d+\.) ", line):
			flush()
			item = [re.sub(r"^\s*([-*]|\d+\.) ", "", line)]
			i += 1
			while i < len(lines) and lines[i].startswith("  ") and lines[i].strip() \
					and not re.match(r"^\s*([-*]|\d+\.) ", lines[i]):
				item.append(lines[i].strip())
				i += 1
			out += [".IP \\(bu 2", inline(" ".join(item))]
			continue
		elif not line.strip():
			flush()
		else:
			para.append(line.strip())
		i += 1
	flush()
	out += [".SH SEE ALSO", "\\fBviesti\\fR(1), \\fBviesti\\-broker\\fR(8), "
		"\\fBviesti.conf\\fR(5), /usr/share/doc/viesti/"]
	return "\n".join(out) + "\n"


def main():
	if len(sys.argv) != 6:
		sys.exit(__doc__)
	src, name, section, desc, version = sys.argv[1:]
	with open(src, encoding="utf-8") as f:
		sys.stdout.write(convert(f.readlines(), name, section, desc, version))


if __name__ == "__main__":
	main()
