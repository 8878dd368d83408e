#!/usr/bin/env bash
# Include boundaries (STYLE.md section 2): each third-party library behind its one file.
# Usage: check_includes.sh SOURCE_DIR. Prints every violation; exits 1 if there is any.
set -u
cd "$1" || exit 2
status=0
violation() {
    echo "$1"
    status=1
}

check() {  # check <description> <grep -E pattern> <files...>
    local what=$1 pattern=$2
    shift 2
    local f
    for f in "$@"; do
        [ -f "$f" ] || continue
        grep -nE "$pattern" "$f" | while IFS= read -r hit; do
            echo "$f:$hit: $what"
        done
    done
}

out=$(
    check "public engine headers include only std and engine headers" \
        '#include <(boost|yaml-cpp|re2|rapidjson)/' engine/include/civicflow/engine/*.hpp
    check "yaml-cpp belongs in engine/src/yaml_document.cpp only" '#include <yaml-cpp/' \
        $(ls engine/src/*.?pp server/src/*.?pp server/src/cli/*.?pp server/include/civicflow/server/*.hpp 2>/dev/null | grep -v 'engine/src/yaml_document.cpp')
    check "RE2 belongs in engine/src/regex.cpp only" '#include <re2/' \
        $(ls engine/src/*.?pp server/src/*.?pp server/src/cli/*.?pp server/include/civicflow/server/*.hpp 2>/dev/null | grep -v 'engine/src/regex.cpp')
    check "RapidJSON in the engine belongs in json_util.cpp and session_codec.cpp only" '#include <rapidjson/' \
        $(ls engine/src/*.?pp | grep -vE 'engine/src/(json_util|session_codec).cpp')
    check "Boost belongs in server/, examples/ and bench/ only" '#include <boost/' \
        engine/src/*.?pp engine/include/civicflow/engine/*.hpp
    privates=$(cd engine/src && ls *.hpp 2>/dev/null | tr '\n' '|' | sed 's/|$//')
    if [ -n "$privates" ]; then
        check "engine private headers are not for the server, flow tests, integration tests or examples" \
            "#include \"($privates)\"" \
            $(find server tests/flows tests/integration examples -name '*.?pp' 2>/dev/null)
    fi
)
if [ -n "$out" ]; then
    echo "$out"
    status=1
fi
if [ $status -eq 0 ]; then
    echo "include boundaries: ok"
fi
exit $status
