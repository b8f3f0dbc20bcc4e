// MPI_Allreduce bandwidth of f32 sums (what bd-qat does with the gradient, bd_dist.c) for a
// few buffer sizes: built and run by bench/large/mpi.sh with mpicc/mpirun, not by make.
//   mpirun -np R allreduce_bw [REPS] [MB...]   (default 5 repetitions of 4 16 64 256 MB)
// Rank 0 prints one line per size: MB, median seconds, algorithm bandwidth (bytes / time) and
// bus bandwidth (2(R-1)/R x bytes / time: what each rank sends in a ring, comparable to the
// link speed). Every rank checks the sum (each element = R) so a broken run is not timed.
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, R;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &R);
    int reps = argc > 1 ? atoi(argv[1]) : 5;
    static const char *def[] = {"4", "16", "64", "256"};
    int nsizes = argc > 2 ? argc - 2 : 4;
    if (reps < 1 || reps > 100) {
        if (rank == 0) fprintf(stderr, "allreduce_bw: REPS must be 1..100\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    double *t = malloc(sizeof(double) * (size_t)reps);
    if (rank == 0) printf("%8s %10s %12s %12s\n", "MB", "seconds", "algbw GB/s", "busbw GB/s");
    for (int s = 0; s < nsizes; s++) {
        double mb = atof(argc > 2 ? argv[2 + s] : def[s]);
        size_t n = (size_t)(mb * 1e6 / sizeof(float));
        float *in = malloc(n * sizeof(float)), *out = malloc(n * sizeof(float));
        if (!t || !in || !out || n == 0 || n > 0x7fffffff) {
            fprintf(stderr, "allreduce_bw: rank %d: cannot allocate %.0f MB (or bad size)\n", rank, mb);
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        for (size_t i = 0; i < n; i++) in[i] = 1.0f;
        MPI_Allreduce(in, out, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);  // warm-up (buffers, connections)
        for (int r = 0; r < reps; r++) {
            MPI_Barrier(MPI_COMM_WORLD);
            double t0 = MPI_Wtime();
            MPI_Allreduce(in, out, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
            double dt = MPI_Wtime() - t0, worst;
            MPI_Allreduce(&dt, &worst, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);  // the slowest rank's time
            t[r] = worst;
        }
        if (out[0] != (float)R || out[n / 2] != (float)R || out[n - 1] != (float)R) {
            fprintf(stderr, "allreduce_bw: rank %d: wrong sum %g (expected %d)\n", rank, out[n - 1], R);
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        qsort(t, (size_t)reps, sizeof(double), cmp_double);
        double med = reps % 2 ? t[reps / 2] : (t[reps / 2 - 1] + t[reps / 2]) / 2, bytes = (double)n * sizeof(float);
        if (rank == 0)
            printf("%8.1f %10.4f %12.2f %12.2f\n", bytes / 1e6, med, bytes / med / 1e9,
                   2.0 * (R - 1) / R * bytes / med / 1e9);
        free(in);
        free(out);
    }
    free(t);
    MPI_Finalize();
    return 0;
}
