#!/usr/bin/env bash
# Fails when a citation in the repository cannot be followed by someone who cloned it:
# - a file outside the repository (the old shared notes: PROTOCOL.md, DESIGN.md, style.md,
#   bridge-anchors, real-components), or a `*.md` path that does not exist here;
# - a P-number (`P14`) that docs/protocol.md does not define (`**P14.` in its section 1);
# - a §-number that docs/protocol.md has no heading for. A § counts as a protocol citation
#   unless the nearest document named before it, in the same comment block or paragraph, is
#   another one (`docs/bridge-payload.md §8`, `RFC 6838 §4.2`).
# scripts/test.sh runs it in its "format and lint" step.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 - <<'PY'
import os, re, subprocess, sys

FILES = ["*.rs", "*.md", "*.js", "*.sh", "*.toml", "*.yaml", "*.yml", "*.py", "*.sol"]
SKIP = [":!scripts/check-citations.sh", ":!scripts/repoint-citations.sh"]
listed = subprocess.run(["git", "ls-files", "-z", "--", *FILES, *SKIP], check=True, capture_output=True)

protocol = open("docs/protocol.md", encoding="utf-8").read()
sections = set(re.findall(r"^#{2,4} (\d+(?:\.\d+)*)\.?\s", protocol, re.M))
pitfalls = set(re.findall(r"^\*\*P(\d+)\.", protocol, re.M))
if not sections or not pitfalls:
    sys.exit("check-citations: docs/protocol.md has no numbered sections or pitfalls")

OUTSIDE = re.compile(
    r"PROTOCOL\.md|DESIGN\.md|dm3-protocol\.md|bridge-anchors|real-components"
    r"|(?<![\w/-])style\.md|shared notes|shared/notes/|shared/dm3/[\w./-]*\.md"
)
URL = re.compile(r"[a-z]+://\S+")
MD = re.compile(r"(?<![\w./-])((?:\.\./|\./)*[\w-]+(?:/[\w.-]+)*\.md)\b")
TOKEN = re.compile(
    r"(?P<doc>(?<![\w/.-])(?:\.\./)*[\w./-]*[\w-]+\.md\b|\bRFC ?\d+)"
    r"|§ ?(?P<a>\d+(?:\.\d+)*)(?: ?[–-] ?§?(?P<b>\d+(?:\.\d+)*))?"
    r"|\bP(?P<p>\d+)\b"
)
COMMENT = re.compile(r"^\s*(//[/!]?|/\*+|\*/?|#!?|\"\"\"|--)")
MARKDOWN = (".md",)

problems = []

def md_exists(path, token):
    here = os.path.dirname(path)
    return any(
        os.path.exists(os.path.normpath(os.path.join(base, token)))
        for base in (".", here, "docs")
    )

for path in listed.stdout.decode().split("\0"):
    if not path or not os.path.isfile(path):
        continue
    try:
        lines = open(path, encoding="utf-8").read().split("\n")
    except UnicodeDecodeError:
        continue
    markdown = path.endswith(MARKDOWN)
    current = None  # the document the running comment block or paragraph last named
    marker = None  # the marker of the running comment block (`//!`, `///`, `//`, ...)
    for number, line in enumerate(lines, 1):
        where = f"{path}:{number}"
        comment = COMMENT.match(line)
        if markdown:
            if not line.strip():
                current = None
        elif not comment or not line[comment.end():].strip() or comment.group(1) != marker:
            current = None
        marker = comment.group(1) if comment and not markdown else None
        text = URL.sub("", line)
        for m in OUTSIDE.finditer(text):
            problems.append(f"{where}: cites a file outside the repository: {m.group(0)}")
        for m in MD.finditer(text):
            if not OUTSIDE.search(m.group(1)) and not md_exists(path, m.group(1)):
                problems.append(f"{where}: cites {m.group(1)}, which is not in the repository")
        for m in TOKEN.finditer(text):
            if m.group("doc"):
                current = m.group("doc")
            elif m.group("a"):
                if current and not current.endswith("protocol.md"):
                    continue
                for n in (m.group("a"), m.group("b")):
                    if n and n not in sections:
                        problems.append(f"{where}: docs/protocol.md has no §{n}")
            elif m.group("p") not in pitfalls:
                pitfall = m.group("p")
                problems.append(f"{where}: docs/protocol.md has no P{pitfall}")
        if not markdown and not comment:
            current = None

for p in problems:
    print(p)
if problems:
    print(f"check-citations: {len(problems)} citation(s) cannot be followed (see above)")
    sys.exit(1)
print("check-citations: every citation resolves")
PY
