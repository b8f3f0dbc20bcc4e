// Replays every fuzz target (tests/fuzz/fuzz_*.c, compiled in with their entry point renamed
// bd_fuzz_<target>) over its seed corpus (tests/fuzz/seeds/<target>), every crash reproducer
// found so far (tests/fuzz/crashes/<target>), and the real files under BD_DATA framed by
// tests/fuzz/real_seeds.sh. A target must return on every input; under `make test SAN=1`
// ASan and UBSan check each run, as the fuzzer does.
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bd_test.h"

#define X(name) int bd_fuzz_##name(const uint8_t *data, size_t size);
#include "fuzz_targets.h"
#undef X

typedef struct {
    const char *name;
    int (*run)(const uint8_t *, size_t);
} fuzz_target;

static const fuzz_target targets[] = {
#define X(name) {#name, bd_fuzz_##name},
#include "fuzz_targets.h"
#undef X
};
#define N_TARGETS (int)(sizeof targets / sizeof *targets)

// Runs the target on every regular file of dir; returns how many (0 if dir is absent).
static int replay_dir(const fuzz_target *t, const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (e->d_name[0] == '.' || stat(path, &st) != 0 || !S_ISREG(st.st_mode)) continue;
        FILE *f = fopen(path, "rb");
        ck_assert_msg(f != NULL, "cannot open %s", path);
        uint8_t *buf = malloc((size_t)st.st_size + 1);
        ck_assert(buf != NULL);
        ck_assert_uint_eq(fread(buf, 1, (size_t)st.st_size, f), (size_t)st.st_size);
        fclose(f);
        ck_assert_int_eq(t->run(buf, (size_t)st.st_size), 0);
        free(buf);
        n++;
    }
    closedir(d);
    return n;
}

START_TEST(test_fuzz_replay) {
    const fuzz_target *t = &targets[_i];
    const char *src = getenv("BD_FUZZ_DIR");
    ck_assert_msg(src != NULL, "BD_FUZZ_DIR must be set (run through make test)");
    char dir[2048];
    snprintf(dir, sizeof dir, "%s/seeds/%s", src, t->name);
    int seeds = replay_dir(t, dir);
    ck_assert_msg(seeds > 0, "fuzz target %s has no seeds in %s", t->name, dir);
    snprintf(dir, sizeof dir, "%s/crashes/%s", src, t->name);
    replay_dir(t, dir);
    // The real files, framed once per process by real_seeds.sh.
    static char real[1024];
    if (!real[0]) {
        snprintf(real, sizeof real, "%s/fuzz_real", bd_test_tmpdir());
        char cmd[3000];
        snprintf(cmd, sizeof cmd, "sh '%s/real_seeds.sh' '%s'", src, real);
        ck_assert_msg(system(cmd) == 0, "%s failed", cmd);
    }
    snprintf(dir, sizeof dir, "%s/%s", real, t->name);
    replay_dir(t, dir);
}
END_TEST

Suite *suite_fuzz_replay(void) {
    Suite *s = suite_create("fuzz_replay");
    TCase *tc = tcase_create("replay");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_fuzz_replay, 0, N_TARGETS);
    suite_add_tcase(s, tc);
    return s;
}
