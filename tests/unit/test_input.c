// Inputs read once (bd_input): a regular file and a pipe both read from byte 0 after their
// first bytes were looked at, a short input gives what it has, a directory and a missing file
// are refused; and NULs in text (bd_text_nul_line), raw and as JSON escapes, by line.
#include <string.h>
#include <unistd.h>

#include "bd_input.h"
#include "bd_test_streams.h"
#include "bd_text.h"

// Everything in reads, after its head was taken.
static void expect_reads(bd_input *in, const char *want, size_t n) {
    ck_assert_uint_eq(in->head_len, n < BD_INPUT_HEAD ? n : BD_INPUT_HEAD);
    ck_assert(memcmp(in->head, want, in->head_len) == 0);
    char got[256];
    size_t k = fread(got, 1, sizeof got, in->f);
    ck_assert_uint_eq(k, n);
    ck_assert(memcmp(got, want, n) == 0);
    bd_input_close(in);
}

// The same bytes through a pipe, named /dev/fd/N as a shell's <(...) names it.
static void expect_pipe_reads(const char *data, size_t n) {
    int fd[2];
    ck_assert_int_eq(pipe(fd), 0);
    ck_assert_int_eq(write(fd[1], data, n), (ssize_t)n);  // fits in the pipe's buffer
    close(fd[1]);
    char path[64], why[300];
    snprintf(path, sizeof path, "/dev/fd/%d", fd[0]);
    bd_input in;
    ck_assert_msg(bd_input_open(&in, path, why, sizeof why) == BD_OK, "%s", why);
    ck_assert_int_eq(in.size, -1);
    expect_reads(&in, data, n);
    close(fd[0]);
}

START_TEST(test_input_once) {
    static const char data[] = "\x28\xb5\x2f\xfd and the rest of a stream, longer than the head";
    const char *p = bd_test_path("in.bin");
    FILE *f = fopen(p, "wb");
    fwrite(data, 1, sizeof data - 1, f);
    fclose(f);
    bd_input in;
    char why[300];
    ck_assert_int_eq(bd_input_open(&in, p, why, sizeof why), BD_OK);
    ck_assert(bd_input_is_zstd(&in));
    ck_assert_int_eq(in.size, (int64_t)sizeof data - 1);
    expect_reads(&in, data, sizeof data - 1);
    expect_pipe_reads(data, sizeof data - 1);
    expect_pipe_reads("ab", 2);
    expect_pipe_reads("", 0);
    ck_assert_int_eq(bd_input_open(&in, bd_test_tmpdir(), why, sizeof why), BD_ERR_ARG);
    ck_assert_msg(strstr(why, "is a directory"), "%s", why);
    ck_assert_int_eq(bd_input_open(&in, bd_test_path("none"), why, sizeof why), BD_ERR_IO);
    ck_assert_msg(strstr(why, "none\": cannot open"), "%s", why);
}
END_TEST

START_TEST(test_text_nul_line) {
    ck_assert_int_eq(bd_text_nul_line("ab\ncd\n", 6, false), 0);
    ck_assert_int_eq(bd_text_nul_line("ab\nc\0d\n", 7, false), 2);
    ck_assert_int_eq(bd_text_nul_line("\0", 1, true), 1);
    // JSON: \u0000 is a NUL, an escaped backslash followed by u0000 is not, a lone "\" at the end is not.
    ck_assert_int_eq(bd_text_nul_line("{}\n{\"a\":\"x\\u0000\"}", 18, true), 2);
    ck_assert_int_eq(bd_text_nul_line("{}\n{\"a\":\"x\\u0000\"}", 18, false), 0);
    ck_assert_int_eq(bd_text_nul_line("\"\\\\u0000\"", 9, true), 0);
    ck_assert_int_eq(bd_text_nul_line("\"\\u000", 6, true), 0);
    ck_assert_int_eq(bd_text_nul_line("\\", 1, true), 0);
    ck_assert_int_eq(bd_text_nul_line("\\\0", 2, true), 1);  // a backslash does not hide a NUL
}
END_TEST

Suite *suite_input(void) {
    Suite *s = suite_create("input");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_input_once);
    tcase_add_test(tc, test_text_nul_line);
    suite_add_tcase(s, tc);
    return s;
}
