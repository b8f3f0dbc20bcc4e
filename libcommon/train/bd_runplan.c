// The memory plans of bd-qat, bd-eval, bd-teacher-gen, bd-clipsearch and bd-pack, built from
// the size functions next to each allocation (bd_train_state_bytes, bd_fwd_state_bytes,
// bd_kv_cache_bytes, bd_adamw_state_bytes, bd_qat_teacher_bytes, ...).
#include "bd_runplan.h"

#include "bd_block.h"
#include "bd_optim.h"
#include "bd_packed.h"
#include "bd_qat.h"
#include "bd_qat_setup.h"
#include "bd_train.h"

static uint64_t f32_params(const bd_config *c) {
    bd_param_entry t[BD_MAX_PARAMS];
    size_t total;
    bd_param_table(c, t, &total);
    return (uint64_t)total * sizeof(float);
}

uint64_t bd_memplan_weights(const bd_model_info *mi) {
    if (mi->packed)
        return bd_pk_plan_bytes(&mi->cfg, &mi->quant, &mi->qpolicy, (bd_pk_type)mi->head_format, 1, NULL, NULL);
    if (!(mi->mapped && mi->format == BD_MODEL_FMT_HF)) return f32_params(&mi->cfg);
    // bd_model_alloc_frozen: f32 copies of all but the linears, which stay in the mapped files
    // (file pages, which the kernel can drop and read again: not counted).
    bd_param_entry t[BD_MAX_PARAMS];
    uint64_t bytes = 0;
    int n = bd_param_table(&mi->cfg, t, NULL);
    for (int i = 0; i < n; i++)
        if (!t[i].is_linear) bytes += t[i].numel * sizeof(float);
    return bytes;
}

uint64_t bd_memplan_lin_scratch(const bd_model_info *mi, int N) {
    if (mi->packed) {
        size_t scratch;
        bd_pk_plan_bytes(&mi->cfg, &mi->quant, &mi->qpolicy, (bd_pk_type)mi->head_format, N, &scratch, NULL);
        return scratch;
    }
    bd_model shell = {.cfg = mi->cfg, .quant = mi->quant, .qpolicy = mi->qpolicy};  // no weights, no packed layers
    return bd_block_scratch_bytes(&shell, N);
}

static const char *const BT = "smaller -b/-T";

void bd_runplan_qat(bd_memplan *p, const bd_qat_plan *q) {
    const bd_config *c = &q->student->cfg;
    uint64_t P = f32_params(c), rows = (uint64_t)q->B * (uint64_t)q->T;
    bd_memplan_add(p, "weights", bd_memplan_weights(q->student), NULL);
    bd_memplan_add(p, "gradients", P, NULL);  // bd_trainer_init: one float per parameter
    size_t n = (size_t)(P / sizeof(float)), ranks = q->ranks > 1 ? (size_t)q->ranks : 1;
    bd_memplan_add(p, "optimizer state", bd_adamw_state_bytes((n + ranks - 1) / ranks, q->moments),  // its shard
                   q->moments == BD_BF16 ? "more ranks (mpirun -np)" : "--optim-dtype bf16 or more ranks (mpirun -np)");
    if (q->resume) bd_memplan_add(p, "checkpoint moments", bd_adamw_state_bytes(n, q->moments), NULL);
    bd_memplan_add(p, "activations",
                   bd_train_state_bytes(c, q->B, q->T, q->recompute) + bd_memplan_lin_scratch(q->student, (int)rows),
                   q->recompute ? BT : "--recompute or smaller -b/-T");
    if (q->quant) bd_memplan_add(p, "quantized weights", P + bd_qat_hooks_bytes(c), NULL);  // the trainer's fw
    if (q->teacher_buf || q->teacher) {
        bd_qat_teacher_sizes z = bd_qat_teacher_bytes(q->teacher ? &q->teacher->cfg : NULL, c->vocab, q->B, q->T, q->A);
        if (q->teacher) {
            bd_memplan_add(p, "teacher weights", bd_memplan_weights(q->teacher),
                           q->stored_ok ? "--teacher-logits" : NULL);
            bd_memplan_add(p, "teacher activations", z.activations + bd_memplan_lin_scratch(q->teacher, (int)rows),
                           q->stored_ok ? "--teacher-logits or smaller -b/-T" : BT);
            if (q->ad) bd_memplan_add(p, "teacher layer states", z.states, "smaller -b/-T/--grad-accum");
        }
        bd_memplan_add(p, "teacher logits", z.logits, "smaller -b/-T/--grad-accum");
    }
    if (q->use_head) bd_memplan_add(p, "distillation buffers", bd_distill_bytes(q->B, q->T, c->vocab, q->kd), NULL);
    if (q->eval)  // bd_qat_evaluate: a student's quantized copy and a forward state of (B, T)
        bd_memplan_add(p, "evaluation",
                       (q->quant ? P : 0) + bd_fwd_state_bytes(c, q->B, q->T, false) +
                               bd_memplan_lin_scratch(q->student, (int)rows),
                       BT);
}

void bd_runplan_ppl(bd_memplan *p, const bd_model_info *mi, int B, int T) {
    bd_memplan_add(p, "weights", bd_memplan_weights(mi), NULL);
    bd_memplan_add(p, "activations", bd_fwd_state_bytes(&mi->cfg, B, T, false) + bd_memplan_lin_scratch(mi, B * T), BT);
}

void bd_runplan_mc(bd_memplan *p, const bd_model_info *mi, int W, int NC, int T, bd_mc_method method) {
    bd_memplan_add(p, "weights", bd_memplan_weights(mi), NULL);
    int capT = bd_mc_scorer_cap(&mi->cfg, T);
    uint64_t one = bd_mc_scorer_bytes(&mi->cfg, NC, T, method) +
                   bd_memplan_lin_scratch(mi, method == BD_MC_BATCH ? NC * capT : capT);
    bd_memplan_add(p, "scorers' activations", (uint64_t)W * one, "fewer --threads");
}

void bd_runplan_greedy(bd_memplan *p, const bd_model_info *mi, int max_P, int max_T) {
    bd_memplan_add(p, "weights", bd_memplan_weights(mi), NULL);
    bd_memplan_add(p, "KV cache", bd_kv_cache_bytes(&mi->cfg, 1, max_T) + bd_memplan_lin_scratch(mi, 1),
                   "a smaller --max-new");
    bd_memplan_add(p, "prompt activations",
                   bd_fwd_state_bytes(&mi->cfg, 1, max_P, false) + bd_memplan_lin_scratch(mi, max_P),
                   "a shorter --prompt");
}

void bd_runplan_generate(bd_memplan *p, const bd_model_info *mi, int B, int max_T, const bd_gen_opts *o) {
    bd_memplan_add(p, "weights", bd_memplan_weights(mi), NULL);
    int k = bd_gen_row_multiple(), R = o->unpadded ? B : (B + k - 1) / k * k;
    bd_memplan_add(p, "KV cache and sampling", bd_generate_bytes(&mi->cfg, B, max_T, o) + bd_memplan_lin_scratch(mi, R),
                   "smaller -b/-K");
}

void bd_runplan_clipsearch(bd_memplan *p, const bd_model_info *mi, int B, int T, int N, const bd_clip_opts *o) {
    bd_memplan_add(p, "weights", bd_memplan_weights(mi), NULL);
    bd_memplan_add(p, "calibration activations",
                   bd_fwd_state_bytes(&mi->cfg, B, T, true) + bd_memplan_lin_scratch(mi, B * T),
                   "fewer --windows or a smaller -T");
    bd_memplan_add(p, "search buffers", bd_clip_model_bytes(&mi->cfg, N, o), "fewer --tokens");
}

void bd_runplan_pack(bd_memplan *p, const bd_model_info *mi, bool pack, const bd_qspec *q, const bd_qpolicy *pol,
                     int head_format) {
    bd_memplan_add(p, "weights", bd_memplan_weights(mi), NULL);
    size_t packed = 0;
    if (pack && !mi->packed) bd_pk_plan_bytes(&mi->cfg, q, pol, (bd_pk_type)head_format, 1, NULL, &packed);
    bd_memplan_add(p, "packed weights", packed, NULL);
}
