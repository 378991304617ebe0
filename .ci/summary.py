"""Sums the results of every meson test run named on the command line.

meson counts a TAP file or a pytest run as one test; this counts what is
inside them (TAP lines, the pytest JUnit report) and prints, last,
"N passed, N failed" for all builds together.
"""
import json
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def count_tap(text):
    passed = len(re.findall(r"^ok \d+", text, re.M))
    failed = len(re.findall(r"^not ok \d+", text, re.M))
    return passed, failed


def count_junit(path):
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    total = sum(int(s.get("tests", 0)) for s in suites)
    bad = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
    skipped = sum(int(s.get("skipped", 0)) for s in suites)
    return total - bad - skipped, bad


def count_build(build):
    log = Path(build) / "meson-logs" / "testlog.json"
    passed = failed = 0
    if not log.exists():
        print(f"{build}: no test log (build failed?)")
        return 0, 1
    for line in log.read_text().splitlines():
        t = json.loads(line)
        ok = t["result"] in ("OK", "EXPECTEDFAIL")
        name = t["name"].split("/")[-1].strip()
        junit = next((Path(build) / "tests").glob(f"*/{name}.xml"), None)
        if name.startswith("pytest") and junit is not None:
            p, f = count_junit(junit)
            f += 0 if ok or f else 1
        elif t.get("protocol") == "tap" or re.search(r"^(not )?ok \d+", t.get("stdout", ""), re.M):
            p, f = count_tap(t.get("stdout", ""))
            f += 0 if ok or f else 1
        else:
            p, f = (1, 0) if ok else (0, 1)
        passed += p
        failed += f
    print(f"{build}: {passed} passed, {failed} failed")
    return passed, failed


def main():
    passed = failed = 0
    for build in sys.argv[1:]:
        p, f = count_build(build)
        passed += p
        failed += f
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
