// BPE machinery shared by every vocabulary: piece and pair hash maps, and the merger that
// applies the best adjacent merge repeatedly, with a binary heap of candidate pairs so that
// a long text costs O(n log n) instead of a rescan per merge.
#include <stdlib.h>
#include <string.h>

#include "bd_filehash.h"
#include "bd_tok_internal.h"

uint64_t bd_tok_hash(const void *data, size_t n) { return bd_fnv1a64(BD_FNV1A64_INIT, data, n); }

static uint64_t table_size(uint64_t n) {
    uint64_t s = 16;
    while (s < 2 * n) s <<= 1;  // load factor <= 1/2
    return s;
}

// ---- piece string -> id ------------------------------------------------------------------

int bd_strmap_build(bd_strmap *m, const bd_tokenizer *t) {
    uint64_t size = table_size((uint64_t)t->n_vocab);
    m->slot = malloc(size * sizeof *m->slot);
    if (!m->slot) return BD_ERR_NOMEM;
    memset(m->slot, 0xff, size * sizeof *m->slot);
    m->mask = size - 1;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        if (!t->piece[id]) continue;
        uint64_t h = bd_tok_hash(t->piece[id], t->piece_len[id]) & m->mask;
        bool dup = false;
        while (m->slot[h] >= 0) {
            int32_t o = m->slot[h];
            if (t->piece_len[o] == t->piece_len[id] && memcmp(t->piece[o], t->piece[id], t->piece_len[id]) == 0) {
                dup = true;  // the first id of a repeated string wins, as in llama2.c
                break;
            }
            h = (h + 1) & m->mask;
        }
        if (!dup) m->slot[h] = id;
    }
    return BD_OK;
}

int32_t bd_strmap_get(const bd_strmap *m, const bd_tokenizer *t, const char *s, size_t n) {
    if (!m->slot) return -1;
    uint64_t h = bd_tok_hash(s, n) & m->mask;
    for (;;) {
        int32_t id = m->slot[h];
        if (id < 0) return -1;
        if (t->piece_len[id] == n && memcmp(t->piece[id], s, n) == 0) return id;
        h = (h + 1) & m->mask;
    }
}

void bd_strmap_free(bd_strmap *m) {
    free(m->slot);
    m->slot = NULL;
}

// ---- (a, b) -> merge -------------------------------------------------------------------------

static uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t)(uint32_t)a << 32 | (uint32_t)b; }
static uint64_t mix(uint64_t k) {  // splitmix64 finalizer: spreads nearby ids over the table
    k ^= k >> 30;
    k *= 0xbf58476d1ce4e5b9ULL;
    k ^= k >> 27;
    k *= 0x94d049bb133111ebULL;
    return k ^ (k >> 31);
}

int bd_pairmap_init(bd_pairmap *m, uint64_t expected) {
    uint64_t size = table_size(expected);
    m->key = malloc(size * sizeof *m->key);
    m->prio = malloc(size * sizeof *m->prio);
    m->res = malloc(size * sizeof *m->res);
    if (!m->key || !m->prio || !m->res) {
        bd_pairmap_free(m);
        return BD_ERR_NOMEM;
    }
    memset(m->key, 0xff, size * sizeof *m->key);
    m->mask = size - 1;
    m->count = 0;
    return BD_OK;
}

static int pairmap_grow(bd_pairmap *m) {
    bd_pairmap n;
    int rc = bd_pairmap_init(&n, (m->mask + 1));
    if (rc < 0) return rc;
    for (uint64_t i = 0; i <= m->mask; i++) {
        if (m->key[i] == UINT64_MAX) continue;
        uint64_t h = mix(m->key[i]) & n.mask;
        while (n.key[h] != UINT64_MAX) h = (h + 1) & n.mask;
        n.key[h] = m->key[i];
        n.prio[h] = m->prio[i];
        n.res[h] = m->res[i];
    }
    n.count = m->count;
    bd_pairmap_free(m);
    *m = n;
    return BD_OK;
}

int bd_pairmap_put(bd_pairmap *m, int32_t a, int32_t b, float prio, int32_t res) {
    if (2 * (m->count + 1) > m->mask + 1) {
        int rc = pairmap_grow(m);
        if (rc < 0) return rc;
    }
    uint64_t k = pair_key(a, b), h = mix(k) & m->mask;
    while (m->key[h] != UINT64_MAX) {
        if (m->key[h] == k) {
            if (prio < m->prio[h]) {
                m->prio[h] = prio;
                m->res[h] = res;
            }
            return BD_OK;
        }
        h = (h + 1) & m->mask;
    }
    m->key[h] = k;
    m->prio[h] = prio;
    m->res[h] = res;
    m->count++;
    return BD_OK;
}

bool bd_pairmap_get(const bd_pairmap *m, int32_t a, int32_t b, float *prio, int32_t *res) {
    if (!m->key || a < 0 || b < 0) return false;
    uint64_t k = pair_key(a, b), h = mix(k) & m->mask;
    for (;;) {
        if (m->key[h] == UINT64_MAX) return false;
        if (m->key[h] == k) {
            *prio = m->prio[h];
            *res = m->res[h];
            return true;
        }
        h = (h + 1) & m->mask;
    }
}

void bd_pairmap_free(bd_pairmap *m) {
    free(m->key);
    free(m->prio);
    free(m->res);
    m->key = NULL;
    m->prio = NULL;
    m->res = NULL;
}

// ---- the merger ------------------------------------------------------------------------------

void bd_bpe_work_free(bd_bpe_work *w) {
    free(w->sym);
    free(w->heap);
    free(w->buf);
    free(w->buf2);
    memset(w, 0, sizeof *w);
}

int bd_bpe_push_sym(bd_bpe_work *w, int32_t id, uint32_t start, uint32_t len) {
    if (w->n_sym == w->cap_sym) {
        size_t cap = w->cap_sym ? 2 * w->cap_sym : 256;
        bd_bpe_sym *s = realloc(w->sym, cap * sizeof *s);
        if (!s) return BD_ERR_NOMEM;
        w->sym = s;
        w->cap_sym = cap;
    }
    int32_t i = (int32_t)w->n_sym++;
    w->sym[i] = (bd_bpe_sym){.id = id, .prev = i - 1, .next = -1, .start = start, .len = len};
    if (i > 0) w->sym[i - 1].next = i;
    return BD_OK;
}

// Heap order: lower prio first, then the leftmost pair.
static bool before(const bd_bpe_item *x, const bd_bpe_item *y) {
    return x->prio < y->prio || (x->prio == y->prio && x->left < y->left);
}

static int heap_push(bd_bpe_work *w, bd_bpe_item it) {
    if (w->n_heap == w->cap_heap) {
        size_t cap = w->cap_heap ? 2 * w->cap_heap : 256;
        bd_bpe_item *h = realloc(w->heap, cap * sizeof *h);
        if (!h) return BD_ERR_NOMEM;
        w->heap = h;
        w->cap_heap = cap;
    }
    size_t i = w->n_heap++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!before(&it, &w->heap[p])) break;
        w->heap[i] = w->heap[p];
        i = p;
    }
    w->heap[i] = it;
    return BD_OK;
}

static bd_bpe_item heap_pop(bd_bpe_work *w) {
    bd_bpe_item top = w->heap[0], last = w->heap[--w->n_heap];
    size_t i = 0, n = w->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && before(&w->heap[c + 1], &w->heap[c])) c++;
        if (!before(&w->heap[c], &last)) break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (n > 0) w->heap[i] = last;
    return top;
}

static int queue_pair(const bd_pairmap *m, bd_bpe_work *w, int32_t left) {
    if (left < 0) return BD_OK;
    int32_t right = w->sym[left].next;
    if (right < 0) return BD_OK;
    float prio;
    int32_t res;
    if (!bd_pairmap_get(m, w->sym[left].id, w->sym[right].id, &prio, &res)) return BD_OK;
    return heap_push(w, (bd_bpe_item){prio, left, right, w->sym[left].id, w->sym[right].id});
}

static void merge_at(const bd_pairmap *m, bd_bpe_work *w, int32_t l, int32_t r) {
    float prio;
    int32_t res = -1;
    bd_pairmap_get(m, w->sym[l].id, w->sym[r].id, &prio, &res);
    w->sym[l].id = res;
    w->sym[l].len += w->sym[r].len;
    w->sym[l].next = w->sym[r].next;
    if (w->sym[r].next >= 0) w->sym[w->sym[r].next].prev = l;
    w->sym[r].id = -2;  // dead
    w->sym[r].len = 0;
}

int bd_bpe_merge(const bd_pairmap *m, bd_bpe_work *w) {
    w->n_heap = 0;
    int rc;
    for (int32_t i = 0; i + 1 < (int32_t)w->n_sym; i++)
        if ((rc = queue_pair(m, w, i)) < 0) return rc;
    while (w->n_heap > 0) {
        bd_bpe_item it = heap_pop(w);
        bd_bpe_sym *L = &w->sym[it.left], *R = &w->sym[it.right];
        // Stale entries: one side merged away or changed since this pair was queued.
        if (L->id != it.a || R->id != it.b || L->next != it.right) continue;
        merge_at(m, w, it.left, it.right);
        if ((rc = queue_pair(m, w, w->sym[it.left].prev)) < 0) return rc;
        if ((rc = queue_pair(m, w, it.left)) < 0) return rc;
    }
    return BD_OK;
}

void bd_bpe_merge_ref(const bd_pairmap *m, bd_bpe_work *w) {
    if (w->n_sym == 0) return;
    for (;;) {
        int32_t best = -1;
        float best_prio = 0;
        for (int32_t i = 0; i >= 0 && w->sym[i].next >= 0; i = w->sym[i].next) {
            float prio;
            int32_t res;
            if (bd_pairmap_get(m, w->sym[i].id, w->sym[w->sym[i].next].id, &prio, &res) &&
                (best < 0 || prio < best_prio)) {
                best = i;
                best_prio = prio;
            }
        }
        if (best < 0) return;
        merge_at(m, w, best, w->sym[best].next);
    }
}
