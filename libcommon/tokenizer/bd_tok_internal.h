// Internals shared by the tokenizer files (not a public header): the tokenizer struct,
// the piece and pair hash maps, the priority-queue BPE merger, UTF-8 and pre-tokenizers.
#ifndef BD_TOK_INTERNAL_H
#define BD_TOK_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bd_tokenizer.h"

// Piece types.
enum {
    BD_TOKT_NORMAL = 0,   // ordinary piece, a merge target
    BD_TOKT_BYTE = 1,     // <0xNN> byte-fallback piece
    BD_TOKT_CONTROL = 2,  // BOS/EOS/unk and HF special added tokens
    BD_TOKT_ADDED = 3,    // HF added token that is not special (matched in text, decoded as is)
    BD_TOKT_UNUSED = 4,   // id with no piece (a gap in a tokenizer.json vocab)
};

// Pre-tokenizers (how text is cut into words before BPE).
enum {
    BD_PRETOK_NONE = 0,   // the whole segment is one word
    BD_PRETOK_METASPACE,  // split before every space marker (Metaspace split=true)
    BD_PRETOK_GPT2,       // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
    BD_PRETOK_QWEN2,   // (?i:'s|...)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
    BD_PRETOK_LLAMA3,  // as QWEN2 with \p{N}{1,3}
};

// Text normalization steps applied, in order, to each text segment (between added tokens).
enum { BD_NORM_PREPEND = 1, BD_NORM_REPLACE = 2 };
typedef struct {
    int kind;
    char *a;  // PREPEND: the prefix; REPLACE: the pattern
    size_t a_len;
    char *b;  // REPLACE: the replacement
    size_t b_len;
    bool first_only;     // PREPEND: only to the segment at the start of the text
    bool unless_starts;  // PREPEND: not when the segment already starts with the prefix
} bd_norm_op;
#define BD_MAX_NORM_OPS 8

// Open-addressing map from piece strings to ids; the strings live in the tokenizer.
typedef struct {
    int32_t *slot;  // (mask+1) ids, -1 empty
    uint64_t mask;
} bd_strmap;

// Open-addressing map from an adjacent id pair to its merge: lower prio merges first.
typedef struct {
    uint64_t *key;  // (mask+1) (a<<32 | b), UINT64_MAX empty
    float *prio;    // (mask+1) SentencePiece: -score of the merged piece; HF: merge rank
    int32_t *res;   // (mask+1) id of the merged piece
    uint64_t mask;
    uint64_t count;
} bd_pairmap;

struct bd_tokenizer {
    int32_t n_vocab;
    char **piece;         // (n_vocab) token strings as stored, NUL-terminated, NULL if unused
    uint32_t *piece_len;  // (n_vocab)
    float *score;         // (n_vocab) SentencePiece scores (0 for HF)
    uint8_t *type;        // (n_vocab) BD_TOKT_*
    char **dec;           // (n_vocab) decoded bytes of each token (not NUL-terminated)
    uint32_t *dec_len;    // (n_vocab)
    bd_strmap vocab;
    bd_pairmap merges;
    int32_t byte_id[256];      // <0xNN> piece per byte, -1 if absent
    int32_t bytechar_id[256];  // byte-level: id of the single-char piece of each byte
    int32_t bos, eos, unk;

    bool hf, byte_level;
    bool byte_fallback, fuse_unk, ignore_merges;
    bool add_prefix_space;     // byte-level: prepend ' ' to a segment not starting with one
    bool strip_leading_space;  // decode: drop the dummy-prefix space after start/BOS
    char space[8];             // the space marker in pieces: " " (llama2.c) or "▁"
    size_t space_len;
    int pretok;  // BD_PRETOK_*
    // No piece holds a space marker right after another character, so BPE can run on each
    // space-led word alone with the same result (small heaps instead of one per text).
    bool split_words;
    bd_norm_op norm[BD_MAX_NORM_OPS];
    int n_norm;

    int32_t *added;  // (n_added) ids of tokens matched literally in text, longest first
    int n_added;
    int32_t *merge_list;  // (3 n_merges) tokenizer.json merges in rank order: left, right, result ids
    int32_t n_merges;
    char ident[128];
};

// ---- hashing and maps ------------------------------------------------------------------
uint64_t bd_tok_hash(const void *data, size_t n);  // 64-bit FNV-1a
BD_MUST_CHECK int bd_strmap_build(bd_strmap *m, const bd_tokenizer *t);
int32_t bd_strmap_get(const bd_strmap *m, const bd_tokenizer *t, const char *s, size_t n);
void bd_strmap_free(bd_strmap *m);

// The byte a byte-fallback piece "<0xHH>" (n bytes) stands for, or -1.
int bd_tok_byte_piece(const char *p, size_t n);
BD_MUST_CHECK int bd_pairmap_init(bd_pairmap *m, uint64_t expected);
// Inserts unless the pair is already there with a lower or equal prio.
BD_MUST_CHECK int bd_pairmap_put(bd_pairmap *m, int32_t a, int32_t b, float prio, int32_t res);
bool bd_pairmap_get(const bd_pairmap *m, int32_t a, int32_t b, float *prio, int32_t *res);
void bd_pairmap_free(bd_pairmap *m);

// ---- BPE merging ---------------------------------------------------------------------------
typedef struct {
    int32_t id;           // piece id, -1 for a character outside the vocab
    int32_t prev, next;   // neighbours in the live list, -1 at the ends
    uint32_t start, len;  // bytes of the word this symbol covers
} bd_bpe_sym;
typedef struct {
    float prio;
    int32_t left, right;  // symbol indices
    int32_t a, b;         // their ids when queued (an entry is stale once they change)
} bd_bpe_item;
// Scratch for one encode call (not shared between threads).
typedef struct {
    bd_bpe_sym *sym;  // (n_sym)
    size_t n_sym, cap_sym;
    bd_bpe_item *heap;  // (n_heap)
    size_t n_heap, cap_heap;
    char *buf;  // normalized text
    size_t buf_len, buf_cap;
    char *buf2;
    size_t buf2_cap;
} bd_bpe_work;
void bd_bpe_work_free(bd_bpe_work *w);
BD_MUST_CHECK int bd_bpe_push_sym(bd_bpe_work *w, int32_t id, uint32_t start, uint32_t len);
// Merges w->sym[0..n_sym) in place: repeatedly the adjacent pair with the lowest prio (ties:
// leftmost). Afterwards the live symbols are reached from index 0 through next.
BD_MUST_CHECK int bd_bpe_merge(const bd_pairmap *m, bd_bpe_work *w);
// The same by rescanning all pairs per merge: O(n^2), the reference for tests.
void bd_bpe_merge_ref(const bd_pairmap *m, bd_bpe_work *w);

// ---- UTF-8 and pre-tokenization ------------------------------------------------------------
// Length of the valid UTF-8 sequence at s[0..n) (1..4, code point in *cp), or 0 if the
// byte at s[0] does not start one (overlong, surrogate, > U+10FFFF, cut short).
int bd_utf8_decode(const uint8_t *s, size_t n, uint32_t *cp);
// Unicode classes for the split patterns.
enum { BD_UC_OTHER = 0, BD_UC_LETTER, BD_UC_NUMBER, BD_UC_SPACE };
int bd_unicode_class(uint32_t cp);
// End (byte offset) of the pattern match that starts at byte i of s[0..n), i < n.
size_t bd_pretok_next(int style, const uint8_t *s, size_t n, size_t i);

// ---- per-format parts ----------------------------------------------------------------------
BD_MUST_CHECK int bd_tok_load_llama2c(bd_tokenizer *t, const uint8_t *data, size_t n, char *why, size_t why_size);
BD_MUST_CHECK int bd_tok_load_hf(bd_tokenizer *t, const char *json, size_t n, const char *dir, char *why,
                                 size_t why_size);
// Allocates the per-id arrays for n_vocab ids (all UNUSED).
BD_MUST_CHECK int bd_tok_alloc(bd_tokenizer *t, int32_t n_vocab);
BD_MUST_CHECK int bd_tok_set_piece(bd_tokenizer *t, int32_t id, const char *s, size_t n, float score, int type);
// Fills dec[] from the pieces and types (after loading).
BD_MUST_CHECK int bd_tok_finish(bd_tokenizer *t);
// Encodes one text segment without added tokens (normalize, pre-tokenize, BPE), appending.
BD_MUST_CHECK int bd_tok_encode_segment(const bd_tokenizer *t, const char *s, size_t n, bool at_start, bd_bpe_work *w,
                                        bd_token_buf *out);
BD_MUST_CHECK int bd_token_buf_push(bd_token_buf *b, int32_t id);

#endif
