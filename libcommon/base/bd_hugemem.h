// Memory for weights and caches that are read in full on every token: zeroed, 64-byte aligned,
// and, on Linux, in regions the kernel is asked to back with 2 MB pages (MADV_HUGEPAGE; the
// system's transparent huge pages are often "madvise" only). A model's weights in 4 KB pages miss
// the TLB on nearly every page they stream through: on a virtual machine, where each miss walks
// two page tables, that alone held a ternary model's matrix-vector products to 60% of the speed
// they reach on 2 MB pages (bench_bitnet, bench_pack).
//
// A block of 2 MB or more has a mapping of its own, returned to the system when freed; smaller
// ones share arenas of 32 MB, and a freed small block serves the next request of its size (a
// buffer allocated and freed in a loop reuses its memory); an arena whose blocks are all freed is
// returned to the system. Thread-safe. (The sanitizer build uses malloc, which ASan checks.)
#ifndef BD_HUGEMEM_H
#define BD_HUGEMEM_H

#include <stddef.h>

// n bytes (n may be 0), or NULL when the system has no memory for them.
void *bd_huge_alloc(size_t n);
// Frees what bd_huge_alloc returned; NULL is ignored.
void bd_huge_free(void *p);
// Asks for 2 MB pages on the whole 2 MB pages inside [p, p + n) of any anonymous mapping (a
// benchmark's own buffer); no effect where the system has no such advice.
void bd_huge_advise(void *p, size_t n);

#endif
