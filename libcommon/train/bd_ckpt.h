// Training checkpoints: the weights as a bd.model stream plus the optimizer and data state
// as a bd.trainstate stream (see man/bd-stream.5), in two files that are swapped in safely:
//   PATH           the bd.trainstate stream: step, data position, seed, settings, AdamW's
//                  step count and moments (records "adam_m", "adam_v": flat slices in the
//                  parameter layout, f32 or bf16 as the optimizer keeps them), the name and hash of its weights file, and the run's
//                  bd.metrics records so far (a record {"log": bin, "records": N});
//   PATH.wSTEP     the weights at that step: an ordinary bd.model stream (bd-eval reads it).
// Each file is written under a temporary name and renamed into place (bd_writer). The new
// weights file gets a new name and is written first, the state that points at it second, and
// only then are older PATH.w* files removed: a process killed at any moment (kill -9
// included) leaves PATH naming a complete weights file whose hash it records. P = parameters.
#ifndef BD_CKPT_H
#define BD_CKPT_H

#include <stddef.h>
#include <stdint.h>

#include "bd_error.h"
#include "bd_model.h"
#include "bd_optim.h"
#include "bd_stream.h"

typedef struct {
    long long step;                  // optimizer steps done
    long long epoch;                 // data position: epoch ...
    long long pos;                   // ... and sequences of it consumed (in the epoch's shuffled order)
    long long tokens;                // training tokens seen
    uint64_t seed;                   // the run's seed (the epoch order derives from it)
    int batch, seq_len, grad_accum;  // settings a resumed run must share
    double gamma;         // cakld's g as measured at the start (-1: none), kept so a resume needs no re-measure
    uint64_t data_hash;   // identity of the training data (bd_seqs_hash); 0: not recorded
    double seconds;       // training time so far (the metrics log's "seconds" go on from it)
    char objective[256];  // what the run minimizes, as the trainer words it ("" : not recorded)
} bd_ckpt_info;

// The bd.metrics records of a run up to its checkpoint: msgpack maps packed back to back. A
// checkpoint carries them so that a resumed run's --log holds every step exactly once.
typedef struct {
    char *data;  // (len) bytes; from bd_ckpt_load: malloc'd, the caller frees it
    size_t len;
    uint64_t records;
} bd_ckpt_log;

// AdamW's state as a checkpoint holds it.
typedef struct {
    bd_dtype dtype;  // of the stored moments: BD_F32 or BD_BF16 (the header's "moments_dtype")
    void *data;      // (2P) m then v, elements of dtype; from bd_ckpt_load: malloc'd, the caller frees it
    long long t;     // AdamW's step count
} bd_ckpt_moments;

// Writes the checkpoint of model, opt (moments and step count), info and log (may be NULL) at path.
// Test hook: the environment variable BD_CKPT_TEST_DELAY_MS=N sleeps N ms after the
// weights file is committed and after each state record, so that a test can kill the
// process in the middle of a checkpoint write.
BD_MUST_CHECK int bd_ckpt_save(const char *path, const bd_model *model, const bd_adamw *opt, const bd_ckpt_info *info,
                               const bd_ckpt_log *log, const bd_producer *prod, char *why, size_t why_size);

// Reads the checkpoint at path: model gets the weights (allocated here, with the stored
// quantization spec), info the state, mom AdamW's step count and moments in their stored dtype
// (bd_adamw_set_moments takes them; a state without "moments_dtype" holds f32) and, if log is
// not NULL, *log the metrics records (none from a checkpoint without them). Errors name the file and what is wrong
// (BD_ERR_SCHEMA for a weights file that does not match the state's hash or size).
BD_MUST_CHECK int bd_ckpt_load(const char *path, bd_model *model, bd_ckpt_info *info, bd_ckpt_moments *mom,
                               bd_ckpt_log *log, char *why, size_t why_size);

// 64-bit hash of n floats (their bytes), recorded to tie a state to its weights.
uint64_t bd_ckpt_hash(const float *p, size_t n);

#endif
