# bd-cat: common options, invalid invocations, invalid input.
. "$(dirname "$0")/lib.sh"
expect_common_options bd-cat
expect_fail 1 bd-cat "$T/does-not-exist.bdz"
expect_err_contains "does-not-exist.bdz"
printf 'hello world, not a stream' >"$T/junk"
expect_fail 1 bd-cat "$T/junk"
expect_err_contains "not a bd stream"
: >"$T/empty"
expect_fail 1 bd-cat "$T/empty"
expect_err_contains "empty input"
expect_fail 1 bd-cat --check "$T/empty"
expect_fail 2 bd-cat --records x "$T/empty"
exit 0
