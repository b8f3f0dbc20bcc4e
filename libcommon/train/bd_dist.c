// Data-parallel training over MPI ranks: see bd_dist.h. The MPI half compiles only with BD_MPI
// (the Makefile's mpicc detection); the other half is the one-rank world.
#include "bd_dist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef BD_MPI
#include <mpi.h>
#endif

#define CHUNK_BYTES ((size_t)1 << 30)  // one message at most (MPI counts are int)

// The rank count mpirun announced in the environment (Open MPI, PMIx, PMI), or 0 if none.
static int launched_size(void) {
    const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE"};
    for (int i = 0; i < 3; i++) {
        const char *e = getenv(vars[i]);
        if (e && atoi(e) > 0) return atoi(e);
    }
    return getenv("PMIX_RANK") ? 1 : 0;
}

void bd_dist_shard(const bd_dist *d, int r, size_t n, size_t *lo, size_t *hi) {
    size_t R = (size_t)d->size, q = n / R, m = n % R;  // floor(n*r/R) without overflow
    *lo = q * (size_t)r + m * (size_t)r / R;
    *hi = q * (size_t)(r + 1) + m * (size_t)(r + 1) / R;
}

#ifdef BD_MPI

bool bd_dist_built_with_mpi(void) { return true; }

int bd_dist_init(bd_dist *d, int *argc, char ***argv, char *why, size_t ws) {
    *d = (bd_dist){0, 1, false, 0};
    if (launched_size() == 0) return BD_OK;  // not under mpirun: alone, without MPI
    if (MPI_Init(argc, argv) != MPI_SUCCESS) return bd_fail(why, ws, BD_ERR_IO, "MPI_Init failed");
    d->mpi = true;
    MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &d->size);
    return BD_OK;
}

void bd_dist_finalize(bd_dist *d) {
    if (d->mpi) MPI_Finalize();
    d->mpi = false;
}

void bd_dist_abort(const bd_dist *d, int code) {
    if (d->mpi) MPI_Abort(MPI_COMM_WORLD, code);
}

void bd_dist_wait_abort(const bd_dist *d) {
    if (d->mpi) MPI_Barrier(MPI_COMM_WORLD);  // the aborting rank never joins
}

static int ok(int rc) { return rc == MPI_SUCCESS ? BD_OK : BD_ERR_IO; }

int bd_dist_sum_f32(bd_dist *d, float *buf, size_t n) {
    if (d->size == 1) return BD_OK;
    for (size_t i = 0; i < n; i += BD_DIST_BUCKET) {
        int c = (int)(n - i < BD_DIST_BUCKET ? n - i : BD_DIST_BUCKET);
        int rc = ok(MPI_Allreduce(MPI_IN_PLACE, buf + i, c, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD));
        if (rc < 0) return rc;
        d->bytes_sent += 2.0 * c * sizeof(float) * (d->size - 1) / d->size;  // a ring's share
    }
    return BD_OK;
}

int bd_dist_sum_f64(bd_dist *d, double *buf, int n) {
    if (d->size == 1) return BD_OK;
    d->bytes_sent += (double)n * sizeof(double);
    return ok(MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD));
}

int bd_dist_allgather_u64(bd_dist *d, const uint64_t *v, int n, uint64_t *all) {
    if (d->size == 1) {
        for (int i = 0; i < n; i++) all[i] = v[i];
        return BD_OK;
    }
    d->bytes_sent += (double)n * sizeof(uint64_t);
    return ok(MPI_Allgather(v, n, MPI_UINT64_T, all, n, MPI_UINT64_T, MPI_COMM_WORLD));
}

// Every rank's shard broadcast by its owner, in chunks.
int bd_dist_allgather_shards(bd_dist *d, void *buf, size_t n, size_t es) {
    if (d->size == 1) return BD_OK;
    for (int r = 0; r < d->size; r++) {
        size_t lo, hi;
        bd_dist_shard(d, r, n, &lo, &hi);
        char *p = (char *)buf + lo * es;
        size_t bytes = (hi - lo) * es;
        for (size_t o = 0; o < bytes; o += CHUNK_BYTES) {
            int c = (int)(bytes - o < CHUNK_BYTES ? bytes - o : CHUNK_BYTES);
            int rc = ok(MPI_Bcast(p + o, c, MPI_BYTE, r, MPI_COMM_WORLD));
            if (rc < 0) return rc;
        }
        if (r == d->rank) d->bytes_sent += (double)bytes;
    }
    return BD_OK;
}

int bd_dist_gather_shards(bd_dist *d, void *buf, const void *shard, size_t n, size_t es) {
    size_t lo, hi;
    bd_dist_shard(d, d->rank, n, &lo, &hi);
    if (d->rank == 0) {
        if (shard != (char *)buf + lo * es && hi > lo) memmove((char *)buf + lo * es, shard, (hi - lo) * es);
        for (int r = 1; r < d->size; r++) {
            bd_dist_shard(d, r, n, &lo, &hi);
            size_t bytes = (hi - lo) * es;
            for (size_t o = 0; o < bytes; o += CHUNK_BYTES) {
                int c = (int)(bytes - o < CHUNK_BYTES ? bytes - o : CHUNK_BYTES);
                int rc = ok(MPI_Recv((char *)buf + lo * es + o, c, MPI_BYTE, r, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
                if (rc < 0) return rc;
            }
        }
        return BD_OK;
    }
    size_t bytes = (hi - lo) * es;
    for (size_t o = 0; o < bytes; o += CHUNK_BYTES) {
        int c = (int)(bytes - o < CHUNK_BYTES ? bytes - o : CHUNK_BYTES);
        int rc = ok(MPI_Send((const char *)shard + o, c, MPI_BYTE, 0, 0, MPI_COMM_WORLD));
        if (rc < 0) return rc;
    }
    d->bytes_sent += (double)bytes;
    return BD_OK;
}

#else  // one rank, no MPI

bool bd_dist_built_with_mpi(void) { return false; }

int bd_dist_init(bd_dist *d, int *argc, char ***argv, char *why, size_t ws) {
    (void)argc, (void)argv;
    *d = (bd_dist){0, 1, false, 0};
    int n = launched_size();
    if (n > 1)
        return bd_fail(why, ws, BD_ERR_ARG,
                       "started by mpirun as one of %d ranks, but built without MPI (install libopenmpi-dev and "
                       "rebuild)",
                       n);
    return BD_OK;
}

void bd_dist_finalize(bd_dist *d) { (void)d; }
void bd_dist_abort(const bd_dist *d, int code) { (void)d, (void)code; }
void bd_dist_wait_abort(const bd_dist *d) { (void)d; }
int bd_dist_sum_f32(bd_dist *d, float *buf, size_t n) { return (void)d, (void)buf, (void)n, BD_OK; }
int bd_dist_sum_f64(bd_dist *d, double *buf, int n) { return (void)d, (void)buf, (void)n, BD_OK; }

int bd_dist_allgather_u64(bd_dist *d, const uint64_t *v, int n, uint64_t *all) {
    (void)d;
    for (int i = 0; i < n; i++) all[i] = v[i];
    return BD_OK;
}

int bd_dist_allgather_shards(bd_dist *d, void *buf, size_t n, size_t es) {
    return (void)d, (void)buf, (void)n, (void)es, BD_OK;
}

int bd_dist_gather_shards(bd_dist *d, void *buf, const void *shard, size_t n, size_t es) {
    (void)d;
    if (buf != shard) memmove(buf, shard, n * es);
    return BD_OK;
}

#endif
