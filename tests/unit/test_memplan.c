// Memory plans: the check's message and the table, the memory available read from a fake
// /proc and cgroup tree, the size functions against what their allocations really take, and
// the plans of a TinyLlama-1.1B-shaped QAT step and a 7B-shaped evaluation against sizes worked
// by hand from the shapes.
#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "bd_backward.h"
#include "bd_clip.h"
#include "bd_forward.h"
#include "bd_kernels.h"
#include "bd_memplan.h"
#include "bd_model_io.h"
#include "bd_packed.h"
#include "bd_qat.h"
#include "bd_qat_setup.h"
#include "bd_qmodel.h"
#include "bd_runplan.h"
#include "bd_test.h"
#include "bd_threads.h"
#include "bd_train.h"

#define GiB (1024.0 * 1024.0 * 1024.0)

START_TEST(test_memplan_check_message) {
    bd_memplan p = {0};
    bd_memplan_add(&p, "weights", (uint64_t)(1 * GiB), NULL);
    bd_memplan_add(&p, "activations", (uint64_t)(3 * GiB), "--recompute or smaller -b/-T");
    bd_memplan_add(&p, "nothing", 0, "-x");  // skipped
    bd_memplan_add(&p, "logits", (uint64_t)(0.5 * GiB), "smaller -b");
    ck_assert_int_eq(p.n, 3);
    ck_assert(bd_memplan_total(&p) == (uint64_t)(4.5 * GiB));
    char why[300];
    ck_assert_int_eq(bd_memplan_check(&p, (uint64_t)(4.5 * GiB), why, sizeof why), BD_OK);  // fits exactly
    ck_assert_int_eq(bd_memplan_check(&p, 0, why, sizeof why), BD_OK);                      // unknown: no refusal
    ck_assert_int_eq(bd_memplan_check(&p, (uint64_t)(4 * GiB), why, sizeof why), BD_ERR_NOMEM);
    ck_assert_str_eq(why,
                     "needs 4.5 GiB (largest: activations 3.0 GiB, shrink with --recompute or smaller -b/-T), 4.0 GiB "
                     "available");
    bd_memplan_add(&p, "teacher weights", (uint64_t)(10 * GiB), NULL);  // the largest has no option: name the next
    ck_assert_int_eq(bd_memplan_check(&p, (uint64_t)(4 * GiB), why, sizeof why), BD_ERR_NOMEM);
    ck_assert_str_eq(why, "needs 14.5 GiB (largest: teacher weights 10.0 GiB; next: activations 3.0 GiB, shrink with "
                          "--recompute or smaller -b/-T), 4.0 GiB available");
    bd_memplan q = {0};
    bd_memplan_add(&q, "weights", 2048, NULL);
    ck_assert_int_eq(bd_memplan_check(&q, 1000, why, sizeof why), BD_ERR_NOMEM);
    ck_assert_str_eq(why, "needs 2.0 KiB (largest: weights 2.0 KiB), 1000 B available");
    char table[1024];
    bd_memplan_format(&p, 0, table, sizeof table);
    ck_assert_msg(strstr(table, "\n  activations                   3.0 GiB  (--recompute or smaller -b/-T)\n") &&
                          strstr(table, "\n  teacher weights              10.0 GiB\n") &&
                          strstr(table, "\n  total                        14.5 GiB\n") &&
                          strstr(table, "\n  available                     unknown\n"),
                  "%s", table);
    char s[32];
    ck_assert_str_eq(bd_mem_size(1023, s, sizeof s), "1023 B");
    ck_assert_str_eq(bd_mem_size(1536, s, sizeof s), "1.5 KiB");
    ck_assert_str_eq(bd_mem_size((uint64_t)(31.2 * GiB), s, sizeof s), "31.2 GiB");
}
END_TEST

// Writes text to root/rel, making the directories on the way.
static void put(const char *root, const char *rel, const char *text) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    for (char *s = path + strlen(root) + 1; (s = strchr(s, '/')); s++) {
        *s = 0;
        mkdir(path, 0755);
        *s = '/';
    }
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

START_TEST(test_mem_available_from_files) {
    char root[600];
    snprintf(root, sizeof root, "%s/memroot%d", bd_test_tmpdir(), _i);
    mkdir(root, 0755);
    ck_assert(bd_mem_available_at(root) == 0);  // nothing readable: unknown
    put(root, "proc/meminfo", "MemTotal:       8000 kB\nMemFree:  10 kB\nMemAvailable:    2048 kB\n");
    ck_assert(bd_mem_available_at(root) == 2048 * 1024);
    // cgroup v2: the process's cgroup a/b and its parent a; room = max - (current - inactive_file).
    put(root, "proc/self/cgroup", "0::/a/b\n");
    put(root, "sys/fs/cgroup/a/b/memory.max", "max\n");
    put(root, "sys/fs/cgroup/a/b/memory.current", "300000\n");
    put(root, "sys/fs/cgroup/a/b/memory.stat", "anon 1\ninactive_file 100000\nactive_file 5\n");
    ck_assert(bd_mem_available_at(root) == 2048 * 1024);  // no limit anywhere
    put(root, "sys/fs/cgroup/a/b/memory.max", "1000000\n");
    ck_assert(bd_mem_available_at(root) == 1000000 - 200000);
    put(root, "sys/fs/cgroup/a/memory.max", "500000\n");  // the parent's limit is tighter
    put(root, "sys/fs/cgroup/a/memory.current", "400000\n");
    ck_assert(bd_mem_available_at(root) == 100000);
    put(root, "sys/fs/cgroup/a/memory.current", "600000\n");  // over its limit: nothing left, not "unknown"
    ck_assert(bd_mem_available_at(root) == 1);
    // cgroup v1: memory.limit_in_bytes; ~2^63 means no limit.
    put(root, "proc/self/cgroup", "5:cpu:/x\n4:memory:/x\n0::/\n");
    put(root, "sys/fs/cgroup/memory/x/memory.limit_in_bytes", "9223372036854771712\n");
    put(root, "sys/fs/cgroup/memory/x/memory.usage_in_bytes", "4096\n");
    put(root, "sys/fs/cgroup/memory/x/memory.stat", "cache 0\ntotal_inactive_file 1024\n");
    ck_assert(bd_mem_available_at(root) == 2048 * 1024);
    put(root, "sys/fs/cgroup/memory/x/memory.limit_in_bytes", "1048576\n");
    ck_assert(bd_mem_available_at(root) == 1048576 - 3072);
    // A cgroup path that is not there (another namespace): the hierarchy's root is read.
    put(root, "proc/self/cgroup", "4:memory:/elsewhere\n");
    put(root, "sys/fs/cgroup/memory/memory.stat", "total_inactive_file 0\n");
    put(root, "sys/fs/cgroup/memory/memory.limit_in_bytes", "65536\n");
    put(root, "sys/fs/cgroup/memory/memory.usage_in_bytes", "0\n");
    ck_assert(bd_mem_available_at(root) == 65536);
    // The environment override.
    setenv("BD_MEM_AVAILABLE", "123456789", 1);
    ck_assert(bd_mem_available() == 123456789);
    unsetenv("BD_MEM_AVAILABLE");
}
END_TEST

static unsigned rng = 99;
static float frand(void) {
    rng = rng * 1103515245u + 12345u;
    return (float)((rng >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static bd_config small_config(bool tied) {
    bd_test_variant v = {"small", 64, 2, 4, 2, 16, 96, 200, BD_ROPE_HALF, tied, false, false};
    return bd_test_variant_config(&v);
}

// The size functions against the allocations they mirror.
START_TEST(test_sizes_match_allocations) {
    int saved = bd_num_threads();
    bd_set_num_threads(3);
    bd_config c = small_config(false);
    for (int keep = 0; keep < 2; keep++) {
        bd_fwd_state s;
        ck_assert_int_eq(bd_fwd_state_init(&s, &c, 3, 17, keep), BD_OK);
        ck_assert_uint_eq(s.arena_floats * sizeof(float), bd_fwd_state_bytes(&c, 3, 17, keep));
        bd_fwd_state_free(&s);
    }
    bd_kv_cache kv;
    ck_assert_int_eq(bd_kv_cache_init(&kv, &c, 5, 33), BD_OK);
    size_t used = (size_t)(kv.rope_cs - kv.mem) + 33 * (size_t)c.head_dim;  // its last piece ends the arena
    ck_assert_uint_eq((used + 15) / 16 * 16 * sizeof(float), bd_kv_cache_bytes(&c, 5, 33));
    // (kv.mem comes from bd_huge_alloc, whose blocks malloc_usable_size cannot measure: the layout's
    // end above is what bd_kv_cache_init allocates.)
    bd_kv_cache_free(&kv);
    // The teacher's buffers, live with the attention states kept, and stored.
    bd_model t;
    bd_test_random_model(&t, &c, frand);
    bd_qat_teacher qt;
    char why[300];
    ck_assert_int_eq(bd_qat_teacher_init(&qt, &t, &c, 2, 9, 3, why, sizeof why), BD_OK);  // takes t over
    ck_assert_int_eq(bd_qat_teacher_keep_layer(&qt, 1, why, sizeof why), BD_OK);
    bd_qat_teacher_sizes z = bd_qat_teacher_bytes(&c, c.vocab, 2, 9, 3);
    ck_assert_uint_eq(z.activations, qt.st.arena_floats * sizeof(float));
    ck_assert_uint_eq(z.logits, (size_t)3 * 2 * 9 * 200 * 4);
    ck_assert_uint_eq(z.states, (size_t)3 * 2 * 9 * (4 + 2 * 2) * 16 * 4);  // (A*B, T, QD + 2 KD)
    ck_assert_uint_ge(malloc_usable_size(qt.logits), z.logits);
    ck_assert_uint_ge(malloc_usable_size(qt.states), z.states);
    bd_qat_teacher_free(&qt);
    // The trainer: gradients and moments of P floats each, and the QAT hooks' forward weights.
    bd_model m;
    bd_test_random_model(&m, &c, frand);
    bd_trainer tr;
    bd_adamw_cfg oc = {0.9f, 0.95f, 1e-8f, 0, 1, BD_F32};
    bd_schedule sc = {BD_SCHED_CONSTANT, 1e-3f, 0, 0, 10};
    ck_assert_int_eq(bd_trainer_init(&tr, &m, 2, 9, 1, &oc, &sc, false), BD_OK);
    ck_assert_uint_eq(tr.st.arena_floats * sizeof(float), bd_train_state_bytes(&c, 2, 9, false));
    ck_assert_uint_ge(malloc_usable_size(tr.opt.m), bd_adamw_state_bytes(m.n_params, BD_F32));
    ck_assert_uint_eq(bd_adamw_state_bytes(m.n_params, BD_F32), 2 * m.n_params * sizeof(float));
    ck_assert_uint_eq(bd_adamw_state_bytes(m.n_params, BD_BF16), 2 * m.n_params * sizeof(uint16_t));
    bd_adamw sh;  // a shard of a third of the parameters, bf16 moments
    bd_param_entry pt[BD_MAX_PARAMS];
    int npt = bd_param_table(&c, pt, NULL);
    bd_adamw_cfg oc16 = oc;
    oc16.moments = BD_BF16;
    ck_assert_int_eq(bd_adamw_init_shard(&sh, pt, npt, m.n_params, &oc16, 0, m.n_params / 3), BD_OK);
    ck_assert_uint_eq(bd_adamw_moment_bytes(&sh), bd_adamw_state_bytes(m.n_params / 3, BD_BF16));
    bd_adamw_free(&sh);
    bd_qat_hooks h;
    bd_qspec q = {BD_Q_INT, 2, 32};
    bd_qpolicy pol = {0};
    ck_assert_int_eq(bd_qat_hooks_attach(&h, &tr, &q, &pol), BD_OK);
    ck_assert_uint_ge(malloc_usable_size(h.tmp), bd_qat_hooks_bytes(&c));
    ck_assert_uint_eq(bd_qat_hooks_bytes(&c), (size_t)200 * 64 * 4);  // the largest tensor of one layer: tok_emb
    ck_assert_uint_eq(tr.fw.n_params, m.n_params);
    bd_qat_hooks_free(&h);
    bd_trainer_free(&tr);
    bd_model_free(&m);
    bd_distill d;
    bd_loss_spec ls = {BD_LOSS_FKL, 0, 1.0f};
    ck_assert_int_eq(bd_distill_init(&d, &ls, 2, 9, 200, 0.5f, 2.0f), BD_OK);
    ck_assert_uint_ge(malloc_usable_size(d.ds) + malloc_usable_size(d.ds2) + malloc_usable_size(d.w),
                      bd_distill_bytes(2, 9, 200, true));
    ck_assert_uint_eq(bd_distill_bytes(2, 9, 200, true), (size_t)(18 * 200 * 2 + 18) * 4);
    bd_distill_free(&d);
    // Clip search, worked by hand: N 40, C 96, group 32 (3 groups, shorter than N: Gram matrices),
    // 10x10 candidates over blocks of 64 rows (M = 6400): gram NG*G*G once, and per thread
    // D G*M, E N*M, tmp 2G floats and err M doubles.
    bd_clip_grid grid = {20, 10};
    for (int nt = 1; nt <= 3; nt += 2) {
        bd_set_num_threads(nt);
        ck_assert_uint_eq(bd_clip_search_bytes(40, 96, &q, grid),
                          (size_t)(3 * 32 * 32 + nt * (32 * 6400 + 40 * 6400 + 64)) * 4 + (size_t)nt * 6400 * 8);
    }
    bd_set_num_threads(saved);
}
END_TEST

// bd_pk_plan_bytes, from the sizes alone, against a model packed for real.
static void pack_case(bool tied, bd_qspec q, bool head, const char *exclude, int head_format, bool a8) {
    bd_config c = small_config(tied);
    bd_model m;
    bd_test_random_model(&m, &c, frand);
    bd_qpolicy pol = {.include_head = head, .act_bits = a8 ? 8 : 0};
    if (exclude) ck_assert_int_eq(bd_qpolicy_exclude(&pol, exclude), BD_OK);
    m.quant = q;
    m.qpolicy = pol;
    char why[300];
    ck_assert_msg(bd_pk_model_pack(&m, why, sizeof why) == BD_OK, "%s", why);
    if (head_format) ck_assert_msg(bd_pk_model_pack_head(&m, head_format, why, sizeof why) == BD_OK, "%s", why);
    m.packed->act_int8 = a8;
    size_t scratch, packed, want_packed = 0;
    size_t bytes = bd_pk_plan_bytes(&c, &q, &pol, (bd_pk_type)head_format, 7, &scratch, &packed);
    for (int s = 0; s < m.packed->n_slots; s++)
        if (m.packed->slots[s].data) want_packed += m.packed->slots[s].row_bytes * (size_t)m.packed->slots[s].rows;
    ck_assert_uint_eq(bytes, bd_pk_model_bytes(&m));
    ck_assert_uint_eq(packed, want_packed);
    ck_assert_uint_eq(scratch, bd_pk_model_scratch_bytes(&m, 7));
    ck_assert_uint_gt(packed, 0);
    bd_model_free(&m);
}

START_TEST(test_pk_plan_matches_packing) {
    bd_qspec q2 = {BD_Q_INT, 2, 32}, tern = {BD_Q_TERNARY, 2, 0}, nf3 = {BD_Q_NF3, 3, 32};
    pack_case(false, q2, false, NULL, 0, false);
    pack_case(false, q2, true, NULL, 0, true);  // the head packed by the spec, int8 activations
    pack_case(true, q2, false, "layers.1.*", BD_PK_Q8, false);
    pack_case(true, tern, false, NULL, BD_PK_Q6, true);
    pack_case(false, nf3, false, "w2", BD_PK_Q8, false);
}
END_TEST

// bd_model_peek reads from the header what loading finds, in every format it can read ahead.
static void peek_same(const char *path) {
    bd_model_info a, b;
    bd_model m;
    char why[600];
    ck_assert_msg(bd_model_peek(path, &a, why, sizeof why) == BD_OK, "%s", why);
    ck_assert_msg(bd_model_load(path, &m, why, sizeof why) == BD_OK, "%s", why);
    bd_model_info_of(&m, &b);
    ck_assert_msg(bd_same_shape(&a.cfg, &b.cfg) && a.cfg.tied_embeddings == b.cfg.tied_embeddings &&
                          a.cfg.qkv_bias == b.cfg.qkv_bias && a.cfg.max_seq == b.cfg.max_seq,
                  "%s: the header's config differs from the loaded model's", path);
    ck_assert_int_eq(a.packed, b.packed);
    ck_assert_int_eq(a.head_format, b.head_format);
    ck_assert_int_eq(a.quant.kind, b.quant.kind);
    ck_assert_uint_eq(bd_memplan_weights(&a), bd_memplan_weights(&b));
    if (b.packed) ck_assert_uint_eq(bd_memplan_weights(&a), bd_pk_model_bytes(&m));
    bd_model_free(&m);
}

START_TEST(test_peek_matches_load) {
    char path[700], why[300];
    peek_same(bd_test_data("models/stories260K/stories260K.bin"));
    bd_config c = small_config(false);
    c.qkv_bias = true;
    bd_model m;
    bd_test_random_model(&m, &c, frand);
    snprintf(path, sizeof path, "%s/peek_hf", bd_test_tmpdir());
    ck_assert_msg(bd_model_save_hf(&m, path, BD_F32, why, sizeof why) == BD_OK, "%s", why);
    peek_same(path);
    bd_model_free(&m);
    c = small_config(true);
    bd_test_random_model(&m, &c, frand);
    m.quant = (bd_qspec){BD_Q_INT, 2, 32};
    snprintf(path, sizeof path, "%s/peek.bdz", bd_test_tmpdir());
    ck_assert_msg(bd_model_save(&m, path, NULL, BD_F32, why, sizeof why) == BD_OK, "%s", why);
    peek_same(path);  // a student
    ck_assert_msg(bd_pk_model_pack(&m, why, sizeof why) == BD_OK, "%s", why);
    ck_assert_msg(bd_pk_model_pack_head(&m, BD_PK_Q6, why, sizeof why) == BD_OK, "%s", why);
    snprintf(path, sizeof path, "%s/peek_packed.bdz", bd_test_tmpdir());
    ck_assert_msg(bd_pk_model_save(&m, path, NULL, why, sizeof why) == BD_OK, "%s", why);
    peek_same(path);  // packed, with a q6 head
    bd_model_free(&m);
    bd_model_info mi;
    ck_assert_int_eq(bd_model_peek("-", &mi, why, sizeof why), BD_ERR_ARG);  // read once: planned after loading
}
END_TEST

static const bd_mempart *part(const bd_memplan *p, const char *name) {
    for (int i = 0; i < p->n; i++)
        if (!strcmp(p->part[i].name, name)) return &p->part[i];
    ck_abort_msg("no part \"%s\" in the plan", name);
    return NULL;
}

// TinyLlama-1.1B: C 2048, L 22, NH 32, KV 4, HS 64, F 5632, V 32000, untied. One QAT step at
// B 1, T 512 with the model itself as the live teacher (2-bit student, cakld-like head loss).
START_TEST(test_runplan_tinyllama_qat) {
    int saved = bd_num_threads();
    bd_set_num_threads(1);
    bd_test_variant v = {"tinyllama", 2048, 22, 32, 4, 64, 5632, 32000, BD_ROPE_HALF, false, false, false};
    bd_model_info mi = {.cfg = bd_test_variant_config(&v)};
    mi.cfg.max_seq = 2048;
    // P = 2 V C + L (2 C + C*QD + 2 C*KD + QD*C + 3 C F) + C
    //   = 131,072,000 + 22 * (4,096 + 4,194,304 + 1,048,576 + 4,194,304 + 34,603,008) + 2,048
    const uint64_t P = 1100048384ull;
    bd_qat_plan q = {.student = &mi,
                     .teacher = &mi,
                     .B = 1,
                     .T = 512,
                     .A = 1,
                     .quant = true,
                     .teacher_buf = true,
                     .stored_ok = true,
                     .use_head = true};
    bd_memplan p = {0};
    bd_runplan_qat(&p, &q);
    ck_assert_uint_eq(part(&p, "weights")->bytes, 4 * P);  // 4,400,193,536
    ck_assert_uint_eq(part(&p, "gradients")->bytes, 4 * P);
    ck_assert_uint_eq(part(&p, "optimizer state")->bytes, 8 * P);
    ck_assert_uint_eq(part(&p, "quantized weights")->bytes, 4 * P + 4ull * 32000 * 2048);  // + tok_emb's copy
    ck_assert_uint_eq(part(&p, "teacher weights")->bytes, 4 * P);
    // Activations kept for backward, per row (N = 512): every layer's xn_att, rstd_att, qr, kr, v,
    // att, lse, x_mid, xn_ffn, rstd_ffn, h1, h3, hg = 3C + 2 + 2 QD + 2 KD + NH + 3F = 27,682;
    // the stream x (L+1) C = 47,104; xf, rstd_f, proj = 2C + 1 = 4,097.
    uint64_t N = 512, acts = N * (22 * 27682 + 47104 + 4097);
    // Then the head rows (512 x V), losses and lse (2N), dx, dxn (2NC), dq, datt (2 N QD), dk, dv
    // (2 N KD), dh1, dh3, dhg (3NF), the attention scratch and RoPE's table (T HS).
    uint64_t att = (uint64_t)bd_attention_scratch_floats(512, 1),
             batt = (uint64_t)bd_attention_backward_scratch_floats(512, 1);
    uint64_t train = acts + 512 * 32000 + 2 * N + 2 * N * 2048 + 2 * N * 2048 + 2 * N * 256 + 3 * N * 5632 +
                     (att > batt ? att : batt) + 512 * 64;
    ck_assert_uint_eq(part(&p, "activations")->bytes, 4 * train);
    ck_assert_str_eq(part(&p, "activations")->shrink, "--recompute or smaller -b/-T");
    // The teacher's forward state: one slot of every tensor, the stream too: 27,682 + 2,048 + 4,097
    // per row; the attention scratch, RoPE, 256 head rows of V for the NLL, losses and lse.
    uint64_t teacher = N * (27682 + 2048 + 4097) + att + 512 * 64 + 256 * 32000 + 2 * N;
    ck_assert_uint_eq(part(&p, "teacher activations")->bytes, 4 * teacher);
    ck_assert_uint_eq(part(&p, "teacher logits")->bytes, 4ull * 512 * 32000);
    ck_assert_uint_eq(part(&p, "distillation buffers")->bytes, 4ull * (512 * 32000 + 512));
    // 22P + the rest: about 26.4 GiB; refused in 16 GiB, naming the largest part and its option.
    char why[300];
    ck_assert_int_eq(bd_memplan_check(&p, 16ull << 30, why, sizeof why), BD_ERR_NOMEM);
    ck_assert_msg(strstr(why, "(largest: optimizer state 8.2 GiB, shrink with --optim-dtype bf16 or more ranks "
                              "(mpirun -np)), 16.0 GiB available"),
                  "%s", why);
    // bf16 moments over 2 ranks: each keeps 2 bytes x 2 moments of half the parameters; the
    // teacher from a Hugging Face directory, mapped: only its embedding, head and norms in f32.
    bd_model_info tm = mi;
    tm.format = BD_MODEL_FMT_HF, tm.mapped = true;
    bd_qat_plan q2 = q;
    q2.teacher = &tm, q2.ranks = 2, q2.moments = BD_BF16;
    bd_memplan p2 = {0};
    bd_runplan_qat(&p2, &q2);
    ck_assert_uint_eq(part(&p2, "optimizer state")->bytes, 2 * P);
    ck_assert_str_eq(part(&p2, "optimizer state")->shrink, "more ranks (mpirun -np)");
    ck_assert_uint_eq(part(&p2, "teacher weights")->bytes, 4ull * (2 * 32000 * 2048 + 22 * 2 * 2048 + 2048));
    // --recompute keeps one layer's tensors: 21 layers of 27,682 floats per row less.
    q.recompute = true;
    bd_memplan r = {0};
    bd_runplan_qat(&r, &q);
    ck_assert_uint_eq(part(&p, "activations")->bytes - part(&r, "activations")->bytes, 4 * N * 21 * 27682);
    bd_set_num_threads(saved);
}
END_TEST

// A 7B-shaped evaluation (C 4096, L 32, NH = KV 32, F 11008, V 32000, untied), B 1 window of 2048.
START_TEST(test_runplan_7b_eval) {
    int saved = bd_num_threads();
    bd_set_num_threads(1);
    bd_test_variant v = {"7b", 4096, 32, 32, 32, 128, 11008, 32000, BD_ROPE_HALF, false, false, false};
    bd_model_info mi = {.cfg = bd_test_variant_config(&v)};
    // P = 2 V C + L (2C + 4 C^2 + 3 C F) + C = 262,144,000 + 32 * 202,383,360 + 4,096
    const uint64_t P = 6738415616ull;
    bd_memplan p = {0};
    bd_runplan_ppl(&p, &mi, 1, 2048);
    ck_assert_uint_eq(part(&p, "weights")->bytes, 4 * P);  // 25.1 GiB
    // Per row: 3C + 2 + 2 QD + 2 KD + NH + 3F = 61,730 in one slot, x C, xf rstd_f proj 2C + 1.
    uint64_t N = 2048, fwd = N * (61730 + 4096 + 8193) + (uint64_t)bd_attention_scratch_floats(2048, 1) + 2048 * 128 +
                             256 * 32000 + 2 * N;
    ck_assert_uint_eq(part(&p, "activations")->bytes, 4 * fwd);
    char why[300];
    ck_assert_int_eq(bd_memplan_check(&p, 22ull << 30, why, sizeof why), BD_ERR_NOMEM);
    ck_assert_str_eq(why, "needs 25.7 GiB (largest: weights 25.1 GiB; next: activations 611.0 MiB, shrink with smaller "
                          "-b/-T), 22.0 GiB available");
    bd_set_num_threads(saved);
}
END_TEST

Suite *suite_memplan(void) {
    Suite *s = suite_create("memplan");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_memplan_check_message);
    tcase_add_test(tc, test_mem_available_from_files);
    tcase_add_test(tc, test_sizes_match_allocations);
    tcase_add_test(tc, test_pk_plan_matches_packing);
    tcase_add_test(tc, test_peek_matches_load);
    tcase_add_test(tc, test_runplan_tinyllama_qat);
    tcase_add_test(tc, test_runplan_7b_eval);
    suite_add_tcase(s, tc);
    return s;
}
