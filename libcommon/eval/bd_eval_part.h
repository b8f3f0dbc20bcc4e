// bd.eval-part records (see bd-stream(5)): what a shard of a bd-eval run (bd-eval --shard)
// found, one record per unit, kept whole so that bd-eval --combine adds the units of all
// shards in the whole run's order and gets its results exactly: a task item {index, choices,
// gold, pred, pred_norm}, or a perplexity forward pass {index, windows, tokens, nll}.
#ifndef BD_EVAL_PART_H
#define BD_EVAL_PART_H

#include "bd_mc.h"
#include "bd_ppl.h"
#include "bd_stream.h"

// Packs item index (NC choices, gold, the predictions of acc and acc_norm) as one record.
void bd_eval_part_pack_item(msgpack_packer *pk, int64_t index, int n_choices, int gold, int pred, int pred_norm);
// Packs a forward pass (bd_ppl_unit) as one record.
void bd_eval_part_pack_unit(msgpack_packer *pk, const bd_ppl_unit *u);
// Adds an item record to t (bd_mc_tally_count). BD_ERR_SCHEMA if a field is missing or out of
// range (2 <= choices <= BD_MC_MAX_CHOICES, the others in 0 .. choices-1); why starts with where.
BD_MUST_CHECK int bd_eval_part_add_item(bd_mc_tally *t, const msgpack_object *rec, const char *where, char *why,
                                        size_t why_size);
// Adds a unit record to r as bd_ppl does (nll_sum += nll, scored, windows). BD_ERR_SCHEMA for a
// missing field, a count < 0 (windows < 1) or an nll that is not a finite number >= 0.
BD_MUST_CHECK int bd_eval_part_add_unit(bd_ppl_result *r, const msgpack_object *rec, const char *where, char *why,
                                        size_t why_size);

#endif
