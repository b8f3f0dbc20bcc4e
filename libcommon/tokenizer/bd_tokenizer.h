// Tokenizers: text bytes <-> token ids, for the vocabularies bd models use.
//
// Formats, detected by content (never by file name):
// - llama2.c tokenizer.bin: uint32 max_token_length, then per token float32 score,
//   int32 len, len bytes. SentencePiece BPE: dummy-prefix space, merges by the highest score
//   of the merged piece, byte fallback to <0xNN> pieces. Ids 0/1/2 are unk/BOS/EOS.
// - Hugging Face tokenizer.json with model.type "BPE": SentencePiece-style (Prepend/Replace
//   normalizers or Metaspace, byte_fallback) and byte-level (GPT-2, Qwen2, Llama 3 split
//   patterns). Merges apply by rank; added tokens match literally before BPE.
// - A directory holding tokenizer.json, tokenizer.bin or tok*.bin (first in that order).
//
// Deviations from the reference implementations (documented in man/bd-tokenize.1):
// - invalid UTF-8 bytes become byte-fallback tokens (SentencePiece would map them to
//   U+FFFD), so encode/decode round-trips every byte string in SentencePiece vocabularies;
// - Unicode normalizers other than Prepend/Replace (NFC, NFKC, ...) are not applied: the
//   input is taken as already normalized (a note is logged at load);
// - the byte-level split patterns are implemented by hand (see bd_tok_pretok.c) with
//   Unicode 14 letter/number classes; an invalid UTF-8 byte counts as punctuation there.
//
// A loaded tokenizer is read-only: encode and decode may run from several threads.
#ifndef BD_TOKENIZER_H
#define BD_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "bd_error.h"

// Largest tokenizer file read (tokenizer.json of 150K-token vocabularies is ~10 MB).
#define BD_MAX_TOKENIZER_BYTES ((size_t)256 << 20)

typedef struct bd_tokenizer bd_tokenizer;

enum {
    BD_TOK_BOS = 1 << 0,           // encode: put the BOS id first
    BD_TOK_EOS = 1 << 1,           // encode: put the EOS id last
    BD_TOK_SKIP_SPECIAL = 1 << 2,  // decode: drop control/special tokens (BOS, EOS, added specials)
};

// Growable id and byte buffers: start zeroed, free with the matching _free.
typedef struct {
    int32_t *ids;  // (n)
    size_t n, cap;
} bd_token_buf;
typedef struct {
    char *data;  // (len), not NUL-terminated
    size_t len, cap;
} bd_text_buf;
void bd_token_buf_free(bd_token_buf *b);
void bd_text_buf_free(bd_text_buf *b);

// Loads path (file or directory). On failure returns BD_ERR_IO (unreadable),
// BD_ERR_MALFORMED (unknown or corrupt format) or BD_ERR_NOMEM, with a one-line reason in
// why ("tokenizer.json: model.merges[12]: token "ab" is not in the vocab").
BD_MUST_CHECK int bd_tokenizer_load(const char *path, bd_tokenizer **out, char *why, size_t why_size);
// The file bd_tokenizer_load reads for path: path itself, or the tokenizer file of a directory
// (tokenizer.json, tokenizer.bin, then the first tok*.bin). BD_ERR_IO, BD_ERR_MALFORMED (none).
BD_MUST_CHECK int bd_tokenizer_file(const char *path, char *file, size_t size, char *why, size_t why_size);
void bd_tokenizer_free(bd_tokenizer *t);

// Replaces out's contents with the ids of text[0..len) (any bytes). flags: BD_TOK_BOS,
// BD_TOK_EOS. BD_ERR_ARG if a BOS/EOS is asked for and the vocabulary has none.
BD_MUST_CHECK int bd_tokenizer_encode(const bd_tokenizer *t, const char *text, size_t len, unsigned flags,
                                      bd_token_buf *out);
// Appends the text of ids[0..n) to out. SentencePiece vocabularies drop the dummy-prefix
// space of the first piece and of the piece right after a BOS; <0xNN> pieces become raw
// bytes. Control pieces of a tokenizer.bin (unk, BOS, EOS) decode to nothing, as in
// SentencePiece; tokenizer.json special tokens decode to their text unless
// BD_TOK_SKIP_SPECIAL is given. BD_ERR_VALUE if an id is out of range.
BD_MUST_CHECK int bd_tokenizer_decode(const bd_tokenizer *t, const int32_t *ids, size_t n, unsigned flags,
                                      bd_text_buf *out);
// Streaming form for generation: appends the text of id that follows prev (-1 at the start).
BD_MUST_CHECK int bd_tokenizer_decode_next(const bd_tokenizer *t, int32_t prev, int32_t id, unsigned flags,
                                           bd_text_buf *out);

int32_t bd_tokenizer_vocab_size(const bd_tokenizer *t);
int32_t bd_tokenizer_bos(const bd_tokenizer *t);  // -1 if none
int32_t bd_tokenizer_eos(const bd_tokenizer *t);  // -1 if none
// The token string as stored in the vocabulary ("▁Hello", " Hello", "<0x0A>", "Ġworld"), or
// NULL for an id out of range or unassigned. *len gets its byte length.
const char *bd_tokenizer_piece(const bd_tokenizer *t, int32_t id, size_t *len);
// The id of a token string, or -1.
int32_t bd_tokenizer_lookup(const bd_tokenizer *t, const char *piece, size_t len);
// Score of a SentencePiece piece (0 for byte-pair-rank vocabularies).
float bd_tokenizer_score(const bd_tokenizer *t, int32_t id);
// For exporters (GGUF): what kind of vocabulary t is, its split pattern, its merges and the
// type of each token.
typedef enum {
    BD_TOKV_SPM_BIN = 0,  // llama2.c tokenizer.bin (SentencePiece BPE with scores)
    BD_TOKV_SPM_JSON,     // tokenizer.json, SentencePiece-style (space marker, merges by rank)
    BD_TOKV_BYTE_LEVEL,   // tokenizer.json, byte-level BPE (GPT-2, Qwen2, Llama 3)
} bd_tok_vocab_kind;
bd_tok_vocab_kind bd_tokenizer_kind(const bd_tokenizer *t);
// The split before BPE: "gpt2", "qwen2", "llama3" (byte-level patterns), "metaspace", "none".
const char *bd_tokenizer_split_name(const bd_tokenizer *t);
// tokenizer.json merges in rank order (0 for tokenizer.bin): merge i joins pieces left and right
// into result. BD_ERR_ARG for i out of range.
int32_t bd_tokenizer_n_merges(const bd_tokenizer *t);
BD_MUST_CHECK int bd_tokenizer_merge(const bd_tokenizer *t, int32_t i, int32_t *left, int32_t *right, int32_t *result);
typedef enum {
    BD_TOKTYPE_NORMAL = 0,
    BD_TOKTYPE_UNKNOWN,  // the unk token
    BD_TOKTYPE_CONTROL,  // BOS, EOS, special added tokens
    BD_TOKTYPE_ADDED,    // added tokens that are not special (matched literally, decoded as is)
    BD_TOKTYPE_BYTE,     // <0xNN> byte-fallback pieces
    BD_TOKTYPE_UNUSED,   // an id with no piece
} bd_tok_token_type;
bd_tok_token_type bd_tokenizer_token_type(const bd_tokenizer *t, int32_t id);
// Stable identifier for stream headers: "llama2c:tok512.bin:<16 hex>" or "hf:<16 hex>",
// the hex being a 64-bit FNV-1a hash of the file's bytes.
const char *bd_tokenizer_id(const bd_tokenizer *t);

#endif
