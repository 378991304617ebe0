#!/usr/bin/env python3
"""Keeps lib/'s calls layered, as check-layers.py keeps its includes: reads
the symbols each folder's static library (libsidepush_<folder>.a) defines
and the ones it uses, and fails on a use of a symbol another folder defines
that is not below it in the layer order. An include catches most of these;
this catches a call that runs upward with a declaration of its own, or
through a macro, which no include shows. `--self-test` checks that the rule
fails on made-up symbol tables that break it.

Usage: check-calls.py LIB.a... (from meson, the built libraries).
"""
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

LINT = Path(__file__).resolve().parent
spec = importlib.util.spec_from_file_location("layers", LINT / "check-layers.py")
layers = importlib.util.module_from_spec(spec)
spec.loader.exec_module(layers)
RANK = layers.RANK
LIBRARY = re.compile(r"libsidepush_(\w+)\.a$")


def symbols(archive: str):
    """(defined, used) global symbol names of one static library."""
    out = subprocess.run(["nm", "-g", "--format=posix", archive], capture_output=True, text=True,
                         check=True).stdout
    defined, used = set(), set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 2 or line.endswith(":"):  # an archive member's name
            continue
        (used if parts[1] == "U" else defined).add(parts[0])
    return defined, used


def check(tables: dict):
    """tables: folder -> (defined, used). Returns the errors."""
    owner = {}
    for folder, (defined, _) in tables.items():
        for name in defined:
            owner.setdefault(name, folder)
    errors = []
    for folder, (_, used) in sorted(tables.items()):
        if folder not in RANK:
            errors.append(f"libsidepush_{folder}.a: folder '{folder}' has no place in the order")
            continue
        for name in sorted(used):
            dest = owner.get(name)
            if dest is None or dest == folder:
                continue
            if RANK[dest] >= RANK[folder]:
                errors.append(f"lib/{folder}/ calls {name} of lib/{dest}/, which is not below it")
    return errors


def self_test():
    cases = {
        "upward": {"core": (set(), {"sp_push_new"}), "push": ({"sp_push_new"}, set())},
        "sideways": {"config": (set(), {"sp_metric_one"}), "metrics": ({"sp_metric_one"}, set())},
        "unknown folder": {"misc": (set(), set())},
    }
    ok = True
    for name, tables in cases.items():
        if not check(tables):
            print(f"self-test: '{name}' was not caught")
            ok = False
    good = {"core": ({"sp_now_ms"}, {"malloc"}), "push": ({"sp_push_new"}, {"sp_now_ms"})}
    if check(good):
        print("self-test: a well-layered set was refused")
        ok = False
    return ok


def main():
    if "--self-test" in sys.argv:
        sys.exit(0 if self_test() else 1)
    tables = {}
    for archive in sys.argv[1:]:
        m = LIBRARY.search(archive)
        if m is None:
            print(f"{archive}: not a libsidepush_<folder>.a")
            sys.exit(1)
        tables[m.group(1)] = symbols(archive)
    if len(tables) < 2:
        print("no libraries given")
        sys.exit(1)
    layers.report(check(tables))


if __name__ == "__main__":
    main()
