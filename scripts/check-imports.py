#!/usr/bin/env python3
"""Fails when a module imports, directly or through others, a module that imports it.

Each source file of a crate is one module. A module imports another when it names something
in it: a `use` (re-exports included) or a path in the code (`crate::cache::TopicCache`,
`super::queries::find`). Declaring a child (`mod queries;`) is not an import, nor is a
macro's `$crate::` path (it is resolved where the macro is used). Test code
(`tests.rs`, `testing.rs`, an inline `#[cfg(test)] mod tests`) may reach anywhere and is left
out. Prints every circle found, one per line, and exits 1 if there is one.

    scripts/check-imports.py domain/src app/src server/src
"""

import re
import sys
from pathlib import Path

USE = re.compile(r"\buse\s+([A-Za-z_][^;]*);", re.S)
INLINE_MOD = re.compile(r"\bmod\s+[A-Za-z_][A-Za-z0-9_]*\s*\{")
PATH = re.compile(r"(?<!\$)\b((?:crate|super|self)(?:::[A-Za-z_][A-Za-z0-9_]*)+)")
TEST_BLOCK = re.compile(r"#\[cfg\(test\)\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+tests\s*\{", re.S)
COMMENT = re.compile(r"//[^\n]*")


def module_of(root: Path, file: Path) -> tuple:
    parts = list(file.relative_to(root).with_suffix("").parts)
    if parts[-1] in ("lib", "main", "mod"):
        parts.pop()
    return tuple(parts)


def expand(tree: str) -> list:
    """`a::{b, c::{d, e}}` -> ["a::b", "a::c::d", "a::c::e"]."""
    tree = re.sub(r"\s+", "", tree)
    brace = tree.find("{")
    if brace < 0:
        return [tree.split(" as ")[0]]
    prefix, inner = tree[:brace], tree[brace + 1 : tree.rindex("}")]
    items, depth, start = [], 0, 0
    for i, ch in enumerate(inner):
        depth += ch == "{"
        depth -= ch == "}"
        if ch == "," and depth == 0:
            items.append(inner[start:i])
            start = i + 1
    items.append(inner[start:])
    return [p for item in items if item for p in expand(prefix + item)]


def inline_spans(text: str) -> list:
    """Where inline `mod name { ... }` blocks stand: inside one, `super` is the file itself."""
    spans = []
    for found in INLINE_MOD.finditer(text):
        depth, i = 0, found.end() - 1
        while i < len(text):
            depth += text[i] == "{"
            depth -= text[i] == "}"
            if depth == 0:
                break
            i += 1
        spans.append((found.start(), i))
    return spans


def resolve(path: str, here: tuple, modules: set, inline_depth: int = 0):
    """The module (file) a path names, or None when it leaves the crate."""
    segments = path.split("::")
    while inline_depth and segments[0] == "super":
        segments, inline_depth = segments[1:], inline_depth - 1
    if segments[0] == "crate":
        base, rest = (), segments[1:]
    elif segments[0] not in ("self", "super"):
        # `use child::Item` in a module names its child; anything else is another crate.
        if here + (segments[0],) not in modules:
            return None
        base, rest = here, segments
    else:
        # A file module `a/b.rs` is `a::b`; `self` is itself, `super` its parent.
        base = here
        rest = segments
        while rest and rest[0] in ("self", "super"):
            if rest[0] == "super":
                base = base[:-1]
            rest = rest[1:]
    target = base
    for segment in rest:
        if segment == "self":
            break
        if target + (segment,) in modules:
            target = target + (segment,)
        else:
            break
    return target


def is_test(file: Path) -> bool:
    return file.name in ("tests.rs", "testing.rs") or "tests" in file.parts[:-1]


def graph(root: Path) -> dict:
    files = {module_of(root, f): f for f in sorted(root.rglob("*.rs")) if not is_test(f)}
    modules = set(files)
    edges = {m: set() for m in modules}
    for module, file in files.items():
        text = file.read_text()
        test = TEST_BLOCK.search(text)
        if test:
            text = text[: test.start()]
        text = COMMENT.sub("", text)
        spans = inline_spans(text)
        depth = lambda at: sum(1 for a, b in spans if a <= at <= b)
        paths = [(p, depth(u.start())) for u in USE.finditer(text) for p in expand(u.group(1))]
        paths += [(p.group(1), depth(p.start())) for p in PATH.finditer(text)]
        for path, inline_depth in paths:
            if not path:
                continue
            target = resolve(path, module, modules, inline_depth)
            if target is not None and target != module and target in modules:
                edges[module].add(target)
    return edges


def circles(edges: dict) -> list:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def main(roots: list) -> int:
    failed = False
    for root in map(Path, roots):
        for component in circles(graph(root)):
            failed = True
            names = ["::".join(m) or "(crate root)" for m in component]
            print(f"{root}: import circle: {' <-> '.join(names)}")
    if not failed:
        print(f"no import circles in {', '.join(roots)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["domain/src", "app/src", "server/src"]))
