#include "bd_eval_part.h"

#include <math.h>

void bd_eval_part_pack_item(msgpack_packer *pk, int64_t index, int n_choices, int gold, int pred, int pred_norm) {
    msgpack_pack_map(pk, 5);
    bd_pack_kv_int(pk, "index", index);
    bd_pack_kv_int(pk, "choices", n_choices);
    bd_pack_kv_int(pk, "gold", gold);
    bd_pack_kv_int(pk, "pred", pred);
    bd_pack_kv_int(pk, "pred_norm", pred_norm);
}

void bd_eval_part_pack_unit(msgpack_packer *pk, const bd_ppl_unit *u) {
    msgpack_pack_map(pk, 4);
    bd_pack_kv_int(pk, "index", u->index);
    bd_pack_kv_int(pk, "windows", u->windows);
    bd_pack_kv_int(pk, "tokens", u->scored);
    bd_pack_kv_double(pk, "nll", u->nll);  // the double itself: the sum is rebuilt bit for bit
}

int bd_eval_part_add_item(bd_mc_tally *t, const msgpack_object *rec, const char *where, char *why, size_t ws) {
    int64_t nc, gold, pred, pred_norm;
    if (bd_obj_int_in(bd_obj_get(rec, "choices"), 2, BD_MC_MAX_CHOICES, &nc) < 0 ||
        bd_obj_int_in(bd_obj_get(rec, "gold"), 0, nc - 1, &gold) < 0 ||
        bd_obj_int_in(bd_obj_get(rec, "pred"), 0, nc - 1, &pred) < 0 ||
        bd_obj_int_in(bd_obj_get(rec, "pred_norm"), 0, nc - 1, &pred_norm) < 0)
        return bd_fail(why, ws, BD_ERR_SCHEMA,
                       "%s: expected integer fields choices (2 to %d), gold, pred and pred_norm (0 to choices-1)",
                       where, BD_MC_MAX_CHOICES);
    bd_mc_tally_count(t, (int)nc, (int)gold, (int)pred, (int)pred_norm);
    return BD_OK;
}

int bd_eval_part_add_unit(bd_ppl_result *r, const msgpack_object *rec, const char *where, char *why, size_t ws) {
    int64_t windows, tokens;
    double nll;
    if (bd_obj_int_in(bd_obj_get(rec, "windows"), 1, 1 << 30, &windows) < 0 ||
        bd_obj_int_in(bd_obj_get(rec, "tokens"), 0, INT64_MAX / 4, &tokens) < 0 ||
        bd_obj_num(bd_obj_get(rec, "nll"), &nll) < 0 || !isfinite(nll) || nll < 0)
        return bd_fail(why, ws, BD_ERR_SCHEMA,
                       "%s: expected fields windows (>= 1), tokens (>= 0) and nll (a finite number >= 0)", where);
    r->nll_sum += nll;
    r->scored += tokens;
    r->windows += (int)windows;
    return BD_OK;
}
