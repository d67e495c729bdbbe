#!/usr/bin/env bash
# Instructions per request on the hot path (benches/instructions.rs under callgrind): counts repeatable to a
# few instructions, so one run before a change and one after compare it, on however busy a machine.
#
#   bench/instructions.sh            # every case, 1,000 and 11,000 requests each
#   N=500 bench/instructions.sh      # fewer requests (the count per request does not depend on N)
#
# Needs valgrind (apt-get install valgrind).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
N=${N:-1000}
command -v valgrind >/dev/null || { echo "valgrind is missing: apt-get install valgrind" >&2; exit 1; }
# cargo prints "Executable benches/instructions.rs (PATH)"; PATH is relative to here or absolute.
exe=$(cargo bench --bench instructions --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*instructions-[0-9a-f]*\)).*/\1/p' | head -n 1)
[ -x "$exe" ] || { echo "could not find the instructions bench binary" >&2; exit 1; }
count() { # case requests -> instructions
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$exe" "$1" "$2" 2>&1 |
        awk '/Collected/ { print $4 }'
}
printf '| case | instructions per request |\n|---|---:|\n'
for case in full_4k range_4k multipart_3 not_modified gzip_4k gzip_missing_4k identity_variants_on_4k; do
    few=$(count "$case" "$N")
    many=$(count "$case" $((N * 11)))
    printf '| %s | %d |\n' "$case" $(((many - few) / (N * 10)))
done
