// The bd.metrics log of a training run (bd-qat --log): a header, then one record per optimizer
// step. Every record is also kept in memory, packed, so that each checkpoint carries the log so
// far (bd_ckpt_log) and a resumed run writes those records first: its log then holds every step
// exactly once, as an uninterrupted run's does (the steps a killed run did after its last
// checkpoint are done again, and logged once).
#ifndef BD_METRICS_H
#define BD_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "bd_ckpt.h"
#include "bd_stream.h"

// The header's fields.
typedef struct {
    const char *model, *loss;
    int batch, seq_len, grad_accum;
    long long steps;
} bd_metrics_head;

// One step's record.
typedef struct {
    long long step, tokens, epoch;
    double loss, lr, grad_norm, tokens_per_s, seconds;
    bool eval;  // eval_loss is set
    double eval_loss;
} bd_metrics_rec;

typedef struct {
    const char *path;      // the --log stream, NULL: the records are only kept
    bd_writer *w;          // open while the run writes it
    msgpack_sbuffer kept;  // every record so far, packed back to back
    uint64_t records;
} bd_metrics;

// Starts the log: creates path (unless NULL) with its header, then adds the records of a
// checkpoint (prior; NULL or empty for a new run). BD_ERR_IO (errno kept), BD_ERR_NOMEM; why
// names the file. Free with bd_metrics_free whatever it returns.
BD_MUST_CHECK int bd_metrics_open(bd_metrics *m, const char *path, const bd_metrics_head *h, const bd_producer *prod,
                                  const bd_ckpt_log *prior, char *why, size_t why_size);
// Adds a step's record (and flushes it to the stream, so a reader of a pipe sees it now).
BD_MUST_CHECK int bd_metrics_add(bd_metrics *m, const bd_metrics_rec *r, char *why, size_t why_size);
// The records so far, for bd_ckpt_save (valid until the next bd_metrics_add).
bd_ckpt_log bd_metrics_kept(const bd_metrics *m);
// Ends the stream and renames it into place.
BD_MUST_CHECK int bd_metrics_close(bd_metrics *m, char *why, size_t why_size);
// Frees m; a stream not closed is removed.
void bd_metrics_free(bd_metrics *m);

#endif
