// Small token streams written for the tests of their readers: bd.tokens documents and
// bd.samples records (with the teacher's top-K log-probabilities if asked), into the scratch dir.
#ifndef BD_TEST_STREAMS_H
#define BD_TEST_STREAMS_H

#include <stdio.h>

#include "bd_stream.h"
#include "bd_test.h"

static inline const char *bd_test_path(const char *name) {
    static char buf[16][4200];  // a few names alive at once
    static int k;
    k = (k + 1) % 16;
    snprintf(buf[k], sizeof buf[k], "%s/%s", bd_test_tmpdir(), name);
    return buf[k];
}

static inline void bd_test_pack_ids(msgpack_packer *pk, const char *name, const int32_t *ids, int64_t n) {
    int64_t shape[1] = {n};
    bd_pack_str(pk, name);
    bd_pack_tensor(pk, name, BD_U32, 1, shape, ids);
}

// A bd.tokens stream of n_docs documents: document d holds len[d] ids from docs (back to back);
// vocab > 0 puts "vocab_size" in the header.
static inline void bd_test_write_tokens(const char *path, const int32_t *docs, const int *len, int n_docs, int vocab) {
    bd_writer *w = bd_writer_open(path, 0, NULL);
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(bd_writer_begin_header(w, "bd.tokens", NULL, vocab > 0), BD_OK);
    if (vocab > 0) bd_pack_kv_int(bd_writer_packer(w), "vocab_size", vocab);
    ck_assert_int_eq(bd_writer_end_object(w), BD_OK);
    for (int d = 0, at = 0; d < n_docs; at += len[d++]) {
        msgpack_packer *pk = bd_writer_packer(w);
        msgpack_pack_map(pk, 2);
        bd_test_pack_ids(pk, "ids", docs + at, len[d]);
        bd_pack_kv_int(pk, "doc", d);
        ck_assert_int_eq(bd_writer_end_object(w), BD_OK);
    }
    ck_assert_int_eq(bd_writer_close(w), BD_OK);
}

// One sample for bd_test_write_samples: prompt and completion; with tk > 0, top_ids and
// top_lp hold (nc, tk) rows.
typedef struct {
    const int32_t *prompt, *completion;
    int np, nc;
    const int32_t *top_ids;
    const float *top_lp;
} bd_test_sample;

// The same with header_k in the header's logits_top_k (a bad header over good rows).
static inline void bd_test_write_samples_k(const char *path, const bd_test_sample *s, int n, int tk, int64_t header_k) {
    bd_writer *w = bd_writer_open(path, 0, NULL);
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(bd_writer_begin_header(w, "bd.samples", NULL, 1), BD_OK);
    bd_pack_kv_int(bd_writer_packer(w), "logits_top_k", header_k);
    ck_assert_int_eq(bd_writer_end_object(w), BD_OK);
    for (int i = 0; i < n; i++) {
        msgpack_packer *pk = bd_writer_packer(w);
        msgpack_pack_map(pk, tk ? 5 : 3);
        bd_pack_kv_int(pk, "index", i);
        bd_test_pack_ids(pk, "prompt", s[i].prompt, s[i].np);
        bd_test_pack_ids(pk, "completion", s[i].completion, s[i].nc);
        if (tk) {
            int64_t shape[2] = {s[i].nc, tk};
            bd_pack_str(pk, "top_ids");
            bd_pack_tensor(pk, "top_ids", BD_U32, 2, shape, s[i].top_ids);
            bd_pack_str(pk, "top_logprobs");
            bd_pack_tensor(pk, "top_logprobs", BD_F32, 2, shape, s[i].top_lp);
        }
        ck_assert_int_eq(bd_writer_end_object(w), BD_OK);
    }
    ck_assert_int_eq(bd_writer_close(w), BD_OK);
}

static inline void bd_test_write_samples(const char *path, const bd_test_sample *s, int n, int tk) {
    bd_test_write_samples_k(path, s, n, tk, tk);
}

#endif
