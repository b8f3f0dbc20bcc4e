// Runs each command-line test script tests/cli/*.sh as one Check test, so that the CLI
// tests share the unit runner's summary line. Scripts get BD_BIN, BD_DATA and BD_TMP.
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "bd_test.h"

static char scripts[64][1024];
static int n_scripts;

static void find_scripts(void) {
    const char *dir = getenv("BD_CLI_DIR");
    if (!dir) return;
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) && n_scripts < 64) {
        size_t n = strlen(e->d_name);
        if (n > 3 && strcmp(e->d_name + n - 3, ".sh") == 0 && strcmp(e->d_name, "lib.sh") != 0)
            if (snprintf(scripts[n_scripts], sizeof scripts[0], "%s/%s", dir, e->d_name) < (int)sizeof scripts[0])
                n_scripts++;
    }
    closedir(d);
    // Sorted, so the run order is stable.
    qsort(scripts, (size_t)n_scripts, sizeof scripts[0], (int (*)(const void *, const void *))strcmp);
}

START_TEST(test_cli_script) {
    char cmd[6000];
    snprintf(cmd, sizeof cmd, "sh '%s' >'%s/cli_%d.log' 2>&1", scripts[_i], bd_test_tmpdir(), _i);
    int st = system(cmd);
    if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
        char log[4200];
        snprintf(log, sizeof log, "%s/cli_%d.log", bd_test_tmpdir(), _i);
        FILE *f = fopen(log, "r");
        char line[512];
        fprintf(stderr, "---- %s failed; its output:\n", scripts[_i]);
        while (f && fgets(line, sizeof line, f)) fputs(line, stderr);
        if (f) fclose(f);
    }
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s failed (exit %d)", scripts[_i],
                  WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}
END_TEST

START_TEST(test_cli_found_scripts) {
    ck_assert_msg(getenv("BD_CLI_DIR") && getenv("BD_BIN"),
                  "BD_CLI_DIR and BD_BIN must be set (run through make test)");
    ck_assert_int_gt(n_scripts, 0);
}
END_TEST

Suite *suite_cli(void) {
    find_scripts();
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("scripts");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_cli_found_scripts);
    if (n_scripts > 0) tcase_add_loop_test(tc, test_cli_script, 0, n_scripts);
    suite_add_tcase(s, tc);
    return s;
}
