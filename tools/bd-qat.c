// bd-qat: trains a model with AdamW, warmup/cosine schedules, gradient accumulation,
// periodic evaluation, checkpoints that a killed run resumes from exactly, and a bd.metrics
// log. With --quant it is quantization-aware training: the student's latent weights are
// fake-quantized in every forward pass (straight-through backward); with a distillation
// loss (cakld, fkl, rkl, jsd) the frozen full-precision model is the teacher, run on the
// same batch (BitDistiller). Data: a bd.tokens stream, or the teacher's own bd.samples.
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bd_ckpt.h"
#include "bd_clipfile.h"
#include "bd_qat.h"
#include "bd_qmodel.h"
#include "bd_forward.h"
#include "bd_ids.h"
#include "bd_log.h"
#include "bd_loss.h"
#include "bd_model_io.h"
#include "bd_progress.h"
#include "bd_threads.h"
#include "bd_tool.h"
#include "bd_train.h"

static const char help[] =
    "Usage: bd-qat --model M --loss ce -o OUT [OPTIONS] [TOKENS]\n"
    "       bd-qat --model TEACHER --data samples.bdz --quant KIND --bits B --group G\n"
    "              [--clip clip.bdz] --loss cakld|fkl|rkl|jsd|ce -o student.bdz [OPTIONS]\n"
    "Train model M with AdamW and write the trained model to OUT (a bd.model stream). Data: a\n"
    "bd.tokens stream (TOKENS, or standard input) whose ids are concatenated and cut into\n"
    "sequences of --seq-len + 1 tokens, or with --data a bd.samples stream from bd-teacher-gen,\n"
    "one sequence per sample (prompt + completion). The order is shuffled every epoch from --seed.\n"
    "With --quant the model is a student: its latent weights (clamped to --clip ranges first) are\n"
    "fake-quantized in every forward pass and OUT carries the quantization spec. The\n"
    "distillation losses use M, frozen, as the teacher on the same batch.\n"
    "\n"
    "  -m, --model M          starting model (and teacher): llama2.c, Hugging Face dir or bd.model\n"
    "      --loss NAME        ce (cross-entropy on the data), or distillation against the teacher:\n"
    "                         fkl KL(T||S), rkl KL(S||T), cakld g*rkl+(1-g)*fkl, jsd\n"
    "      --gamma G          cakld's g (default: the teacher's mean top-1 probability on the\n"
    "                         training data, measured once before training)\n"
    "      --reduction R      mean (per scored token, default) or seqsum (sum over tokens, mean\n"
    "                         over sequences, as BitDistiller's reference code)\n"
    "      --data FILE        train on a bd.samples stream instead of TOKENS\n"
    "      --mask-prompt      with --data: do not score the prompt's tokens\n"
    "      --teacher-logits   with --data from bd-teacher-gen --logits K: distill from the stored\n"
    "                         top-K log-probabilities instead of running the teacher (the other\n"
    "                         ids share the remaining probability; only completions are scored)\n"
    "  Quantization-aware training (the student's spec; --clip clamps the latent weights once):\n"
    BD_QUANT_HELP
    "      --keep-best        also write OUT.best: the model with the lowest --eval loss\n"
    "  -o, --output OUT       the trained model (bd.model stream, f32)\n"
    "      --lr X             peak learning rate (default 3e-4)\n"
    "      --min-lr X         cosine floor (default lr/10)\n"
    "      --schedule S       constant or cosine (default cosine)\n"
    "      --warmup N         linear warmup steps (default 0)\n"
    "  -b, --batch B          sequences per micro-batch (default 4)\n"
    "  -T, --seq-len T        tokens per sequence (default min(256, the model's context))\n"
    "      --grad-accum A     micro-batches per optimizer step (default 1)\n"
    "      --steps N          optimizer steps (default: one epoch)\n"
    "      --epochs E         epochs instead of steps (a step takes B*A sequences; the tail of an\n"
    "                         epoch shorter than a step is skipped)\n"
    "      --weight-decay W   decoupled, on matrices and embeddings only (default 0)\n"
    "      --grad-clip X      clip the global gradient norm to X (default 1; 0: off)\n"
    "      --beta2 X          AdamW's beta2 (default 0.95; beta1 0.9, eps 1e-8)\n"
    "      --eval TOKENS      bd.tokens stream to evaluate on (windows of --seq-len)\n"
    "      --eval-every N     evaluate every N steps and at the end (default: at the end)\n"
    "      --save-every N     write the checkpoint OUT.state (+ OUT.state.wSTEP) every N steps\n"
    "                         and at the end\n"
    "      --resume           continue from OUT.state if it exists (same data and settings)\n"
    "      --log FILE         write a bd.metrics stream: one record per step\n"
    "      --recompute        recompute each block's activations in the backward pass\n"
    "                         (less memory, about 1/3 more compute)\n"
    BD_COMMON_HELP
    "\nExit status: 0 on success, 1 on invalid input or a failed run, 2 on usage errors.\n"
    "See bd-qat(1), bd-eval(1), bd-stream(5).\n";

enum {
    OPT_LOSS = BD_OPT_FIRST_TOOL, OPT_LR, OPT_MIN_LR, OPT_SCHEDULE, OPT_WARMUP, OPT_ACCUM, OPT_STEPS, OPT_EPOCHS,
    OPT_WD, OPT_CLIP, OPT_BETA2, OPT_EVAL, OPT_EVAL_EVERY, OPT_SAVE_EVERY, OPT_RESUME, OPT_LOG, OPT_RECOMPUTE, OPT_DATA,
    OPT_GAMMA, OPT_REDUCTION, OPT_MASK_PROMPT, OPT_KEEP_BEST, OPT_TEACHER_LOGITS,
};

// Training sequences: tokens (n, T) and their targets (n, T), -1 where not scored; with
// stored teacher log-probabilities (--teacher-logits), the teacher's top-TK ids and
// log-probabilities for each position's prediction (n, T, TK).
typedef struct {
    int32_t *tok, *tgt;
    long long n;
    int tk;
    int32_t *top_ids;
    float *top_lp;
} seq_set;

// Cuts concatenated ids into sequences of T+1 tokens (inputs and next-token targets).
static seq_set sequences_from_ids(const int32_t *ids, size_t n_ids, int T) {
    seq_set s = {0};
    s.n = n_ids > 0 ? (long long)((n_ids - 1) / (size_t)T) : 0;
    s.tok = malloc(sizeof(int32_t) * (size_t)(s.n ? s.n : 1) * T);
    s.tgt = malloc(sizeof(int32_t) * (size_t)(s.n ? s.n : 1) * T);
    if (!s.tok || !s.tgt) bd_fatal("out of memory");
    for (long long i = 0; i < s.n; i++) {
        memcpy(s.tok + i * T, ids + i * T, sizeof(int32_t) * (size_t)T);
        memcpy(s.tgt + i * T, ids + i * T + 1, sizeof(int32_t) * (size_t)T);
    }
    return s;
}

// One sequence per sample: prompt + completion, cut to T+1 tokens, padded (unscored) to T.
// With mask_prompt the targets that are prompt tokens are not scored.
static seq_set sequences_from_samples(const char *path, int V, int T, bool mask_prompt, bool teacher_logits,
                                      long long *truncated) {
    bd_reader *r = bd_tool_open_reader(path, "bd.samples");
    seq_set s = {0};
    if (teacher_logits) {
        int64_t tk = 0;
        if (bd_obj_int(bd_obj_get(bd_reader_header(r), "logits_top_k"), &tk) < 0 || tk <= 0)
            bd_fatal("--teacher-logits: \"%s\" carries no teacher log-probabilities (make it with bd-teacher-gen --logits K)", path);
        s.tk = (int)tk;
    }
    long long cap = 0;
    const msgpack_object *rec;
    int rc;
    *truncated = 0;
    bd_ids sample = {0};  // prompt then completion of the current sample
    char why[400];
    while ((rc = bd_reader_next(r, &rec)) == BD_OK) {
        sample.n = 0;
        int e = bd_ids_append(&sample, rec, "prompt", V, why, sizeof why);
        int64_t np = (int64_t)sample.n;
        if (e == 0) e = bd_ids_append(&sample, rec, "completion", V, why, sizeof why);
        if (e < 0) bd_fatal("\"%s\" record %llu: %s", bd_reader_name(r), (unsigned long long)bd_reader_record_index(r), why);
        int64_t nc = (int64_t)sample.n - np;
        const int32_t *p = sample.ids, *c = sample.ids + np;
        if (np + nc < 2) continue;  // nothing to predict
        if (s.n == cap) {
            cap = cap ? cap * 2 : 1024;
            s.tok = realloc(s.tok, sizeof(int32_t) * (size_t)cap * T);
            s.tgt = realloc(s.tgt, sizeof(int32_t) * (size_t)cap * T);
            if (s.tk) {
                s.top_ids = realloc(s.top_ids, sizeof(int32_t) * (size_t)cap * T * s.tk);
                s.top_lp = realloc(s.top_lp, sizeof(float) * (size_t)cap * T * s.tk);
            }
            if (!s.tok || !s.tgt || (s.tk && (!s.top_ids || !s.top_lp))) bd_fatal("out of memory reading \"%s\"", path);
        }
        bd_tensor_view ti = {0}, tl = {0};
        if (s.tk) {  // (new tokens, TK): the teacher's distribution for each completion token
            unsigned long long ri = (unsigned long long)bd_reader_record_index(r);
            if (bd_obj_tensor(bd_obj_get(rec, "top_ids"), &ti, why, sizeof why) < 0 ||
                bd_obj_tensor(bd_obj_get(rec, "top_logprobs"), &tl, why, sizeof why) < 0)
                bd_fatal("\"%s\" record %llu: top_ids/top_logprobs: %s", path, ri, why);
            if (ti.dtype != BD_U32 || tl.dtype != BD_F32 || ti.ndim != 2 || tl.ndim != 2 || ti.shape[1] != s.tk ||
                tl.shape[1] != s.tk || ti.shape[0] != nc || tl.shape[0] != nc)
                bd_fatal("\"%s\" record %llu: top_ids must be u32 and top_logprobs f32 [%lld, %d] (one row per completion token)",
                         path, ri, (long long)nc, s.tk);
        }
        int32_t *tok = s.tok + s.n * T, *tgt = s.tgt + s.n * T;
        int64_t len = np + nc;
        if (len > T + 1) { len = T + 1; (*truncated)++; }
        for (int t = 0; t < T; t++) {
            int64_t i = t, j = t + 1;
            tok[t] = i < len ? (i < np ? p[i] : c[i - np]) : 0;
            tgt[t] = j < len && !(mask_prompt && j < np) ? (j < np ? p[j] : c[j - np]) : -1;
            if (s.tk) {  // only completion tokens have the teacher's distribution: the rest unscored
                size_t o = ((size_t)s.n * T + (size_t)t) * s.tk;
                if (tgt[t] >= 0 && j >= np) {
                    memcpy(s.top_ids + o, (const char *)ti.data + (size_t)(j - np) * s.tk * 4, (size_t)s.tk * 4);
                    memcpy(s.top_lp + o, (const char *)tl.data + (size_t)(j - np) * s.tk * 4, (size_t)s.tk * 4);
                    for (int k = 0; k < s.tk; k++)
                        if (s.top_ids[o + k] < 0 || s.top_ids[o + k] >= V || !(s.top_lp[o + k] <= 0))
                            bd_fatal("\"%s\" record %llu: top_ids/top_logprobs hold an id outside the vocabulary or a log-probability above 0",
                                     path, (unsigned long long)bd_reader_record_index(r));
                } else {
                    tgt[t] = -1;
                }
            }
        }
        s.n++;
    }
    if (rc != BD_EOF) bd_tool_reader_fatal(r);
    bd_ids_free(&sample);
    bd_reader_close(r);
    return s;
}

// The teacher's logits for one position from its stored top-TK log-probabilities: the listed
// ids get them and every other id an equal share of the remaining probability, so the
// softmax of u is a distribution over the whole vocabulary (needed by the reverse KL).
static void dense_teacher(float *u, const int32_t *ids, const float *lp, int tk, int V) {
    double top = 0;
    for (int k = 0; k < tk; k++) top += exp((double)lp[k]);
    double rest = 1.0 - top > 1e-12 ? 1.0 - top : 1e-12;
    float other = (float)log(rest / (double)(V > tk ? V - tk : 1));
    for (int v = 0; v < V; v++) u[v] = other;
    for (int k = 0; k < tk; k++) u[ids[k]] = lp[k];
}

// All ids of a bd.tokens stream, checked against the vocabulary.
static void read_tokens(const char *path, int V, bd_ids *out) {
    bd_reader *r = bd_tool_open_reader(path, "bd.tokens");
    const msgpack_object *rec;
    int rc;
    char why[400];
    while ((rc = bd_reader_next(r, &rec)) == BD_OK)
        if (bd_ids_append(out, rec, "ids", V, why, sizeof why) < 0)
            bd_fatal("\"%s\" record %llu: %s", bd_reader_name(r), (unsigned long long)bd_reader_record_index(r), why);
    if (rc != BD_EOF) bd_tool_reader_fatal(r);
    bd_reader_close(r);
}

// Mean NLL over the non-overlapping windows of T tokens of ids (every position scored).
static double evaluate(const bd_model *m, const bd_ids *ids, int T, int B) {
    if (m->quant.kind != BD_Q_NONE) {  // a student is evaluated as it will run: quantized
        bd_model q;
        char why[300];
        if (bd_model_alloc(&q, &m->cfg) < 0 || bd_model_fakequant(&q, m, &m->quant, &m->qpolicy, why, sizeof why) < 0)
            bd_fatal("evaluation: cannot quantize the student");
        bd_model plain = *m;
        plain.params = q.params;
        bd_weights_layout(&plain.cfg, plain.params, &plain.w);
        plain.quant.kind = BD_Q_NONE;
        double r = evaluate(&plain, ids, T, B);
        bd_model_free(&q);
        return r;
    }
    bd_fwd_state st;
    if (bd_fwd_state_init(&st, &m->cfg, B, T, false) < 0) bd_fatal("out of memory for evaluation");
    long long nwin = (long long)(ids->n / (size_t)T), scored = 0;
    double sum = 0;
    for (long long w = 0; w < nwin; w += B) {
        int b = nwin - w < B ? (int)(nwin - w) : B;
        double mean;
        int n = bd_forward_nll(&st, m, ids->ids + (size_t)w * T, NULL, b, T, &mean);
        if (n < 0) bd_fatal("evaluation failed: %s", bd_strerror(n));
        sum += mean * n;
        scored += n;
    }
    bd_fwd_state_free(&st);
    return scored ? sum / (double)scored : NAN;
}

int main(int argc, char **argv) {
    bd_tool_init("bd-qat", help, argc, argv);
    static const struct option longopts[] = {
        {"model", required_argument, 0, 'm'}, {"loss", required_argument, 0, OPT_LOSS},
        {"output", required_argument, 0, 'o'}, {"lr", required_argument, 0, OPT_LR},
        {"min-lr", required_argument, 0, OPT_MIN_LR}, {"schedule", required_argument, 0, OPT_SCHEDULE},
        {"warmup", required_argument, 0, OPT_WARMUP}, {"batch", required_argument, 0, 'b'},
        {"seq-len", required_argument, 0, 'T'}, {"grad-accum", required_argument, 0, OPT_ACCUM},
        {"steps", required_argument, 0, OPT_STEPS}, {"epochs", required_argument, 0, OPT_EPOCHS},
        {"weight-decay", required_argument, 0, OPT_WD}, {"grad-clip", required_argument, 0, OPT_CLIP},
        {"beta2", required_argument, 0, OPT_BETA2}, {"eval", required_argument, 0, OPT_EVAL},
        {"eval-every", required_argument, 0, OPT_EVAL_EVERY}, {"save-every", required_argument, 0, OPT_SAVE_EVERY},
        {"resume", no_argument, 0, OPT_RESUME}, {"log", required_argument, 0, OPT_LOG},
        {"recompute", no_argument, 0, OPT_RECOMPUTE}, {"data", required_argument, 0, OPT_DATA},
        {"gamma", required_argument, 0, OPT_GAMMA}, {"reduction", required_argument, 0, OPT_REDUCTION},
        {"mask-prompt", no_argument, 0, OPT_MASK_PROMPT}, {"keep-best", no_argument, 0, OPT_KEEP_BEST},
        {"teacher-logits", no_argument, 0, OPT_TEACHER_LOGITS},
        BD_QUANT_LONGOPTS,
        BD_COMMON_LONGOPTS, {0, 0, 0, 0}};
    const char *model_path = NULL, *output = NULL, *eval_path = NULL, *log_path = NULL, *loss_name = NULL;
    double lr = 3e-4, min_lr = -1, wd = 0, clip = 1.0, beta2 = 0.95;
    int batch = 4, seq_len = 0, accum = 1, eval_every = 0, save_every = 0;
    long long steps = 0, epochs = 0, warmup = 0;
    bd_sched_kind sched_kind = BD_SCHED_COSINE;
    bool resume = false, recompute = false, mask_prompt = false, seqsum = false, keep_best = false, teacher_logits = false;
    const char *samples_path = NULL;
    double gamma = -1;
    bd_quant_opts qo = bd_quant_opts_default();
    int opt;
    while ((opt = getopt_long(argc, argv, "m:o:b:T:" BD_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        switch (opt) {
        case 'm': model_path = optarg; break;
        case 'o': output = optarg; break;
        case OPT_LOSS: loss_name = optarg; break;
        case OPT_LR: lr = bd_arg_double("--lr", optarg, 0, 10); break;
        case OPT_MIN_LR: min_lr = bd_arg_double("--min-lr", optarg, 0, 10); break;
        case OPT_SCHEDULE:
            if (!strcmp(optarg, "constant")) sched_kind = BD_SCHED_CONSTANT;
            else if (!strcmp(optarg, "cosine")) sched_kind = BD_SCHED_COSINE;
            else bd_usage_error("--schedule: \"%s\" is not constant or cosine", optarg);
            break;
        case OPT_WARMUP: warmup = bd_arg_int("--warmup", optarg, 0, 1LL << 40); break;
        case 'b': batch = (int)bd_arg_int("--batch", optarg, 1, 4096); break;
        case 'T': seq_len = (int)bd_arg_int("--seq-len", optarg, 2, 1 << 20); break;
        case OPT_ACCUM: accum = (int)bd_arg_int("--grad-accum", optarg, 1, 1 << 16); break;
        case OPT_STEPS: steps = bd_arg_int("--steps", optarg, 1, 1LL << 40); break;
        case OPT_EPOCHS: epochs = bd_arg_int("--epochs", optarg, 1, 1 << 20); break;
        case OPT_WD: wd = bd_arg_double("--weight-decay", optarg, 0, 10); break;
        case OPT_CLIP: clip = bd_arg_double("--grad-clip", optarg, 0, 1e9); break;
        case OPT_BETA2: beta2 = bd_arg_double("--beta2", optarg, 0, 0.999999); break;
        case OPT_EVAL: eval_path = optarg; break;
        case OPT_EVAL_EVERY: eval_every = (int)bd_arg_int("--eval-every", optarg, 1, 1 << 30); break;
        case OPT_SAVE_EVERY: save_every = (int)bd_arg_int("--save-every", optarg, 1, 1 << 30); break;
        case OPT_RESUME: resume = true; break;
        case OPT_LOG: log_path = optarg; break;
        case OPT_RECOMPUTE: recompute = true; break;
        case OPT_DATA: samples_path = optarg; break;
        case OPT_GAMMA: gamma = bd_arg_double("--gamma", optarg, 0, 1); break;
        case OPT_REDUCTION:
            if (!strcmp(optarg, "mean")) seqsum = false;
            else if (!strcmp(optarg, "seqsum")) seqsum = true;
            else bd_usage_error("--reduction: \"%s\" is not mean or seqsum", optarg);
            break;
        case OPT_MASK_PROMPT: mask_prompt = true; break;
        case OPT_KEEP_BEST: keep_best = true; break;
        case OPT_TEACHER_LOGITS: teacher_logits = true; break;
        default:
            if (!bd_tool_quant_option(&qo, opt, optarg)) bd_tool_common_option(opt, optarg);
        }
    }
    bd_tool_options_done();
    bd_quant_opts_done(&qo);
    bd_qspec q = qo.q;
    bd_qpolicy policy = qo.policy;
    const char *clip_path = qo.clip;
    if (!model_path) bd_usage_error("--model is required");
    if (!output || !strcmp(output, "-")) bd_usage_error("-o OUT is required (a file: checkpoints go next to it)");
    if (!loss_name) bd_usage_error("--loss is required (ce, fkl, rkl, cakld or jsd)");
    int lk = bd_loss_parse(loss_name);
    if (lk < 0) bd_usage_error("--loss: \"%s\" is not one of ce, fkl, rkl, cakld, jsd", loss_name);
    if (steps && epochs) bd_usage_error("give --steps or --epochs, not both");
    if (eval_every && !eval_path) bd_usage_error("--eval-every needs --eval TOKENS");
    if (keep_best && !eval_path) bd_usage_error("--keep-best needs --eval TOKENS");
    if (optind + 1 < argc) bd_usage_error("one token stream at most (got %d)", argc - optind);
    if (samples_path && optind < argc) bd_usage_error("give either --data samples.bdz or a token stream, not both");
    if (mask_prompt && !samples_path) bd_usage_error("--mask-prompt needs --data samples.bdz");
    if (gamma >= 0 && lk != BD_LOSS_CAKLD) bd_usage_error("--gamma is cakld's; the loss is %s", loss_name);
    const char *data_path = samples_path ? samples_path : optind < argc ? argv[optind] : "-";
    bool distill = lk != BD_LOSS_CE;
    if (teacher_logits && (!samples_path || !distill))
        bd_usage_error("--teacher-logits needs --data samples.bdz and a distillation loss (fkl, rkl, cakld, jsd)");
    uint64_t seed = bd_tool_self.seed;

    char state_path[4096], why[600];
    snprintf(state_path, sizeof state_path, "%s.state", output);
    bd_model m;
    bd_ckpt_info info = {0};
    float *moments = NULL;
    long long adam_t = 0;
    struct stat sb;
    bool resuming = resume && stat(state_path, &sb) == 0;
    if (resuming) {
        if (bd_ckpt_load(state_path, &m, &info, &moments, &adam_t, why, sizeof why) < 0) bd_fatal("--resume: %s", why);
        if (info.batch != batch || info.seq_len != (seq_len ? seq_len : info.seq_len) || info.grad_accum != accum ||
            info.seed != seed)
            bd_fatal("--resume: \"%s\" was written with --batch %d --seq-len %d --grad-accum %d --seed %llu; give the same",
                     state_path, info.batch, info.seq_len, info.grad_accum, (unsigned long long)info.seed);
        seq_len = info.seq_len;
    } else {
        if (resume) bd_log(BD_LOG_INFO, "--resume: no \"%s\" yet, starting from %s", state_path, model_path);
        bd_tool_load_model_latent(model_path, &m);
    }
    int T = seq_len ? seq_len : (m.cfg.max_seq < 256 ? m.cfg.max_seq : 256);
    if (T > m.cfg.max_seq) bd_usage_error("--seq-len %d exceeds the model's context %d", T, m.cfg.max_seq);

    // The student: latent weights clamped to the clip ranges once, then quantized on every
    // forward pass. A resumed checkpoint already carries both.
    if (q.kind != BD_Q_NONE) {
        if (resuming) {
            if (m.quant.kind != q.kind || m.quant.bits != q.bits || m.quant.group != q.group)
                bd_fatal("--resume: \"%s\" is a %s %d-bit group %d student; give the same --quant/--bits/--group",
                         state_path, bd_qkind_name(m.quant.kind), m.quant.bits, m.quant.group);
        } else {
            if (m.quant.kind != BD_Q_NONE)
                bd_fatal("--model \"%s\" is already a student (%s %d-bit); start from a full-precision model", model_path,
                         bd_qkind_name(m.quant.kind), m.quant.bits);
            if (bd_qpolicy_check(&policy, &q, &m.cfg, why, sizeof why) < 0) bd_fatal("--quant: %s", why);
            if (clip_path && bd_clipfile_apply(clip_path, &m, &q, why, sizeof why) < 0) bd_fatal("--clip: %s", why);
            m.quant = q;
            m.qpolicy = policy;
        }
    } else if (m.quant.kind != BD_Q_NONE) {
        q = m.quant;  // continuing to train a student keeps its spec
        policy = m.qpolicy;
    }

    seq_set seqs;
    long long truncated = 0;
    size_t data_tokens;
    if (samples_path) {
        seqs = sequences_from_samples(samples_path, m.cfg.vocab, T, mask_prompt, teacher_logits, &truncated);
        data_tokens = (size_t)seqs.n * T;
        if (truncated) bd_log(BD_LOG_WARN, "\"%s\": %lld samples longer than --seq-len %d + 1 were cut", samples_path, truncated, T);
    } else {
        bd_ids data = {0};
        read_tokens(data_path, m.cfg.vocab, &data);
        seqs = sequences_from_ids(data.ids, data.n, T);
        data_tokens = data.n;
        free(data.ids);
    }
    long long n_seq = seqs.n;
    long long per_step = (long long)batch * accum;
    if (n_seq < per_step)
        bd_fatal("\"%s\": %zu tokens make %lld sequences of %d+1, fewer than one step needs (%lld)", data_path, data_tokens,
                 n_seq, T, per_step);
    long long steps_per_epoch = n_seq / per_step;
    long long total = steps ? steps : (epochs ? epochs : 1) * steps_per_epoch;
    bd_ids evd = {0};
    if (eval_path) {
        read_tokens(eval_path, m.cfg.vocab, &evd);
        if (evd.n < (size_t)T) bd_fatal("\"%s\": %zu tokens, fewer than one window of %d", eval_path, evd.n, T);
    }

    bd_adamw_cfg ocfg = {0.9f, (float)beta2, 1e-8f, (float)wd, (float)clip};
    bd_schedule sched = {sched_kind, (float)lr, (float)(min_lr >= 0 ? min_lr : lr / 10), warmup, total};
    bd_trainer tr;
    int rc = bd_trainer_init(&tr, &m, batch, T, accum, &ocfg, &sched, recompute);
    if (rc < 0) bd_fatal("cannot set up training for B=%d T=%d: %s", batch, T, bd_strerror(rc));
    if (resuming) {
        memcpy(tr.opt.m, moments, 2 * m.n_params * sizeof(float));  // m then v, one allocation
        tr.opt.t = adam_t;
        tr.step = info.step;
        free(moments);
    } else {
        info = (bd_ckpt_info){0, 0, 0, 0, seed, batch, T, accum, -1, 0};
    }
    bd_qat_hooks hooks = {0};
    if (q.kind != BD_Q_NONE && bd_qat_hooks_attach(&hooks, &tr, &q, &policy) < 0)
        bd_fatal("out of memory for the quantized forward weights");

    // The teacher: the full-precision model given with --model, frozen.
    bd_model teacher = {0};
    bd_fwd_state tst = {0};
    float *tlogits = NULL;
    bd_distill dctx = {0};
    bd_head_loss head = {bd_distill_head, &dctx};
    int V = m.cfg.vocab;
    bool use_head = distill || seqsum;
    if (use_head) {
        if (distill && teacher_logits) {
            tlogits = malloc(sizeof(float) * (size_t)per_step * T * V);
            if (!tlogits) bd_fatal("out of memory for %lld x %d teacher logits", per_step * T, V);
        } else if (distill) {
            bd_tool_load_model(model_path, &teacher);
            if (teacher.quant.kind != BD_Q_NONE) bd_log(BD_LOG_WARN, "the teacher \"%s\" is itself quantized", model_path);
            if (teacher.cfg.vocab != V || teacher.cfg.dim != m.cfg.dim) bd_fatal("the teacher and the student differ in shape");
            if (bd_fwd_state_init(&tst, &teacher.cfg, batch, T, false) < 0) bd_fatal("out of memory for the teacher");
            tlogits = malloc(sizeof(float) * (size_t)per_step * T * V);
            if (!tlogits) bd_fatal("out of memory for %lld x %d teacher logits", per_step * T, V);
        }
        bd_loss_spec spec = {(bd_loss_kind)lk, 0, 1.0f};
        if (bd_distill_init(&dctx, &spec, batch, T, V) < 0) bd_fatal("out of memory");
    }
    // cakld's g: the teacher's mean top-1 probability over the training data, measured once.
    if (lk == BD_LOSS_CAKLD) {
        if (gamma < 0 && resuming) gamma = info.gamma;
        if (gamma < 0 && teacher_logits) {
            double sum = 0;
            long long cnt = 0;
            for (long long i = 0; i < n_seq * T; i++)
                if (seqs.tgt[i] >= 0) {
                    float best = -INFINITY;
                    for (int k = 0; k < seqs.tk; k++) best = fmaxf(best, seqs.top_lp[i * seqs.tk + k]);
                    sum += exp(best);
                    cnt++;
                }
            gamma = cnt ? sum / (double)cnt : 0.5;
            bd_log(BD_LOG_INFO, "cakld: the stored teacher's mean top-1 probability on %lld positions is %.4f", cnt, gamma);
        }
        if (gamma < 0) {
            double sum = 0;
            long long cnt = 0;
            float *lg = malloc(sizeof(float) * (size_t)T * V);
            if (!lg) bd_fatal("out of memory");
            for (long long i = 0; i < n_seq; i++) {
                if (bd_forward(&tst, &teacher, seqs.tok + i * T, 1, T, lg) < 0) bd_fatal("teacher forward failed");
                for (int t = 0; t < T; t++)
                    if (seqs.tgt[i * T + t] >= 0) { sum += bd_top1_prob_sum(lg + (size_t)t * V, 1, V); cnt++; }
            }
            free(lg);
            gamma = cnt ? sum / (double)cnt : 0.5;
            bd_log(BD_LOG_INFO, "cakld: the teacher's mean top-1 probability on %lld positions is %.4f", cnt, gamma);
        }
        dctx.spec.gamma = (float)gamma;
    }
    info.gamma = gamma;

    char desc[256];
    bd_model_describe(&m, desc, sizeof desc);
    bd_log(BD_LOG_INFO, "%s; %lld sequences of %d, %lld steps of %lld sequences%s", desc, n_seq, T, total, per_step,
           resuming ? " (resumed)" : "");

    bd_writer *log = NULL;
    bd_producer prod = bd_tool_producer();
    if (log_path) {
        log = bd_tool_open_writer(log_path);
        if (bd_writer_begin_header(log, "bd.metrics", &prod, 6) < 0) bd_fatal("\"%s\": cannot write", log_path);
        msgpack_packer *pk = bd_writer_packer(log);
        bd_pack_kv_str(pk, "model", model_path);
        bd_pack_kv_str(pk, "loss", loss_name);
        bd_pack_kv_int(pk, "batch", batch);
        bd_pack_kv_int(pk, "seq_len", T);
        bd_pack_kv_int(pk, "grad_accum", accum);
        bd_pack_kv_int(pk, "steps", total);
        if (bd_writer_end_object(log) < 0) bd_fatal("\"%s\": write failed", log_path);
    }

    int32_t *tokens = malloc(sizeof(int32_t) * (size_t)per_step * T), *targets = malloc(sizeof(int32_t) * (size_t)per_step * T);
    long long *order = malloc(sizeof(long long) * (size_t)n_seq);
    if (!tokens || !targets || !order) bd_fatal("out of memory");
    bd_epoch_order(order, n_seq, seed, info.epoch);
    bd_progress pr;
    char label[128];
    snprintf(label, sizeof label, "train");
    bd_progress_start(&pr, label, (uint64_t)((total - tr.step) * per_step * T), "tok");
    pr.label = label;
    double t_run = bd_now(), last_eval = NAN, best_eval = INFINITY;
    long long run_tokens = 0;  // trained by this process (progress)
    while (tr.step < total) {
        if (info.pos + per_step > n_seq) {  // next epoch, in a new order
            info.epoch++;
            info.pos = 0;
            bd_epoch_order(order, n_seq, seed, info.epoch);
        }
        long long scored = 0;
        for (long long i = 0; i < per_step; i++) {
            long long k = order[info.pos + i];
            memcpy(tokens + i * T, seqs.tok + k * T, sizeof(int32_t) * (size_t)T);
            memcpy(targets + i * T, seqs.tgt + k * T, sizeof(int32_t) * (size_t)T);
            for (int t = 0; t < T; t++) scored += targets[i * T + t] >= 0;
        }
        double t0 = bd_now();
        if (distill && teacher_logits) {
            for (long long i = 0; i < per_step; i++) {
                long long k = order[info.pos + i];
                for (int t = 0; t < T; t++)
                    if (targets[i * T + t] >= 0)
                        dense_teacher(tlogits + ((size_t)i * T + t) * V, seqs.top_ids + ((size_t)k * T + t) * seqs.tk,
                                      seqs.top_lp + ((size_t)k * T + t) * seqs.tk, seqs.tk, V);
            }
        } else if (distill)
            for (int a = 0; a < accum; a++)
                if (bd_forward(&tst, &teacher, tokens + (size_t)a * batch * T, batch, T, tlogits + (size_t)a * batch * T * V) < 0)
                    bd_fatal("teacher forward failed");
        // mean: every scored token weighs the same; seqsum: tokens sum within a sequence, the
        // sequences average.
        bd_distill_begin_step(&dctx, tlogits, targets,
                              seqsum ? (float)(1.0 / (double)per_step) : (float)(scored ? 1.0 / (double)scored : 0.0));
        bd_step_stats st;
        rc = bd_trainer_step(&tr, tokens, targets, batch, T, use_head ? &head : NULL, &st);
        if (rc < 0) bd_fatal("step %lld failed: %s", tr.step + 1, rc == BD_ERR_VALUE ? "the gradient is not finite (lower --lr?)" : bd_strerror(rc));
        double dt = bd_now() - t0, tps = (double)per_step * T / dt;
        info.pos += per_step;
        info.tokens += per_step * T;
        run_tokens += per_step * T;
        info.step = tr.step;
        bool do_eval = eval_path && ((eval_every && tr.step % eval_every == 0) || tr.step == total);
        if (do_eval) {
            last_eval = evaluate(&m, &evd, T, batch);
            bd_log(BD_LOG_INFO, "step %lld: eval loss %.4f (ppl %.3f)", tr.step, last_eval, exp(last_eval));
            if (keep_best && !(last_eval >= best_eval)) {
                best_eval = last_eval;
                char best_path[4200];
                snprintf(best_path, sizeof best_path, "%s.best", output);
                if (bd_model_save(&m, best_path, &prod, BD_F32, why, sizeof why) < 0) bd_fatal("--keep-best: %s", why);
                bd_log(BD_LOG_INFO, "step %lld: new best, saved %s", tr.step, best_path);
            }
        }
        if (log) {
            msgpack_packer *pk = bd_writer_packer(log);
            msgpack_pack_map(pk, do_eval ? 9 : 8);
            bd_pack_kv_int(pk, "step", tr.step);
            bd_pack_kv_double(pk, "loss", st.loss);
            bd_pack_kv_double(pk, "lr", st.lr);
            bd_pack_kv_double(pk, "grad_norm", st.grad_norm);
            bd_pack_kv_double(pk, "tokens_per_s", tps);
            bd_pack_kv_int(pk, "tokens", info.tokens);
            bd_pack_kv_int(pk, "epoch", info.epoch);
            bd_pack_kv_double(pk, "seconds", bd_now() - t_run);
            if (do_eval) bd_pack_kv_double(pk, "eval_loss", last_eval);
            if (bd_writer_end_object(log) < 0 || bd_writer_flush(log) < 0) bd_fatal("\"%s\": write failed", log_path);
        }
        bd_log(BD_LOG_DEBUG, "step %lld loss %.4f lr %.3g |g| %.3g %.0f tok/s", tr.step, st.loss, st.lr, st.grad_norm, tps);
        snprintf(label, sizeof label, "step %lld/%lld loss %.4f", tr.step, total, st.loss);
        bd_progress_update(&pr, (uint64_t)run_tokens);
        if (save_every && (tr.step % save_every == 0 || tr.step == total)) {
            if (bd_ckpt_save(state_path, &m, &tr.opt, &info, &prod, why, sizeof why) < 0) bd_fatal("checkpoint: %s", why);
            bd_log(BD_LOG_INFO, "step %lld: checkpoint %s", tr.step, state_path);
        }
    }
    bd_progress_finish(&pr);
    if (bd_model_save(&m, output, &prod, BD_F32, why, sizeof why) < 0) bd_fatal("%s", why);
    if (log && bd_writer_close(log) < 0) bd_fatal("\"%s\": write failed: %s", log_path, strerror(errno));
    double secs = bd_now() - t_run;
    bd_train_timing *tm = &tr.st.timing;
    bd_log(BD_LOG_INFO, "done: %lld steps, %.1f s; forward %.1f s, head %.1f s, backward %.1f s, optimizer %.1f s",
           tr.step, secs, tm->forward, tm->head, tm->backward, tm->optimizer);
    if (eval_path) bd_log(BD_LOG_INFO, "final eval loss %.4f", last_eval);
    free(tokens), free(targets), free(order), free(seqs.tok), free(seqs.tgt), free(seqs.top_ids), free(seqs.top_lp), free(evd.ids);
    free(tlogits);
    bd_distill_free(&dctx);
    if (distill && !teacher_logits) { bd_fwd_state_free(&tst); bd_model_free(&teacher); }
    bd_trainer_free(&tr);
    bd_qat_hooks_free(&hooks);
    bd_model_free(&m);
    return 0;
}
