#!/usr/bin/env bash
# Circles among the modules of each crate (A uses B and B uses A, or longer loops), read from
# the `crate::`/`super::`/`self::` paths in the source (use lines and inline paths alike), and
# from the paths that start with a name a `use` bound (`use crate::routes;` and then
# `routes::rpc::rpc`, `use crate::{routes, …}`, `use super::body;`, `use crate::x as y;`).
# A module's own submodules and its ancestors are not counted: a parent declares and re-exports
# its children, and a child uses its parent's items; that is how Rust modules nest, not a
# circle. Test code (`#[cfg(test)]` modules and files named tests.rs/testkit.rs) is left out.
#
#   scripts/module-circles.sh [CRATE_SRC_DIR...]   (default: src, sdk/src, connectors/*/src, clients/*/src)
#       checks each crate twice: module by module, and with the modules grouped by their first
#       path segment (`engine` for all of src/engine/, the depth-1 view)
#   MODULE_DEPTH=1 scripts/module-circles.sh       only the grouped view (MODULE_DEPTH=N: N segments)
#
# Prints each circle with the lines that make it; exits 1 if there is one.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -eq 0 ]; then set -- src sdk/src connectors/*/src clients/*/src; fi

python3 - "$@" <<'PY'
import pathlib, re, sys

def module_of(root, path):
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] in ("lib", "main", "mod"):
        parts = parts[:-1]
    return tuple(parts)

def is_test(module):
    return any(p in ("tests", "testkit") for p in module)

def strip_tests_and_comments(text):
    out, skip_depth, depth, pending_cfg_test = [], None, 0, False
    for line in text.splitlines():
        code = re.sub(r"//.*", "", line)
        if skip_depth is None and re.match(r"\s*#\[cfg\(test\)\]", code):
            pending_cfg_test = True
            continue
        if pending_cfg_test and skip_depth is None:
            pending_cfg_test = False
            if re.match(r"\s*(pub(\([^)]*\))?\s+)?mod\s+\w+\s*\{", code):
                skip_depth = depth
            elif re.match(r"\s*(pub(\([^)]*\))?\s+)?mod\s+\w+\s*;", code):
                continue
        opens, closes = code.count("{"), code.count("}")
        if skip_depth is not None:
            depth += opens - closes
            if depth <= skip_depth:
                skip_depth = None
            continue
        depth += opens - closes
        out.append(code)
    return out

def expand_use(tree):
    """`a::{b, c::{d, e as f}}` -> [a::b, a::c::d, a::c::e@f] (`@f`: bound as f)"""
    tree = re.sub(r"\s+as\s+(\w+)", r"@\1", tree)  # `x as y` names x, binds y
    tree = re.sub(r"\s+", "", tree)
    def split_top(s):
        parts, level, cur = [], 0, ""
        for ch in s:
            if ch == "," and level == 0:
                parts.append(cur); cur = ""; continue
            level += ch == "{"; level -= ch == "}"
            cur += ch
        if cur: parts.append(cur)
        return parts
    def go(prefix, s):
        m = re.match(r"^(.*?)\{(.*)\}$", s)
        if m:
            head = m.group(1)
            return [p for inner in split_top(m.group(2)) for p in go(prefix + head, inner)]
        return [prefix + s]
    return go("", tree)

PATH = re.compile(r"\b((?:crate|super|self)(?:::(?:super|\w+))*)")
USE = re.compile(r"\buse\s+([^;]+);")
ALIAS_PATH = re.compile(r"(?<![\w:.])(\w+)((?:::\w+)+)")  # `name::a::b`, not `x::name::a`

def absolute(module, path):
    """`super::body::x` in `routes::rpc` -> (routes, body, x)"""
    parts = path.split("::")
    if parts[0] == "crate":
        base, rest = [], parts[1:]
    else:
        base, rest = list(module), parts
        while rest and rest[0] in ("super", "self"):
            if rest[0] == "super":
                base = base[:-1]
            rest = rest[1:]
    return tuple(base + rest)

def resolve(module, path, modules):
    full = absolute(module, path)
    for n in range(len(full), -1, -1):
        if tuple(full[:n]) in modules:
            return tuple(full[:n])
    return ()

import os
# Both views unless one is asked for: a circle inside one top-level module shows only at full
# depth; one between two top-level modules through different submodules (`a::x` uses `b::y`,
# `b::z` uses `a::w`) only at depth 1.
DEPTHS = [int(os.environ["MODULE_DEPTH"])] if os.environ.get("MODULE_DEPTH") else [0, 1]

def group(module):
    return module[:DEPTH] if DEPTH else module

found = False
for DEPTH, root_arg in ((d, r) for d in DEPTHS for r in sys.argv[1:]):
    root = pathlib.Path(root_arg)
    files = {module_of(root, p): p for p in sorted(root.rglob("*.rs")) if "bin" not in p.relative_to(root).parts}
    modules = set(files)
    edges = {}
    for file_module, path in files.items():
        if is_test(file_module):
            continue
        module = group(file_module)
        text = "\n".join(strip_tests_and_comments(path.read_text()))
        uses = [u for m in USE.finditer(text) for u in expand_use(m.group(1))]
        refs, bound = [], {}
        for use in uses:
            use, _, alias = use.partition("@")
            parts = use.split("::")
            if parts[0] in bound and parts[0] not in ("crate", "super", "self"):
                parts = bound[parts[0]].split("::") + parts[1:]  # `use routes::rpc;` after `use crate::routes;`
            if parts[-1] == "self":
                parts = parts[:-1]
            if parts[-1] == "*" or alias == "_":
                continue
            refs.append("::".join(parts))
            bound[alias or parts[-1]] = "::".join(parts)
        # Inline paths, with the use items blanked out (a use spread over lines is not an inline path).
        lines = USE.sub(lambda m: "\n" * m.group(0).count("\n"), text).splitlines()
        # Only a name bound to one of our modules: a type's `Type::Variant` adds nothing its use did not.
        bound = {name: path for name, path in bound.items()
                 if re.match(r"(crate|super|self)\b", path) and absolute(file_module, path) in modules}
        for line in lines:
            refs += [m.group(1) + "::x" for m in PATH.finditer(line)]
            for m in ALIAS_PATH.finditer(line):
                if m.group(1) in bound:
                    refs.append(bound[m.group(1)] + m.group(2) + "::x")
        for ref in refs:
            if not re.match(r"(crate|super|self)\b", ref):
                continue
            target = resolve(file_module, ref, modules)
            if is_test(target):
                continue
            target = group(target)
            if target == module or not module:
                continue
            if target[:len(module)] == module or module[:len(target)] == target:
                continue  # parent and child
            edges.setdefault(module, {}).setdefault(target, set()).add(ref)
    # Tarjan's strongly connected components.
    index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)
    def visit(v):
        index[v] = low[v] = counter[0]; counter[0] += 1
        stack.append(v); on.add(v)
        for w in edges.get(v, {}):
            if w not in index:
                visit(w); low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = []
            while True:
                w = stack.pop(); on.discard(w); scc.append(w)
                if w == v: break
            if len(scc) > 1: sccs.append(sorted(scc))
    for v in sorted({group(m) for m in modules}):
        if v not in index: visit(v)
    name = lambda m: "::".join(m) or "(crate root)"
    for scc in sccs:
        found = True
        print(f"{root}{f' (depth {DEPTH})' if DEPTH else ''}: circle among {', '.join(name(m) for m in scc)}")
        for a in scc:
            for b in scc:
                if b in edges.get(a, {}):
                    print(f"  {name(a)} -> {name(b)}: {', '.join(sorted(edges[a][b]))}")
if not found:
    print("no circles")
sys.exit(1 if found else 0)
PY
