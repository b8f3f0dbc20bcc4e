// Shards of one run (--shard K/N): shard k of n does the units (samples, task items, forward
// passes) whose number u has u % n == k, each exactly as the whole run does it, so that the
// shards merged in unit order give the whole run's output. A shard's stream says so in its
// header, "shard": {k, n, units, argv, ...} (see bd-stream(5)); this file parses the option,
// packs and checks that field, and writes the merged stream's header and records.
#ifndef BD_SHARD_H
#define BD_SHARD_H

#include <stdint.h>

#include "bd_stream.h"

typedef struct {
    int64_t k, n;  // shard k of n, 0 <= k < n; n == 0: the whole run
} bd_shard;

// The largest N of "K/N": far more machines than anyone has, small enough for any count.
#define BD_SHARD_MAX_N ((int64_t)1 << 20)

// "K/N" (decimal digits only, 0 <= K < N <= BD_SHARD_MAX_N) -> *s; BD_ERR_VALUE otherwise,
// with why saying what was expected.
BD_MUST_CHECK int bd_shard_parse(const char *text, bd_shard *s, char *why, size_t why_size);
// How many of the units 0 .. total-1 are s's (all of them when s->n == 0).
int64_t bd_shard_count(const bd_shard *s, int64_t total);
// The number of s's j-th unit (j-th of its own, from 0).
int64_t bd_shard_unit(const bd_shard *s, int64_t j);

// Packs the header pair "shard": {k, n, units, argv, then n_extra pairs the caller packs}.
// units: how many the whole run has; argv: the --shard option's arguments as given
// (["--shard", "1/3"] or ["--shard=1/3"]), which a merge removes from the producer's argv.
void bd_shard_pack(msgpack_packer *pk, const bd_shard *s, int64_t units, int argc, char *const *argv, uint32_t n_extra);
// The shard a header records (BD_OK), or none (BD_EOF, s->n = 0); BD_ERR_SCHEMA for a
// malformed "shard" (why names the file).
BD_MUST_CHECK int bd_shard_read(const msgpack_object *hdr, const char *name, bd_shard *s, int64_t *units, char *why,
                                size_t why_size);

// The headers of count files (names for messages) are the shards of one run: each has a
// "shard" of the same n, every k once, and the headers are equal but for the shard's k, argv
// and stats, and the producer's argv. order[k] gets the file of shard k. Errors
// (BD_ERR_SCHEMA) name the file: no shard, another n, a shard twice, a missing shard, a
// field that differs.
BD_MUST_CHECK int bd_shards_check(const msgpack_object *const *hdrs, const char *const *names, int count, int *order,
                                  char *why, size_t why_size);
// Packs the header the whole run would have written: hdr (a shard's) without "shard", its
// producer's argv without the --shard arguments, and schema replaced if not NULL.
void bd_shard_pack_merged_header(msgpack_packer *pk, const msgpack_object *hdr, const char *schema);
// Hands the records of checked shards (rs[order[k]] holds shard k of n) to fn in unit order
// u = 0 .. units-1: record j of shard k must have "index" k + j*n, and shard k must hold
// exactly its bd_shard_count of units. fn gets the record, its unit, and a prefix naming the
// file and record for its own messages; its negative return (with why filled) stops.
// Errors name the file and record: BD_ERR_SCHEMA (another index), BD_ERR_TRUNCATED (a shard
// with fewer records: an interrupted run), BD_ERR_VALUE (more), or the reader's.
typedef int (*bd_shard_record_fn)(void *ctx, const msgpack_object *rec, int64_t u, const char *where, char *why,
                                  size_t why_size);
BD_MUST_CHECK int bd_shards_each(bd_reader *const *rs, const int *order, int64_t n, int64_t units,
                                 bd_shard_record_fn fn, void *ctx, char *why, size_t why_size);
// bd_shards_each copying every record into w (BD_ERR_IO if writing fails).
BD_MUST_CHECK int bd_shards_merge_records(bd_reader *const *rs, const int *order, int64_t n, int64_t units,
                                          bd_writer *w, char *why, size_t why_size);

#endif
