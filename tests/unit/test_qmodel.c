// Quantization policy and whole-model fake quantization on a random tiny model.
#include <string.h>

#include "bd_model_io.h"
#include "bd_qmodel.h"
#include "bd_test.h"

static bd_config tiny(bool tied) {
    bd_config c = {.arch = "llama",
                   .dim = 16,
                   .n_layers = 3,
                   .n_heads = 4,
                   .n_kv_heads = 2,
                   .head_dim = 4,
                   .ffn_dim = 24,
                   .vocab = 32,
                   .max_seq = 64,
                   .norm_eps = 1e-5f,
                   .rope_theta = 10000.0f,
                   .tied_embeddings = tied,
                   .bos = 1,
                   .eos = 2};
    return c;
}

static void fill(bd_model *m) {
    unsigned s = 5;
    for (size_t i = 0; i < m->n_params; i++) {
        s = s * 1103515245u + 12345u;
        m->params[i] = (s >> 8) / 16777216.0f - 0.5f;
    }
}

// Is the (OC, C) slice at off of a equal to the reference fake quantization of b's slice?
static bool slice_quantized(const bd_model *a, const bd_model *b, size_t off, int OC, int C, const bd_qspec *q) {
    float *ref = malloc(sizeof(float) * OC * C);
    ck_assert_int_eq(bd_fakequant_forward_ref(ref, b->params + off, OC, C, q), BD_OK);
    bool eq = memcmp(ref, a->params + off, sizeof(float) * OC * C) == 0;
    free(ref);
    return eq;
}

START_TEST(test_default_policy) {
    bd_config c = tiny(true);
    bd_model src, dst;
    ck_assert_int_eq(bd_model_alloc(&src, &c), BD_OK);
    ck_assert_int_eq(bd_model_alloc(&dst, &c), BD_OK);
    fill(&src);
    bd_qspec q = {BD_Q_INT, 2, 8};
    bd_qpolicy p = {0};
    ck_assert_int_eq(bd_qpolicy_exclude(&p, "layers.1.*"), BD_OK);
    ck_assert_int_eq(bd_qpolicy_exclude(&p, "w2"), BD_OK);
    char why[200];
    ck_assert_int_eq(bd_model_fakequant(&dst, &src, &q, &p, why, sizeof why), BD_OK);
    bd_param_entry t[BD_MAX_PARAMS];
    int n = bd_param_table(&c, t, NULL);
    for (int i = 0; i < n; i++) {
        if (t[i].ndim != 3) {  // embeddings and norms: untouched
            ck_assert_mem_eq(dst.params + t[i].offset, src.params + t[i].offset, t[i].numel * sizeof(float));
            continue;
        }
        int OC = (int)t[i].shape[1], C = (int)t[i].shape[2];
        for (int l = 0; l < 3; l++) {
            size_t off = t[i].offset + (size_t)l * OC * C;
            bool want = l != 1 && strcmp(t[i].name, "w2") != 0;
            if (want)
                ck_assert_msg(slice_quantized(&dst, &src, off, OC, C, &q), "%s layer %d not quantized", t[i].name, l);
            else
                ck_assert_mem_eq(dst.params + off, src.params + off, sizeof(float) * OC * C);
        }
    }
    // The head is tied to the embedding: including it is refused.
    p.include_head = true;
    ck_assert_int_eq(bd_model_fakequant(&dst, &src, &q, &p, why, sizeof why), BD_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(why, "embedding"));
    bd_model_free(&src);
    bd_model_free(&dst);
}
END_TEST

START_TEST(test_head_and_errors) {
    bd_config c = tiny(false);
    bd_model m;
    ck_assert_int_eq(bd_model_alloc(&m, &c), BD_OK);
    fill(&m);
    bd_model orig;
    ck_assert_int_eq(bd_model_alloc(&orig, &c), BD_OK);
    memcpy(orig.params, m.params, m.n_params * sizeof(float));
    bd_qpolicy p = {.include_head = true};
    bd_qspec q = {BD_Q_TERNARY, 2, 0};
    char why[200];
    ck_assert_int_eq(bd_model_fakequant(&m, &m, &q, &p, why, sizeof why), BD_OK);  // in place
    ck_assert(slice_quantized(&m, &orig, (size_t)(m.w.wcls - m.params), c.vocab, c.dim, &q));
    ck_assert(bd_qpolicy_covers(&p, "wcls", -1));
    ck_assert(!bd_qpolicy_covers(&p, "tok_emb", -1));
    ck_assert(!bd_qpolicy_covers(&p, "rms_att", 0));
    // A NaN in wk of layer 2 is reported with its name.
    memcpy(m.params, orig.params, m.n_params * sizeof(float));
    m.w.wk[2 * c.n_kv_heads * c.head_dim * c.dim + 5] = NAN;
    bd_qpolicy def = {0};
    ck_assert_int_eq(bd_model_fakequant(&m, &m, &q, &def, why, sizeof why), BD_ERR_VALUE);
    ck_assert_str_eq(why, "wk of layer 2: NaN or infinite weight");
    // An invalid spec is refused before anything changes, naming the first tensor.
    bd_qspec bad = {BD_Q_NF3, 2, 16};
    ck_assert_int_eq(bd_model_fakequant(&m, &m, &bad, &def, why, sizeof why), BD_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(why, "wq"));
    bd_model_free(&m);
    bd_model_free(&orig);
}
END_TEST

START_TEST(test_student_spec_round_trip) {
    // A student's quantization spec survives bd.model save/load with its latent weights.
    bd_config c = tiny(false);
    bd_model m, back;
    ck_assert_int_eq(bd_model_alloc(&m, &c), BD_OK);
    fill(&m);
    m.quant = (bd_qspec){BD_Q_NF3, 3, 8};
    m.qpolicy.include_head = true;
    ck_assert_int_eq(bd_qpolicy_exclude(&m.qpolicy, "layers.0.*"), BD_OK);
    char path[4200], why[512];
    snprintf(path, sizeof path, "%s/student.bdz", bd_test_tmpdir());
    ck_assert_msg(bd_model_save(&m, path, NULL, BD_F32, why, sizeof why) == BD_OK, "%s", why);
    ck_assert_msg(bd_model_load(path, &back, why, sizeof why) == BD_OK, "%s", why);
    ck_assert_int_eq(back.quant.kind, BD_Q_NF3);
    ck_assert_int_eq(back.quant.bits, 3);
    ck_assert_int_eq(back.quant.group, 8);
    ck_assert(back.qpolicy.include_head);
    ck_assert_int_eq(back.qpolicy.n_exclude, 1);
    ck_assert_str_eq(back.qpolicy.exclude[0], "layers.0.*");
    ck_assert_mem_eq(back.params, m.params, m.n_params * sizeof(float));  // latent, not quantized
    bd_model_free(&m);
    bd_model_free(&back);
}
END_TEST

Suite *suite_qmodel(void) {
    Suite *s = suite_create("qmodel");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_default_policy);
    tcase_add_test(tc, test_head_and_errors);
    tcase_add_test(tc, test_student_spec_round_trip);
    suite_add_tcase(s, tc);
    return s;
}
