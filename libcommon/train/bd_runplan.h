// Memory plans of each kind of run (bd_memplan.h): the parts a run will allocate, computed from
// the model's header (bd_model_peek) and the run's settings before anything big is allocated,
// each from the size function that sits next to the allocation it counts. A part names the
// option that shrinks it, as the tools spell it. Dimension key as in bd_model.h; P parameters.
#ifndef BD_RUNPLAN_H
#define BD_RUNPLAN_H

#include <stdbool.h>

#include "bd_clipsearch.h"
#include "bd_generate.h"
#include "bd_mc.h"
#include "bd_memplan.h"
#include "bd_model_io.h"

// The bytes of a model's weights in memory once loaded: every tensor in f32 (bd_model_alloc),
// the linears of a bd.packed stream packed (bd_pk_plan_bytes), those of a Hugging Face model
// loaded mapped (mi->mapped) left in the files. The one place to change when loading changes.
uint64_t bd_memplan_weights(const bd_model_info *mi);
// The scratch of its linears at N rows (bd_block_scratch_bytes: packed kernels, or a W1.58A8
// student's quantized activations; 0 for other models).
uint64_t bd_memplan_lin_scratch(const bd_model_info *mi, int N);

// bd-qat: training the student with AdamW, a live or stored teacher, evaluation.
typedef struct {
    const bd_model_info *student;  // as loaded (latent weights); cfg.subln already the one trained
    const bd_model_info *teacher;  // a live teacher model, or NULL (none, or stored log-probabilities)
    int B, T, A;                   // batch, sequence length, micro-batches per step
    bool recompute;
    bool quant;        // a student: fake-quantized forward weights
    bool teacher_buf;  // a teacher of either kind: its logits of a step (distillation loss or terms)
    bool stored_ok;    // --teacher-logits would replace the live teacher (a distillation loss)
    bool use_head;     // the distillation head loss (bd_distill)
    bool kd;           // --kd-weight: a second head buffer
    bool ad;           // --ad-weight: the teacher keeps one layer's q, k, v
    bool eval;         // --eval: an evaluation pass (and a quantized copy of a student)
    bool resume;       // a checkpoint's optimizer moments are held while the optimizer is made
    int ranks;         // data-parallel ranks (mpirun): each keeps the moments of 1/ranks of the parameters
    bd_dtype moments;  // the moments' dtype (BD_F32 or BD_BF16)
} bd_qat_plan;
void bd_runplan_qat(bd_memplan *p, const bd_qat_plan *q);

// bd-eval: perplexity over windows of T, B per forward pass.
void bd_runplan_ppl(bd_memplan *p, const bd_model_info *mi, int B, int T);
// bd-eval --task: W workers, each with a scorer for items of NC choices whose sequences feed
// at most T positions (bd_mc_task_max_positions).
void bd_runplan_mc(bd_memplan *p, const bd_model_info *mi, int W, int NC, int T, bd_mc_method method);
// bd-eval --max-new: greedy continuation through a KV cache of max_T positions after a prompt of
// at most max_P tokens read in one pass.
void bd_runplan_greedy(bd_memplan *p, const bd_model_info *mi, int max_P, int max_T);
// bd-teacher-gen: batched generation (bd_generate_bytes).
void bd_runplan_generate(bd_memplan *p, const bd_model_info *mi, int B, int max_T, const bd_gen_opts *o);
// bd-clipsearch: B calibration windows of T kept for every layer, N positions searched.
void bd_runplan_clipsearch(bd_memplan *p, const bd_model_info *mi, int B, int T, int N, const bd_clip_opts *o);
// bd-pack: the model as loaded and, unless it is packed already (or pack is false), its packed
// copy with spec q, policy pol and head format head_format (a bd_pk_type).
void bd_runplan_pack(bd_memplan *p, const bd_model_info *mi, bool pack, const bd_qspec *q, const bd_qpolicy *pol,
                     int head_format);

#endif
