// The thread count every parallel part of bd uses (OpenBLAS and bd's own kernels).
#ifndef BD_THREADS_H
#define BD_THREADS_H

void bd_set_num_threads(int n);  // n <= 0: all online CPUs
int bd_num_threads(void);

#endif
