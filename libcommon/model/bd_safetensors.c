// Safetensors reader (mmap + cJSON header, every entry validated up front) and writer.
#include "bd_safetensors.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bd_outfile.h"

static const struct {
    const char *st;
    int bd;
    size_t size;
} st_dtypes[] = {
        {"F32", BD_F32, 4},
        {"BF16", BD_BF16, 2},
        {"F16", BD_F16, 2},
        {"I8", BD_I8, 1},
        {"U8", BD_U8, 1},
        {"I32", BD_I32, 4},
        {"U32", BD_U32, 4},
        // Known to safetensors, no bd equivalent: still validated for size.
        {"F64", -1, 8},
        {"I64", -1, 8},
        {"U64", -1, 8},
        {"I16", -1, 2},
        {"U16", -1, 2},
        {"BOOL", -1, 1},
        {"F8_E4M3", -1, 1},
        {"F8_E5M2", -1, 1},
};

const char *bd_st_dtype_name(bd_dtype t) {
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (st_dtypes[i].bd == (int)t) return st_dtypes[i].st;
    return NULL;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(((const bd_st_tensor *)a)->name, ((const bd_st_tensor *)b)->name);
}

typedef struct {
    uint64_t begin, end;
    int idx;
} span;
static int cmp_begin(const void *a, const void *b) {
    const span *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : 0;
}

// A JSON number that is a non-negative integer below 2^53 (exact in a double).
static int json_u64(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j)) return -1;
    double d = j->valuedouble;
    if (!(d >= 0) || d > 9007199254740992.0 || d != floor(d)) return -1;
    *out = (uint64_t)d;
    return 0;
}

static int parse_entry(bd_st_tensor *t, const cJSON *e, uint64_t data_start, size_t file_size, const char *path,
                       char *why, size_t ws) {
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *of = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsObject(e) || !cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(of) ||
        cJSON_GetArraySize(of) != 2)
        return bd_fail(why, ws, BD_ERR_MALFORMED,
                       "%s: tensor \"%s\": expected {\"dtype\":str, \"shape\":[...], \"data_offsets\":[begin,end]}",
                       path, t->name);
    size_t esize = 0;
    t->dtype = -1;
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (strcmp(dt->valuestring, st_dtypes[i].st) == 0) {
            esize = st_dtypes[i].size;
            t->dtype = st_dtypes[i].bd;
        }
    if (!esize)
        return bd_fail(why, ws, BD_ERR_MALFORMED, "%s: tensor \"%s\": unknown dtype \"%.20s\"", path, t->name,
                       dt->valuestring);
    snprintf(t->dtype_name, sizeof t->dtype_name, "%s", dt->valuestring);
    int nd = cJSON_GetArraySize(sh);
    if (nd > BD_ST_MAX_DIMS)
        return bd_fail(why, ws, BD_ERR_MALFORMED, "%s: tensor \"%s\": %d dimensions (at most %d)", path, t->name, nd,
                       BD_ST_MAX_DIMS);
    t->ndim = nd;
    uint64_t numel = 1;
    for (int i = 0; i < nd; i++) {
        uint64_t d;
        if (json_u64(cJSON_GetArrayItem(sh, i), &d) < 0 || d > ((uint64_t)1 << 40))
            return bd_fail(why, ws, BD_ERR_MALFORMED, "%s: tensor \"%s\": shape[%d] is not a plausible size", path,
                           t->name, i);
        t->shape[i] = (int64_t)d;
        numel *= d;
        if (numel > ((uint64_t)1 << 40))
            return bd_fail(why, ws, BD_ERR_MALFORMED, "%s: tensor \"%s\": too many elements", path, t->name);
    }
    t->numel = numel;
    uint64_t b, en;
    if (json_u64(cJSON_GetArrayItem(of, 0), &b) < 0 || json_u64(cJSON_GetArrayItem(of, 1), &en) < 0 || en < b)
        return bd_fail(why, ws, BD_ERR_MALFORMED,
                       "%s: tensor \"%s\": data_offsets must be [begin, end] with begin <= end", path, t->name);
    if (en - b != numel * esize)
        return bd_fail(why, ws, BD_ERR_SHAPE,
                       "%s: tensor \"%s\": %llu data bytes, expected %llu for %s with %llu elements", path, t->name,
                       (unsigned long long)(en - b), (unsigned long long)(numel * esize), t->dtype_name,
                       (unsigned long long)numel);
    if (data_start + en > file_size)
        return bd_fail(why, ws, BD_ERR_TRUNCATED,
                       "%s: tensor \"%s\": data ends at byte %llu, file has %zu (truncated?)", path, t->name,
                       (unsigned long long)(data_start + en), file_size);
    t->begin = data_start + b;
    t->end = data_start + en;
    return BD_OK;
}

int bd_safetensors_open(bd_safetensors *st, const char *path, char *why, size_t ws) {
    memset(st, 0, sizeof *st);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return bd_fail(why, ws, BD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return bd_fail(why, ws, BD_ERR_IO, "%s: not a regular file", path);
    }
    st->size = (size_t)sb.st_size;
    st->path = strdup(path);
    if (!st->path) {
        close(fd);
        return BD_ERR_NOMEM;
    }
    if (st->size < 8) {
        close(fd);
        bd_safetensors_close(st);
        return bd_fail(why, ws, BD_ERR_TRUNCATED, "%s: %zu bytes, too short for a safetensors header", path,
                       (size_t)sb.st_size);
    }
    void *m = mmap(NULL, st->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) {
        int e = errno;
        bd_safetensors_close(st);
        return bd_fail(why, ws, BD_ERR_IO, "%s: cannot map: %s", path, strerror(e));
    }
    st->map = m;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | st->map[i];
    int rc;
    cJSON *root = NULL;
    span *order = NULL;
    if (hlen > BD_ST_MAX_HEADER) {
        rc = bd_fail(why, ws, BD_ERR_MALFORMED, "%s: header length %llu is implausible (not a safetensors file?)", path,
                     (unsigned long long)hlen);
        goto fail;
    }
    if (8 + hlen > st->size) {
        rc = bd_fail(why, ws, BD_ERR_TRUNCATED, "%s: header of %llu bytes, file has only %zu (truncated)", path,
                     (unsigned long long)hlen, st->size);
        goto fail;
    }
    root = cJSON_ParseWithLength((const char *)st->map + 8, (size_t)hlen);
    if (!cJSON_IsObject(root)) {
        rc = bd_fail(why, ws, BD_ERR_MALFORMED, "%s: header is not a JSON object", path);
        goto fail;
    }
    int n = cJSON_GetArraySize(root);
    st->tensors = calloc((size_t)n + 1, sizeof *st->tensors);
    if (!st->tensors) {
        rc = BD_ERR_NOMEM;
        goto fail;
    }
    for (const cJSON *e = root->child; e; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0) {
            if (!cJSON_IsObject(e)) {
                rc = bd_fail(why, ws, BD_ERR_MALFORMED, "%s: __metadata__ is not an object", path);
                goto fail;
            }
            int nm = cJSON_GetArraySize(e);
            st->meta = calloc(2 * (size_t)nm + 1, sizeof *st->meta);
            if (!st->meta) {
                rc = BD_ERR_NOMEM;
                goto fail;
            }
            for (const cJSON *kv = e->child; kv; kv = kv->next) {
                if (!cJSON_IsString(kv)) {
                    rc = bd_fail(why, ws, BD_ERR_MALFORMED, "%s: __metadata__ value \"%s\" is not a string", path,
                                 kv->string);
                    goto fail;
                }
                st->meta[2 * st->n_meta] = strdup(kv->string);
                st->meta[2 * st->n_meta + 1] = strdup(kv->valuestring);
                st->n_meta++;
                if (!st->meta[2 * st->n_meta - 2] || !st->meta[2 * st->n_meta - 1]) {
                    rc = BD_ERR_NOMEM;
                    goto fail;
                }
            }
            continue;
        }
        bd_st_tensor *t = &st->tensors[st->n++];
        if (!(t->name = strdup(e->string))) {
            rc = BD_ERR_NOMEM;
            goto fail;
        }
        if ((rc = parse_entry(t, e, 8 + hlen, st->size, path, why, ws)) < 0) goto fail;
    }
    qsort(st->tensors, (size_t)st->n, sizeof *st->tensors, cmp_name);
    for (int i = 1; i < st->n; i++)
        if (strcmp(st->tensors[i - 1].name, st->tensors[i].name) == 0) {
            rc = bd_fail(why, ws, BD_ERR_MALFORMED, "%s: tensor \"%s\" appears twice", path, st->tensors[i].name);
            goto fail;
        }
    // No two tensors may share bytes.
    order = malloc(((size_t)st->n + 1) * sizeof *order);
    if (!order) {
        rc = BD_ERR_NOMEM;
        goto fail;
    }
    for (int i = 0; i < st->n; i++) order[i] = (span){st->tensors[i].begin, st->tensors[i].end, i};
    qsort(order, (size_t)st->n, sizeof *order, cmp_begin);
    // Sweep in order of begin, keeping the non-empty tensor that reaches furthest so far: an
    // empty tensor between two others must not hide their overlap.
    const bd_st_tensor *reach = NULL;
    for (int i = 0; i < st->n; i++) {
        const bd_st_tensor *t = &st->tensors[order[i].idx];
        if (t->end == t->begin) continue;
        if (reach && reach->end > t->begin) {
            rc = bd_fail(why, ws, BD_ERR_MALFORMED, "%s: tensors \"%s\" and \"%s\" overlap", path, reach->name,
                         t->name);
            goto fail;
        }
        if (!reach || t->end > reach->end) reach = t;
    }
    free(order);
    cJSON_Delete(root);
    return BD_OK;
fail:
    free(order);
    cJSON_Delete(root);
    bd_safetensors_close(st);
    return rc;
}

void bd_safetensors_close(bd_safetensors *st) {
    if (st->map) munmap((void *)st->map, st->size);
    for (int i = 0; st->tensors && i < st->n; i++) free(st->tensors[i].name);
    for (int i = 0; st->meta && i < 2 * st->n_meta; i++) free(st->meta[i]);
    free(st->tensors);
    free(st->meta);
    free(st->path);
    memset(st, 0, sizeof *st);
}

const bd_st_tensor *bd_safetensors_find(const bd_safetensors *st, const char *name) {
    bd_st_tensor key = {.name = (char *)name};
    return st->n ? bsearch(&key, st->tensors, (size_t)st->n, sizeof key, cmp_name) : NULL;
}

const char *bd_safetensors_meta(const bd_safetensors *st, const char *key) {
    for (int i = 0; i < st->n_meta; i++)
        if (strcmp(st->meta[2 * i], key) == 0) return st->meta[2 * i + 1];
    return NULL;
}

const void *bd_safetensors_data(const bd_safetensors *st, const bd_st_tensor *t) { return st->map + t->begin; }

int bd_safetensors_read_f32(const bd_safetensors *st, const bd_st_tensor *t, float *dst, char *why, size_t ws) {
    if (t->dtype != BD_F32 && t->dtype != BD_BF16 && t->dtype != BD_F16)
        return bd_fail(why, ws, BD_ERR_SHAPE, "%s: tensor \"%s\" has dtype %s, expected F32, BF16 or F16", st->path,
                       t->name, t->dtype_name);
    bd_convert_to_f32(dst, st->map + t->begin, (bd_dtype)t->dtype, (size_t)t->numel);
    return BD_OK;
}

// ---- writer ---------------------------------------------------------------------------------

int bd_safetensors_write(const char *path, const bd_st_write_tensor *t, int n, const char *const *meta, int n_meta,
                         char *why, size_t ws) {
    cJSON *root = cJSON_CreateObject();
    char *hdr = NULL;
    int rc = BD_ERR_NOMEM;
    if (!root) return rc;
    if (n_meta > 0) {
        cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
        if (!m) goto done;
        for (int i = 0; i < n_meta; i++)
            if (!cJSON_AddStringToObject(m, meta[2 * i], meta[2 * i + 1])) goto done;
    }
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        const char *dn = bd_st_dtype_name(t[i].dtype);
        if (!dn || t[i].ndim < 0 || t[i].ndim > BD_ST_MAX_DIMS) {
            rc = bd_fail(why, ws, BD_ERR_ARG, "%s: tensor \"%s\": bad dtype or rank", path, t[i].name);
            goto done;
        }
        if (cJSON_GetObjectItemCaseSensitive(root, t[i].name)) {
            rc = bd_fail(why, ws, BD_ERR_ARG, "%s: tensor \"%s\" given twice", path, t[i].name);
            goto done;
        }
        uint64_t numel = 1;
        double shp[BD_ST_MAX_DIMS];
        for (int d = 0; d < t[i].ndim; d++) {
            numel *= (uint64_t)t[i].shape[d];
            shp[d] = (double)t[i].shape[d];
        }
        uint64_t nb = numel * bd_dtype_size(t[i].dtype);
        cJSON *e = cJSON_AddObjectToObject(root, t[i].name);
        double offs[2] = {(double)off, (double)(off + nb)};
        if (!e || !cJSON_AddStringToObject(e, "dtype", dn)) goto done;
        cJSON *sa = cJSON_CreateDoubleArray(shp, t[i].ndim), *oa = cJSON_CreateDoubleArray(offs, 2);
        if (!sa || !oa) {
            cJSON_Delete(sa);
            cJSON_Delete(oa);
            goto done;
        }
        cJSON_AddItemToObject(e, "shape", sa);
        cJSON_AddItemToObject(e, "data_offsets", oa);
        off += nb;
    }
    if (!(hdr = cJSON_PrintUnformatted(root))) goto done;
    size_t hlen = strlen(hdr), padded = (hlen + 7) / 8 * 8;
    bd_outfile *o = bd_outfile_open(path, "wb");
    if (!o) {
        rc = bd_fail(why, ws, BD_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
        goto done;
    }
    FILE *f = bd_outfile_fp(o);
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    bool ok = fwrite(len8, 1, 8, f) == 8 && fwrite(hdr, 1, hlen, f) == hlen;
    for (size_t i = hlen; ok && i < padded; i++) ok = fputc(' ', f) != EOF;
    for (int i = 0; ok && i < n; i++) {
        size_t nb = bd_dtype_size(t[i].dtype);
        for (int d = 0; d < t[i].ndim; d++) nb *= (size_t)t[i].shape[d];
        ok = nb == 0 || fwrite(t[i].data, 1, nb, f) == nb;
    }
    if (!ok) {
        int e = errno;
        bd_outfile_abort(o);
        rc = bd_fail(why, ws, BD_ERR_IO, "%s: write failed: %s", path, strerror(e));
        goto done;
    }
    if ((rc = bd_outfile_commit(o)) < 0) bd_fail(why, ws, rc, "%s: write failed: %s", path, strerror(errno));
done:
    free(hdr);
    cJSON_Delete(root);
    return rc;
}
