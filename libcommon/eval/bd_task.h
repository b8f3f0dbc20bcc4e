// Labelled classification data for a decoder LM (BitNet Distillation's downstream tasks):
// a template turns each record into a prompt, a verbalizer maps its label to a word; the
// records come from TSV (a header line of column names) or JSONL. Out of them: training
// samples (prompt masked, completion = the label word) and the bd-eval multiple-choice file
// that scores the same words. Dimension key: N examples, NC verbalizer words.
//
// Prompt and completion are split exactly where the scorer splits (bd_mc_tokenize on
// context + " " + word): training scores the very tokens that evaluation compares.
//
// Errors: BD_ERR_ARG for a malformed template or verbalizer (a usage error), BD_ERR_SCHEMA
// for a field or column the input lacks, BD_ERR_VALUE for bad data (label outside the
// verbalizer, wrong column count, invalid JSON, NUL, no examples), BD_ERR_IO, BD_ERR_NOMEM;
// why holds one line naming the file and line. The library never exits or logs.
#ifndef BD_TASK_H
#define BD_TASK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "bd_error.h"
#include "bd_input.h"
#include "bd_stream.h"
#include "bd_tokenizer.h"

// ---- template ----

typedef struct {
    char *text;  // literal text (decoded), or the field name of a placeholder
    bool field;  // a {name} or {N} placeholder
    int column;  // {N}: N >= 1 (TSV: the N-th column; JSONL: the field named "N"); 0 for {name}
} bd_task_part;

typedef struct {
    bd_task_part *parts;  // literal text and placeholders in order
    int n;
    int n_fields;  // placeholders among parts, >= 1
} bd_task_template;

// Parses spec: {name} is the field or column name, {N} (digits) the N-th TSV column; the
// escapes \n \t \\ \{ \} are decoded (any other backslash, a lone "}" or an unclosed "{"
// is an error). At least one placeholder. BD_ERR_ARG, BD_ERR_NOMEM.
BD_MUST_CHECK int bd_task_template_parse(bd_task_template *t, const char *spec, char *why, size_t why_size);
void bd_task_template_free(bd_task_template *t);

// ---- verbalizer ----

typedef struct {
    char **labels;  // (NC) label values as they appear in the data
    char **words;   // (NC) the completion / choice text of each label
    int n;          // NC >= 2
} bd_task_verbalizer;

// Parses "LABEL=word,LABEL=word,...": at least two pairs, labels distinct and non-empty, words
// distinct and non-empty; neither may start or end with whitespace (the scorer puts the one
// space between context and word). A word may hold "=" but not ",". BD_ERR_ARG, BD_ERR_NOMEM.
BD_MUST_CHECK int bd_task_verbalizer_parse(bd_task_verbalizer *v, const char *spec, char *why, size_t why_size);
// Index of label in v, or -1.
int bd_task_verbalizer_find(const bd_task_verbalizer *v, const char *label);
void bd_task_verbalizer_free(bd_task_verbalizer *v);

// ---- labelled records ----

typedef enum { BD_TASK_AUTO = 0, BD_TASK_TSV, BD_TASK_JSONL } bd_task_format;
// "auto", "tsv", "jsonl" -> format (>= 0), or -1.
int bd_task_format_parse(const char *s);
const char *bd_task_format_name(bd_task_format f);

typedef struct {
    char *context;  // the template applied to the record (NUL-terminated)
    int gold;       // index of the record's label in the verbalizer
    long line;      // 1-based line of the record in its file
} bd_task_example;

typedef struct {
    bd_task_example *ex;  // (N)
    long n;
    bd_task_format format;  // what was read (never AUTO)
} bd_task_set;

// Reads every record of in (read once: pipes work). AUTO: JSONL if the first non-blank line
// starts with "{", else TSV. TSV: the first line names the columns, each later line has as
// many tab-separated values (no quoting; a trailing \r is dropped); JSONL: one object per
// line, template fields must be strings, the label a string or an integer. Empty lines are
// skipped. label_field names the label column or field. limit > 0 keeps the first limit
// examples (the whole input is still checked). No examples at all is an error.
BD_MUST_CHECK int bd_task_read(const bd_input *in, bd_task_format format, const bd_task_template *t,
                               const char *label_field, const bd_task_verbalizer *v, long limit, bd_task_set *set,
                               char *why, size_t why_size);
void bd_task_set_free(bd_task_set *set);

// ---- outputs (bd_task_write.c) ----

// ids = bd_mc_tokenize(tok, context, word); *start its split: prompt ids[0..start), completion
// ids[start..n). max_len > 0: a longer example keeps the prompt's first token if it is BOS and
// the prompt's last tokens, so that n = max_len, with *cut set; BD_ERR_VALUE if the completion
// and one prompt token do not fit. Errors of bd_mc_tokenize (BD_ERR_VALUE: nothing to score).
BD_MUST_CHECK int bd_task_encode(const bd_tokenizer *tok, const char *context, const char *word, int max_len,
                                 bd_token_buf *ids, int *start, bool *cut);

typedef struct {
    const char *input;      // the input as named ("-": standard input)
    const char *output;     // the output's name, for messages
    const char *template_;  // the template as given (escapes not decoded)
    const char *verbalizer;
    const char *label_field;
    int max_len;  // 0: no limit
    int threads;  // recorded as bd-teacher-gen does (it does not change the samples)
} bd_task_samples_opts;

// Writes the header and one record per example of set to w (opened by the caller, closed by
// the caller): a bd.samples stream (see bd-stream(5)) whose record i is {index i, prompt,
// completion, finished "label"}. The whole set is encoded before anything is written, so an
// encoding error leaves w with nothing but nothing to keep. *n_cut counts examples cut to
// max_len. Errors name the input line.
BD_MUST_CHECK int bd_task_write_samples(bd_writer *w, const bd_producer *prod, const bd_task_samples_opts *o,
                                        const bd_task_set *set, const bd_task_verbalizer *v, const bd_tokenizer *tok,
                                        long *n_cut, char *why, size_t why_size);

// Writes one JSON line {"context", "choices" (the verbalizer's words in order), "gold"} per
// example: bd-eval --task's generic multiple-choice layout. BD_ERR_VALUE for an item larger
// than bd-eval reads (BD_MC_MAX_ITEM_BYTES), BD_ERR_IO, BD_ERR_NOMEM.
// input and output name the files in messages.
BD_MUST_CHECK int bd_task_write_mc(FILE *f, const char *input, const char *output, const bd_task_set *set,
                                   const bd_task_verbalizer *v, char *why, size_t why_size);

#endif
