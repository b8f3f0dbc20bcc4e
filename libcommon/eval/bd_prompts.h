// The prompts bd-teacher-gen completes: read from a bd.tokens stream (the first L tokens of each
// document), from JSONL (a string field) or from plain text (one prompt per line, blank lines
// skipped), text wrapped in a template and encoded with BOS; a prompt that leaves no room for a
// new token keeps its end. And the hash that identifies a prompt set when a run is resumed.
#ifndef BD_PROMPTS_H
#define BD_PROMPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bd_error.h"
#include "bd_input.h"
#include "bd_tokenizer.h"

typedef struct {
    int32_t *ids;  // all prompts back to back
    size_t n_ids, cap_ids;
    size_t *start;  // (count + 1) offsets into ids
    int count, cap;
    int truncated;  // prompts cut to fit the context
} bd_prompt_set;

typedef struct {
    const char *kind;  // "bos", "text", "jsonl" or "tokens" (set by bd_prompts_read)
    const char *path;
    const char *field;      // JSONL: the prompt's string field (NULL: plain text)
    const char *template_;  // "" none, "alpaca", or a string where {} is the prompt, {NAME} a JSONL
                            // field, and \n \t \\ are escapes
    int prompt_len;         // bd.tokens: the first prompt_len tokens of each document
} bd_prompt_opts;

// Appends one prompt of n ids. BD_ERR_NOMEM.
BD_MUST_CHECK int bd_prompts_add(bd_prompt_set *ps, const int32_t *ids, size_t n);
// The same, but a prompt that leaves no room for a new token (n + 1 > max_seq) keeps its last
// max_seq/2 tokens (after the BOS it began with, if any) and counts in ps->truncated.
BD_MUST_CHECK int bd_prompts_fit_add(bd_prompt_set *ps, const int32_t *ids, size_t n, int max_seq, int32_t bos);
void bd_prompts_free(bd_prompt_set *ps);

// Reads at most max_n (< 0: all) prompts from in (po->path opened with bd_input_open, read
// once: a FIFO or a pipe works): a bd.tokens stream (bd_input_is_zstd) checked against
// vocabulary V, else text through tok (JSONL with po->field; a NUL byte or \u0000 escape is
// refused); sets po->kind. Errors name the file and line or record. BD_ERR_ARG only for a
// malformed template (a usage error); BD_ERR_IO, BD_ERR_NOMEM, BD_ERR_SCHEMA (a missing or
// non-string field), BD_ERR_VALUE (invalid JSON, NUL, cannot encode, empty prompt) and the
// stream reader's.
BD_MUST_CHECK int bd_prompts_read(bd_prompt_set *ps, bd_prompt_opts *po, const bd_input *in, const bd_tokenizer *tok,
                                  int V, int64_t max_n, int max_seq, int32_t bos, char *why, size_t why_size);

// FNV-1a 64 over every prompt's length and ids, as 16 hex digits.
void bd_prompts_hash(const bd_prompt_set *ps, char out[17]);

#endif
