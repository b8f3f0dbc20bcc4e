// The files of a run (bd_runfiles): an output is refused when it is an input or another output
// under any name (the same path, "./x", "d/../x", a hard or symbolic link; new files by place),
// when a file has a name of an output's family or temporaries; in-place outputs, two inputs and
// a missing input pass; an input directory stands for its files.
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bd_runfiles.h"
#include "bd_test.h"

typedef struct {
    bd_rf_role role;
    const char *opt, *path;
} rf;

// The check over files (n of them); *why gets its reason.
static int check(const rf *f, int n, char *why, size_t ws) {
    bd_runfiles s = {0};
    for (int i = 0; i < n; i++) ck_assert_int_eq(bd_runfiles_add(&s, f[i].role, f[i].opt, f[i].path), BD_OK);
    why[0] = 0;
    int rc = bd_runfiles_check(&s, why, ws);
    bd_runfiles_free(&s);
    return rc;
}

static void touch(const char *path) {
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("x", f);
    fclose(f);
}

START_TEST(test_runfiles) {
    char a[4200], dot[4200], up[4200], hard[4200], sym[4200], fresh[4200], fresh2[4200], fam[4200], gen[4200],
            tmp[4200], dir[2100], inner[4200], why[600];
    char base[2048];
    snprintf(base, sizeof base, "%s/runfiles", bd_test_tmpdir());  // a directory of its own
    ck_assert_int_eq(mkdir(base, 0777), 0);
    snprintf(a, sizeof a, "%s/a.bdz", base);
    snprintf(dot, sizeof dot, "%s/./a.bdz", base);
    snprintf(dir, sizeof dir, "%s/d", base);
    snprintf(up, sizeof up, "%s/../a.bdz", dir);
    snprintf(hard, sizeof hard, "%s/hard.bdz", base);
    snprintf(sym, sizeof sym, "%s/sym.bdz", base);
    snprintf(fresh, sizeof fresh, "%s/new.bdz", base);
    snprintf(fresh2, sizeof fresh2, "%s/../new.bdz", dir);
    snprintf(fam, sizeof fam, "%s/o.state.w", base);
    snprintf(gen, sizeof gen, "%s/o.state.w10", base);
    snprintf(tmp, sizeof tmp, "%s/a.bdz.tmp.1.x", base);
    snprintf(inner, sizeof inner, "%s/config.json", dir);
    touch(a);
    ck_assert_int_eq(mkdir(dir, 0777), 0);
    touch(inner);
    touch(gen);
    ck_assert_int_eq(link(a, hard), 0);
    ck_assert_int_eq(symlink("a.bdz", sym), 0);
    const bd_rf_role I = BD_RF_INPUT, O = BD_RF_OUTPUT, F = BD_RF_FAMILY;
    struct {
        rf f[2];
        const char *want;  // NULL: accepted
    } cases[] = {
            {{{O, "-o", a}, {I, "TOKENS", a}}, "-o \"%s\" and TOKENS \"%s\" are the same file"},
            {{{I, "TOKENS", dot}, {O, "-o", a}}, "TOKENS \"%s\" and -o \"%s\" are the same file"},
            {{{O, "-o", up}, {I, "TOKENS", a}}, "same file"},
            {{{O, "-o", hard}, {I, "TOKENS", a}}, "same file"},
            {{{O, "-o", sym}, {I, "TOKENS", a}}, "same file"},
            {{{O, "-o", fresh}, {O, "--log", fresh2}}, "-o \"%s\" and --log \"%s\" are the same file"},
            {{{O, "-o", inner}, {I, "--model", dir}}, "same file"},
            {{{F, "--save-every", fam}, {O, "--log", gen}}, "--log \"%2$s\" is one of the files \"%1$s*\""},
            {{{I, "--model", gen}, {F, "--save-every", fam}}, "is one of the files"},
            {{{O, "-o", a}, {O, "--log", tmp}}, "--log \"%2$s\" is named like a temporary file of -o \"%1$s\""},
            {{{O, "-o", fresh}, {I, "TOKENS", a}}, NULL},
            {{{I, "--eval", a}, {I, "TOKENS", hard}}, NULL},
            {{{O, "-o", "/dev/null"}, {O, "--log", "/dev/null"}}, NULL},
            {{{O, "-o", "-"}, {I, "TOKENS", "-"}}, NULL},
            {{{O, "-o", fresh}, {I, "TOKENS", fresh2}}, NULL},  // a missing input is the tool's to report
            {{{F, "--save-every", fam}, {O, "-o", a}}, NULL},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        int rc = check(cases[k].f, 2, why, sizeof why);
        if (!cases[k].want) {
            ck_assert_msg(rc == BD_OK, "case %zu: %s", k, why);
            continue;
        }
        char want[9000];
        snprintf(want, sizeof want, cases[k].want, cases[k].f[0].path, cases[k].f[1].path);
        ck_assert_msg(rc == BD_ERR_ARG && strstr(why, want), "case %zu: %s", k, why);
    }
}
END_TEST

Suite *suite_runfiles(void) {
    Suite *s = suite_create("runfiles");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_runfiles);
    suite_add_tcase(s, tc);
    return s;
}
