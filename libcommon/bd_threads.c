#include "bd_threads.h"

#include <cblas.h>
#include <unistd.h>

static int num_threads = 1;

void bd_set_num_threads(int n) {
    if (n <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 0 ? (int)c : 1;
    }
    num_threads = n;
    openblas_set_num_threads(n);
}

int bd_num_threads(void) { return num_threads; }
