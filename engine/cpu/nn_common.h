/* nn_common.h — shared by the CPU nn kernel files (engine-private). Arguments arrive
 * checked by engine/ops; kernels take scratch from sp_workspace. */
#ifndef SP_NN_COMMON_H
#define SP_NN_COMMON_H
/* -O3 for the nn kernel files: at -O2 GCC 12's "very cheap" vectoriser leaves selects such
 * as ReLU's as mispredicting branches (measured 45x slower on random data). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")
#endif
#include "../core/internal.h"
#include "../core/device.h"
#include "cpu_kernels.h"

#include <stdlib.h>
#include <string.h>

#define NN_TRY(x) do { sp_status s_ = (x); if (s_) return s_; } while (0)
/* OpenMP in the nn kernels is off unless sp_config_set_nn_omp(1) (lua/spore: SPORE_NN_OMP=1):
 * with the pthread OpenBLAS, the libgomp workers spin after each region and steal the CPU
 * from BLAS threads. Measured on the 2-core machine: ResNet50 batch-8 forward 1548 ms with
 * regions vs 908 ms without, LeNet training step 16 ms vs 6 ms. Above SP_NN_PAR_MIN
 * elements of work only. */
#define SP_NN_PAR_MIN ((int64_t)1 << 20)
static inline int nn_par(int64_t work) {
    return work > SP_NN_PAR_MIN && atomic_load_explicit(&sp_cfg_nn_omp, memory_order_relaxed);
}
#define F32(t) ((float *)SP_DATA(t))
#endif
