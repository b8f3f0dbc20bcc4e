// Quantization-aware training with self-distillation, as hooks of the trainer (bd_train.h):
// the forward weights are the fake-quantized latent weights, gradients go straight through
// the quantizers back to the latent weights, and the head's loss compares the student's
// logits with the teacher's on the same positions (bd_loss.h). Dimension key: A micro-batches
// per step, B batch, T sequence, N = B*T, R head rows per chunk, V vocabulary.
#ifndef BD_QAT_H
#define BD_QAT_H

#include "bd_loss.h"
#include "bd_relation.h"
#include "bd_train.h"

typedef struct {
    bd_qspec q;
    bd_qpolicy policy;
    float *tmp;     // (largest quantized matrix)
    char why[400];  // why the last fake quantization failed (a step then fails with its code); "" if none did
} bd_qat_hooks;

// Sets tr's make_fw / route_grads for spec q and policy (tr from bd_trainer_init) and
// allocates the forward weights: BD_OK or BD_ERR_NOMEM. Free h with bd_qat_hooks_free after
// bd_trainer_free.
BD_MUST_CHECK int bd_qat_hooks_attach(bd_qat_hooks *h, bd_trainer *tr, const bd_qspec *q, const bd_qpolicy *policy);
void bd_qat_hooks_free(bd_qat_hooks *h);
// Bytes the hooks allocate besides the forward weights (a model of config c: one layer's largest matrix).
size_t bd_qat_hooks_bytes(const bd_config *c);

// The distillation loss on the head's logits (a bd_head_loss): spec's loss on the scored
// positions, plus, with kd_weight > 0, BitNet Distillation's logits term
//   kd_weight * KL(p_T^tau || p_S^tau)   (kd_weight = lambda * tau^2, tau = kd_tau)
// at every real position (t < kd_lens of its sequence: the prompt's tokens included, as the
// official code), each weighing kd_scale (1 / the step's real positions: a per-position mean).
typedef struct {
    bd_loss_spec spec;
    float kd_weight, kd_tau, kd_scale;
    const int32_t *kd_lens;  // (A*B) real positions of each sequence, or NULL without the logits term
    int T;                   // positions per sequence
    float *ds2;              // (R, V) the logits term's gradient
    double ce_sum, kd_sum;   // the step's two terms so far (weighted)
    const float *teacher;    // (A, B, T, V) teacher logits of the step's micro-batches, NULL for ce
    const int32_t *targets;  // (A, B, T), -1 where not scored
    size_t per;              // B*T
    float scale;             // weight of a scored position (the reduction)
    int micro;               // current micro-batch: -1 before a step, advanced at row 0
    float *ds;               // (R, V)
    float *w;                // (R)
    int err;                 // the first error of the step's loss (the step's loss is then NaN), and why
    char why[200];
} bd_distill;

// BD_OK or BD_ERR_NOMEM. kd_weight > 0 adds the logits term (kd_lens and kd_scale are then
// set per step by the caller).
BD_MUST_CHECK int bd_distill_init(bd_distill *d, const bd_loss_spec *spec, int B, int T, int V, float kd_weight,
                                  float kd_tau);
void bd_distill_free(bd_distill *d);
// Bytes bd_distill_init allocates (kd: kd_weight > 0).
size_t bd_distill_bytes(int B, int T, int V, bool kd);
// Prepares a step: teacher logits and targets of its A micro-batches, and the weight of one
// scored position (1/scored for the per-token mean, 1/sequences for the per-sequence sum).
void bd_distill_begin_step(bd_distill *d, const float *teacher, const int32_t *targets, float scale);
// The bd_head_loss callback: ctx is a bd_distill. On an error of the loss it returns NaN (so
// the trainer refuses the step) and keeps the error in d->err and d->why.
double bd_distill_head(void *ctx, float *logits, int n0, int nr, int V);

// Attention-relation distillation at one student layer (a bd_layer_loss; bd_relation.h): for
// each of q and k (after RoPE) and v, the relation KL of every sequence against the teacher's
// same state at its layer, over the sequence's real positions only (the official code also
// counts padding; bd's sequences are padded to T, so that would weigh the padding). Weighted as
// the official code: weight / (heads * rows) per row KL, rows = heads * the real positions of
// the micro-batch, summed over q, k, v; then averaged over the step's micro-batches.
typedef struct {
    bd_layer_loss hook;    // fn, ctx (this struct), layer (the student's)
    int heads;             // A, relation heads (must divide the student's and the teacher's widths)
    float weight;          // gamma
    const float *teacher;  // (A*B, T, TQ + 2*TK) the teacher's q | k | v rows at its layer
    int tq, tk;            // the teacher's QD and KD
    int qd, kd;            // the student's
    const int32_t *lens;   // (A*B) real positions of each sequence of the step
    int B, T, grad_accum;
    int micro;   // current micro-batch: -1 before a step
    double sum;  // the step's weighted loss so far
} bd_relation_loss;

// Sets the hook of r (fields above filled by the caller).
void bd_relation_loss_attach(bd_relation_loss *r);
void bd_relation_loss_begin_step(bd_relation_loss *r, const float *teacher, const int32_t *lens);

#endif
