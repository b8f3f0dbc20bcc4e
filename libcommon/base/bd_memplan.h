// Memory plans: what a run will need, as a list of named parts, computed before the big
// allocations and checked against the memory this process can still get, so that a run that
// cannot fit is refused up front (with the option that shrinks its largest part) instead of
// being killed midway. The planners of each kind of run are in train/bd_runplan.h.
#ifndef BD_MEMPLAN_H
#define BD_MEMPLAN_H

#include <stddef.h>
#include <stdint.h>

#include "bd_error.h"

#define BD_MEMPLAN_MAX 24

typedef struct {
    const char *name;    // "activations" (a string that outlives the plan: a literal)
    uint64_t bytes;      //
    const char *shrink;  // the option that shrinks it ("--recompute or smaller -b/-T"), or NULL
} bd_mempart;

typedef struct {
    int n;
    bd_mempart part[BD_MEMPLAN_MAX];
} bd_memplan;

// Adds a part (parts of 0 bytes are skipped; past BD_MEMPLAN_MAX parts the bytes go to the last).
void bd_memplan_add(bd_memplan *p, const char *name, uint64_t bytes, const char *shrink);
uint64_t bd_memplan_total(const bd_memplan *p);
// The largest part (the first of equals), and the largest that an option shrinks; NULL if none.
const bd_mempart *bd_memplan_largest(const bd_memplan *p, int shrinkable);

// The bytes this process can still get: /proc/meminfo's MemAvailable, lowered by the limit of
// its cgroup (v2 memory.max of its cgroup and every ancestor, or v1 memory.limit_in_bytes) less
// what the cgroup already uses (file pages that can be dropped excepted). BD_MEM_AVAILABLE=<bytes>
// in the environment replaces all that (tests). 0 when nothing can be read: unknown.
uint64_t bd_mem_available(void);
// The same with the files read under root (root "" is the real system; tests give a fake tree
// holding proc/meminfo, proc/self/cgroup and sys/fs/cgroup/...). Ignores BD_MEM_AVAILABLE.
uint64_t bd_mem_available_at(const char *root);

// BD_OK if the plan fits in avail bytes (avail 0, unknown, always fits); else BD_ERR_NOMEM and
// one line in why: "needs 31.2 GiB (largest: activations 22.0 GiB, shrink with --recompute or
// smaller -b/-T), 22.9 GiB available".
BD_MUST_CHECK int bd_memplan_check(const bd_memplan *p, uint64_t avail, char *why, size_t why_size);

// The plan as a table for --verbosity 2, one part per line, then the total and what is
// available (the tool prints it; lines end in '\n'). Returns buf.
char *bd_memplan_format(const bd_memplan *p, uint64_t avail, char *buf, size_t size);

// "31.2 GiB", "512.0 MiB", "12.0 KiB", "100 B" (1024-based, one decimal). Returns buf.
char *bd_mem_size(uint64_t bytes, char *buf, size_t size);

#endif
