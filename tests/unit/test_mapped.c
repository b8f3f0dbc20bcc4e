// Frozen weights in their file's dtype: the bf16 and f16 packed rows (dots on every path
// against a double-precision reference, no read past a row that ends where a mapping does) and
// bd_model_load_mapped (a Hugging Face model's linears borrowed from the mapped safetensors
// computes what the f32 copy computes; NaN weights and odd alignments handled).
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bd_clipsearch.h"
#include "bd_dtype.h"
#include "bd_forward.h"
#include "bd_model_io.h"
#include "bd_packed.h"
#include "bd_safetensors.h"
#include "bd_test.h"

static unsigned long long rng_state = 12345;
static float urand(void) {  // uniform in [-1, 1)
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((double)(rng_state >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static uint16_t to_half(float v, bd_pk_type type) { return type == BD_PK_BF16 ? bd_f32_to_bf16(v) : bd_f32_to_f16(v); }
static float from_half(uint16_t h, bd_pk_type type) {
    return type == BD_PK_BF16 ? bd_bf16_to_f32(h) : bd_f16_to_f32(h);
}

// OC rows of C 16-bit values at data (little-endian), random; the reference dot in double.
static void fill_rows(uint8_t *data, int OC, int C, bd_pk_type type) {
    for (int i = 0; i < OC * C; i++) {
        uint16_t h = to_half(urand() * 2.0f, type);
        data[2 * i] = (uint8_t)h, data[2 * i + 1] = (uint8_t)(h >> 8);
    }
}
static double ref_dot(const uint8_t *row, const float *x, int C, bd_pk_type type) {
    double acc = 0;
    for (int i = 0; i < C; i++) acc += (double)from_half((uint16_t)(row[2 * i] | row[2 * i + 1] << 8), type) * x[i];
    return acc;
}

START_TEST(test_half_dots_every_path) {
    bd_pk_type types[] = {BD_PK_BF16, BD_PK_F16};
    int cols[] = {1, 7, 16, 31, 32, 33, 63, 100, 257, 1031};
    for (size_t ti = 0; ti < 2; ti++)
        for (size_t ci = 0; ci < sizeof cols / sizeof cols[0]; ci++) {
            int C = cols[ci], OC = 5;
            bd_pk_tensor t;
            ck_assert_int_eq(bd_pk_geometry(&t, types[ti], OC, C, 0), BD_OK);
            ck_assert_int_eq((int)t.row_bytes, 2 * C);
            ck_assert_int_eq(bd_pk_alloc(&t), BD_OK);
            fill_rows(t.data, OC, C, types[ti]);
            for (int N = 1; N <= 9; N += 8) {
                float *x = malloc(sizeof(float) * (size_t)N * C), *out = malloc(sizeof(float) * (size_t)N * OC);
                for (int i = 0; i < N * C; i++) x[i] = urand();
                void *scratch = malloc(bd_pk_matmul_scratch_bytes(&t, N, false) + 64);
                for (int p = 0; p < BD_SIMD_COUNT; p++) {
                    if (!bd_pk_simd_supported((bd_simd)p)) continue;
                    bd_pk_set_simd((bd_simd)p);
                    bd_pk_matmul(out, x, &t, N, false, scratch);
                    for (int n = 0; n < N; n++)
                        for (int r = 0; r < OC; r++) {
                            double want = ref_dot(t.data + (size_t)r * t.row_bytes, x + (size_t)n * C, C, types[ti]);
                            ck_assert_msg(fabs(out[n * OC + r] - want) <= 1e-5 * (1 + sqrt((double)C)),
                                          "%s C=%d N=%d path %s row %d: %g vs %g", bd_pk_traits_table[types[ti]].name,
                                          C, N, bd_pk_simd_name((bd_simd)p), r, out[n * OC + r], want);
                        }
                }
                bd_pk_set_simd(BD_SIMD_COUNT);  // unsupported: back to the automatic choice
                free(scratch);
                free(x);
                free(out);
            }
            bd_pk_free(&t);
        }
}
END_TEST

// A row that ends exactly where readable memory does (the next page is PROT_NONE, as past the
// end of a mapped file): the dots of every path must not read beyond it.
START_TEST(test_half_dots_stop_at_row_end) {
    long page = sysconf(_SC_PAGESIZE);
    uint8_t *mem = mmap(NULL, (size_t)page * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert(mem != MAP_FAILED);
    ck_assert_int_eq(mprotect(mem + page, (size_t)page, PROT_NONE), 0);
    bd_pk_type types[] = {BD_PK_BF16, BD_PK_F16};
    int cols[] = {1, 17, 40, 77};
    for (size_t ti = 0; ti < 2; ti++)
        for (size_t ci = 0; ci < 4; ci++) {
            int C = cols[ci];
            bd_pk_tensor t;
            ck_assert_int_eq(bd_pk_geometry(&t, types[ti], 1, C, 0), BD_OK);
            t.data = mem + page - 2 * C;  // 2-byte aligned only, ends at the guard page
            t.borrowed = true;
            fill_rows(t.data, 1, C, types[ti]);
            float x[77], out;
            for (int i = 0; i < C; i++) x[i] = urand();
            void *scratch = malloc(bd_pk_matmul_scratch_bytes(&t, 1, false) + 64);
            for (int p = 0; p < BD_SIMD_COUNT; p++) {
                if (!bd_pk_simd_supported((bd_simd)p)) continue;
                bd_pk_set_simd((bd_simd)p);
                bd_pk_matmul(&out, x, &t, 1, false, scratch);
                ck_assert_close(out, ref_dot(t.data, x, C, types[ti]), 1e-5 * (1 + sqrt((double)C)));
            }
            bd_pk_set_simd(BD_SIMD_COUNT);
            free(scratch);
            bd_pk_free(&t);  // borrowed: not freed
        }
    munmap(mem, (size_t)page * 2);
}
END_TEST

static bd_config small_config(void) {
    bd_test_variant v = {"mapped", 64, 2, 4, 2, 16, 96, 80, BD_ROPE_HALF, false, false, false};
    bd_config c = bd_test_variant_config(&v);
    return c;
}

// Logits of m on a fixed token sequence (B 1, T 12): (T, V), caller frees.
static float *logits_of(const bd_model *m) {
    int T = 12, V = m->cfg.vocab;
    int32_t tok[12];
    for (int t = 0; t < T; t++) tok[t] = (t * 7 + 3) % V;
    bd_fwd_state st;
    ck_assert_int_eq(bd_fwd_state_init(&st, &m->cfg, 1, T, false), BD_OK);
    float *lg = malloc(sizeof(float) * (size_t)T * V);
    ck_assert_int_eq(bd_forward(&st, m, tok, 1, T, lg), BD_OK);
    bd_fwd_state_free(&st);
    return lg;
}

// A random model written as a Hugging Face directory in dtype; returns the directory.
static const char *write_hf(const char *name, bd_dtype dtype, bool tied, bd_model *src) {
    static char dir[600];
    snprintf(dir, sizeof dir, "%s/%s", bd_test_tmpdir(), name);
    bd_config c = small_config();
    c.tied_embeddings = tied;
    bd_test_random_model(src, &c, urand);
    char why[512];
    ck_assert_msg(bd_model_save_hf(src, dir, dtype, why, sizeof why) == BD_OK, "%s", why);
    return dir;
}

static void check_mapped_equals_copied(bd_dtype dtype, bool tied, bd_pk_type want_type) {
    bd_model src, copied, mapped;
    const char *dir = write_hf(tied ? "mapped_tied" : "mapped_untied", dtype, tied, &src);
    char why[512];
    ck_assert_msg(bd_model_load(dir, &copied, why, sizeof why) == BD_OK, "%s", why);
    ck_assert_msg(bd_model_load_mapped(dir, &mapped, why, sizeof why) == BD_OK, "%s", why);
    // The linears live in the file: no f32 storage, borrowed slots of the file's dtype.
    ck_assert_ptr_nonnull(mapped.mapping);
    ck_assert_ptr_null(mapped.w.wq);
    ck_assert_ptr_null(mapped.w.w2);
    ck_assert_ptr_nonnull(mapped.w.rms_att);
    ck_assert_ptr_nonnull(mapped.w.tok_emb);
    bd_param_entry t[BD_MAX_PARAMS];
    size_t total, linears = 0;
    int nt = bd_param_table(&mapped.cfg, t, &total);
    for (int i = 0; i < nt; i++) linears += t[i].is_linear ? t[i].numel : 0;
    ck_assert_uint_eq(mapped.n_params, total - linears);
    for (int l = 0; l < mapped.cfg.n_layers; l++)
        for (int k = 0; k < BD_N_LINEARS; k++) {
            const bd_pk_tensor *p = bd_pk_model_slot(&mapped, l, (bd_linear)k);
            ck_assert_ptr_nonnull(p);
            ck_assert_int_eq(p->type, want_type);
            ck_assert(p->borrowed);
        }
    ck_assert_ptr_null(bd_pk_model_slot(&mapped, 0, BD_HEAD));  // the head stays an f32 copy
    // Same weights, so the same logits up to summation order.
    float *a = logits_of(&copied), *b = logits_of(&mapped);
    size_t n = (size_t)12 * copied.cfg.vocab;
    double worst = 0;
    for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs(a[i] - b[i]) / (1 + fabs(a[i])));
    ck_assert_msg(worst < 2e-5, "mapped logits differ from the copied model's by %g", worst);
    // And the weights really are the file's: a copied model whose wq differs gives other logits.
    copied.w.wq[0] += 0.5f;
    float *c2 = logits_of(&copied);
    double moved = 0;
    for (size_t i = 0; i < n; i++) moved = fmax(moved, fabs(c2[i] - b[i]));
    ck_assert(moved > 1e-3);
    // bd_model_copy_mapped: nothing within a budget one byte short of the linears; within
    // theirs, every slot an owned copy of the same type, the files let go, the very same logits.
    uint64_t bytes = 0, got;
    for (int l = 0; l < mapped.cfg.n_layers; l++)
        for (int k = 0; k < BD_N_LINEARS; k++) {
            const bd_pk_tensor *p = bd_pk_model_slot(&mapped, l, (bd_linear)k);
            bytes += p->row_bytes * (uint64_t)p->rows;
        }
    ck_assert_int_eq(bd_model_copy_mapped(&mapped, bytes - 1, &got), BD_OK);
    ck_assert_uint_eq(got, 0);
    ck_assert(bd_pk_model_slot(&mapped, 0, BD_WQ)->borrowed);
    ck_assert_int_eq(bd_model_copy_mapped(&mapped, bytes, &got), BD_OK);
    ck_assert_uint_eq(got, bytes);
    for (int l = 0; l < mapped.cfg.n_layers; l++)
        for (int k = 0; k < BD_N_LINEARS; k++) {
            const bd_pk_tensor *p = bd_pk_model_slot(&mapped, l, (bd_linear)k);
            ck_assert_ptr_nonnull(p);
            ck_assert_int_eq(p->type, want_type);
            ck_assert(!p->borrowed);
        }
    ck_assert_ptr_nonnull(mapped.mapping);  // still a frozen model: no f32 linears to train
    float *b2 = logits_of(&mapped);
    ck_assert_msg(memcmp(b, b2, sizeof(float) * n) == 0, "logits changed when the linears were copied");
    ck_assert_int_eq(bd_model_copy_mapped(&mapped, bytes, &got), BD_OK);  // nothing borrowed is left
    ck_assert_uint_eq(got, 0);
    free(a), free(b), free(b2), free(c2);
    bd_model_free(&src);
    bd_model_free(&copied);
    bd_model_free(&mapped);
    ck_assert_ptr_null(mapped.mapping);
}

START_TEST(test_mapped_bf16_untied) { check_mapped_equals_copied(BD_BF16, false, BD_PK_BF16); }
END_TEST
START_TEST(test_mapped_bf16_tied) { check_mapped_equals_copied(BD_BF16, true, BD_PK_BF16); }
END_TEST
START_TEST(test_mapped_f32) { check_mapped_equals_copied(BD_F32, false, BD_PK_F32); }
END_TEST

// A NaN or inf in a mapped linear is refused naming the file, the tensor and the element:
// in the first chunk of 512 values the scan reads, in a later one, at the very last element.
// (bd writes no f16 safetensors; the f16 mask is the same test on other bits.)
static void refuse_nonfinite(bd_dtype dtype, long long elem, uint16_t bits) {
    bd_model src, m;
    const char *dir = write_hf("mapped_nan", dtype, true, &src);
    bd_model_free(&src);
    char path[700], why[512], want[32];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    bd_safetensors st;
    ck_assert_int_eq(bd_safetensors_open(&st, path, why, sizeof why), BD_OK);
    const bd_st_tensor *x = bd_safetensors_find(&st, "model.layers.1.mlp.down_proj.weight");
    ck_assert_ptr_nonnull(x);
    if (elem < 0) elem += x->numel;
    off_t at = (off_t)x->begin + 2 * elem;
    bd_safetensors_close(&st);
    int fd = open(path, O_WRONLY);
    ck_assert_int_ge(fd, 0);
    uint8_t le[2] = {(uint8_t)(bits & 0xff), (uint8_t)(bits >> 8)};
    ck_assert_int_eq(pwrite(fd, le, 2, at), 2);
    close(fd);
    ck_assert_int_eq(bd_model_load_mapped(dir, &m, why, sizeof why), BD_ERR_VALUE);
    snprintf(want, sizeof want, "element %lld ", elem);
    ck_assert_msg(strstr(why, "model.layers.1.mlp.down_proj.weight") && strstr(why, want) && strstr(why, path), "%s",
                  why);
    ck_assert_ptr_null(m.params);
    ck_assert_ptr_null(m.mapping);
}

START_TEST(test_mapped_nan) {
    refuse_nonfinite(BD_BF16, 37, 0x7fc0);    // quiet NaN
    refuse_nonfinite(BD_BF16, 1000, 0xff80);  // -inf, in the second chunk
    refuse_nonfinite(BD_BF16, -1, 0x7f81);    // a signalling NaN, last element
}
END_TEST

// Formats that cannot be mapped load as bd_model_load does (here a bd.model stream).
START_TEST(test_mapped_other_formats) {
    bd_model src, m;
    bd_config c = small_config();
    bd_test_random_model(&src, &c, urand);
    char path[600], why[512];
    snprintf(path, sizeof path, "%s/mapped_other.bdz", bd_test_tmpdir());
    bd_producer prod = {"test", 0, NULL};
    ck_assert_msg(bd_model_save(&src, path, &prod, BD_F32, why, sizeof why) == BD_OK, "%s", why);
    ck_assert_msg(bd_model_load_mapped(path, &m, why, sizeof why) == BD_OK, "%s", why);
    ck_assert_ptr_null(m.mapping);
    ck_assert_ptr_null(m.packed);
    ck_assert_mem_eq(m.params, src.params, sizeof(float) * src.n_params);
    bd_model_free(&m);
    bd_model_free(&src);
}
END_TEST

// Every range bd_clip_model emits, concatenated.
typedef struct {
    float *v;
    size_t n, cap;
} ranges;
static int collect(void *ctx, const char *tensor, int layer, const float *mx, const float *mn, int OC, int NG) {
    (void)tensor, (void)layer;
    ranges *r = ctx;
    size_t add = 2 * (size_t)OC * NG;
    if (r->n + add > r->cap) r->v = realloc(r->v, sizeof(float) * (r->cap = 2 * (r->n + add)));
    memcpy(r->v + r->n, mx, sizeof(float) * add / 2);
    memcpy(r->v + r->n + add / 2, mn, sizeof(float) * add / 2);
    r->n += add;
    return BD_OK;
}

// The tools that read each weight once work on a mapped model as on its f32 copy: the clipping
// search gives the same ranges, packing the same blocks.
START_TEST(test_mapped_clip_and_pack) {
    bd_model src, copied, mapped;
    const char *dir = write_hf("mapped_clip", BD_BF16, false, &src);
    char why[512];
    ck_assert_msg(bd_model_load(dir, &copied, why, sizeof why) == BD_OK, "%s", why);
    ck_assert_msg(bd_model_load_mapped(dir, &mapped, why, sizeof why) == BD_OK, "%s", why);
    enum { B = 2, T = 16, N = 20 };
    int32_t ids[B * T];
    for (int i = 0; i < B * T; i++) ids[i] = (i * 13 + 5) % src.cfg.vocab;
    int pos[B * T];
    bd_clip_positions(pos, B * T, N, 9);
    bd_clip_opts o = {.q = {BD_Q_INT, 2, 16}, .grid = {10, 4}, .include_qk = true};
    ranges r[2] = {{0}};
    const bd_model *ms[2] = {&copied, &mapped};
    for (int i = 0; i < 2; i++) {
        bd_fwd_state fs;
        int searched;
        ck_assert_msg(bd_clip_calibrate(&fs, ms[i], ids, B, T, why, sizeof why) == BD_OK, "%s", why);
        ck_assert_msg(bd_clip_model(ms[i], &fs, pos, N, &o, collect, NULL, &r[i], &searched, why, sizeof why) == BD_OK,
                      "%s", why);
        ck_assert_int_eq(searched, 2 * BD_N_LINEARS);
        bd_fwd_state_free(&fs);
    }
    ck_assert_uint_eq(r[0].n, r[1].n);
    // The calibration activations differ in summation order only; ranges are chosen on a grid,
    // so nearly all are equal, and any that differ are neighbours on it.
    size_t differ = 0;
    for (size_t i = 0; i < r[0].n; i++) differ += r[0].v[i] != r[1].v[i];
    ck_assert_msg(differ <= r[0].n / 100, "%zu of %zu ranges differ", differ, r[0].n);
    free(r[0].v), free(r[1].v);
    // Packing: the same blocks, layer by layer.
    bd_qspec q = {BD_Q_INT, 2, 32};
    copied.quant = mapped.quant = q;
    ck_assert_msg(bd_pk_model_pack(&copied, why, sizeof why) == BD_OK, "%s", why);
    ck_assert_msg(bd_pk_model_pack(&mapped, why, sizeof why) == BD_OK, "%s", why);
    for (int l = 0; l < src.cfg.n_layers; l++)
        for (int k = 0; k < BD_N_LINEARS; k++) {
            const bd_pk_tensor *a = bd_pk_model_slot(&copied, l, (bd_linear)k),
                               *b = bd_pk_model_slot(&mapped, l, (bd_linear)k);
            ck_assert(a && b && a->type == BD_PK_Q2 && b->type == BD_PK_Q2 && !b->borrowed);
            ck_assert_mem_eq(a->data, b->data, a->row_bytes * (size_t)a->rows);
        }
    bd_model_free(&src);
    bd_model_free(&copied);
    bd_model_free(&mapped);
}
END_TEST

Suite *suite_mapped(void) {
    Suite *s = suite_create("mapped");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_half_dots_every_path);
    tcase_add_test(tc, test_half_dots_stop_at_row_end);
    tcase_add_test(tc, test_mapped_bf16_untied);
    tcase_add_test(tc, test_mapped_bf16_tied);
    tcase_add_test(tc, test_mapped_f32);
    tcase_add_test(tc, test_mapped_nan);
    tcase_add_test(tc, test_mapped_other_formats);
    tcase_add_test(tc, test_mapped_clip_and_pack);
    suite_add_tcase(s, tc);
    return s;
}
