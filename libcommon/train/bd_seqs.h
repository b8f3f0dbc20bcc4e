// Training sequences for bd-qat: cut from a token stream or one per sample of a bd.samples
// stream, with their next-token targets (-1 where not scored) and, from a stream made with
// bd-teacher-gen --logits K, the teacher's stored top-K log-probabilities; and the batches a
// training step takes from them. Dimension key: n sequences, T tokens each, TK stored top-K,
// V vocabulary, S sequences of a step.
#ifndef BD_SEQS_H
#define BD_SEQS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bd_error.h"

typedef struct {
    int T;
    long long n;
    int32_t *tok, *tgt;   // (n, T) inputs and targets
    int32_t *len;         // (n) real inputs of each sequence (the rest is padding): T from tokens
    int tk;               // TK, 0 without stored teacher log-probabilities
    int32_t *top_ids;     // (n, T, TK) the teacher's top ids for each position's prediction
    float *top_lp;        // (n, T, TK) and their log-probabilities
    size_t data_tokens;   // tokens the data held (n*T for samples)
    long long truncated;  // samples longer than T+1 tokens, cut
} bd_seqs;

// Cuts ids (n_ids) into sequences of T+1 tokens (inputs and next-token targets); the tail
// shorter than that is dropped. BD_ERR_NOMEM.
BD_MUST_CHECK int bd_seqs_from_ids(bd_seqs *s, const int32_t *ids, size_t n_ids, int T);
// The same over every id of a bd.tokens stream, checked against the vocabulary V.
BD_MUST_CHECK int bd_seqs_from_tokens(bd_seqs *s, const char *path, int V, int T, char *why, size_t why_size);
// One sequence per sample of a bd.samples stream: prompt + completion cut to T+1 tokens (and
// counted in s->truncated), padded unscored to T; samples under 2 tokens are skipped. With
// mask_prompt the targets that are prompt tokens are not scored; with teacher_logits the
// stream must carry the teacher's top-K (its header's logits_top_k) and only completion
// tokens are scored. Errors name the file and record.
BD_MUST_CHECK int bd_seqs_from_samples(bd_seqs *s, const char *path, int V, int T, bool mask_prompt,
                                       bool teacher_logits, char *why, size_t why_size);
void bd_seqs_free(bd_seqs *s);
// 64-bit identity of the sequences as training sees them: their tokens, targets and stored
// teacher rows (of the scored positions), never 0. A checkpoint records it so that a resume on
// other data is refused, while the same data from another file name or a pipe is accepted.
uint64_t bd_seqs_hash(const bd_seqs *s);

// Copies sequences idx[0..S-1] into tokens and targets (S, T) and their lengths into lens (S;
// may be NULL); returns the scored positions.
long long bd_seqs_gather(const bd_seqs *s, const long long *idx, long long S, int32_t *tokens, int32_t *targets,
                         int32_t *lens);
// The teacher's logits u (S, T, V) of sequences idx from the stored log-probabilities, at the
// positions targets (S, T) scores (the others are left as they are); see bd_seqs_dense_teacher.
void bd_seqs_teacher_logits(const bd_seqs *s, const long long *idx, long long S, const int32_t *targets, float *u,
                            int V);
// Logits u (V) of one position from its top-TK log-probabilities lp of ids: the listed ids get
// them and every other id an equal share of the remaining probability, so that softmax(u) is
// a distribution over the whole vocabulary (the reverse KL needs one).
void bd_seqs_dense_teacher(float *u, const int32_t *ids, const float *lp, int tk, int V);

#endif
