#include "bd_shard.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bd_parse.h"

// One side of "K/N": decimal digits only (no sign, space or empty part), then the range.
static bool digits(const char *s, size_t n) {
    if (n == 0 || n > 18) return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9') return false;
    return true;
}

int bd_shard_parse(const char *text, bd_shard *s, char *why, size_t ws) {
    const char *slash = text ? strchr(text, '/') : NULL;
    char a[20] = "", b[20] = "";
    if (slash && digits(text, (size_t)(slash - text)) && digits(slash + 1, strlen(slash + 1))) {
        memcpy(a, text, (size_t)(slash - text));
        strcpy(b, slash + 1);
    }
    int64_t k, n;
    if (!a[0] || bd_parse_int64(b, 1, BD_SHARD_MAX_N, &n) < 0 || bd_parse_int64(a, 0, n - 1, &k) < 0)
        return bd_fail(why, ws, BD_ERR_VALUE, "\"%s\" is not K/N with 0 <= K < N <= %lld", text ? text : "",
                       (long long)BD_SHARD_MAX_N);
    *s = (bd_shard){k, n};
    return BD_OK;
}

int64_t bd_shard_count(const bd_shard *s, int64_t total) {
    if (s->n == 0) return total;
    return total > s->k ? (total - s->k + s->n - 1) / s->n : 0;
}

int64_t bd_shard_unit(const bd_shard *s, int64_t j) { return s->n ? s->k + j * s->n : j; }

void bd_shard_pack(msgpack_packer *pk, const bd_shard *s, int64_t units, int argc, char *const *argv,
                   uint32_t n_extra) {
    bd_pack_str(pk, "shard");
    msgpack_pack_map(pk, 4 + n_extra);
    bd_pack_kv_int(pk, "k", s->k);
    bd_pack_kv_int(pk, "n", s->n);
    bd_pack_kv_int(pk, "units", units);
    bd_pack_str(pk, "argv");
    msgpack_pack_array(pk, (size_t)argc);
    for (int i = 0; i < argc; i++) bd_pack_str(pk, argv[i]);
}

int bd_shard_read(const msgpack_object *hdr, const char *name, bd_shard *s, int64_t *units, char *why, size_t ws) {
    const msgpack_object *o = bd_obj_get(hdr, "shard");
    *s = (bd_shard){0, 0};
    if (!o) return BD_EOF;
    int64_t k, n, u;
    const msgpack_object *argv = bd_obj_get(o, "argv");
    if (bd_obj_int_in(bd_obj_get(o, "n"), 1, BD_SHARD_MAX_N, &n) < 0 ||
        bd_obj_int_in(bd_obj_get(o, "k"), 0, n - 1, &k) < 0 ||
        bd_obj_int_in(bd_obj_get(o, "units"), 0, INT64_MAX / 2, &u) < 0 || !argv || argv->type != MSGPACK_OBJECT_ARRAY)
        return bd_fail(why, ws, BD_ERR_SCHEMA,
                       "\"%s\" header: field \"shard\" must be {k, n, units, argv} with 0 <= k < n", name);
    for (uint32_t i = 0; i < argv->via.array.size; i++)
        if (argv->via.array.ptr[i].type != MSGPACK_OBJECT_STR)
            return bd_fail(why, ws, BD_ERR_SCHEMA, "\"%s\" header: field \"shard\": argv must hold strings", name);
    *s = (bd_shard){k, n};
    if (units) *units = u;
    return BD_OK;
}

static bool key_is(const msgpack_object *key, const char *s) { return bd_obj_is_str(key, s); }

// The first key of map a (other than the skipped ones) that b lacks or holds another value
// of, or that b has and a lacks; NULL if none. skip: NULL-terminated key list.
static const msgpack_object *differing_key(const msgpack_object *a, const msgpack_object *b, const char *const *skip) {
    if (!a || !b || a->type != MSGPACK_OBJECT_MAP || b->type != MSGPACK_OBJECT_MAP) return NULL;
    for (int pass = 0; pass < 2; pass++) {
        const msgpack_object *x = pass ? b : a, *y = pass ? a : b;
        for (uint32_t i = 0; i < x->via.map.size; i++) {
            const msgpack_object *key = &x->via.map.ptr[i].key;
            bool skipped = false;
            for (int s = 0; skip && skip[s]; s++) skipped = skipped || key_is(key, skip[s]);
            if (skipped) continue;
            const msgpack_object *other = NULL;
            for (uint32_t j = 0; j < y->via.map.size && !other; j++)
                if (msgpack_object_equal(y->via.map.ptr[j].key, *key)) other = &y->via.map.ptr[j].val;
            if (!other || !msgpack_object_equal(*other, x->via.map.ptr[i].val)) return key;
        }
    }
    return NULL;
}

int bd_shards_check(const msgpack_object *const *hdrs, const char *const *names, int count, int *order, char *why,
                    size_t ws) {
    if (count < 1) return bd_fail(why, ws, BD_ERR_ARG, "no shards given");
    static const char *const hdr_skip[] = {"shard", "producer", NULL};
    static const char *const producer_skip[] = {"argv", NULL};
    static const char *const shard_skip[] = {"k", "argv", "stats", NULL};
    int64_t *ks = malloc(sizeof *ks * (size_t)count);  // shard k of each file
    if (!ks) return bd_fail(why, ws, BD_ERR_NOMEM, "out of memory");
    int rc = BD_OK;
    bd_shard s0 = {0, 0};
    for (int i = 0; i < count && rc >= 0; i++) {
        bd_shard s;
        rc = bd_shard_read(hdrs[i], names[i], &s, NULL, why, ws);
        if (rc == BD_EOF)
            rc = bd_fail(why, ws, BD_ERR_SCHEMA, "\"%s\" header: no \"shard\": not the output of a --shard run",
                         names[i]);
        if (rc < 0) break;
        if (i == 0) s0 = s;
        if (s.n != s0.n) {
            rc = bd_fail(why, ws, BD_ERR_SCHEMA, "\"%s\" is shard %lld/%lld, \"%s\" shard %lld/%lld: not one run",
                         names[i], (long long)s.k, (long long)s.n, names[0], (long long)s0.k, (long long)s0.n);
            break;
        }
        ks[i] = s.k;
        for (int j = 0; j < i && rc >= 0; j++)
            if (ks[j] == s.k)
                rc = bd_fail(why, ws, BD_ERR_SCHEMA, "\"%s\" is shard %lld/%lld again (as \"%s\")", names[i],
                             (long long)s.k, (long long)s.n, names[j]);
        if (rc < 0) break;
        const msgpack_object *key = differing_key(hdrs[0], hdrs[i], hdr_skip);
        const char *in = "";
        if (!key)
            key = differing_key(bd_obj_get(hdrs[0], "producer"), bd_obj_get(hdrs[i], "producer"), producer_skip),
            in = "producer.";
        if (!key)
            key = differing_key(bd_obj_get(hdrs[0], "shard"), bd_obj_get(hdrs[i], "shard"), shard_skip), in = "shard.";
        if (key)
            rc = bd_fail(why, ws, BD_ERR_SCHEMA,
                         "\"%s\" header: its \"%s%.*s\" differs from \"%s\"'s; shards must come from one run (the "
                         "same command but --shard)",
                         names[i], in, key->type == MSGPACK_OBJECT_STR ? (int)key->via.str.size : 1,
                         key->type == MSGPACK_OBJECT_STR ? key->via.str.ptr : "?", names[0]);
    }
    // count files, no shard twice: each of the n shards is there if and only if count == n.
    for (int64_t k = 0; rc >= 0 && count < s0.n; k++) {
        bool found = false;
        for (int i = 0; i < count && !found; i++) found = ks[i] == k;
        if (!found)
            rc = bd_fail(why, ws, BD_ERR_SCHEMA, "shard %lld/%lld is missing (%d file%s given)", (long long)k,
                         (long long)s0.n, count, count > 1 ? "s" : "");
    }
    for (int i = 0; rc >= 0 && i < count; i++) order[ks[i]] = i;
    free(ks);
    return rc;
}

// Packs argv without the first run of the shard's own arguments (after argv[0]).
static void pack_argv_without(msgpack_packer *pk, const msgpack_object *argv, const msgpack_object *shard_argv) {
    uint32_t n = argv->via.array.size, m = shard_argv ? shard_argv->via.array.size : 0, at = n;
    for (uint32_t i = 1; m && i + m <= n && at == n; i++) {
        uint32_t j = 0;
        while (j < m && msgpack_object_equal(argv->via.array.ptr[i + j], shard_argv->via.array.ptr[j])) j++;
        if (j == m) at = i;
    }
    msgpack_pack_array(pk, at < n ? n - m : n);
    for (uint32_t i = 0; i < n; i++)
        if (at == n || i < at || i >= at + m) msgpack_pack_object(pk, argv->via.array.ptr[i]);
}

void bd_shard_pack_merged_header(msgpack_packer *pk, const msgpack_object *hdr, const char *schema) {
    const msgpack_object *shard = bd_obj_get(hdr, "shard");
    msgpack_pack_map(pk, hdr->via.map.size - (shard ? 1 : 0));
    for (uint32_t i = 0; i < hdr->via.map.size; i++) {
        const msgpack_object_kv *kv = &hdr->via.map.ptr[i];
        if (key_is(&kv->key, "shard")) continue;
        msgpack_pack_object(pk, kv->key);
        if (schema && key_is(&kv->key, "schema")) {
            bd_pack_str(pk, schema);
        } else if (key_is(&kv->key, "producer") && kv->val.type == MSGPACK_OBJECT_MAP) {
            const msgpack_object *p = &kv->val;
            msgpack_pack_map(pk, p->via.map.size);
            for (uint32_t j = 0; j < p->via.map.size; j++) {
                msgpack_pack_object(pk, p->via.map.ptr[j].key);
                if (key_is(&p->via.map.ptr[j].key, "argv") && p->via.map.ptr[j].val.type == MSGPACK_OBJECT_ARRAY)
                    pack_argv_without(pk, &p->via.map.ptr[j].val, bd_obj_get(shard, "argv"));
                else
                    msgpack_pack_object(pk, p->via.map.ptr[j].val);
            }
        } else {
            msgpack_pack_object(pk, kv->val);
        }
    }
}

int bd_shards_each(bd_reader *const *rs, const int *order, int64_t n, int64_t units, bd_shard_record_fn fn, void *ctx,
                   char *why, size_t ws) {
    const msgpack_object *rec;
    int rc;
    for (int64_t u = 0; u < units; u++) {
        bd_shard s = {u % n, n};
        bd_reader *r = rs[order[s.k]];
        int64_t j = u / n, idx;
        if ((rc = bd_reader_next(r, &rec)) == BD_EOF)
            return bd_fail(why, ws, BD_ERR_TRUNCATED,
                           "\"%s\" ends after %lld records; shard %lld/%lld of %lld has %lld (an interrupted run? "
                           "finish it with --resume)",
                           bd_reader_name(r), (long long)j, (long long)s.k, (long long)n, (long long)units,
                           (long long)bd_shard_count(&s, units));
        if (rc < 0) return bd_fail(why, ws, rc, "\"%s\" %s", bd_reader_name(r), bd_reader_error(r));
        if (bd_obj_int(bd_obj_get(rec, "index"), &idx) < 0 || idx != u)
            return bd_fail(why, ws, BD_ERR_SCHEMA,
                           "\"%s\" record %lld: field \"index\" should be %lld (shard %lld/%lld holds %lld, %lld, ...)",
                           bd_reader_name(r), (long long)j + 1, (long long)u, (long long)s.k, (long long)n,
                           (long long)s.k, (long long)(s.k + n));
        char where[600];
        snprintf(where, sizeof where, "\"%s\" record %lld", bd_reader_name(r), (long long)j + 1);
        if ((rc = fn(ctx, rec, u, where, why, ws)) < 0) return rc;
    }
    for (int64_t k = 0; k < n; k++) {
        bd_reader *r = rs[order[k]];
        bd_shard s = {k, n};
        if ((rc = bd_reader_next(r, &rec)) == BD_OK)
            return bd_fail(why, ws, BD_ERR_VALUE, "\"%s\" holds more than the %lld records of shard %lld/%lld of %lld",
                           bd_reader_name(r), (long long)bd_shard_count(&s, units), (long long)k, (long long)n,
                           (long long)units);
        if (rc != BD_EOF) return bd_fail(why, ws, rc, "\"%s\" %s", bd_reader_name(r), bd_reader_error(r));
    }
    return BD_OK;
}

static int copy_record(void *ctx, const msgpack_object *rec, int64_t u, const char *where, char *why, size_t ws) {
    bd_writer *w = ctx;
    msgpack_pack_object(bd_writer_packer(w), *rec);
    if (bd_writer_end_object(w) < 0) return bd_fail(why, ws, BD_ERR_IO, "write failed: %s", strerror(errno));
    return BD_OK;
}

int bd_shards_merge_records(bd_reader *const *rs, const int *order, int64_t n, int64_t units, bd_writer *w, char *why,
                            size_t ws) {
    return bd_shards_each(rs, order, n, units, copy_record, w, why, ws);
}
