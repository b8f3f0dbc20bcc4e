// Content hashes of input files (FNV-1a 64 of their bytes; directories: the model's files).
#include "bd_filehash.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

uint64_t bd_fnv1a64(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * UINT64_C(0x100000001b3);
    return h;
}

static int hash_file(const char *path, uint64_t *h, char *why, size_t why_size) {
    struct stat st;
    if (stat(path, &st) != 0) return bd_fail(why, why_size, BD_ERR_IO, "\"%s\": %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return bd_fail(why, why_size, BD_ERR_ARG, "\"%s\": not a regular file", path);
    FILE *f = fopen(path, "rb");
    if (!f) return bd_fail(why, why_size, BD_ERR_IO, "\"%s\": %s", path, strerror(errno));
    unsigned char buf[1 << 14];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) *h = bd_fnv1a64(*h, buf, n);
    int bad = ferror(f);
    fclose(f);
    if (bad) return bd_fail(why, why_size, BD_ERR_IO, "\"%s\": read error", path);
    return BD_OK;
}

static int is_model_file(const char *name) {
    size_t n = strlen(name), s = strlen(".safetensors");
    return strcmp(name, "config.json") == 0 || (n > s && strcmp(name + n - s, ".safetensors") == 0);
}

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int hash_dir(const char *path, uint64_t *h, char *why, size_t why_size) {
    DIR *d = opendir(path);
    if (!d) return bd_fail(why, why_size, BD_ERR_IO, "\"%s\": %s", path, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = BD_OK;
    for (struct dirent *e; (e = readdir(d));) {
        if (!is_model_file(e->d_name)) continue;
        if (n == cap) {
            char **p = realloc(names, sizeof *names * (cap = cap ? 2 * cap : 16));
            if (!p) {
                rc = BD_ERR_NOMEM;
                break;
            }
            names = p;
        }
        if (!(names[n] = strdup(e->d_name))) {
            rc = BD_ERR_NOMEM;
            break;
        }
        n++;
    }
    closedir(d);
    if (rc == BD_OK) qsort(names, n, sizeof *names, cmp_names);
    for (size_t i = 0; i < n && rc == BD_OK; i++) {
        char file[4096];
        snprintf(file, sizeof file, "%s/%s", path, names[i]);
        *h = bd_fnv1a64(*h, names[i], strlen(names[i]) + 1);
        rc = hash_file(file, h, why, why_size);
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    return rc == BD_ERR_NOMEM ? bd_fail(why, why_size, rc, "out of memory") : rc;
}

int bd_hash_path(const char *path, char out[17], char *why, size_t why_size) {
    struct stat st;
    uint64_t h = BD_FNV1A64_INIT;
    out[0] = 0;
    if (strcmp(path, "-") == 0) return bd_fail(why, why_size, BD_ERR_ARG, "standard input has no content hash");
    if (stat(path, &st) != 0) return bd_fail(why, why_size, BD_ERR_IO, "\"%s\": %s", path, strerror(errno));
    int rc = S_ISDIR(st.st_mode) ? hash_dir(path, &h, why, why_size) : hash_file(path, &h, why, why_size);
    if (rc < 0) return rc;
    snprintf(out, 17, "%016" PRIx64, h);
    return BD_OK;
}
