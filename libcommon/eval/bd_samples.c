#include "bd_samples.h"

#include <errno.h>
#include <math.h>
#include <string.h>

void bd_samples_pack_header(msgpack_sbuffer *sb, const bd_samples_run *ri) {
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    const bd_prompt_opts *po = ri->po;
    const bd_gen_opts *go = ri->go;
    msgpack_pack_map(&pk, ri->shard.n > 0 ? 15 : 14);
    bd_pack_str(&pk, "teacher");
    msgpack_pack_map(&pk, 2);
    bd_pack_kv_str(&pk, "path", ri->model_path);
    bd_pack_kv_str(&pk, "description", ri->desc);
    bd_pack_kv_str(&pk, "tokenizer", ri->tok_id);
    bd_pack_kv_int(&pk, "vocab_size", ri->vocab);
    bd_pack_kv_int(&pk, "bos", ri->bos);
    bd_pack_kv_int(&pk, "eos", ri->eos);
    bd_pack_str(&pk, "prompt_source");
    msgpack_pack_map(&pk, 6);
    bd_pack_kv_str(&pk, "kind", po->kind);
    bd_pack_kv_str(&pk, "path", po->path ? po->path : "");
    bd_pack_kv_str(&pk, "field", po->field ? po->field : "");
    bd_pack_kv_int(&pk, "prompt_len", !strcmp(po->kind, "tokens") ? po->prompt_len : 0);
    bd_pack_kv_int(&pk, "prompts", ri->n_prompts);
    bd_pack_kv_str(&pk, "hash", ri->hash);
    bd_pack_kv_str(&pk, "template", po->template_);
    bd_pack_str(&pk, "sampling");
    msgpack_pack_map(&pk, 4);
    bd_pack_kv_double(&pk, "temperature", go->sampling.temperature);
    bd_pack_kv_int(&pk, "top_k", go->sampling.top_k);
    bd_pack_kv_double(&pk, "top_p", go->sampling.top_p);
    bd_pack_kv_int(&pk, "max_new", go->max_new);
    bd_pack_kv_int(&pk, "seed", (int64_t)go->seed);
    bd_pack_str(&pk, "stop_ids");
    msgpack_pack_array(&pk, (size_t)go->n_stop);
    for (int i = 0; i < go->n_stop; i++) msgpack_pack_int32(&pk, go->stop_ids[i]);
    bd_pack_kv_int(&pk, "n", ri->n);
    bd_pack_kv_int(&pk, "logits_top_k", go->logits_top_k);
    // Not part of the result, but bit-exact resumption needs the same batch shape.
    bd_pack_kv_int(&pk, "batch", go->batch);
    bd_pack_kv_int(&pk, "threads", ri->threads);
    if (ri->shard.n > 0) bd_shard_pack(&pk, &ri->shard, ri->n, ri->shard_argc, ri->shard_argv, 0);
}

// Whether the values at key in maps a and b are both there and equal.
static bool same(const msgpack_object *a, const msgpack_object *b, const char *key) {
    const msgpack_object *x = bd_obj_get(a, key), *y = bd_obj_get(b, key);
    return x && y && msgpack_object_equal(*x, *y);
}

int bd_samples_check_resume(const msgpack_object *old, const msgpack_object *mine, const char *name, unsigned *differs,
                            char *why, size_t ws) {
    // The fields that decide the samples (paths and n may differ).
    static const char *keys[] = {"tokenizer", "vocab_size", "bos",      "eos",         "template",
                                 "sampling",  "seed",       "stop_ids", "logits_top_k"};
    static const char *src_keys[] = {"kind", "field", "prompt_len", "prompts", "hash"};
    const char *what = NULL;
    for (size_t i = 0; !what && i < sizeof keys / sizeof *keys; i++)
        if (!same(old, mine, keys[i])) what = keys[i];
    if (!what && !same(bd_obj_get(old, "teacher"), bd_obj_get(mine, "teacher"), "description")) what = "teacher";
    bd_shard so, sm;
    if (!what && (bd_shard_read(old, name, &so, NULL, NULL, 0) < BD_EOF ||
                  bd_shard_read(mine, name, &sm, NULL, NULL, 0) < BD_EOF || so.k != sm.k || so.n != sm.n))
        what = "shard";
    for (size_t i = 0; !what && i < sizeof src_keys / sizeof *src_keys; i++)
        if (!same(bd_obj_get(old, "prompt_source"), bd_obj_get(mine, "prompt_source"), src_keys[i]))
            what = "prompt_source";
    if (what)
        return bd_fail(why, ws, BD_ERR_SCHEMA,
                       "\"%s\" header: its \"%s\" differs from this run's; --resume needs the same model, tokenizer, "
                       "prompts, sampling settings and --shard",
                       name, what);
    *differs = 0;
    for (int i = 0; i < 2; i++) {
        const char *k = i ? "threads" : "batch";
        if (bd_obj_get(old, k) && !same(old, mine, k))
            *differs |= i ? BD_SAMPLES_OTHER_THREADS : BD_SAMPLES_OTHER_BATCH;
    }
    return BD_OK;
}

// The u32 ids tensor at key of rec (into t): 1-D, each id < V.
static int ids_field(const msgpack_object *rec, const char *key, int V, bd_tensor_view *t, char *why, size_t ws) {
    char reason[300];
    if (bd_obj_tensor(bd_obj_get(rec, key), t, reason, sizeof reason) < 0)
        return bd_fail(why, ws, BD_ERR_SCHEMA, "field \"%s\": %s", key, reason);
    if (t->dtype != BD_U32 || t->ndim != 1)
        return bd_fail(why, ws, BD_ERR_SCHEMA, "field \"%s\" must be a 1-D u32 tensor", key);
    for (int64_t i = 0; i < t->numel; i++) {
        uint32_t id;
        memcpy(&id, (const char *)t->data + 4 * i, 4);
        if (id >= (uint32_t)V)
            return bd_fail(why, ws, BD_ERR_VALUE, "field \"%s\" holds id %u at %lld, outside the vocabulary of %d", key,
                           id, (long long)i, V);
    }
    return BD_OK;
}

// The top-TK rows of a record of n completion tokens: ids < V, finite log-probabilities <= 0.
static int top_fields(const msgpack_object *rec, int64_t n, int tk, int V, char *why, size_t ws) {
    bd_tensor_view ti, tl;
    if (bd_obj_tensor(bd_obj_get(rec, "top_ids"), &ti, NULL, 0) < 0 ||
        bd_obj_tensor(bd_obj_get(rec, "top_logprobs"), &tl, NULL, 0) < 0 || ti.dtype != BD_U32 || tl.dtype != BD_F32 ||
        ti.ndim != 2 || tl.ndim != 2 || ti.shape[0] != n || tl.shape[0] != n || ti.shape[1] != tk || tl.shape[1] != tk)
        return bd_fail(why, ws, BD_ERR_SCHEMA, "fields \"top_ids\" (u32) and \"top_logprobs\" (f32) must be [%lld, %d]",
                       (long long)n, tk);
    for (int64_t i = 0; i < n * tk; i++) {
        uint32_t id;
        float lp;
        memcpy(&id, (const char *)ti.data + 4 * i, 4);
        memcpy(&lp, (const char *)tl.data + 4 * i, 4);
        if (id >= (uint32_t)V || !(lp <= 0) || !isfinite(lp))
            return bd_fail(why, ws, BD_ERR_VALUE,
                           "top_ids/top_logprobs hold an id outside the vocabulary or a "
                           "log-probability that is not a finite number <= 0");
    }
    return BD_OK;
}

// Whether a record is sample k as this run could have written it (see bd_samples_limits).
static int check_record(const msgpack_object *rec, int64_t k, const bd_samples_limits *lim, char *why, size_t ws) {
    bd_tensor_view p, c;
    int rc;
    if ((rc = ids_field(rec, "prompt", lim->vocab, &p, why, ws)) < 0 ||
        (rc = ids_field(rec, "completion", lim->vocab, &c, why, ws)) < 0)
        return rc;
    const bd_gen_prompt *want = &lim->prompts[k % lim->n_prompts];
    if (p.numel != want->n || memcmp(p.data, want->ids, 4 * (size_t)want->n) != 0)
        return bd_fail(why, ws, BD_ERR_SCHEMA, "field \"prompt\" is not this run's prompt %lld",
                       (long long)(k % lim->n_prompts));
    if (c.numel < 1 || c.numel > lim->max_new || p.numel + c.numel > lim->max_seq)
        return bd_fail(why, ws, BD_ERR_VALUE,
                       "field \"completion\" has %lld ids; this run makes 1 to %d (-K), %lld with the prompt at most "
                       "(the context)",
                       (long long)c.numel, lim->max_new, (long long)lim->max_seq);
    const msgpack_object *f = bd_obj_get(rec, "finished");
    if (!bd_obj_is_str(f, "eos") && !bd_obj_is_str(f, "length") && !bd_obj_is_str(f, "context"))
        return bd_fail(why, ws, BD_ERR_SCHEMA, "field \"finished\" must be \"eos\", \"length\" or \"context\"");
    return lim->tk ? top_fields(rec, c.numel, lim->tk, lim->vocab, why, ws) : BD_OK;
}

int bd_samples_copy(bd_reader *r, bd_writer *w, int64_t n, const bd_shard *shard, const bd_samples_limits *lim,
                    int64_t *copied, char *why, size_t ws) {
    const msgpack_object *rec;
    int rc;
    int64_t j = 0;  // the run's j-th sample is sample k
    bd_shard whole = {0, 0};
    if (!shard) shard = &whole;
    *copied = 0;
    while ((rc = bd_reader_next(r, &rec)) == BD_OK) {
        int64_t idx, k = bd_shard_unit(shard, j);
        char reason[400];
        if (bd_obj_int(bd_obj_get(rec, "index"), &idx) < 0 || idx != k)
            return bd_fail(why, ws, BD_ERR_SCHEMA, "\"%s\" record %lld: field \"index\" should be %lld",
                           bd_reader_name(r), (long long)j + 1, (long long)k);
        if (j >= n)
            return bd_fail(why, ws, BD_ERR_VALUE, "\"%s\" already holds more than %lld samples (-n%s)",
                           bd_reader_name(r), (long long)n, shard->n ? ", this shard's share" : "");
        if ((rc = check_record(rec, k, lim, reason, sizeof reason)) < 0)
            return bd_fail(why, ws, rc, "\"%s\" record %lld: %s; cannot resume from it", bd_reader_name(r),
                           (long long)j + 1, reason);
        msgpack_pack_object(bd_writer_packer(w), *rec);
        if (bd_writer_end_object(w) < 0)
            return bd_fail(why, ws, BD_ERR_IO, "\"%s\": write failed: %s", bd_reader_name(r), strerror(errno));
        *copied = ++j;
    }
    if (rc != BD_EOF)
        return bd_fail(why, ws, rc, "\"%s\" %s; cannot resume from it", bd_reader_name(r), bd_reader_error(r));
    return BD_OK;
}

static void pack_ids(msgpack_packer *pk, const char *name, const int32_t *ids, int n) {
    int64_t shape[1] = {n};
    bd_pack_str(pk, name);
    bd_pack_tensor(pk, name, BD_U32, 1, shape, ids);  // ids are >= 0: same bits as u32
}

// The fields every sample record has; n_more fields follow.
static void pack_sample(msgpack_packer *pk, int64_t index, const int32_t *prompt, int P, const int32_t *completion,
                        int K, const char *finished, int n_more) {
    msgpack_pack_map(pk, (size_t)(4 + n_more));
    bd_pack_kv_int(pk, "index", index);
    pack_ids(pk, "prompt", prompt, P);
    pack_ids(pk, "completion", completion, K);
    bd_pack_kv_str(pk, "finished", finished);
}

int bd_samples_write_ids(bd_writer *w, int64_t index, const int32_t *prompt, int P, const int32_t *completion, int K,
                         const char *finished) {
    pack_sample(bd_writer_packer(w), index, prompt, P, completion, K, finished, 0);
    return bd_writer_end_object(w);
}

int bd_samples_write(bd_writer *w, const bd_gen_sample *s, int tk) {
    msgpack_packer *pk = bd_writer_packer(w);
    pack_sample(pk, s->index, s->prompt, s->prompt_len, s->completion, s->n_new, bd_gen_end_name(s->end), tk ? 2 : 0);
    if (tk) {
        int64_t shape[2] = {s->n_new, tk};
        bd_pack_str(pk, "top_ids");
        bd_pack_tensor(pk, "top_ids", BD_U32, 2, shape, s->top_ids);
        bd_pack_str(pk, "top_logprobs");
        bd_pack_tensor(pk, "top_logprobs", BD_F32, 2, shape, s->top_logprobs);
    }
    return bd_writer_end_object(w);
}
