#!/usr/bin/env bash
# Every C++ source of the project is formatted with the repository's .clang-format.
set -u
cd "$1" || exit 2
formatter=$(command -v clang-format-14 || command -v clang-format)
if [ -z "$formatter" ]; then
    echo "clang-format not installed (.ci/install-deps installs it)"
    exit 1
fi
files=$(git ls-files '*.cpp' '*.hpp' 2>/dev/null)
[ -n "$files" ] || files=$(find engine server tests examples bench -name '*.cpp' -o -name '*.hpp')
if echo "$files" | xargs "$formatter" --dry-run --Werror 2>&1 | grep -m 20 'error:'; then
    echo "run: clang-format -i \$(git ls-files '*.cpp' '*.hpp')"
    exit 1
fi
echo "clang-format: ok"
