// bd-qat: trains a model with AdamW, warmup/cosine schedules, gradient accumulation,
// periodic evaluation, checkpoints that a killed run resumes from exactly, and a bd.metrics
// log. With --quant it is quantization-aware training: the student's latent weights are
// fake-quantized in every forward pass (straight-through backward); with a distillation
// loss (cakld, fkl, rkl, jsd) the frozen full-precision model is the teacher, run on the
// same batch (BitDistiller), or --teacher's model; --kd-weight and --ad-weight add BitNet
// Distillation's logits and attention-relation terms to ce. Data: a bd.tokens stream, or a
// bd.samples stream (the teacher's own, or labelled task data from bd-task). Under mpirun it
// trains data-parallel: each rank runs --batch sequences of every micro-batch, rank 0 writes.
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bd_ckpt.h"
#include "bd_clipfile.h"
#include "bd_dist.h"
#include "bd_ids.h"
#include "bd_log.h"
#include "bd_metrics.h"
#include "bd_model_io.h"
#include "bd_outfile.h"
#include "bd_progress.h"
#include "bd_qat_setup.h"
#include "bd_qmodel.h"
#include "bd_runplan.h"
#include "bd_seqs.h"
#include "bd_tool.h"

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
        "distillation losses use M, frozen, as the teacher on the same batch (or --teacher T).\n"
        "\n"
        "  -m, --model M          starting model (and teacher): llama2.c, Hugging Face dir, GGUF or\n"
        "                         bd.model\n"
        "                         (\"-\": a bd.model stream on standard input)\n"
        "      --loss NAME        ce (cross-entropy on the data), or distillation against the teacher:\n"
        "                         fkl KL(T||S), rkl KL(S||T), cakld g*rkl+(1-g)*fkl, jsd\n"
        "      --gamma G          cakld's g (default: the teacher's mean top-1 probability on the\n"
        "                         training data, measured once before training)\n"
        "      --reduction R      mean (per scored token, default) or seqsum (sum over tokens, mean\n"
        "                         over sequences, as BitDistiller's reference code)\n"
        "      --data FILE        train on FILE instead of TOKENS: a bd.samples stream, or a bd.tokens\n"
        "                         file (the same as giving it as TOKENS)\n"
        "      --mask-prompt      with --data: do not score the prompt's tokens\n"
        "      --teacher T        the teacher model, if not M (any size; the same vocabulary)\n"
        "  BitNet Distillation's terms, added to --loss ce (they need a teacher model):\n"
        "      --kd-weight L      lambda: + L * tau^2 * KL(p_T^tau || p_S^tau) at every real token\n"
        "      --kd-temp TAU      tau (default 5)\n"
        "      --ad-weight G      gamma: + G * the attention-relation KL of q, k, v at one layer\n"
        "      --ad-layer L[:LT]  the student's layer L and the teacher's LT (default -1: the last;\n"
        "                         negative counts from the end; LT defaults to L)\n"
        "      --ad-heads A       relation heads (default 32, fewer while a k head would have < 8)\n"
        "      --teacher-logits   with --data from bd-teacher-gen --logits K: distill from the stored\n"
        "                         top-K log-probabilities instead of running the teacher (the other\n"
        "                         ids share the remaining probability; only completions are scored)\n"
        "  Quantization-aware training (the student's spec; --clip clamps the latent weights once):\n" BD_QUANT_HELP
        "      --subln[=P]        add SubLN norms (weights 1) to a model without them: P paper (default;\n"
        "                         before wo and w2) or all (before every block linear, BitDistill's code)\n"
        "      --subln-eps E      their RMSNorm epsilon (default 1e-8, as BitDistill's code)\n"
        "      --keep-best        also write OUT.best: the model with the lowest --eval loss\n"
        "  -o, --output OUT       the trained model (bd.model stream, f32; \"-\": standard output)\n"
        "      --lr X             peak learning rate (default 3e-4)\n"
        "      --min-lr X         the decay's floor (default lr/10 for cosine, 0 for linear)\n"
        "      --schedule S       constant, cosine or linear (default cosine)\n"
        "      --warmup N         linear warmup steps (default 0)\n"
        "  -b, --batch B          sequences per micro-batch (default 4)\n"
        "  -T, --seq-len T        tokens per sequence (default min(256, the model's context))\n"
        "      --grad-accum A     micro-batches per optimizer step (default 1)\n"
        "      --steps N          optimizer steps (default: one epoch)\n"
        "      --epochs E         epochs instead of steps (a step takes B*A sequences; the tail of an\n"
        "                         epoch shorter than a step is skipped)\n"
        "      --weight-decay W   decoupled, on matrices, embeddings and SubLN weights (default 0)\n"
        "      --grad-clip X      clip the global gradient norm to X (default 1; 0: off)\n"
        "      --beta2 X          AdamW's beta2 (default 0.95; beta1 0.9, eps 1e-8)\n"
        "      --optim-dtype D    f32 (default) or bf16: how AdamW's moments are stored (bf16: half\n"
        "                         their memory, rounded to nearest even; the arithmetic stays f32)\n"
        "      --eval TOKENS      bd.tokens stream to evaluate on (windows of --seq-len)\n"
        "      --eval-every N     evaluate every N steps and at the end (default: at the end)\n"
        "      --save-every N     write the checkpoint OUT.state (+ OUT.state.wSTEP) every N steps\n"
        "                         and at the end\n"
        "      --resume           continue from OUT.state if it exists (same data and settings)\n"
        "      --log FILE         write a bd.metrics stream: one record per step\n"
        "      --recompute        recompute each block's activations in the backward pass\n"
        "                         (less memory, about 1/3 more compute)\n"
        "Under mpirun -np R (a build with MPI) the run is data-parallel: every rank takes --batch of\n"
        "each micro-batch's R*B sequences, gradients are summed over the ranks, AdamW's moments are\n"
        "sharded over them, and rank 0 writes OUT, --log and the checkpoints (see bd-qat(1)).\n" BD_COMMON_HELP
        "\nExit status: 0 on success, 1 on invalid input or a failed run, 2 on usage errors.\n"
        "See bd-qat(1), bd-eval(1), bd-stream(5).\n";

enum {
    OPT_LOSS = BD_OPT_FIRST_TOOL,
    OPT_LR,
    OPT_MIN_LR,
    OPT_SCHEDULE,
    OPT_WARMUP,
    OPT_ACCUM,
    OPT_STEPS,
    OPT_EPOCHS,
    OPT_WD,
    OPT_CLIP,
    OPT_BETA2,
    OPT_EVAL,
    OPT_EVAL_EVERY,
    OPT_SAVE_EVERY,
    OPT_RESUME,
    OPT_LOG,
    OPT_RECOMPUTE,
    OPT_DATA,
    OPT_GAMMA,
    OPT_REDUCTION,
    OPT_MASK_PROMPT,
    OPT_KEEP_BEST,
    OPT_TEACHER_LOGITS,
    OPT_SUBLN,
    OPT_SUBLN_EPS,
    OPT_TEACHER,
    OPT_KD_WEIGHT,
    OPT_KD_TEMP,
    OPT_AD_WEIGHT,
    OPT_AD_LAYER,
    OPT_AD_HEADS,
    OPT_OPTIM_DTYPE,
};

typedef struct {
    const char *model_path, *output, *eval_path, *log_path, *loss_name, *samples_path, *data_path, *clip_path;
    const char *teacher_path;  // --teacher, else NULL: the teacher is --model
    const char *data_opt;      // "--data" or "TOKENS": how the data was given
    double kd_weight, kd_temp, ad_weight;
    int ad_layer, ad_teacher_layer, ad_heads;  // layers as given (negative: from the end)
    bool ad_layer_given, kd_temp_given;
    double lr, min_lr, wd, clip, beta2, gamma;
    int batch, seq_len, accum, eval_every, save_every;
    long long steps, epochs, warmup;
    bd_sched_kind sched_kind;
    bd_dtype optim_dtype;  // AdamW's moments: BD_F32 or BD_BF16
    bd_loss_kind loss;
    bool resume, recompute, mask_prompt, seqsum, keep_best, teacher_logits, distill;
    bd_qspec q;
    bd_qpolicy policy;
    bd_subln subln;  // --subln: the placement to add (BD_SUBLN_NONE: none asked for)
    double subln_eps;
    char state_path[4096];  // OUT.state
    int ranks;              // data-parallel ranks (1 alone); a step takes batch * accum * ranks sequences
} qat_opts;

static bd_dist dist;  // this process's place in an mpirun job (one rank alone)

// A failed rank ends the whole job (the others would wait for it in the next collective).
static void abort_job(int status, void *arg) {
    (void)arg;
    if (status != 0 && dist.mpi) bd_dist_abort(&dist, status);
}

// --ad-layer L or L:LT.
static void parse_ad_layer(const char *arg, qat_opts *o) {
    char buf[64];
    snprintf(buf, sizeof buf, "%s", arg);
    char *colon = strchr(buf, ':');
    if (colon) *colon = 0;
    o->ad_layer = (int)bd_arg_int("--ad-layer", buf, -100000, 100000);
    o->ad_teacher_layer = colon ? (int)bd_arg_int("--ad-layer (the teacher's)", colon + 1, -100000, 100000) : INT_MIN;
}

static void parse_options(int argc, char **argv, qat_opts *o) {
    static const struct option longopts[] = {{"model", required_argument, 0, 'm'},
                                             {"loss", required_argument, 0, OPT_LOSS},
                                             {"output", required_argument, 0, 'o'},
                                             {"lr", required_argument, 0, OPT_LR},
                                             {"min-lr", required_argument, 0, OPT_MIN_LR},
                                             {"schedule", required_argument, 0, OPT_SCHEDULE},
                                             {"warmup", required_argument, 0, OPT_WARMUP},
                                             {"batch", required_argument, 0, 'b'},
                                             {"seq-len", required_argument, 0, 'T'},
                                             {"grad-accum", required_argument, 0, OPT_ACCUM},
                                             {"steps", required_argument, 0, OPT_STEPS},
                                             {"epochs", required_argument, 0, OPT_EPOCHS},
                                             {"weight-decay", required_argument, 0, OPT_WD},
                                             {"grad-clip", required_argument, 0, OPT_CLIP},
                                             {"beta2", required_argument, 0, OPT_BETA2},
                                             {"eval", required_argument, 0, OPT_EVAL},
                                             {"eval-every", required_argument, 0, OPT_EVAL_EVERY},
                                             {"save-every", required_argument, 0, OPT_SAVE_EVERY},
                                             {"resume", no_argument, 0, OPT_RESUME},
                                             {"log", required_argument, 0, OPT_LOG},
                                             {"recompute", no_argument, 0, OPT_RECOMPUTE},
                                             {"data", required_argument, 0, OPT_DATA},
                                             {"gamma", required_argument, 0, OPT_GAMMA},
                                             {"reduction", required_argument, 0, OPT_REDUCTION},
                                             {"mask-prompt", no_argument, 0, OPT_MASK_PROMPT},
                                             {"keep-best", no_argument, 0, OPT_KEEP_BEST},
                                             {"teacher-logits", no_argument, 0, OPT_TEACHER_LOGITS},
                                             {"subln", optional_argument, 0, OPT_SUBLN},
                                             {"subln-eps", required_argument, 0, OPT_SUBLN_EPS},
                                             {"teacher", required_argument, 0, OPT_TEACHER},
                                             {"kd-weight", required_argument, 0, OPT_KD_WEIGHT},
                                             {"kd-temp", required_argument, 0, OPT_KD_TEMP},
                                             {"ad-weight", required_argument, 0, OPT_AD_WEIGHT},
                                             {"ad-layer", required_argument, 0, OPT_AD_LAYER},
                                             {"ad-heads", required_argument, 0, OPT_AD_HEADS},
                                             {"optim-dtype", required_argument, 0, OPT_OPTIM_DTYPE},
                                             BD_QUANT_LONGOPTS,
                                             BD_COMMON_LONGOPTS,
                                             {0, 0, 0, 0}};
    *o = (qat_opts){.lr = 3e-4,
                    .min_lr = -1,
                    .clip = 1.0,
                    .beta2 = 0.95,
                    .gamma = -1,
                    .subln_eps = -1,
                    .kd_temp = 5,
                    .ad_layer = -1,
                    .ad_teacher_layer = INT_MIN,
                    .batch = 4,
                    .accum = 1,
                    .sched_kind = BD_SCHED_COSINE};
    bd_quant_opts qo = bd_quant_opts_default();
    int opt;
    while ((opt = getopt_long(argc, argv, "m:o:b:T:" BD_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        switch (opt) {
        case 'm': o->model_path = optarg; break;
        case 'o': o->output = optarg; break;
        case OPT_LOSS: o->loss_name = optarg; break;
        case OPT_LR: o->lr = bd_arg_double("--lr", optarg, 0, 10); break;
        case OPT_MIN_LR: o->min_lr = bd_arg_double("--min-lr", optarg, 0, 10); break;
        case OPT_SCHEDULE:
            if (!strcmp(optarg, "constant"))
                o->sched_kind = BD_SCHED_CONSTANT;
            else if (!strcmp(optarg, "cosine"))
                o->sched_kind = BD_SCHED_COSINE;
            else if (!strcmp(optarg, "linear"))
                o->sched_kind = BD_SCHED_LINEAR;
            else
                bd_usage_error("--schedule: \"%s\" is not constant, cosine or linear", optarg);
            break;
        case OPT_WARMUP: o->warmup = bd_arg_int("--warmup", optarg, 0, 1LL << 40); break;
        case 'b': o->batch = (int)bd_arg_int("--batch", optarg, 1, 4096); break;
        case 'T': o->seq_len = (int)bd_arg_int("--seq-len", optarg, 2, 1 << 20); break;
        case OPT_ACCUM: o->accum = (int)bd_arg_int("--grad-accum", optarg, 1, 1 << 16); break;
        case OPT_STEPS: o->steps = bd_arg_int("--steps", optarg, 1, 1LL << 40); break;
        case OPT_EPOCHS: o->epochs = bd_arg_int("--epochs", optarg, 1, 1 << 20); break;
        case OPT_WD: o->wd = bd_arg_double("--weight-decay", optarg, 0, 10); break;
        case OPT_CLIP: o->clip = bd_arg_double("--grad-clip", optarg, 0, 1e9); break;
        case OPT_BETA2: o->beta2 = bd_arg_double("--beta2", optarg, 0, 0.999999); break;
        case OPT_EVAL: o->eval_path = optarg; break;
        case OPT_EVAL_EVERY: o->eval_every = (int)bd_arg_int("--eval-every", optarg, 1, 1 << 30); break;
        case OPT_SAVE_EVERY: o->save_every = (int)bd_arg_int("--save-every", optarg, 1, 1 << 30); break;
        case OPT_RESUME: o->resume = true; break;
        case OPT_LOG: o->log_path = optarg; break;
        case OPT_RECOMPUTE: o->recompute = true; break;
        case OPT_DATA: o->samples_path = optarg; break;
        case OPT_GAMMA: o->gamma = bd_arg_double("--gamma", optarg, 0, 1); break;
        case OPT_TEACHER: o->teacher_path = optarg; break;
        case OPT_KD_WEIGHT: o->kd_weight = bd_arg_double("--kd-weight", optarg, 0, 1e9); break;
        case OPT_KD_TEMP:
            o->kd_temp = bd_arg_double("--kd-temp", optarg, 1e-3, 1e3);
            o->kd_temp_given = true;
            break;
        case OPT_AD_WEIGHT: o->ad_weight = bd_arg_double("--ad-weight", optarg, 0, 1e12); break;
        case OPT_AD_LAYER:
            parse_ad_layer(optarg, o);
            o->ad_layer_given = true;
            break;
        case OPT_AD_HEADS: o->ad_heads = (int)bd_arg_int("--ad-heads", optarg, 1, 4096); break;
        case OPT_OPTIM_DTYPE:
            if (!strcmp(optarg, "f32"))
                o->optim_dtype = BD_F32;
            else if (!strcmp(optarg, "bf16"))
                o->optim_dtype = BD_BF16;
            else
                bd_usage_error("--optim-dtype: \"%s\" is not f32 or bf16", optarg);
            break;
        case OPT_REDUCTION:
            if (!strcmp(optarg, "mean"))
                o->seqsum = false;
            else if (!strcmp(optarg, "seqsum"))
                o->seqsum = true;
            else
                bd_usage_error("--reduction: \"%s\" is not mean or seqsum", optarg);
            break;
        case OPT_MASK_PROMPT: o->mask_prompt = true; break;
        case OPT_KEEP_BEST: o->keep_best = true; break;
        case OPT_TEACHER_LOGITS: o->teacher_logits = true; break;
        case OPT_SUBLN: {
            int p = optarg ? bd_subln_parse(optarg) : BD_SUBLN_PAPER;
            if (p <= BD_SUBLN_NONE) bd_usage_error("--subln: \"%s\" is not paper or all", optarg);
            o->subln = (bd_subln)p;
            break;
        }
        case OPT_SUBLN_EPS: o->subln_eps = bd_arg_double("--subln-eps", optarg, 1e-12, 0.1); break;
        default: bd_tool_quant_or_common_option(&qo, opt, optarg);
        }
    }
    bd_tool_quant_options_done(&qo);
    o->q = qo.q, o->policy = qo.policy, o->clip_path = qo.clip;
}

// The files of the run; no output may be another output or an input, nor named like the
// checkpoint generations OUT.state.wSTEP that --save-every writes and removes.
static void check_files(const qat_opts *o) {
    char path[4200];
    bd_tool_writes_stream("-o", o->output);
    bd_tool_writes("--log", o->log_path);
    if (o->save_every || o->resume) bd_tool_writes("the checkpoint", o->state_path);
    snprintf(path, sizeof path, "%s.w", o->state_path);
    if (o->save_every) bd_tool_writes_family("--save-every", path);
    snprintf(path, sizeof path, "%s.best", o->output);
    if (o->keep_best) bd_tool_writes("--keep-best", path);
    bd_tool_reads("--model", o->model_path);
    bd_tool_reads("--teacher", o->teacher_path);
    bd_tool_reads(o->data_opt, o->data_path);
    bd_tool_reads("--eval", o->eval_path);
    bd_tool_reads("--clip", o->clip_path);
    bd_tool_check_files();
}

// Whether --data FILE is a bd.tokens stream (a regular file whose header says so); a pipe is
// taken as bd.samples (it cannot be read twice).
static bool data_is_tokens(const char *path) {
    struct stat sb;
    if (!strcmp(path, "-") || stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) return false;
    int err;
    char msg[600];
    bd_reader *r = bd_reader_open(path, NULL, &err, msg, sizeof msg);
    bool tokens = r && !strcmp(bd_reader_schema(r), "bd.tokens");
    if (r) bd_reader_close(r);
    return tokens;
}

// The options that need or exclude others; the data path and OUT.state.
static void check_options(int argc, char **argv, qat_opts *o) {
    if (!o->model_path) bd_usage_error("--model is required");
    if (!o->output) bd_usage_error("-o OUT is required (\"-\": standard output)");
    if (!strcmp(o->output, "-") && (o->save_every || o->resume || o->keep_best))
        bd_usage_error("--save-every, --resume and --keep-best need -o FILE (their files go next to it)");
    if (!o->loss_name) bd_usage_error("--loss is required (ce, fkl, rkl, cakld or jsd)");
    int lk = bd_loss_parse(o->loss_name);
    if (lk < 0) bd_usage_error("--loss: \"%s\" is not one of ce, fkl, rkl, cakld, jsd", o->loss_name);
    o->loss = (bd_loss_kind)lk;
    if (o->steps && o->epochs) bd_usage_error("give --steps or --epochs, not both");
    if (o->eval_every && !o->eval_path) bd_usage_error("--eval-every needs --eval TOKENS");
    if (o->keep_best && !o->eval_path) bd_usage_error("--keep-best needs --eval TOKENS");
    if (optind + 1 < argc) bd_usage_error("one token stream at most (got %d)", argc - optind);
    if (o->samples_path && optind < argc) bd_usage_error("give either --data FILE or a token stream, not both");
    const char *tokens_data = NULL;  // --data FILE holding a bd.tokens stream: trained on as TOKENS
    if (o->samples_path && data_is_tokens(o->samples_path)) tokens_data = o->samples_path, o->samples_path = NULL;
    if (o->mask_prompt && !o->samples_path)
        bd_usage_error(tokens_data ? "--mask-prompt needs a bd.samples stream (\"%s\" is bd.tokens)"
                                   : "--mask-prompt needs --data samples.bdz%s",
                       tokens_data ? tokens_data : "");
    if (o->gamma >= 0 && lk != BD_LOSS_CAKLD) bd_usage_error("--gamma is cakld's; the loss is %s", o->loss_name);
    if (o->subln_eps >= 0 && !o->subln) bd_usage_error("--subln-eps needs --subln");
    o->data_path = o->samples_path ? o->samples_path : tokens_data ? tokens_data : optind < argc ? argv[optind] : "-";
    static const char hint[] = "tokenize it first (bd-tokenize -k TOKENIZER FILE -o tokens.bdz)";
    o->data_opt = o->samples_path || tokens_data ? "--data" : "TOKENS";
    bd_tool_expect_stream(o->data_opt, o->data_path, hint);
    o->distill = lk != BD_LOSS_CE;
    if (o->teacher_logits && (!o->samples_path || !o->distill))
        bd_usage_error("--teacher-logits needs --data samples.bdz and a distillation loss (fkl, rkl, cakld, jsd)");
    bool terms = o->kd_weight > 0 || o->ad_weight > 0;
    if (terms && lk != BD_LOSS_CE)
        bd_usage_error("--kd-weight and --ad-weight add to --loss ce, not to %s", o->loss_name);
    if (terms && o->seqsum) bd_usage_error("--kd-weight and --ad-weight need --reduction mean");
    if (o->teacher_path && !o->distill && !terms)
        bd_usage_error("--teacher needs a distillation loss or --kd-weight/--ad-weight");
    if ((o->ad_layer_given || o->ad_heads) && !(o->ad_weight > 0))
        bd_usage_error("--ad-layer and --ad-heads need --ad-weight G (G > 0)");
    if (o->kd_temp_given && !(o->kd_weight > 0)) bd_usage_error("--kd-temp needs --kd-weight L (L > 0)");
    if (!strcmp(o->model_path, "-") && !o->teacher_path && (terms || (o->distill && !o->teacher_logits)))
        bd_usage_error("--model - is read once: a distillation loss needs its teacher as --teacher FILE");
    if (o->teacher_path && o->teacher_logits)
        bd_usage_error("give --teacher or --teacher-logits (the stored teacher), not both");
    snprintf(o->state_path, sizeof o->state_path, "%s.state", o->output);
    check_files(o);
}

// --subln: SubLN norms (weights 1) for a model without them. A model that has them keeps them
// (the same placement asked for again is fine); a resumed checkpoint must already have them.
static void add_subln(const qat_opts *o, bd_model *m, bool resuming) {
    if (!o->subln) return;
    const char *src = resuming ? o->state_path : o->model_path;
    if (m->cfg.subln == o->subln) return;
    if (m->cfg.subln)
        bd_fatal("--subln=%s: \"%s\" already has SubLN norms placed %s", bd_subln_name(o->subln), src,
                 bd_subln_name(m->cfg.subln));
    if (resuming) bd_fatal("--resume: \"%s\" holds a model without SubLN; drop --subln or start a new run", src);
    char why[300];
    float eps = o->subln_eps >= 0 ? (float)o->subln_eps : 1e-8f;
    if (bd_model_add_subln(m, o->subln, eps, why, sizeof why) < 0) bd_fatal("--subln: \"%s\": %s", src, why);
}

// What a checkpoint gives a resumed run (bd_ckpt_load), and what the run's checkpoints record.
typedef struct {
    bool resuming;
    bd_ckpt_info info;
    bd_ckpt_moments mom;  // AdamW's step count and moments (2P: m then v)
    bd_ckpt_log log;      // the metrics records up to the checkpoint
} qat_start;

// The model to train: continued from OUT.state (--resume, if it exists) or loaded from --model,
// with the student's quantization spec; sets o->seq_len (T) and st->resuming.
static void open_student(qat_opts *o, bd_model *m, qat_start *st) {
    char why[600];
    struct stat sb;
    bool resuming = st->resuming = o->resume && stat(o->state_path, &sb) == 0;
    bd_ckpt_info *info = &st->info;
    if (resuming) {
        if (bd_ckpt_load(o->state_path, m, info, &st->mom, &st->log, why, sizeof why) < 0)
            bd_fatal("--resume: %s", why);
        if (st->mom.dtype != o->optim_dtype)  // converted (bd_adamw_set_moments)
            bd_log(BD_LOG_WARN, "--resume: \"%s\" holds %s moments; continuing with --optim-dtype %s", o->state_path,
                   bd_dtype_name(st->mom.dtype), bd_dtype_name(o->optim_dtype));
        if (info->batch != o->batch * o->ranks || info->seq_len != (o->seq_len ? o->seq_len : info->seq_len) ||
            info->grad_accum != o->accum || info->seed != bd_tool_self.seed)
            bd_fatal("--resume: \"%s\" was written with --batch %d --seq-len %d --grad-accum %d --seed %llu; give the "
                     "same (on %d ranks: --batch %d/%d)",
                     o->state_path, info->batch, info->seq_len, info->grad_accum, (unsigned long long)info->seed,
                     o->ranks, info->batch, o->ranks);
        o->seq_len = info->seq_len;
    } else {
        if (o->resume) bd_log(BD_LOG_INFO, "--resume: no \"%s\" yet, starting from %s", o->state_path, o->model_path);
        bd_tool_load_model_latent(o->model_path, m);
    }
    int T = o->seq_len ? o->seq_len : (m->cfg.max_seq < 256 ? m->cfg.max_seq : 256);
    if (T > m->cfg.max_seq) bd_usage_error("--seq-len %d exceeds the model's context %d", T, m->cfg.max_seq);
    o->seq_len = T;
    // The student: latent weights clamped to the clip ranges once, then quantized on every
    // forward pass. A resumed checkpoint already carries both.
    if (o->q.kind != BD_Q_NONE && resuming) {
        if (m->quant.kind != o->q.kind || m->quant.bits != o->q.bits || m->quant.group != o->q.group ||
            m->qpolicy.act_bits != o->policy.act_bits)
            bd_fatal("--resume: \"%s\" is a %s %d-bit group %d student with %s activations; give the same "
                     "--quant/--bits/--group/--act-quant",
                     o->state_path, bd_qkind_name(m->quant.kind), m->quant.bits, m->quant.group,
                     m->qpolicy.act_bits ? "int8" : "f32");
    } else if (o->q.kind != BD_Q_NONE) {
        if (m->quant.kind != BD_Q_NONE)
            bd_fatal("--model \"%s\" is already a student (%s %d-bit); start from a full-precision model",
                     o->model_path, bd_qkind_name(m->quant.kind), m->quant.bits);
        if (bd_qpolicy_check(&o->policy, &o->q, &m->cfg, why, sizeof why) < 0) bd_fatal("--quant: %s", why);
        if (o->clip_path && bd_clipfile_apply(o->clip_path, m, &o->q, why, sizeof why) < 0) bd_fatal("--clip: %s", why);
        m->quant = o->q;
        m->qpolicy = o->policy;
    } else if (m->quant.kind != BD_Q_NONE) {
        o->q = m->quant;  // continuing to train a student keeps its spec
        o->policy = m->qpolicy;
    }
    add_subln(o, m, st->resuming);
}

// The training sequences (TOKENS or --data), at least a step's worth, and the --eval tokens.
static void read_data(const qat_opts *o, int V, bd_seqs *seqs, bd_ids *evd) {
    char why[600];
    int T = o->seq_len;
    if ((o->samples_path
                 ? bd_seqs_from_samples(seqs, o->samples_path, V, T, o->mask_prompt, o->teacher_logits, why, sizeof why)
                 : bd_seqs_from_tokens(seqs, o->data_path, V, T, why, sizeof why)) < 0)
        bd_fatal("%s", why);
    if (seqs->truncated)
        bd_log(BD_LOG_WARN, "\"%s\": %lld samples longer than --seq-len %d + 1 were cut", o->samples_path,
               seqs->truncated, T);
    long long per_step = (long long)o->batch * o->accum * o->ranks;
    if (seqs->n < per_step)
        bd_fatal("\"%s\": %zu tokens make %lld sequences of %d+1, fewer than one step needs (%lld)", o->data_path,
                 seqs->data_tokens, seqs->n, T, per_step);
    if (o->eval_path && bd_tokens_read(o->eval_path, "bd.tokens", V, false, SIZE_MAX, evd, why, sizeof why) < 0)
        bd_fatal("%s", why);
    if (o->eval_path && evd->n < (size_t)T)
        bd_fatal("\"%s\": %zu tokens, fewer than one window of %d", o->eval_path, evd->n, T);
}

// A layer as given (negative: from the end) in a model of n layers; out of range is an error.
static int resolve_layer(int given, int n, const char *whose) {
    int l = given < 0 ? n + given : given;
    if (l < 0 || l >= n)
        bd_fatal("--ad-layer %d: the %s has layers 0..%d (or -1..-%d from the end)", given, whose, n - 1, n);
    return l;
}

// The teacher model (--teacher, else --model): the same vocabulary and, where both models have a
// tokenizer next to them, the same tokenizer as the student.
static void load_teacher(const qat_opts *o, const bd_model *student, bd_model *tm) {
    char why[600];
    const char *path = o->teacher_path ? o->teacher_path : o->model_path;
    if (bd_qat_load_model(path, BD_LOAD_MAPPED, tm, why, sizeof why) < 0)
        bd_fatal("%s: %s", o->teacher_path ? "--teacher" : "--model", why);
    if (tm->quant.kind != BD_Q_NONE) bd_log(BD_LOG_WARN, "the teacher \"%s\" is itself quantized", path);
    if (!o->teacher_path) return;
    if (tm->cfg.vocab != student->cfg.vocab)
        bd_fatal("--teacher \"%s\" has a vocabulary of %d ids, the student \"%s\" %d: they must share a tokenizer",
                 path, tm->cfg.vocab, o->model_path, student->cfg.vocab);
    bd_tokenizer *ts = bd_tool_try_tokenizer(o->model_path, student), *tt = bd_tool_try_tokenizer(path, tm);
    if (ts && tt) {
        const char *a = bd_tokenizer_id(ts), *b = bd_tokenizer_id(tt);
        size_t la = strlen(a), lb = strlen(b);  // the ids end in a hash of the tokenizer's bytes
        if (la < 16 || lb < 16 || strcmp(a + la - 16, b + lb - 16) != 0)
            bd_fatal("--teacher \"%s\" comes with another tokenizer (%s) than the student \"%s\" (%s)", path, b,
                     o->model_path, a);
    }
    bd_tokenizer_free(ts);
    bd_tokenizer_free(tt);
}

static void gamma_progress(void *ctx, long long done) { bd_progress_update(ctx, (uint64_t)done); }

// The distillation loss: the teacher (the frozen --model or --teacher, or the log-probabilities
// stored with the data), cakld's g, measured once unless given or resumed, and BitNet
// Distillation's terms.
static void set_loss(qat_opts *o, bool resuming, bd_qat_run *s, bd_qat_teacher *teacher) {
    char why[600];
    bd_model tm, *live = NULL;
    const bd_model *m = s->tr.model;
    bool terms = o->kd_weight > 0 || o->ad_weight > 0, needs = terms || (o->distill && !o->teacher_logits);
    if (needs) {
        load_teacher(o, m, &tm);
        live = &tm;
    }
    if ((o->distill || terms) &&
        bd_qat_teacher_init(teacher, live, &m->cfg, o->batch, o->seq_len, o->accum, why, sizeof why) < 0)
        bd_fatal("%s: %s", o->teacher_path ? o->teacher_path : o->model_path, why);
    bd_loss_spec spec = {o->loss, 0, 1.0f};
    bd_qat_terms qt = {
            (float)(o->kd_weight * o->kd_temp * o->kd_temp), (float)o->kd_temp, (float)o->ad_weight, 0, 0, 0};
    if (o->ad_weight > 0) {
        const bd_config *tc = &teacher->model.cfg;
        qt.ad_layer = resolve_layer(o->ad_layer, m->cfg.n_layers, "student");
        int lt = o->ad_teacher_layer != INT_MIN ? o->ad_teacher_layer : o->ad_layer;
        qt.ad_teacher_layer = resolve_layer(lt, tc->n_layers, "teacher");
        qt.ad_heads = o->ad_heads ? o->ad_heads : bd_qat_default_ad_heads(&m->cfg, tc);
        bd_log(BD_LOG_INFO, "attention-relation distillation: student layer %d, teacher layer %d, %d relation heads",
               qt.ad_layer, qt.ad_teacher_layer, qt.ad_heads);
    }
    if (bd_qat_set_loss(s, o->distill || terms ? teacher : NULL, &spec, terms ? &qt : NULL, o->distill || o->seqsum,
                        why, sizeof why) < 0)
        bd_fatal("%s", why);
    if (o->loss == BD_LOSS_CAKLD) {
        if (o->gamma < 0 && resuming) o->gamma = s->info.gamma;
        if (o->gamma < 0) {
            long long n;
            bd_progress pr;
            if (teacher->live)
                bd_tool_note("cakld: measuring g, the teacher's mean top-1 probability, on %lld sequences (one "
                             "forward pass each; --gamma G skips it)",
                             s->seqs->n);
            bd_progress_start(&pr, "cakld g", (uint64_t)s->seqs->n, "seqs");
            if (bd_qat_gamma(teacher, s->seqs, &o->gamma, &n, gamma_progress, &pr, why, sizeof why) < 0)
                bd_fatal("%s", why);
            bd_progress_finish(&pr);
            bd_tool_note("cakld: g = %.4f, the %steacher's mean top-1 probability on %lld positions", o->gamma,
                         teacher->live ? "" : "stored ", n);
        }
        s->distill.spec.gamma = (float)o->gamma;
    }
    s->info.gamma = o->gamma;
}

// What the run minimizes, in words: the loss and its terms, the teacher they compare with,
// the positions scored. A checkpoint records it and a resumed run must ask for the same (a
// changed objective halfway would leave a model no single command describes).
static void objective_words(const qat_opts *o, char *buf, size_t size) {
    bool terms = o->kd_weight > 0 || o->ad_weight > 0;
    const char *teacher = o->teacher_logits        ? "stored logits"
                          : !(o->distill || terms) ? "none"
                          : o->teacher_path        ? "--teacher"
                                                   : "the starting model";
    int n = snprintf(buf, size, "loss %s%s", bd_loss_name(o->loss), o->seqsum ? " (--reduction seqsum)" : "");
    if (o->kd_weight > 0 && n >= 0 && (size_t)n < size)
        n += snprintf(buf + n, size - (size_t)n, ", kd %g tau %g", o->kd_weight, o->kd_temp);
    if (o->ad_weight > 0 && n >= 0 && (size_t)n < size) {
        n += snprintf(buf + n, size - (size_t)n, ", ad %g layer %d", o->ad_weight, o->ad_layer);
        if (o->ad_teacher_layer != INT_MIN && n >= 0 && (size_t)n < size)
            n += snprintf(buf + n, size - (size_t)n, ":%d", o->ad_teacher_layer);
        if (o->ad_heads && n >= 0 && (size_t)n < size)
            n += snprintf(buf + n, size - (size_t)n, " heads %d", o->ad_heads);
    }
    if (n >= 0 && (size_t)n < size)
        snprintf(buf + n, size - (size_t)n, ", teacher %s, %s", teacher,
                 o->mask_prompt ? "completions scored" : "every token scored");
}

// The identity of the training data, which checkpoints record: a resumed run must train on the
// same sequences (whatever file or pipe they come through). A new run's settings.
static void check_data(const qat_opts *o, const bd_seqs *seqs, qat_start *st) {
    uint64_t h = bd_seqs_hash(seqs);
    if (st->resuming && st->info.data_hash && st->info.data_hash != h)
        bd_fatal("--resume: \"%s\" was trained on other data than \"%s\" (data hash %016llx, not %016llx); give the "
                 "same data (and --mask-prompt, --teacher-logits)",
                 o->state_path, o->data_path, (unsigned long long)st->info.data_hash, (unsigned long long)h);
    char objective[sizeof st->info.objective];
    objective_words(o, objective, sizeof objective);
    if (st->resuming && st->info.objective[0] && strcmp(st->info.objective, objective))
        bd_fatal("--resume: \"%s\" was trained for \"%s\", this run asks for \"%s\"; give the same loss options "
                 "or start a new run",
                 o->state_path, st->info.objective, objective);
    if (!st->resuming)
        st->info = (bd_ckpt_info){.seed = bd_tool_self.seed,
                                  .batch = o->batch * o->ranks,
                                  .seq_len = o->seq_len,
                                  .grad_accum = o->accum,
                                  .gamma = -1};
    st->info.data_hash = h;
    memcpy(st->info.objective, objective, sizeof objective);
}

// The bd.metrics log (--log FILE, else kept only for the checkpoints), continuing a resumed run's.
static void open_log(const qat_opts *o, long long total, qat_start *st, bd_metrics *log) {
    char why[600];
    bd_metrics_head head = {o->model_path, o->loss_name, o->batch * o->ranks, o->seq_len, o->accum, total};
    bd_producer prod = bd_tool_producer();
    if (bd_metrics_open(log, dist.rank == 0 ? o->log_path : NULL, &head, &prod, st->resuming ? &st->log : NULL, why,
                        sizeof why) < 0)
        bd_fatal("--log: %s", why);
    if (st->resuming && o->log_path && log->records != (uint64_t)st->info.step)
        bd_log(BD_LOG_WARN, "--log: \"%s\" carries the records of %llu of its %lld steps", o->state_path,
               (unsigned long long)log->records, st->info.step);
    free(st->log.data);
    st->log = (bd_ckpt_log){0};
}

// This step's record of the metrics log.
static void log_step(bd_metrics *log, const bd_qat_run *s, const bd_step_stats *st, double tps, double seconds,
                     bool eval, double eval_loss) {
    char why[600];
    bd_metrics_rec r = {s->tr.step, s->info.tokens, s->info.epoch, st->loss, st->lr, st->grad_norm,
                        tps,        seconds,        eval,          eval_loss};
    if (bd_metrics_add(log, &r, why, sizeof why) < 0) bd_fatal("--log: %s", why);
}

// The checkpoint at this step, with the log so far and the training time.
// Data-parallel: every rank sends rank 0 its shard of the moments, rank 0 writes the whole state
// (the same file one process writes, so any number of ranks resumes it).
static void checkpoint(const qat_opts *o, bd_qat_run *s, const bd_metrics *log, double seconds) {
    char why[600];
    bd_producer prod = bd_tool_producer();
    bd_ckpt_log kept = bd_metrics_kept(log);
    s->info.seconds = seconds;
    bd_adamw full;
    bool owned;
    int rc = bd_trainer_gather_opt(&s->tr, &full, &owned);
    if (rc < 0) bd_fatal("checkpoint: cannot gather the optimizer's moments: %s", bd_strerror(rc));
    if (dist.rank == 0) rc = bd_ckpt_save(o->state_path, s->tr.model, &full, &s->info, &kept, &prod, why, sizeof why);
    if (owned) bd_adamw_free(&full);
    if (rc < 0) bd_fatal("checkpoint: %s", why);
    bd_log(BD_LOG_INFO, "step %lld: checkpoint %s", s->tr.step, o->state_path);
}

// The end: the log first, then OUT; a failure removes the log again (no output of a failed run
// stays; the last checkpoint, if any, still holds the log).
static void finish(const qat_opts *o, const bd_model *m, bd_metrics *log) {
    char why[600];
    bd_producer prod = bd_tool_producer();
    if (bd_metrics_close(log, why, sizeof why) < 0) bd_fatal("--log: %s", why);
    if (dist.rank == 0 && bd_model_save(m, o->output, &prod, BD_F32, why, sizeof why) < 0) {
        if (o->log_path && !bd_outfile_in_place(o->log_path)) unlink(o->log_path);
        bd_fatal("%s", why);
    }
    bd_metrics_free(log);
}

// --eval at this step (and --keep-best); returns the loss.
static double evaluate(const qat_opts *o, const bd_qat_run *s, const bd_ids *evd, double *best) {
    char why[600];
    double loss;
    if (bd_qat_evaluate(s->tr.model, evd, o->seq_len, o->batch, &loss, why, sizeof why) < 0) bd_fatal("%s", why);
    bd_log(BD_LOG_INFO, "step %lld: eval loss %.4f (ppl %.3f)", s->tr.step, loss, exp(loss));
    if (o->keep_best && !(loss >= *best)) {
        *best = loss;
        char best_path[4200];
        snprintf(best_path, sizeof best_path, "%s.best", o->output);
        bd_producer prod = bd_tool_producer();
        if (bd_model_save(s->tr.model, best_path, &prod, BD_F32, why, sizeof why) < 0) bd_fatal("--keep-best: %s", why);
        bd_log(BD_LOG_INFO, "step %lld: new best, saved %s", s->tr.step, best_path);
    }
    return loss;
}

// The memory plan (bd_runplan.h) from the models' headers, before anything is loaded (m NULL), or
// from the student m once loaded when it came through standard input. False if not made.
static bool plan_memory(const qat_opts *o, const bd_model *m) {
    bd_model_info st, te;
    if (!bd_tool_model_info(o->model_path, m, &st)) return false;
    bool terms = o->kd_weight > 0 || o->ad_weight > 0, live = terms || (o->distill && !o->teacher_logits);
    live = live && bd_tool_model_info(o->teacher_path ? o->teacher_path : o->model_path, NULL, &te);
    te.mapped = true;                                              // load_teacher: BD_LOAD_MAPPED
    if (!m && o->subln && !st.cfg.subln) st.cfg.subln = o->subln;  // the norms --subln adds
    struct stat sb;
    int ctx = st.cfg.max_seq, T = o->seq_len && o->seq_len <= ctx ? o->seq_len : ctx < 256 ? ctx : 256;
    bd_qat_plan q = {.student = &st,
                     .teacher = live ? &te : NULL,
                     .B = o->batch,
                     .T = T,
                     .A = o->accum,
                     .recompute = o->recompute,
                     .quant = o->q.kind != BD_Q_NONE || st.quant.kind != BD_Q_NONE,
                     .teacher_buf = o->distill || terms,
                     .stored_ok = o->distill && o->samples_path,
                     .use_head = o->distill || o->seqsum,
                     .kd = o->kd_weight > 0,
                     .ad = o->ad_weight > 0,
                     .eval = o->eval_path != NULL,
                     .resume = o->resume && stat(o->state_path, &sb) == 0,
                     .ranks = o->ranks,
                     .moments = o->optim_dtype};
    bd_memplan p = {0};
    bd_runplan_qat(&p, &q);
    bd_tool_memplan(&p, m ? bd_memplan_weights(&st) : 0);
    return true;
}

// Under mpirun: ranks other than 0 stay quiet but for errors, which name the rank.
static void join_job(int *argc, char ***argv) {
    char why[300];
    if (bd_dist_init(&dist, argc, argv, why, sizeof why) < 0) bd_fatal("%s", why);
    on_exit(abort_job, NULL);
    bd_tool_self.argc = *argc, bd_tool_self.argv = *argv;
}

static void quiet_rank(void) {
    static char name[40];
    if (dist.rank == 0) return;
    snprintf(name, sizeof name, "bd-qat (rank %d)", dist.rank);
    bd_tool_self.name = name;
    bd_log_set_prefix(name);
    bd_tool_self.verbosity = BD_LOG_ERROR;
    bd_log_set_level(BD_LOG_ERROR);
}

static uint64_t fnv1a(const char *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)p[i]) * 0x100000001b3ull;
    return h;
}

// Under mpirun every rank must run the same training: rank 0 compares each rank's settings
// (every option that changes the result), data and starting weights, as 64-bit hashes, with
// its own. The first rank that differs is named in one message and the job ends; the other
// ranks wait for that end in silence.
static void check_ranks(const qat_opts *o, const bd_model *m, const qat_start *st) {
    if (dist.size == 1) return;
    char set[1024];
    int n = snprintf(set, sizeof set,
                     "%a %a %a %a %a %a %a %a %a %a %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %lld %lld %lld "
                     "%llu %d %d %d %d %d %d %d %d %d %lld",
                     o->lr, o->min_lr, o->wd, o->clip, o->beta2, o->gamma, o->kd_weight, o->kd_temp, o->ad_weight,
                     o->subln_eps, o->ad_layer, o->ad_teacher_layer, o->ad_heads, o->batch, o->seq_len, o->accum,
                     o->eval_every, o->save_every, (int)o->sched_kind, (int)o->loss, o->seqsum, o->mask_prompt,
                     o->teacher_logits, (int)o->subln, (int)o->optim_dtype, o->keep_best, o->steps, o->epochs,
                     o->warmup, (unsigned long long)bd_tool_self.seed, (int)o->q.kind, o->q.bits, o->q.group,
                     o->policy.act_bits, o->teacher_path != NULL, o->eval_path != NULL, o->resume, st->resuming,
                     (int)sizeof(bd_qpolicy), st->info.step);
    uint64_t mine[3] = {fnv1a(set, (size_t)n), st->info.data_hash, bd_ckpt_hash(m->params, m->n_params)};
    uint64_t *all = malloc(sizeof(uint64_t) * 3 * (size_t)dist.size);
    if (!all || bd_dist_allgather_u64(&dist, mine, 3, all) < 0) bd_fatal("cannot compare the ranks' settings");
    static const char *what[3] = {"settings (options, or a checkpoint to resume)", "training data",
                                  "starting weights (--model, --clip, or the checkpoint)"};
    for (int r = 1; r < dist.size; r++)
        for (int k = 0; k < 3; k++)
            if (all[3 * r + k] != all[k]) {
                if (dist.rank == 0)
                    bd_fatal("mpirun: rank %d has other %s than rank 0 (hash %016llx, not %016llx); every rank must "
                             "run the same command on the same files",
                             r, what[k], (unsigned long long)all[3 * r + k], (unsigned long long)all[k]);
                bd_dist_wait_abort(&dist);
                exit(1);
            }
    free(all);
}

int main(int argc, char **argv) {
    bd_tool_init("bd-qat", help, argc, argv);
    join_job(&argc, &argv);
    qat_opts o;
    parse_options(argc, argv, &o);
    o.ranks = dist.size;
    quiet_rank();
    check_options(argc, argv, &o);
    char why[600];
    bd_model m;
    qat_start start = {0};
    bool planned = plan_memory(&o, NULL);
    open_student(&o, &m, &start);
    if (!planned) plan_memory(&o, &m);
    bd_tool_remember_tokenizer(&m, NULL, o.model_path);  // OUT remembers --model's tokenizer
    bool resuming = start.resuming;
    int T = o.seq_len, V = m.cfg.vocab;
    bd_seqs seqs;
    bd_ids evd = {0};
    read_data(&o, V, &seqs, &evd);
    check_data(&o, &seqs, &start);
    check_ranks(&o, &m, &start);
    long long per_step = (long long)o.batch * o.accum * o.ranks,
              total = o.steps ? o.steps : (o.epochs ? o.epochs : 1) * (seqs.n / per_step);
    bd_qat_cfg c = {o.batch,
                    T,
                    o.accum,
                    o.recompute,
                    o.seqsum,
                    bd_tool_self.seed,
                    {0.9f, (float)o.beta2, 1e-8f, (float)o.wd, (float)o.clip, o.optim_dtype},
                    {o.sched_kind, (float)o.lr,
                     (float)(o.min_lr >= 0                     ? o.min_lr
                             : o.sched_kind == BD_SCHED_LINEAR ? 0
                                                               : o.lr / 10),
                     o.warmup, total},
                    o.q,
                    o.policy,
                    &dist};
    bd_qat_run s;
    if (bd_qat_init(&s, &m, &seqs, &c, &start.info, resuming ? &start.mom : NULL, why, sizeof why) < 0)
        bd_fatal("%s", why);
    free(start.mom.data);
    bd_qat_teacher teacher = {0};
    set_loss(&o, resuming, &s, &teacher);
    char desc[256];
    bd_model_describe(&m, desc, sizeof desc);
    bd_log(BD_LOG_INFO, "%s; %lld sequences of %d, %lld steps of %lld sequences%s", desc, seqs.n, T, total, per_step,
           resuming ? " (resumed)" : "");
    bd_log(BD_LOG_INFO, "memory: latent weights and gradients %zu MB each (f32), AdamW moments %zu MB (%s)",
           m.n_params * sizeof(float) >> 20, bd_adamw_moment_bytes(&s.tr.opt) >> 20, bd_dtype_name(o.optim_dtype));

    bd_metrics log;
    open_log(&o, total, &start, &log);
    bd_progress pr;
    char label[128] = "train";
    bd_progress_start(&pr, label, (uint64_t)((total - s.tr.step) * per_step * T), "tok");
    pr.label = label;
    double t_run = bd_now() - start.info.seconds, last_eval = NAN, best_eval = INFINITY;  // a resume goes on counting
    long long run_tokens = 0, first_step = s.tr.step;  // trained by this process (progress)
    double t_this = bd_now(), last_loss = NAN;
    while (s.tr.step < total) {
        bd_step_stats st;
        if (bd_qat_step(&s, &st, why, sizeof why) < 0) bd_fatal("%s", why);  // one line, the reason included
        double tps = (double)per_step * T / s.seconds;
        run_tokens += per_step * T;
        bool do_eval = o.eval_path && dist.rank == 0 &&  // rank 0 evaluates, the others go on
                       ((o.eval_every && s.tr.step % o.eval_every == 0) || s.tr.step == total);
        if (do_eval) last_eval = evaluate(&o, &s, &evd, &best_eval);
        double seconds = bd_now() - t_run;
        log_step(&log, &s, &st, tps, seconds, do_eval, last_eval);
        bd_log(BD_LOG_DEBUG, "step %lld loss %.4f lr %.3g |g| %.3g %.0f tok/s", s.tr.step, st.loss, st.lr, st.grad_norm,
               tps);
        if (o.kd_weight > 0 || o.ad_weight > 0)  // the terms of BitNet Distillation's loss, weighted
            bd_log(BD_LOG_DEBUG, "step %lld ce %.4f logits %.4f relation %.4f", s.tr.step, s.distill.ce_sum,
                   s.distill.kd_sum, s.relation.sum);
        last_loss = st.loss;
        snprintf(label, sizeof label, "step %lld/%lld loss %.4f", s.tr.step, total, st.loss);
        bd_progress_update(&pr, (uint64_t)run_tokens);
        if (o.save_every && (s.tr.step % o.save_every == 0 || s.tr.step == total)) checkpoint(&o, &s, &log, seconds);
    }
    bd_progress_finish(&pr);
    finish(&o, &m, &log);
    bd_train_timing *tm = &s.tr.st.timing;
    bd_log(BD_LOG_INFO, "done: %lld steps, %.1f s; forward %.1f s, head %.1f s, backward %.1f s, optimizer %.1f s",
           s.tr.step, bd_now() - t_run, tm->forward, tm->head, tm->backward, tm->optimizer);
    long long run_steps = s.tr.step - first_step;
    if (dist.size > 1)
        bd_tool_note("%d ranks: %.1f s in collectives, rank 0 sent %.2f MB per step (bucketed all-reduce of the "
                     "gradient, all-gather of the weights)",
                     dist.size, tm->comm, run_steps ? dist.bytes_sent / 1e6 / (double)run_steps : 0.0);
    if (o.eval_path) bd_log(BD_LOG_INFO, "final eval loss %.4f", last_eval);
    char evs[64] = "";
    if (o.eval_path) snprintf(evs, sizeof evs, ", eval loss %.4f", last_eval);
    double secs = bd_now() - t_this;
    bd_tool_note("%lld steps%s, %lld tokens in %.1f s (%.0f tok/s), last loss %.4f%s; wrote %s", s.tr.step - first_step,
                 first_step ? " (resumed)" : "", run_tokens, secs, secs > 0 ? (double)run_tokens / secs : 0.0,
                 last_loss, evs, strcmp(o.output, "-") ? o.output : "standard output");
    bd_qat_free(&s);
    bd_qat_teacher_free(&teacher);
    bd_seqs_free(&seqs);
    bd_ids_free(&evd);
    bd_model_free(&m);
    bd_dist_finalize(&dist);
    return 0;
}
