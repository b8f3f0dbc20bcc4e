// Token ids: taken out of stream records (bd.tokens "ids", bd.samples "prompt"/"completion"),
// checked against a model's vocabulary, into one growable array; and the one reader of token
// streams (bd_tokens) that every tool uses, record by record or whole.
#ifndef BD_IDS_H
#define BD_IDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bd_stream.h"
#include "bd_tokenizer.h"

typedef struct {
    int32_t *ids;  // (n)
    size_t n, cap;
} bd_ids;

// Appends rec's field (a 1-D u32/i32 tensor) to l. Every id must be in [0, V). On error
// returns BD_ERR_SCHEMA / BD_ERR_SHAPE / BD_ERR_VALUE / BD_ERR_NOMEM with a reason in why
// naming the field (and the position of a bad id); the caller adds the file and record.
BD_MUST_CHECK int bd_ids_append(bd_ids *l, const msgpack_object *rec, const char *field, int V, char *why,
                                size_t why_size);
// The same, but only the first max ids of the field are appended (and checked).
BD_MUST_CHECK int bd_ids_append_max(bd_ids *l, const msgpack_object *rec, const char *field, int V, size_t max,
                                    char *why, size_t why_size);
// Appends n ids (not checked). BD_ERR_NOMEM on failure.
BD_MUST_CHECK int bd_ids_push(bd_ids *l, const int32_t *ids, size_t n);
void bd_ids_free(bd_ids *l);

// A token stream read record by record: a bd.tokens stream (a record's ids: "ids") or a
// bd.samples stream (its "prompt" then its "completion"). Every message in why is complete:
// it names the file, and the record or "header" ("\"f.bdz\" record 3: field \"ids\": ...").
typedef struct {
    bd_reader *r;
    bool samples;               // bd.samples
    int V;                      // ids must be in [0, V)
    size_t max_per_record;      // keep (and check) at most this many ids of a record; SIZE_MAX: all
    const char *vocab;          // whose vocabulary V is, for messages: NULL "the model's", or e.g. "the tokenizer's"
    bd_ids doc;                 // the current record's ids
    size_t n_prompt;            // bd.samples: the first n_prompt of doc are the prompt
    const msgpack_object *rec;  // the current record (its other fields), valid until the next call
} bd_tokens;

// Opens path ("-" or NULL: standard input). schema: "bd.tokens", "bd.samples", or NULL for
// either. check_vocab: also refuse a header whose "vocab_size" exceeds V. Errors as
// bd_reader_open's (BD_ERR_SCHEMA for a wrong schema or vocabulary).
BD_MUST_CHECK int bd_tokens_open(bd_tokens *t, const char *path, const char *schema, int V, bool check_vocab, char *why,
                                 size_t why_size);
// The same over an open f (left open by bd_tokens_close); name is used in messages.
BD_MUST_CHECK int bd_tokens_open_file(bd_tokens *t, FILE *f, const char *name, const char *schema, int V,
                                      bool check_vocab, char *why, size_t why_size);
// Reads the next record into t->doc: BD_OK, BD_EOF after a verified trailer, or an error.
BD_MUST_CHECK int bd_tokens_next(bd_tokens *t, char *why, size_t why_size);
void bd_tokens_close(bd_tokens *t);
const char *bd_tokens_name(const bd_tokens *t);

// Every id of a stream, concatenated into out (appended): the first max are kept, the rest
// is still read and checked to the end.
BD_MUST_CHECK int bd_tokens_read(const char *path, const char *schema, int V, bool check_vocab, size_t max, bd_ids *out,
                                 char *why, size_t why_size);

// Text (documents separated by blank lines, each encoded with BOS) into out, as bd-tokenize
// makes a stream of it. Errors: BD_ERR_IO, BD_ERR_NOMEM, BD_ERR_VALUE (cannot encode, or a NUL
// byte: why names the line).
BD_MUST_CHECK int bd_ids_read_text(const char *path, const bd_tokenizer *tok, bd_ids *out, char *why, size_t why_size);

#endif
