/* config.c — process-wide engine settings, set explicitly by the caller (lua/spore maps
 * its environment variables onto these; the engine itself reads no environment). The
 * .ckpt reader's settings live with the reader (engine/io/ckpt_read.c). */
#include "core/internal.h"

#include <cblas.h>

atomic_int sp_cfg_nn_omp = 0;

/* The nn kernels' OpenMP regions are on by default when OpenBLAS is its OpenMP build (one
 * libgomp pool for both: `make BLAS=openmp`), off with the pthread build (the default), whose
 * threads would compete with libgomp's workers (sp_config_set_nn_omp overrides). */
__attribute__((constructor)) static void cfg_init(void) {
    atomic_store(&sp_cfg_nn_omp, openblas_get_parallel() == 2 ? 1 : 0);
}

void sp_config_set_nn_omp(int on) { atomic_store(&sp_cfg_nn_omp, on ? 1 : 0); }
int sp_config_nn_omp(void) { return atomic_load(&sp_cfg_nn_omp); }

const char *sp_blas_threading(void) {
    switch (openblas_get_parallel()) {
    case 0: return "sequential";
    case 1: return "pthread";
    case 2: return "openmp";
    default: return "unknown";
    }
}

int openblas_thread_timeout(void);   /* exported by OpenBLAS, not declared in cblas.h */

int sp_blas_thread_timeout(void) {
    if (openblas_get_parallel() != 1) return -1;
    int n = openblas_thread_timeout();
    return n <= 0 ? 28 : n < 4 ? 4 : n > 30 ? 30 : n;
}

const char *sp_blas_core(void) {
    const char *n = openblas_get_corename();
    return n ? n : "unknown";
}
