#include "bd_samples.h"

#include <errno.h>
#include <string.h>

void bd_samples_pack_header(msgpack_sbuffer *sb, const bd_samples_run *ri) {
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    const bd_prompt_opts *po = ri->po;
    const bd_gen_opts *go = ri->go;
    msgpack_pack_map(&pk, 14);
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
    for (size_t i = 0; !what && i < sizeof src_keys / sizeof *src_keys; i++)
        if (!same(bd_obj_get(old, "prompt_source"), bd_obj_get(mine, "prompt_source"), src_keys[i]))
            what = "prompt_source";
    if (what)
        return bd_fail(why, ws, BD_ERR_SCHEMA,
                       "\"%s\" header: its \"%s\" differs from this run's; --resume needs the same model, tokenizer, "
                       "prompts and sampling settings",
                       name, what);
    *differs = 0;
    for (int i = 0; i < 2; i++) {
        const char *k = i ? "threads" : "batch";
        if (bd_obj_get(old, k) && !same(old, mine, k))
            *differs |= i ? BD_SAMPLES_OTHER_THREADS : BD_SAMPLES_OTHER_BATCH;
    }
    return BD_OK;
}

int bd_samples_copy(bd_reader *r, bd_writer *w, int64_t n, int64_t *copied, char *why, size_t ws) {
    const msgpack_object *rec;
    int rc;
    int64_t k = 0;
    *copied = 0;
    while ((rc = bd_reader_next(r, &rec)) == BD_OK) {
        int64_t idx;
        if (bd_obj_int(bd_obj_get(rec, "index"), &idx) < 0 || idx != k)
            return bd_fail(why, ws, BD_ERR_SCHEMA, "\"%s\" record %lld: field \"index\" should be %lld",
                           bd_reader_name(r), (long long)k + 1, (long long)k);
        if (k >= n)
            return bd_fail(why, ws, BD_ERR_VALUE, "\"%s\" already holds more than %lld samples (-n)", bd_reader_name(r),
                           (long long)n);
        msgpack_pack_object(bd_writer_packer(w), *rec);
        if (bd_writer_end_object(w) < 0)
            return bd_fail(why, ws, BD_ERR_IO, "\"%s\": write failed: %s", bd_reader_name(r), strerror(errno));
        *copied = ++k;
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

int bd_samples_write(bd_writer *w, const bd_gen_sample *s, int tk) {
    msgpack_packer *pk = bd_writer_packer(w);
    msgpack_pack_map(pk, tk ? 6 : 4);
    bd_pack_kv_int(pk, "index", s->index);
    pack_ids(pk, "prompt", s->prompt, s->prompt_len);
    pack_ids(pk, "completion", s->completion, s->n_new);
    bd_pack_kv_str(pk, "finished", bd_gen_end_name(s->end));
    if (tk) {
        int64_t shape[2] = {s->n_new, tk};
        bd_pack_str(pk, "top_ids");
        bd_pack_tensor(pk, "top_ids", BD_U32, 2, shape, s->top_ids);
        bd_pack_str(pk, "top_logprobs");
        bd_pack_tensor(pk, "top_logprobs", BD_F32, 2, shape, s->top_logprobs);
    }
    return bd_writer_end_object(w);
}
