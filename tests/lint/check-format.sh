#!/bin/sh
# Fails when a C file is not formatted as .clang-format says (clang-format 14).
cd "$(dirname "$0")/../.." || exit 1
status=0
for f in $(git ls-files '*.c' '*.h' 2>/dev/null || find lib cmd tests -name '*.[ch]'); do
    if ! clang-format --style=file --dry-run -Werror "$f" 2>/dev/null; then
        echo "not formatted: $f (run: clang-format -i $f)"
        status=1
    fi
done
exit $status
