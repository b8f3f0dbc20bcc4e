# Helpers for command-line tests. Each test script: `. "$(dirname "$0")/lib.sh"`, then
# commands; the script fails (exit 1) at the first failed expectation.
set -u
BD_BIN=${BD_BIN:?run through make test}
BD_DATA=${BD_DATA:-../shared/data}
T=$(mktemp -d "${BD_TMP:-/tmp}/cli.XXXXXX") || { echo "FAIL: cannot make a scratch directory" >&2; exit 1; }
[ -n "$T" ] && [ -d "$T" ] || exit 1
trap 'rm -rf "$T"' EXIT
PATH="$BD_BIN:$PATH"

fail() { echo "FAIL: $*" >&2; exit 1; }

# nll: the "nll" field of the last command's JSON line (bd-eval --json). within A B TOL: |A - B| < TOL.
nll() { sed 's/.*"nll":\([0-9.]*\).*/\1/' "$T/out"; }
within() { awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; exit !(d < t && d > -t) }'; }

# The Python of the independent readers (Debian's, with numpy; BD_PYTHON overrides); need_numpy
# fails the test where it has no numpy.
PY=${BD_PYTHON:-/usr/bin/python3}
need_numpy() { $PY -c 'import numpy' 2>/dev/null || fail "$PY cannot import numpy (Debian: python3-numpy; or set BD_PYTHON)"; }

# no_sanitizer_report CMD...: the last command's stderr holds no report of a sanitized build
# (make test SAN=1: AddressSanitizer, LeakSanitizer, UndefinedBehaviorSanitizer), which a
# failing command's exit status would hide.
no_sanitizer_report() {
    ! grep -q "Sanitizer" "$T/err" || { cat "$T/err" >&2; fail "sanitizer report: $*"; }
}

# expect_ok CMD...: exit 0.
expect_ok() {
    "$@" >"$T/out" 2>"$T/err" || { cat "$T/err" >&2; fail "expected success: $*"; }
    no_sanitizer_report "$@"
}

# expect_fail CODE CMD...: exit status CODE, empty stdout, a one-line message on stderr
# that starts with the tool name.
expect_fail() {
    want=$1; shift
    "$@" >"$T/out" 2>"$T/err"
    got=$?
    no_sanitizer_report "$@"
    [ "$got" = "$want" ] || { cat "$T/err" >&2; fail "expected exit $want, got $got: $*"; }
    [ ! -s "$T/out" ] || fail "expected empty stdout: $*"
    [ -s "$T/err" ] || fail "expected an error message: $*"
    head -n 1 "$T/err" | grep -q "^$(basename "$1"): " || fail "message does not start with the tool name: $(head -n 1 "$T/err")"
}

# expect_err_contains TEXT: the last command's stderr contains TEXT.
expect_err_contains() {
    grep -qF -- "$1" "$T/err" || { cat "$T/err" >&2; fail "stderr lacks \"$1\""; }
}

# expect_out_contains TEXT: the last command's stdout contains TEXT.
expect_out_contains() {
    grep -qF -- "$1" "$T/out" || { head -c 2000 "$T/out" >&2; fail "stdout lacks \"$1\""; }
}

# expect_common_options TOOL: --help, --version and a bad option behave.
expect_common_options() {
    expect_ok "$1" --help
    head -n 1 "$T/out" | grep -q '^Usage: ' || fail "$1 --help: first line is not a Usage line"
    expect_ok "$1" --version
    expect_out_contains "bd"
    expect_fail 2 "$1" --no-such-option
    expect_fail 2 "$1" --threads 2x
    expect_fail 2 "$1" --seed -1
    expect_fail 2 "$1" --verbosity 9
}
