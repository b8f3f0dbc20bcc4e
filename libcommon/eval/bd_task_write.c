// Outputs of bd_task.h: labelled examples as bd.samples training data (prompt + label word,
// split where the multiple-choice scorer splits) and as bd-eval's JSONL multiple-choice file.
#include <cJSON.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "bd_mc.h"
#include "bd_prompts.h"
#include "bd_samples.h"
#include "bd_task.h"

int bd_task_encode(const bd_tokenizer *tok, const char *context, const char *word, int max_len, bd_token_buf *ids,
                   int *start, bool *cut) {
    *cut = false;
    // The scorer's own split: training then scores exactly the tokens evaluation compares.
    int rc = bd_mc_tokenize(tok, context, word, ids, start);
    if (rc < 0 || max_len <= 0 || ids->n <= (size_t)max_len) return rc;
    size_t P = (size_t)*start, K = ids->n - P;
    if (K + 1 > (size_t)max_len) return BD_ERR_VALUE;  // not even one prompt token would stay
    // Keep the BOS (the model always saw one first) and the prompt's end, next to the label.
    int32_t bos = bd_tokenizer_bos(tok);
    size_t front = bos >= 0 && ids->ids[0] == bos ? 1 : 0;
    size_t tail = (size_t)max_len - K - front;  // P > front + tail since P + K > max_len
    memmove(ids->ids + front, ids->ids + P - tail, sizeof *ids->ids * (tail + K));
    ids->n = (size_t)max_len;
    *start = (int)(front + tail);
    *cut = true;
    return BD_OK;
}

// The run's header fields (bd-teacher-gen's, filled honestly for data that was not generated)
// plus "verbalizer" and "max_len".
static int write_header(bd_writer *w, const bd_producer *prod, const bd_task_samples_opts *o, const bd_task_set *set,
                        const bd_tokenizer *tok, const bd_prompt_set *prompts) {
    bd_prompt_opts po = {.kind = bd_task_format_name(set->format),
                         .path = o->input,
                         .field = o->label_field,
                         .template_ = o->template_};
    bd_gen_opts go = {0};  // nothing was sampled: temperature, top-k, top-p, max_new, seed all 0
    bd_samples_run run = {.model_path = o->input,
                          .tok_id = bd_tokenizer_id(tok),
                          .vocab = bd_tokenizer_vocab_size(tok),
                          .bos = bd_tokenizer_bos(tok),
                          .eos = bd_tokenizer_eos(tok),
                          .po = &po,
                          .n_prompts = prompts->count,
                          .go = &go,
                          .n = set->n,
                          .threads = o->threads};
    snprintf(run.desc, sizeof run.desc, "labelled data");
    bd_prompts_hash(prompts, run.hash);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    bd_samples_pack_header(&sb, &run);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    int rc = BD_ERR_NOMEM;
    if (sb.data && msgpack_unpack_next(&u, sb.data, sb.size, NULL) == MSGPACK_UNPACK_SUCCESS &&
        u.data.type == MSGPACK_OBJECT_MAP) {
        const msgpack_object_map *m = &u.data.via.map;
        rc = bd_writer_begin_header(w, "bd.samples", prod, m->size + 2);
        msgpack_packer *pk = bd_writer_packer(w);
        for (uint32_t i = 0; rc == BD_OK && i < m->size; i++) {
            msgpack_pack_object(pk, m->ptr[i].key);
            msgpack_pack_object(pk, m->ptr[i].val);
        }
        bd_pack_kv_str(pk, "verbalizer", o->verbalizer);
        bd_pack_kv_int(pk, "max_len", o->max_len);
        if (rc == BD_OK) rc = bd_writer_end_object(w);
    }
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

int bd_task_write_samples(bd_writer *w, const bd_producer *prod, const bd_task_samples_opts *o, const bd_task_set *set,
                          const bd_task_verbalizer *v, const bd_tokenizer *tok, long *n_cut, char *why, size_t ws) {
    *n_cut = 0;
    if (set->n > INT_MAX) return bd_fail(why, ws, BD_ERR_VALUE, "\"%s\": more than %d examples", o->input, INT_MAX);
    // Every example is encoded first: the header carries the prompts' count and hash.
    bd_prompt_set prompts = {0}, completions = {0};
    bd_token_buf ids = {0};
    int rc = BD_OK;
    for (long i = 0; rc == BD_OK && i < set->n; i++) {
        const bd_task_example *e = &set->ex[i];
        int start;
        bool cut;
        rc = bd_task_encode(tok, e->context, v->words[e->gold], o->max_len, &ids, &start, &cut);
        if (rc == BD_ERR_VALUE && o->max_len > 0)
            rc = bd_fail(why, ws, rc,
                         "\"%s\" line %ld: the label word \"%.100s\" and one prompt token do not fit in --max-len %d",
                         o->input, e->line, v->words[e->gold], o->max_len);
        else if (rc < 0)
            rc = bd_fail(why, ws, rc, "\"%s\" line %ld: cannot encode: %s", o->input, e->line, bd_strerror(rc));
        else if (bd_prompts_add(&prompts, ids.ids, (size_t)start) < 0 ||
                 bd_prompts_add(&completions, ids.ids + start, ids.n - (size_t)start) < 0)
            rc = bd_fail(why, ws, BD_ERR_NOMEM, "out of memory");
        *n_cut += cut;
    }
    if (rc == BD_OK && (rc = write_header(w, prod, o, set, tok, &prompts)) < 0)
        rc = bd_fail(why, ws, rc, "\"%s\": write failed: %s", o->output,
                     rc == BD_ERR_NOMEM ? "out of memory" : strerror(errno));
    for (int i = 0; rc == BD_OK && i < prompts.count; i++) {
        const int32_t *p = prompts.ids + prompts.start[i], *c = completions.ids + completions.start[i];
        int P = (int)(prompts.start[i + 1] - prompts.start[i]),
            K = (int)(completions.start[i + 1] - completions.start[i]);
        if (bd_samples_write_ids(w, i, p, P, c, K, "label") < 0)
            rc = bd_fail(why, ws, BD_ERR_IO, "\"%s\": write failed: %s", o->output, strerror(errno));
    }
    bd_token_buf_free(&ids);
    bd_prompts_free(&prompts);
    bd_prompts_free(&completions);
    return rc;
}

int bd_task_write_mc(FILE *f, const char *input, const char *output, const bd_task_set *set,
                     const bd_task_verbalizer *v, char *why, size_t ws) {
    size_t words = 0;
    for (int k = 0; k < v->n; k++) words += strlen(v->words[k]);
    for (long i = 0; i < set->n; i++) {
        const bd_task_example *e = &set->ex[i];
        if (strlen(e->context) + words > BD_MC_MAX_ITEM_BYTES)
            return bd_fail(why, ws, BD_ERR_VALUE,
                           "\"%s\" line %ld: the item has more than %zu bytes of text (bd-eval's limit)", input,
                           e->line, BD_MC_MAX_ITEM_BYTES);
        cJSON *o = cJSON_CreateObject(), *ch = cJSON_CreateStringArray((const char *const *)v->words, v->n);
        bool ok =
                o && ch && cJSON_AddStringToObject(o, "context", e->context) && cJSON_AddItemToObject(o, "choices", ch);
        if (!ok) cJSON_Delete(ch);  // not owned by o (cJSON_Delete(NULL) is a no-op)
        ok = ok && cJSON_AddNumberToObject(o, "gold", e->gold);
        char *s = ok ? cJSON_PrintUnformatted(o) : NULL;
        cJSON_Delete(o);
        if (!s) return bd_fail(why, ws, BD_ERR_NOMEM, "out of memory");
        fputs(s, f);
        fputc('\n', f);
        free(s);
    }
    return ferror(f) ? bd_fail(why, ws, BD_ERR_IO, "\"%s\": write failed: %s", output, strerror(errno)) : BD_OK;
}
