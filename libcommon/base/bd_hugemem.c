// Huge-page-advised memory (see bd_hugemem.h). A block of 2 MB or more has a mapping of its own,
// returned to the system when freed. Smaller blocks (a 110M model's 768x768 ternary matrix is
// 147 KB) are carved in order from shared arenas of ARENA_MIN bytes, after a 64-byte header
// that records their size; a freed small block waits in a list and serves the next request of
// the same size (zeroed again), so a buffer allocated and freed in a loop (a KV cache per
// evaluated item, a model copy per evaluation) reuses its memory; an arena whose blocks are all
// freed is returned to the system.
#include "bd_hugemem.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define HUGE_PAGE ((size_t)2 << 20)
#define ARENA_MIN ((size_t)32 << 20)
#define HEADER 64
#define MAX_ARENAS 1024
#define MAX_BIG 4096
#define MAX_FREE 4096

#if defined(__SANITIZE_ADDRESS__)
#define HUGE_VIA_MALLOC 1  // AddressSanitizer checks heap blocks only: keep every allocation one
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HUGE_VIA_MALLOC 1
#endif
#endif

void bd_huge_advise(void *p, size_t n) {
#ifdef MADV_HUGEPAGE
    uintptr_t a = ((uintptr_t)p + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1);
    uintptr_t e = ((uintptr_t)p + n) & ~(uintptr_t)(HUGE_PAGE - 1);
    if (e > a) (void)madvise((void *)a, e - a, MADV_HUGEPAGE);  // advice only: a refusal changes nothing
#else
    (void)p, (void)n;
#endif
}

// n rounded up to a whole number of 64-byte lines (at least one), or 0 when that overflows.
static size_t block_bytes(size_t n) {
    size_t want = (n + 63) / 64 * 64;
    return want < n ? 0 : want ? want : 64;
}

#ifdef HUGE_VIA_MALLOC
void *bd_huge_alloc(size_t n) {
    size_t want = block_bytes(n);
    if (!want) return NULL;
    void *p = aligned_alloc(64, want);
    if (p) memset(p, 0, want);
    return p;
}

void bd_huge_free(void *p) { free(p); }

#else
typedef struct {
    void *map;  // what mmap returned
    size_t len;
} mapping;

typedef struct {
    mapping m;
    uint8_t *base;  // HUGE_PAGE aligned
    size_t size;    // a multiple of HUGE_PAGE
    size_t used;    // bytes carved so far
    size_t live;    // blocks not yet freed
} arena;

typedef struct {
    uint8_t *p;
    size_t size;
} free_block;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static arena arenas[MAX_ARENAS];
static int n_arenas;
static struct {
    uint8_t *p;
    mapping m;
} big[MAX_BIG];
static int n_big;
static free_block freed[MAX_FREE];
static int n_freed;

// A mapping of at least n bytes starting on a 2 MB boundary, advised; *base its start.
static int map_aligned(size_t n, mapping *m, uint8_t **base) {
    size_t size = (n + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
    if (size < n) return -1;
    m->len = size + HUGE_PAGE;  // room to align the start
    m->map = mmap(NULL, m->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m->map == MAP_FAILED) return -1;
    *base = (uint8_t *)(((uintptr_t)m->map + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
    bd_huge_advise(*base, size);
    return 0;
}

// Called with the lock held: want (a multiple of 64, below HUGE_PAGE) bytes after a header.
static void *alloc_small(size_t want) {
    for (int i = 0; i < n_freed; i++)
        if (freed[i].size == want) {
            uint8_t *p = freed[i].p;
            freed[i] = freed[--n_freed];
            memset(p, 0, want);
            for (int a = 0; a < n_arenas; a++)
                if (p >= arenas[a].base && p < arenas[a].base + arenas[a].size) arenas[a].live++;
            return p;
        }
    arena *a = n_arenas ? &arenas[n_arenas - 1] : NULL;
    if (!a || a->size - a->used < want + HEADER) {
        if (n_arenas == MAX_ARENAS) return NULL;
        a = &arenas[n_arenas];
        if (map_aligned(ARENA_MIN, &a->m, &a->base) < 0) return NULL;
        a->size = ARENA_MIN, a->used = 0, a->live = 0;
        n_arenas++;
    }
    uint8_t *p = a->base + a->used + HEADER;  // fresh anonymous pages: already zero
    memcpy(p - HEADER, &want, sizeof want);
    a->used += want + HEADER;
    a->live++;
    return p;
}

void *bd_huge_alloc(size_t n) {
    size_t want = block_bytes(n);
    if (!want) return NULL;
    pthread_mutex_lock(&lock);
    void *p = NULL;
    if (want + HEADER < HUGE_PAGE) {
        p = alloc_small(want);
    } else if (n_big < MAX_BIG && map_aligned(want, &big[n_big].m, &big[n_big].p) == 0) {
        p = big[n_big++].p;
    }
    pthread_mutex_unlock(&lock);
    return p;
}

void bd_huge_free(void *p) {
    if (!p) return;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < n_big; i++)
        if (big[i].p == p) {
            munmap(big[i].m.map, big[i].m.len);
            big[i] = big[--n_big];
            pthread_mutex_unlock(&lock);
            return;
        }
    for (int i = 0; i < n_arenas; i++) {
        arena *a = &arenas[i];
        if ((uint8_t *)p < a->base || (uint8_t *)p >= a->base + a->size) continue;
        if (--a->live == 0) {  // every block freed: drop its waiting ones, return the arena
            for (int k = n_freed - 1; k >= 0; k--)
                if (freed[k].p >= a->base && freed[k].p < a->base + a->size) freed[k] = freed[--n_freed];
            munmap(a->m.map, a->m.len);
            arenas[i] = arenas[--n_arenas];  // the last arena (the one being carved) may move here
        } else if (n_freed < MAX_FREE) {
            size_t size;
            memcpy(&size, (uint8_t *)p - HEADER, sizeof size);
            freed[n_freed++] = (free_block){p, size};
        }
        break;
    }
    pthread_mutex_unlock(&lock);
}
#endif
