// A QAT run as bd-qat drives it: the model loaded for training or as the teacher, the teacher
// (a frozen model run on every batch, or the log-probabilities stored with the data), cakld's g
// measured once, the trainer with its QAT hooks and distillation loss, the steps that take
// batches from the sequences in each epoch's order, and the evaluation during training.
// Dimension key: A micro-batches per step, B batch, T sequence, V vocabulary, n sequences.
#ifndef BD_QAT_SETUP_H
#define BD_QAT_SETUP_H

#include <stdbool.h>

#include "bd_ckpt.h"
#include "bd_forward.h"
#include "bd_ids.h"
#include "bd_qat.h"
#include "bd_seqs.h"

// How a tool wants a model (flags): as it runs (BD_LOAD_RUN: a student fake-quantized), or its
// latent weights as stored (BD_LOAD_LATENT: for training; a packed model, which has none, is
// refused with BD_ERR_ARG); either with BD_LOAD_MAPPED when the tool only reads the weights: a
// Hugging Face model's linears then stay in the file's dtype, memory-mapped (bd_model_load_mapped).
enum { BD_LOAD_RUN = 0, BD_LOAD_LATENT = 1, BD_LOAD_MAPPED = 2 };
// Loads the model at path (any format bd_model_load knows) as mode says. Errors name the file.
BD_MUST_CHECK int bd_qat_load_model(const char *path, int mode, bd_model *m, char *why, size_t why_size);

// The teacher of a distillation loss.
typedef struct {
    bool live;        // the model runs on each batch; else the stored top-K log-probabilities
    bd_model model;   // live: the frozen teacher (owned)
    bd_fwd_state st;  // live: (B, T)
    float *logits;    // (A*B, T, V) the teacher's logits of a step
    int B, T, A, V;
    // Attention-relation distillation: the teacher's q, k (after RoPE) and v rows at one layer,
    // kept from each step's forward passes (bd_qat_teacher_keep_layer).
    int keep_layer;  // -1: none
    int tq, tk;      // QD and KD of the teacher
    float *states;   // (A*B, T, tq + 2*tk)
    int micro;       // the micro-batch being run
} bd_qat_teacher;

// Sets up t for a student of config student: live with model (taken over, freed with t; any
// size, but the same vocabulary: BD_ERR_SHAPE), or from stored log-probabilities with model
// NULL. BD_ERR_NOMEM.
BD_MUST_CHECK int bd_qat_teacher_init(bd_qat_teacher *t, bd_model *model, const bd_config *student, int B, int T, int A,
                                      char *why, size_t why_size);
// A live teacher also keeps layer's q, k, v of every step. BD_ERR_ARG (layer), BD_ERR_NOMEM.
BD_MUST_CHECK int bd_qat_teacher_keep_layer(bd_qat_teacher *t, int layer, char *why, size_t why_size);
void bd_qat_teacher_free(bd_qat_teacher *t);
// What bd_qat_teacher_init (and bd_qat_teacher_keep_layer) allocate for a teacher of config
// teacher (NULL: stored log-probabilities) and V ids, besides the teacher model itself.
typedef struct {
    size_t activations;  // the forward state (B, T) of a live teacher
    size_t logits;       // (A*B, T, V)
    size_t states;       // keep_layer's q, k, v rows (attention-relation distillation only)
} bd_qat_teacher_sizes;
bd_qat_teacher_sizes bd_qat_teacher_bytes(const bd_config *teacher, int V, int B, int T, int A);
// The teacher's logits for sequences idx (A*B) of s, their tokens and targets (A*B, T): a live
// teacher runs on tokens, stored log-probabilities fill the scored positions.
BD_MUST_CHECK int bd_qat_teacher_step(bd_qat_teacher *t, const bd_seqs *s, const long long *idx, const int32_t *tokens,
                                      const int32_t *targets, char *why, size_t why_size);
// cakld's g: the teacher's mean top-1 probability over the scored positions of s (a live
// teacher runs over every sequence, one at a time; stored log-probabilities give exp of their
// largest). 0.5 if no position is scored; *positions gets how many are. progress (may be NULL)
// is called with ctx and the sequences done after each one.
BD_MUST_CHECK int bd_qat_gamma(bd_qat_teacher *t, const bd_seqs *s, double *gamma, long long *positions,
                               void (*progress)(void *ctx, long long done), void *ctx, char *why, size_t why_size);

// The settings of a run.
typedef struct {
    int B, T, A;     // batch, sequence length, micro-batches per step
    bool recompute;  // recompute activations in the backward pass
    bool seqsum;     // the loss sums over a sequence's tokens and averages over sequences
    uint64_t seed;   // the epochs' data order
    bd_adamw_cfg opt;
    bd_schedule sched;
    bd_qspec q;  // the student's quantization (kind BD_Q_NONE: plain training)
    bd_qpolicy policy;
    bd_dist *dist;  // data-parallel ranks (NULL: alone); B and A are each rank's
} bd_qat_cfg;

// BitNet Distillation's terms added to a ce loss (a weight 0 leaves a term out).
typedef struct {
    float kd_weight, kd_tau;         // the logits term: lambda * tau^2, and tau
    float ad_weight;                 // gamma of attention-relation distillation
    int ad_layer, ad_teacher_layer;  // the student's and the teacher's layer (0-based)
    int ad_heads;                    // relation heads
} bd_qat_terms;

typedef struct {
    bd_qat_cfg c;
    const bd_seqs *seqs;
    bd_ckpt_info info;   // what a checkpoint keeps: step, data position, tokens seen, seed, g
    long long per_step;  // sequences of a step: A*B*R (R ranks)
    int ranks, rank;     // R and this process's rank (1 and 0 alone)
    long long *mine;     // (A*B) this rank's sequences of the step: micro-batch a takes B of each A*B*R block
    bd_trainer tr;
    bd_qat_hooks hooks;       // the student's fake quantization (c.q.kind != BD_Q_NONE)
    bd_qat_teacher *teacher;  // NULL: no distillation
    bd_distill distill;
    bool use_head;  // the distillation head loss replaces the trainer's cross-entropy
    bd_qat_terms terms;
    bd_relation_loss relation;  // with terms.ad_weight > 0
    int32_t *tokens, *targets;  // (A*B, T) of the current step
    int32_t *lens;              // (A*B) their real positions
    long long *order;           // (n) the current epoch's order of the sequences
    double seconds;             // time of the last step (teacher and trainer)
} bd_qat_run;

// Sets up training of m (not owned) on seqs (not owned, >= A*B sequences) from the data
// position in info; mom continues a checkpoint's optimizer (NULL: a fresh start; moments of
// another dtype than c->opt.moments are converted: bd_adamw_set_moments). BD_ERR_NOMEM and
// the errors of bd_trainer_init.
BD_MUST_CHECK int bd_qat_init(bd_qat_run *s, bd_model *m, const bd_seqs *seqs, const bd_qat_cfg *c,
                              const bd_ckpt_info *info, const bd_ckpt_moments *mom, char *why, size_t why_size);
// The loss: with use_head, spec's loss on the head (teacher may be NULL for ce, e.g. with
// seqsum); else the trainer's cross-entropy. terms (NULL: none) adds BitNet Distillation's
// logits and attention-relation terms, which need a live teacher (for the relation term one
// that keeps terms->ad_teacher_layer). BD_ERR_NOMEM, BD_ERR_ARG (a term without its teacher,
// a layer out of range, relation heads that do not divide a width).
BD_MUST_CHECK int bd_qat_set_loss(bd_qat_run *s, bd_qat_teacher *teacher, const bd_loss_spec *spec,
                                  const bd_qat_terms *terms, bool use_head, char *why, size_t why_size);
// The relation heads bd uses unless told: 32 as the official code, halved while a head of the
// student's or the teacher's k would have under 8 floats or 32 does not divide the widths.
int bd_qat_default_ad_heads(const bd_config *student, const bd_config *teacher);
// One optimizer step on the next A*B*R sequences of the epoch's order (a new epoch, in a new
// order, when fewer remain); advances s->info. With R ranks, micro-batch a of rank r takes
// sequences a*B*R + r*B .. + B-1 of the step (so R ranks of batch B see what one process of
// batch R*B would), and the losses' weights count the whole step's positions. Errors: the teacher's, and the trainer's (then
// s->hooks.why may say more).
BD_MUST_CHECK int bd_qat_step(bd_qat_run *s, bd_step_stats *stats, char *why, size_t why_size);
void bd_qat_free(bd_qat_run *s);

// Mean NLL of m over the non-overlapping windows of T tokens of ids (n >= T), B per forward
// pass; a student is evaluated as it will run, quantized.
BD_MUST_CHECK int bd_qat_evaluate(const bd_model *m, const bd_ids *ids, int T, int B, double *nll, char *why,
                                  size_t why_size);

#endif
