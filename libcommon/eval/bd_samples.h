// bd.samples streams as bd-teacher-gen writes them (see bd-stream(5)): the header fields that
// describe a run (teacher, tokenizer, prompt source, sampling), the check that an existing
// stream was started by the same run before it is resumed, the copy of its records, and one
// sample record {index, prompt, completion, finished[, top_ids, top_logprobs]}.
#ifndef BD_SAMPLES_H
#define BD_SAMPLES_H

#include "bd_generate.h"
#include "bd_prompts.h"
#include "bd_shard.h"
#include "bd_stream.h"

typedef struct {
    const char *model_path;
    char desc[256];      // bd_model_describe of the teacher
    const char *tok_id;  // the tokenizer's id, "" without one
    int vocab, bos, eos;
    const bd_prompt_opts *po;
    int n_prompts;
    char hash[17];  // bd_prompts_hash
    const bd_gen_opts *go;
    int64_t n;  // samples of the whole run
    int threads;
    bd_shard shard;  // n > 0: this run is a shard; its --shard arguments as given:
    int shard_argc;
    char *const *shard_argv;
} bd_samples_run;

// The header's schema fields, packed into sb as one msgpack map ("shard" last, for a shard).
void bd_samples_pack_header(msgpack_sbuffer *sb, const bd_samples_run *run);

// What may differ from the header of the run that started a stream without changing its samples
// (but see bd-teacher-gen(1)): bits of *differs.
enum { BD_SAMPLES_OTHER_BATCH = 1, BD_SAMPLES_OTHER_THREADS = 2 };
// Compares old (the header of the stream named name) with mine (bd_samples_pack_header's map):
// BD_ERR_SCHEMA if a field that decides the samples differs (why names it); else BD_OK with
// *differs set.
BD_MUST_CHECK int bd_samples_check_resume(const msgpack_object *old, const msgpack_object *mine, const char *name,
                                          unsigned *differs, char *why, size_t why_size);
// What the records of a resumed run must be: sample i continues prompts[i % n_prompts] with
// 1..max_new ids < vocab, within the context max_seq, and, with tk > 0, carries its top-tk ids
// and log-probabilities.
typedef struct {
    int vocab, max_seq, max_new, tk;
    const bd_gen_prompt *prompts;
    int n_prompts;
} bd_samples_limits;

// Copies every record of r into w after checking it against lim; they must be the run's
// samples 0, 1, ... (with shard->n > 0, shard k of N: samples k, k+N, ...), at most n of them
// (the run's own count). *copied gets how many. Errors name the file and record: BD_ERR_SCHEMA (index,
// a missing or mistyped field, another prompt), BD_ERR_VALUE (more than n samples, an id outside
// the vocabulary, a length past the limits, a log-probability that is not a finite number <= 0), BD_ERR_IO, the reader's.
BD_MUST_CHECK int bd_samples_copy(bd_reader *r, bd_writer *w, int64_t n, const bd_shard *shard,
                                  const bd_samples_limits *lim, int64_t *copied, char *why, size_t why_size);
// Packs the record of sample s (with its top-TK log-probabilities if tk > 0) and ends it.
BD_MUST_CHECK int bd_samples_write(bd_writer *w, const bd_gen_sample *s, int tk);
// Packs a record without stored log-probabilities, {index, prompt (P), completion (K),
// finished}, and ends it: for samples that were not generated (bd-task writes finished "label").
BD_MUST_CHECK int bd_samples_write_ids(bd_writer *w, int64_t index, const int32_t *prompt, int P,
                                       const int32_t *completion, int K, const char *finished);

#endif
