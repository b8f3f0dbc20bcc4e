// Arenas of huge-page-advised memory (see bd_hugemem.h).
#include "bd_hugemem.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define HUGE_PAGE ((size_t)2 << 20)
#define ARENA_MIN ((size_t)32 << 20)
#define MAX_ARENAS 1024

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

#ifdef HUGE_VIA_MALLOC
void *bd_huge_alloc(size_t n) {
    size_t want = (n + 63) / 64 * 64;
    if (want < n) return NULL;  // overflow
    if (want == 0) want = 64;
    void *p = aligned_alloc(64, want);
    if (p) memset(p, 0, want);
    return p;
}

void bd_huge_free(void *p) { free(p); }

#else
typedef struct {
    uint8_t *base;  // HUGE_PAGE aligned
    size_t size;    // a multiple of HUGE_PAGE
    size_t used;    // bytes carved so far
    size_t live;    // allocations not yet freed
    void *map;      // what mmap returned (base rounded up inside it)
    size_t map_len;
} arena;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static arena arenas[MAX_ARENAS];
static int n_arenas;

// A new arena of at least n bytes, or NULL. Called with the lock held.
static arena *new_arena(size_t n) {
    if (n_arenas == MAX_ARENAS) return NULL;
    size_t size = (n + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
    if (size < ARENA_MIN) size = ARENA_MIN;
    size_t len = size + HUGE_PAGE;  // room to align the start
    void *map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED) return NULL;
    uint8_t *base = (uint8_t *)(((uintptr_t)map + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
    bd_huge_advise(base, size);
    arena *a = &arenas[n_arenas++];
    *a = (arena){base, size, 0, 0, map, len};
    return a;
}

void *bd_huge_alloc(size_t n) {
    size_t want = (n + 63) / 64 * 64;
    if (want < n) return NULL;  // overflow
    if (want == 0) want = 64;
    pthread_mutex_lock(&lock);
    arena *a = n_arenas ? &arenas[n_arenas - 1] : NULL;
    if (!a || a->size - a->used < want) a = new_arena(want);
    void *p = NULL;
    if (a) {  // fresh anonymous pages, never handed out before: already zero
        p = a->base + a->used;
        a->used += want;
        a->live++;
    }
    pthread_mutex_unlock(&lock);
    return p;
}

void bd_huge_free(void *p) {
    if (!p) return;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < n_arenas; i++) {
        arena *a = &arenas[i];
        if ((uint8_t *)p < a->base || (uint8_t *)p >= a->base + a->size) continue;
        if (--a->live == 0) {
            munmap(a->map, a->map_len);
            arenas[i] = arenas[--n_arenas];  // the last arena (the one being carved) may move here
        }
        break;
    }
    pthread_mutex_unlock(&lock);
}
#endif
