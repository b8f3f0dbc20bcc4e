# Every tool has a man page with the standard sections, naming every long option its
# --help lists; bd-stream.5 exists.
. "$(dirname "$0")/lib.sh"
MAN=$(cd "$(dirname "$0")/../../man" && pwd)
[ -f "$MAN/bd-stream.5" ] || fail "man/bd-stream.5 missing"
for tool in "$BD_BIN"/bd-*; do
    name=$(basename "$tool")
    page="$MAN/$name.1"
    [ -f "$page" ] || fail "$name has no man page $page"
    for sec in NAME SYNOPSIS DESCRIPTION OPTIONS "EXIT STATUS" EXAMPLES "SEE ALSO"; do
        grep -q "^\.SH \"\{0,1\}$sec" "$page" || fail "$page lacks section $sec"
    done
    # Each option is one item of OPTIONS (the line after .TP names it), never two.
    dup=$(awk 'prev == ".TP" { if (match($0, /\\-\\-[a-z][a-z0-9\\-]*/)) print substr($0, RSTART, RLENGTH) } { prev = $0 }' "$page" | sort | uniq -d)
    [ -z "$dup" ] || fail "$page lists $dup more than once"
    "$tool" --help | grep -o -- '--[a-z][a-z0-9-]*' | sort -u | while read -r opt; do
        # roff escapes "-" as "\-"
        esc=$(printf '%s' "$opt" | sed 's/-/\\\\-/g')
        grep -q -- "$esc\|$opt" "$page" || fail "$page does not document $opt"
    done || exit 1
done
exit 0
