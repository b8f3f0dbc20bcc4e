// Multiple-choice evaluation (HellaSwag, PIQA, any task converted to a generic JSONL):
// task files -> items {context, choices, gold}; each choice scored by the log-likelihood
// of its ending given the context, as lm-evaluation-harness does; acc / acc_norm with the
// standard error. Dimension key: V vocab, NC choices of an item, T positions.
//
// Task layouts (detected by content unless a format is given):
// - hellaswag: the llama.cpp text layout, 6 lines per item (context, gold index, 4
//   endings), or the original HellaSwag JSONL {"activity_label","ctx_a","ctx_b","endings",
//   "label"}. The harness's preprocessing is applied to context and endings (see
//   bd_mc_hellaswag_clean); from the JSONL the context is built as the harness does:
//   activity_label + ": " + ctx_a + " " + capitalize(ctx_b).
// - piqa: JSONL {"goal","sol1","sol2"} plus a labels file (one 0/1 per line), or a "label"
//   field in each record; context "Question: {goal}\nAnswer:", choices sol1, sol2.
// - jsonl: {"context": str, "choices": [str, ...], "gold": int} per line.
//
// Scoring (the harness's conventions): the sequence is BOS + context + " " + ending,
// tokenized jointly and split where the encoding of BOS + context (trailing whitespace
// moved to the ending) ends; ll = sum of log P(ending token | everything before it);
// acc picks the first argmax of ll, acc_norm the first argmax of ll / length(ending) in
// characters (Unicode code points: Python's len, which the harness uses).
// Sequences longer than the model context lose tokens on the left.
#ifndef BD_MC_H
#define BD_MC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bd_error.h"
#include "bd_forward.h"
#include "bd_model.h"
#include "bd_tokenizer.h"

typedef enum { BD_MC_AUTO = 0, BD_MC_HELLASWAG, BD_MC_PIQA, BD_MC_JSONL } bd_mc_format;

// Bounds of one item, so that a hostile file cannot make scoring ask for unbounded memory
// (the scorer holds every choice's tokens and logits at once).
#define BD_MC_MAX_CHOICES 64
#define BD_MC_MAX_ITEM_BYTES ((size_t)1 << 20)  // context plus every choice

typedef struct {
    char *context;   // NUL-terminated, without the delimiter
    char **choices;  // (NC) NUL-terminated endings, without the delimiter, never empty
    int n_choices;   // NC >= 2
    int gold;        // index into choices
    long line;       // 1-based line of the item's first line in its file
} bd_mc_item;

typedef struct {
    bd_mc_item *items;  // (n)
    long n;
    int max_choices;      // largest NC
    bd_mc_format format;  // the layout read (never AUTO)
    char name[64];        // "hellaswag", "piqa", or the file's base name without extensions
} bd_mc_task;

// "auto", "hellaswag", "piqa", "jsonl" -> format (>= 0), or -1.
int bd_mc_format_parse(const char *s);
const char *bd_mc_format_name(bd_mc_format f);

// Reads a task file (plain or bzip2, "-" for standard input). labels: PIQA labels file, or
// NULL to use "label" fields or <stem>-labels.lst next to path (dev.jsonl -> dev-labels.lst);
// giving labels for another format is an error. limit > 0 keeps the first limit items (the
// whole file is still checked). Errors (BD_ERR_IO, BD_ERR_MALFORMED, BD_ERR_VALUE,
// BD_ERR_TRUNCATED, BD_ERR_CORRUPT, BD_ERR_NOMEM) come with a one-line reason naming the
// file and line.
BD_MUST_CHECK int bd_mc_load(const char *path, bd_mc_format format, const char *labels, long limit, bd_mc_task *task,
                             char *why, size_t why_size);
// The PIQA labels file bd_mc_load looks for next to a task file: dir/dev.jsonl[.bz2] -> dir/dev-labels.lst.
void bd_mc_labels_path(const char *task_path, char *out, size_t n);
// The same from text in memory (name for messages; labels_text NULL unless PIQA without
// "label" fields, labels_name its name).
BD_MUST_CHECK int bd_mc_parse(const char *text, size_t len, const char *name, bd_mc_format format,
                              const char *labels_text, size_t labels_len, const char *labels_name, long limit,
                              bd_mc_task *task, char *why, size_t why_size);
void bd_mc_task_free(bd_mc_task *t);

// The harness's HellaSwag preprocess, in place: strip, " [title]" -> ". ", remove every
// "[...]" (shortest match), then "  " -> " " (one left-to-right pass). Returns s.
char *bd_mc_hellaswag_clean(char *s);

// ids = BOS (if the vocabulary has one) + context + " " + ending, encoded jointly; *start =
// index of the first ending token = the length of the encoding of BOS + context without
// its trailing whitespace, kept >= 1 and < ids->n (so at least one token is scored).
BD_MUST_CHECK int bd_mc_tokenize(const bd_tokenizer *tok, const char *context, const char *ending, bd_token_buf *ids,
                                 int *start);

typedef enum {
    BD_MC_SHARED = 0,  // context prefix run once into a KV cache, endings continued from it
    BD_MC_BATCH,       // one batched pass over NC padded rows of context + ending
} bd_mc_method;

// Scores items on a model. Holds the activation state and cache for items of up to
// max_choices choices and sequences of up to the model's context.
typedef struct {
    const bd_model *m;
    const bd_tokenizer *tok;
    bd_mc_method method;
    int max_choices;    // NC capacity
    int max_T;          // positions per sequence fed to the model (the model's context)
    int cap_T;          // positions st and kv hold now (grown to the longest item, <= max_T)
    bd_fwd_state st;    // BATCH: (NC, cap_T); SHARED: (1, cap_T) for the prefill
    bd_kv_cache kv;     // SHARED only: NC sequences of cap_T
    bd_token_buf *ids;  // (NC) token ids of each choice's sequence
    int *start;         // (NC) first scored index of each sequence
    int *order;         // (NC) choices by sequence length, longest first
    int32_t *tokens;    // (NC, max_T) BATCH inputs; SHARED: (NC) step tokens
    int32_t *targets;   // (NC, max_T) BATCH targets (-1: not scored)
    int *pos;           // (NC) SHARED step positions
    float *logits;      // (NC, V)
    long truncated;     // sequences that lost tokens on the left so far
    long tokens_run;    // positions fed to the model so far
} bd_mc_scorer;

// max_T <= 0: the model's context (cfg.max_seq).
BD_MUST_CHECK int bd_mc_scorer_init(bd_mc_scorer *s, const bd_model *m, const bd_tokenizer *tok, int max_choices,
                                    int max_T, bd_mc_method method);
void bd_mc_scorer_free(bd_mc_scorer *s);
// Memory plans (bd_runplan_mc): a bound on the positions any item's sequence feeds the model
// (a token covers at least one byte; BOS and SentencePiece's leading space aside), and the
// bytes one scorer reaches on sequences of up to T positions with items of NC choices (its
// activations grow by doubling from 128: under 2T, at most the model's context).
int bd_mc_task_max_positions(const bd_mc_task *task);
// The positions a scorer's activations reach on sequences of up to T positions.
int bd_mc_scorer_cap(const bd_config *c, int T);
size_t bd_mc_scorer_bytes(const bd_config *c, int NC, int T, bd_mc_method method);
// ll (NC): the log-likelihood (nats, <= 0) of each ending; n_tokens (NC, or NULL): the
// number of ending tokens scored. BD_ERR_ARG if the item has more choices than the scorer.
BD_MUST_CHECK int bd_mc_score_item(bd_mc_scorer *s, const bd_mc_item *it, double *ll, int *n_tokens);

// Scores items [0, n) of task into ll (n, task->max_choices; row i holds item i's NC
// values) on n_workers threads, each with its own scorer; the kernels run on one thread
// inside a worker, so every value is the same for any n_workers. progress (may be NULL)
// is called from the calling thread with the number of items done. On error returns it
// with *bad_item set to the failing item's index.
BD_MUST_CHECK int bd_mc_score_all(const bd_model *m, const bd_tokenizer *tok, const bd_mc_task *task, int n_workers,
                                  bd_mc_method method, double *ll, void (*progress)(void *ctx, long done), void *ctx,
                                  long *bad_item, long *truncated);

// log softmax(logits)[target] of one row (V), accumulated in double.
double bd_mc_logprob(const float *logits, int V, int32_t target);

// Running counts over scored items.
typedef struct {
    long n, correct, correct_norm;
    double chance_sum;  // sum of 1/NC
} bd_mc_tally;

typedef struct {
    long n;
    double acc, acc_stderr, acc_norm, acc_norm_stderr;
    double chance;  // mean 1/NC: the accuracy of guessing
} bd_mc_result;

// Characters of a UTF-8 string: bytes that do not continue a sequence (10xxxxxx).
long bd_mc_utf8_len(const char *s);
// The first index of the largest v[i] (numpy's argmax).
int bd_mc_argmax(const double *v, int n);
// Adds one item scored with ll (NC); sets *pred and *pred_norm (either may be NULL).
void bd_mc_tally_add(bd_mc_tally *t, const bd_mc_item *it, const double *ll, int *pred, int *pred_norm);
// Adds one item of NC choices whose predictions (argmax of ll, of ll per character) are known:
// what bd_mc_tally_add does after scoring, so items tallied in the same order give the same
// result (bd-eval --combine joins shards' items this way).
void bd_mc_tally_count(bd_mc_tally *t, int n_choices, int gold, int pred, int pred_norm);
// Sample standard error of the mean of n 0/1 outcomes with k ones: sqrt(p(1-p)/(n-1));
// NaN for n < 2.
double bd_mc_stderr(long k, long n);
bd_mc_result bd_mc_tally_result(const bd_mc_tally *t);

#endif
