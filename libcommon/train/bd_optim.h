// AdamW (decoupled weight decay, bias correction, clipping by global gradient norm) and
// learning-rate schedules. Parameters, gradients and the two moments share one flat layout
// (bd_model.h), so a step is a flat loop. The moments are stored in f32 or, to halve their
// memory, in bf16 (rounded to nearest even when stored; the step's arithmetic is f32 either
// way). Dimension key: P parameters (floats).
#ifndef BD_OPTIM_H
#define BD_OPTIM_H

#include <stdbool.h>
#include <stddef.h>

#include "bd_dtype.h"
#include "bd_error.h"
#include "bd_model.h"

typedef struct {
    float beta1, beta2, eps;  // PyTorch defaults: 0.9, 0.999, 1e-8
    float weight_decay;       // decoupled; applied to matrices only (see bd_adamw_init)
    float grad_clip;          // max global L2 norm; <= 0: no clipping
    bd_dtype moments;         // storage of m and v: BD_F32 (0, the default) or BD_BF16
} bd_adamw_cfg;

typedef struct {
    bd_adamw_cfg cfg;
    size_t n;             // P
    size_t lo, hi;        // the shard of the parameters this optimizer updates and keeps moments of (0, P alone)
    float *m, *v;         // (hi-lo) first and second moments, one allocation, if cfg.moments is BD_F32 (else NULL)
    uint16_t *m16, *v16;  // (hi-lo) the same in bf16, one allocation, if cfg.moments is BD_BF16 (else NULL)
    long long t;          // steps taken
    int n_ranges;
    struct {
        size_t offset, n;
        bool decay;
    } ranges[BD_MAX_PARAMS];  // one per parameter tensor
} bd_adamw;

// Moments zeroed, stored as cfg->moments says (BD_ERR_ARG for a dtype other than f32, bf16). Weight decay applies to linear weights, embeddings, the head and SubLN's norm
// weights (as BitNet Distillation's code, whose trainer decays every weight whose name has no
// "layernorm"/"rmsnorm"/"bias"), never to the block norms and biases (table from bd_param_table).
BD_MUST_CHECK int bd_adamw_init(bd_adamw *o, const bd_param_entry *table, int n_entries, size_t n,
                                const bd_adamw_cfg *cfg);
// The same for the shard [lo, hi) of the parameters only (ZeRO stage 1: each rank of a
// data-parallel run keeps the moments of its shard and updates those parameters).
BD_MUST_CHECK int bd_adamw_init_shard(bd_adamw *o, const bd_param_entry *table, int n_entries, size_t n,
                                      const bd_adamw_cfg *cfg, size_t lo, size_t hi);
void bd_adamw_free(bd_adamw *o);
// Bytes of the moments' storage (8 per parameter of the shard in f32, 4 in bf16).
size_t bd_adamw_moment_bytes(const bd_adamw *o);
// Moment which (0: m, 1: v) as stored: (hi-lo) elements of o->cfg.moments.
const void *bd_adamw_moment(const bd_adamw *o, int which);
// Sets the moments from m and v (P elements of dtype dt each: f32 or bf16, native byte order;
// a shard takes its part), converting to o's storage (bf16 -> f32 exactly, f32 -> bf16 rounded
// to nearest even), and the step count t. BD_ERR_ARG for another dtype.
BD_MUST_CHECK int bd_adamw_set_moments(bd_adamw *o, bd_dtype dt, const void *m, const void *v, long long t);
// Bytes bd_adamw_init_shard allocates for a shard of k parameters with moments of dtype
// moments (BD_F32 or BD_BF16), for memory plans.
size_t bd_adamw_state_bytes(size_t k, bd_dtype moments);
// Global L2 norm of g (P), accumulated in double.
double bd_grad_norm(const float *g, size_t n);
// One step at learning rate lr: clips grads in place if needed, updates params (P). With bf16
// moments each one is widened to f32, updated, used in f32 for this step's update and rounded
// to bf16 (nearest even) when stored.
// Returns the gradient norm before clipping (NaN if the gradient holds NaN/inf: then
// nothing is changed).
double bd_adamw_step(bd_adamw *o, float *params, float *grads, float lr);
// The same with the global gradient norm given (a shard's step: the norm is the sum over every
// rank's shard); only params[lo, hi) change. Returns norm, or NaN (nothing changed) if it is
// not finite.
double bd_adamw_step_norm(bd_adamw *o, float *params, const float *grads, float lr, double norm);
// Sum of the squares of g[lo, hi) in double (a shard's part of the squared norm).
double bd_grad_sumsq(const float *g, size_t lo, size_t hi);

typedef enum { BD_SCHED_CONSTANT = 0, BD_SCHED_COSINE, BD_SCHED_LINEAR } bd_sched_kind;
typedef struct {
    bd_sched_kind kind;
    float lr, min_lr;
    long long warmup, total;  // steps
} bd_schedule;

// Learning rate for step t (0-based): linear warmup over `warmup` steps (every kind), then
// constant, or a cosine or linear decay from lr to min_lr at `total` (linear with min_lr 0 is
// Hugging Face's "linear" schedule, which BitNet Distillation's code uses).
float bd_schedule_lr(const bd_schedule *s, long long t);

#endif
