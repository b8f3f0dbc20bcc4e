// Training: the model's backward pass over one activation arena, the optimizer step with
// gradient accumulation, and the data order of an epoch. Dimension key as in bd_model.h:
// V vocab, C dim, L layers, NH/KV heads, HS head dim, QD = NH*HS, KD = KV*HS, F ffn dim,
// B batch, T sequence, N = B*T, R rows of the head per chunk, P parameters (floats).
//
// Quantization-aware training (the next step) plugs in through two hooks of bd_trainer:
// the forward pass runs on "forward weights" fw (a second bd_model: e.g. the fake-quantized
// latent weights, made fresh before each step), the backward pass leaves the gradient with
// respect to fw in the gradient buffer, and route_grads turns it into the gradient with
// respect to the latent weights (straight-through: bd_fakequant_backward per quantized
// matrix, a copy for the rest) before AdamW updates the latent weights.
#ifndef BD_TRAIN_H
#define BD_TRAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bd_block.h"
#include "bd_dist.h"
#include "bd_model.h"
#include "bd_optim.h"

typedef struct {
    double forward, backward, head, optimizer;  // seconds, accumulated
    double comm;                                // seconds in collectives (data-parallel runs)
} bd_train_timing;

// The activation arena of one micro-batch of at most (B, T), plus the activation gradients.
// The block activations (BD_ACTS in bd_block.h) hold every layer (LAYER tensor X of layer l
// at X + l*B*T*width) unless recompute is set: then one layer's slot is reused and the
// backward pass recomputes each block from its saved input x[l] (the residual stream is
// always kept for every layer), trading one more forward pass of the blocks for L times
// less activation memory.
typedef struct {
    bd_config cfg;
    int B, T;  // capacity
    bool recompute;
    float *arena;  // the one allocation
    size_t arena_floats;
    bd_acts acts;     // x (L+1, B, T, C); the LAYER tensors (L|1, B, T, width)
    float *logits;    // (R, V) one chunk of head rows; their gradient in place
    float *losses;    // (B, T) per-position loss of the last pass (0 where unscored)
    float *loss_lse;  // (B, T)
    // Activation gradients (one layer at a time).
    float *dx;               // (B, T, C) gradient of the residual stream
    float *dxn;              // (B, T, C) gradient of a norm's output (also of xf)
    float *dq, *dk, *dv;     // (B, T, QD), (B, T, KD), (B, T, KD) attention inputs
    float *dk_pre;           // (B, T, KD) k before its norm; only if qk_norm
    float *datt;             // (B, T, QD) attention output; then q before its norm
    float *dh1, *dh3, *dhg;  // (B, T, F)
    float *dsub;             // (B, T, max(C, QD, F)) gradient of a SubLN output; only with SubLN
    float *att_scratch;      // forward and backward attention scratch
    long long att_scratch_floats;
    float *rope_cs;  // (T, HS/2, 2)
    // The linears' scratch (bd_block_scratch_bytes of the model trained, grown on use): a
    // W1.58A8 model's quantized activations, in the forward and again in the backward.
    void *lin_scratch;
    size_t lin_scratch_bytes;
    bd_train_timing timing;
    const struct bd_layer_loss *layer_loss;  // a loss on one layer's attention inputs, or NULL
    char why[256];                           // after an error of a function on this state (or its trainer): the reason
} bd_train_state;

BD_MUST_CHECK int bd_train_state_init(bd_train_state *s, const bd_config *cfg, int B, int T, bool recompute);
void bd_train_state_free(bd_train_state *s);
// Bytes bd_train_state_init would allocate (for planning and reports).
size_t bd_train_state_bytes(const bd_config *cfg, int B, int T, bool recompute);
int bd_train_head_rows(int N);  // R

// A loss on the head's logits other than cross-entropy (distillation): called once per chunk
// of head rows n0..n0+nr-1 (n = b*T + t) with their logits (nr, V); overwrites them with
// d(weighted loss)/d logits and returns the sum of the weighted losses.
typedef struct {
    double (*fn)(void *ctx, float *logits, int n0, int nr, int V);
    void *ctx;
} bd_head_loss;

// A loss on the attention inputs of one layer (attention-relation distillation): called once
// per micro-batch in the backward pass of `layer`, with that layer's activations a (a->qr and
// a->kr after RoPE, a->v: rows of B*T) and the gradients dq, dk, dv (B, T, QD|KD) with respect
// to them, into which it adds d(its weighted loss)/d (qr, kr, v); returns the weighted loss
// (NaN on failure: the step is then refused as not finite).
typedef struct bd_layer_loss {
    double (*fn)(void *ctx, const bd_acts *a, float *dq, float *dk, float *dv, int B, int T);
    void *ctx;
    int layer;
} bd_layer_loss;

// One forward and backward pass of a micro-batch: tokens (B, T) in [0, V); targets (B, T)
// (negative: not scored) or NULL for next-token prediction (target[b,t] = tokens[b,t+1],
// the last position unscored). The forward pass runs on fw; grads (views of a buffer in the
// layout of fw's parameters) get += d(loss_scale * sum of the scored losses) / d weights.
// head NULL: cross-entropy on the targets. *loss gets loss_scale * sum of losses, plus the
// weighted loss of s->layer_loss if set. Returns the
// number of scored positions (>= 0), or BD_ERR_ARG (sizes, config) / BD_ERR_VALUE (token).
BD_MUST_CHECK int bd_train_fwd_bwd(bd_train_state *s, const bd_model *fw, const bd_weights *grads,
                                   const int32_t *tokens, const int32_t *targets, int B, int T, float loss_scale,
                                   const bd_head_loss *head, double *loss);

// The whole training loop's state.
typedef struct bd_trainer bd_trainer;
struct bd_trainer {
    bd_model *model;  // latent parameters, updated in place by bd_trainer_step
    float *grads;     // (P) gradient, the layout of model->params
    bd_weights gw;    // views into grads
    bd_adamw opt;
    bd_schedule sched;
    bd_train_state st;
    int grad_accum;  // micro-batches per optimizer step
    long long step;  // optimizer steps done (the schedule's t)
    // QAT hooks (both NULL for plain training). make_fw fills fw (allocated like model) from
    // the latent weights before a step's forward passes; route_grads rewrites grads in place
    // from d/d fw to d/d latent after them.
    int (*make_fw)(void *ctx, bd_model *fw, const bd_model *latent);
    void (*route_grads)(void *ctx, float *grads, const bd_model *fw, const bd_model *latent);
    void *hook_ctx;
    bd_model fw;    // allocated by bd_trainer_init only when make_fw is set
    bd_dist *dist;  // data-parallel ranks (bd_trainer_set_dist), or NULL: alone
};

typedef struct {
    double loss;       // mean loss over the scored positions of the step
    double grad_norm;  // before clipping
    float lr;
    long long scored;  // positions scored
} bd_step_stats;

// Sets up the trainer for model (not owned): micro-batches of (B, T), grad_accum of them per
// step. Hooks, if any, are set on tr after init and before the first step (set tr->make_fw
// then call bd_trainer_enable_fw to allocate fw).
BD_MUST_CHECK int bd_trainer_init(bd_trainer *tr, bd_model *model, int B, int T, int grad_accum,
                                  const bd_adamw_cfg *ocfg, const bd_schedule *sched, bool recompute);
BD_MUST_CHECK int bd_trainer_enable_fw(bd_trainer *tr);
// Data parallelism over d's ranks (not owned; nothing changes with one rank). Each rank runs its
// own micro-batches (the caller splits the step's sequences); bd_trainer_step then sums the
// scored-position count and, after the backward pass and route_grads (which is linear in the
// gradient, so it may run before the sum), the gradient over the ranks (bd_dist_sum_f32, in
// buckets) and the loss. ZeRO stage 1: the optimizer keeps the moments of this rank's shard of
// the parameters only (bd_dist_shard, contiguous), updates that shard with the global gradient
// norm (a sum of the shards' squares) and the weights are all-gathered. Call before the first
// step and before loading moments (the moments restart at zero). BD_ERR_NOMEM.
BD_MUST_CHECK int bd_trainer_set_dist(bd_trainer *tr, bd_dist *d);
// The full optimizer state for a checkpoint: alone, *full is a copy of tr->opt (not to be freed);
// with several ranks every rank must call it, and rank 0 gets in *full (free with
// bd_adamw_free) the moments of every shard, the others an empty optimizer. BD_ERR_NOMEM, BD_ERR_IO.
BD_MUST_CHECK int bd_trainer_gather_opt(bd_trainer *tr, bd_adamw *full, bool *owned);
void bd_trainer_free(bd_trainer *tr);

// One optimizer step over grad_accum micro-batches: tokens (grad_accum, B, T), targets the
// same shape or NULL (next token). The loss is the mean over every scored position of the
// step. Errors: those of bd_train_fwd_bwd; BD_ERR_VALUE if the gradient is not finite
// (then the weights are left unchanged and the step is not counted).
BD_MUST_CHECK int bd_trainer_step(bd_trainer *tr, const int32_t *tokens, const int32_t *targets, int B, int T,
                                  const bd_head_loss *head, bd_step_stats *stats);

// The order of the n training sequences in epoch `epoch` (a permutation of 0..n-1, written
// into perm (n)): a Fisher-Yates shuffle driven by a generator seeded from (seed, epoch)
// alone, so a data position (epoch, index) is all a checkpoint needs to resume the order.
void bd_epoch_order(long long *perm, long long n, uint64_t seed, long long epoch);

#endif
