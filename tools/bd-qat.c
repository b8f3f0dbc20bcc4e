// bd-qat: trains a model (for now with the cross-entropy loss on a bd.tokens stream) with
// AdamW, warmup/cosine schedules, gradient accumulation, periodic evaluation, checkpoints
// that a killed run resumes from exactly, and a bd.metrics log. Quantization-aware training
// with distillation (--loss cakld ..., a teacher, bd.samples data) builds on this loop.
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bd_ckpt.h"
#include "bd_forward.h"
#include "bd_log.h"
#include "bd_loss.h"
#include "bd_model_io.h"
#include "bd_progress.h"
#include "bd_threads.h"
#include "bd_tool.h"
#include "bd_train.h"

static const char help[] =
    "Usage: bd-qat --model M --loss ce -o OUT [OPTIONS] [TOKENS]\n"
    "Train model M on a bd.tokens stream (TOKENS, or standard input) with AdamW and write the\n"
    "trained model to OUT (a bd.model stream). The documents' ids are concatenated and cut into\n"
    "sequences of --seq-len + 1 tokens (inputs and next-token targets); their order is shuffled\n"
    "every epoch from --seed. A student (a bd.model with a quantization spec) trains its latent\n"
    "weights and keeps its spec.\n"
    "\n"
    "  -m, --model M          starting model: llama2.c, Hugging Face directory or bd.model\n"
    "      --loss NAME        training objective: ce (cross-entropy; the only one so far)\n"
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
};

typedef struct {
    int32_t *ids;
    size_t n;
} id_list;

// All ids of a bd.tokens stream, checked against the vocabulary.
static void read_tokens(const char *path, int V, id_list *out) {
    bd_reader *r = bd_tool_open_reader(path, "bd.tokens");
    const msgpack_object *rec;
    int rc;
    size_t cap = 0;
    memset(out, 0, sizeof *out);
    while ((rc = bd_reader_next(r, &rec)) == BD_OK) {
        bd_tensor_view t;
        char why[300];
        unsigned long long ri = (unsigned long long)bd_reader_record_index(r);
        if (bd_obj_tensor(bd_obj_get(rec, "ids"), &t, why, sizeof why) < 0)
            bd_fatal("\"%s\" record %llu: field \"ids\": %s", bd_reader_name(r), ri, why);
        if ((t.dtype != BD_U32 && t.dtype != BD_I32) || t.ndim != 1)
            bd_fatal("\"%s\" record %llu: field \"ids\" must be a 1-D u32 tensor", bd_reader_name(r), ri);
        if (out->n + (size_t)t.numel > cap) {
            while (out->n + (size_t)t.numel > cap) cap = cap ? cap * 2 : 65536;
            out->ids = realloc(out->ids, cap * sizeof *out->ids);
            if (!out->ids) bd_fatal("out of memory reading \"%s\"", path);
        }
        memcpy(out->ids + out->n, t.data, t.nbytes);  // little-endian hosts: the stored bytes are the ints
        for (int64_t i = 0; i < t.numel; i++)
            if (out->ids[out->n + i] < 0 || out->ids[out->n + i] >= V)
                bd_fatal("\"%s\" record %llu: id %u at position %lld is outside the model's vocabulary of %d",
                         bd_reader_name(r), ri, (unsigned)out->ids[out->n + i], (long long)i, V);
        out->n += (size_t)t.numel;
    }
    if (rc != BD_EOF) bd_tool_reader_fatal(r);
    bd_reader_close(r);
}

// Mean NLL over the non-overlapping windows of T tokens of ids (every position scored).
static double evaluate(const bd_model *m, const id_list *ids, int T, int B) {
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
        BD_COMMON_LONGOPTS, {0, 0, 0, 0}};
    const char *model_path = NULL, *output = NULL, *eval_path = NULL, *log_path = NULL, *loss_name = NULL;
    double lr = 3e-4, min_lr = -1, wd = 0, clip = 1.0, beta2 = 0.95;
    int batch = 4, seq_len = 0, accum = 1, eval_every = 0, save_every = 0;
    long long steps = 0, epochs = 0, warmup = 0;
    bd_sched_kind sched_kind = BD_SCHED_COSINE;
    bool resume = false, recompute = false;
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
        case OPT_DATA: bd_usage_error("--data (bd.samples) is not supported yet: give a bd.tokens stream");
        default: bd_tool_common_option(opt, optarg);
        }
    }
    bd_tool_options_done();
    if (!model_path) bd_usage_error("--model is required");
    if (!output || !strcmp(output, "-")) bd_usage_error("-o OUT is required (a file: checkpoints go next to it)");
    if (!loss_name) bd_usage_error("--loss is required (ce)");
    int lk = bd_loss_parse(loss_name);
    if (lk < 0) bd_usage_error("--loss: \"%s\" is not one of ce, fkl, rkl, cakld, jsd", loss_name);
    if (lk != BD_LOSS_CE) bd_usage_error("--loss %s needs a teacher, which bd-qat does not support yet; use ce", loss_name);
    if (steps && epochs) bd_usage_error("give --steps or --epochs, not both");
    if (eval_every && !eval_path) bd_usage_error("--eval-every needs --eval TOKENS");
    if (optind + 1 < argc) bd_usage_error("one token stream at most (got %d)", argc - optind);
    const char *data_path = optind < argc ? argv[optind] : "-";
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

    id_list data;
    read_tokens(data_path, m.cfg.vocab, &data);
    long long n_seq = data.n > 0 ? (long long)((data.n - 1) / (size_t)T) : 0;
    long long per_step = (long long)batch * accum;
    if (n_seq < per_step)
        bd_fatal("\"%s\": %zu tokens make %lld sequences of %d+1, fewer than one step needs (%lld)", data_path, data.n,
                 n_seq, T, per_step);
    long long steps_per_epoch = n_seq / per_step;
    long long total = steps ? steps : (epochs ? epochs : 1) * steps_per_epoch;
    id_list evd = {0};
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
        info = (bd_ckpt_info){0, 0, 0, 0, seed, batch, T, accum};
    }
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
        bd_pack_kv_str(pk, "loss", "ce");
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
    double t_run = bd_now(), last_eval = NAN;
    long long run_tokens = 0;  // trained by this process (progress)
    while (tr.step < total) {
        if (info.pos + per_step > n_seq) {  // next epoch, in a new order
            info.epoch++;
            info.pos = 0;
            bd_epoch_order(order, n_seq, seed, info.epoch);
        }
        for (long long i = 0; i < per_step; i++) {
            const int32_t *src = data.ids + (size_t)order[info.pos + i] * T;
            memcpy(tokens + i * T, src, sizeof(int32_t) * (size_t)T);
            memcpy(targets + i * T, src + 1, sizeof(int32_t) * (size_t)T);
        }
        double t0 = bd_now();
        bd_step_stats st;
        rc = bd_trainer_step(&tr, tokens, targets, batch, T, NULL, &st);
        if (rc < 0) bd_fatal("step %lld failed: %s", tr.step + 1, rc == BD_ERR_VALUE ? "the gradient is not finite (lower --lr?)" : bd_strerror(rc));
        double dt = bd_now() - t0, tps = (double)per_step * T / dt;
        info.pos += per_step;
        info.tokens += per_step * T;
        run_tokens += per_step * T;
        info.step = tr.step;
        bool do_eval = eval_path && ((eval_every && tr.step % eval_every == 0) || tr.step == total);
        if (do_eval) {
            last_eval = evaluate(&m, &evd, T, batch);
            bd_log(BD_LOG_INFO, "step %lld: eval loss %.4f", tr.step, last_eval);
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
    free(tokens), free(targets), free(order), free(data.ids), free(evd.ids);
    bd_trainer_free(&tr);
    bd_model_free(&m);
    return 0;
}
