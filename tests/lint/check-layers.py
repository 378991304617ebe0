#!/usr/bin/env python3
"""Keeps lib/ layered: reads every #include "x/y.h" (and <x/y.h> where x is a
lib/ folder) in lib/ and its sub-folders, and fails on one
that runs against the layer order, on an *-internal.h header used outside its
own folder, and on a circle of headers. `--self-test` checks that each rule
does fail on a tree made to break it.

The order (each folder may include only its own and lower ones):
  core < config, metrics < net < http < channel < engine < push < backend < app
"""
import re
import sys
import tempfile
from pathlib import Path

RANK = {"core": 0, "config": 1, "metrics": 1, "net": 2, "http": 3, "channel": 4, "engine": 5,
        "push": 6, "backend": 7, "app": 8}
INCLUDE = re.compile(r'^\s*#\s*include\s+(?:"([^"]+)"|<([^>]+)>)', re.M)


def includes(lib: Path):
    for f in sorted(lib.rglob("*.[ch]")):
        for quoted, angled in INCLUDE.findall(f.read_text()):
            # <x/y.h> is a system header unless x is one of lib/'s folders
            if quoted or angled.split("/")[0] in RANK:
                yield f.relative_to(lib), quoted or angled


def check(lib: Path):
    errors = []
    graph = {}
    for src, target in includes(lib):
        folder, dest = src.parts[0], target.split("/")[0]
        where = f"lib/{src}: #include \"{target}\""
        if folder not in RANK:
            errors.append(f"lib/{src}: folder '{folder}' has no place in the layer order")
            continue
        if dest not in RANK:
            errors.append(f"{where}: not a lib/ header")
            continue
        if dest != folder and RANK[dest] >= RANK[folder]:
            errors.append(f"{where}: {folder}/ may not reach {dest}/ (it is not below it)")
        if target.endswith("-internal.h") and dest != folder:
            errors.append(f"{where}: an internal header of another folder")
        if src.suffix == ".h":
            graph.setdefault(str(src), []).append(target)
    errors += cycles(graph)
    return errors


def cycles(graph):
    found, state = [], {}

    def visit(node, path):
        state[node] = "open"
        for nxt in graph.get(node, []):
            if state.get(nxt) == "open":
                found.append("header circle: " + " -> ".join(path[path.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def self_test():
    cases = {
        "upward": {"core/a.h": '#include "push/b.h"\n', "push/b.h": ""},
        "sideways": {"config/a.c": '#include "metrics/m.h"\n', "metrics/m.h": ""},
        "internal": {"app/a.c": '#include "push/push-internal.h"\n', "push/push-internal.h": ""},
        "circle": {"push/a.h": '#include "push/b.h"\n', "push/b.h": '#include "push/a.h"\n'},
        "unknown folder": {"misc/a.c": '#include "core/c.h"\n', "core/c.h": ""},
        "angle brackets": {"core/a.c": "#include <push/b.h>\n", "push/b.h": ""},
        "sub-folder": {"core/sub/a.c": '#include "push/b.h"\n', "push/b.h": ""},
    }
    ok = True
    for name, files in cases.items():
        with tempfile.TemporaryDirectory() as d:
            for path, text in files.items():
                (Path(d) / path).parent.mkdir(parents=True, exist_ok=True)
                (Path(d) / path).write_text(text)
            if not check(Path(d)):
                print(f"self-test: '{name}' was not caught")
                ok = False
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "push").mkdir()
        (Path(d) / "push/a.c").write_text('#include "core/x.h"\n#include "push/a.h"\n'
                                          "#include <event2/event.h>\n")
        (Path(d) / "push/a.h").write_text('#include "http/y.h"\n')
        if check(Path(d)):
            print("self-test: a well-layered tree was refused")
            ok = False
    return ok


def main():
    if "--self-test" in sys.argv:
        sys.exit(0 if self_test() else 1)
    report(check(Path(__file__).resolve().parent.parent.parent / "lib"))


def report(errors):
    """Prints the errors and exits: 1 if there are any."""
    for e in errors:
        print(e)
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
