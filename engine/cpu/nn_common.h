/* nn_common.h — shape checks shared by the nn kernel files (engine-private). */
#ifndef SP_NN_COMMON_H
#define SP_NN_COMMON_H
/* -O3 for the nn kernel files: at -O2 GCC 12's "very cheap" vectoriser leaves selects such
 * as ReLU's as mispredicting branches (measured 45x slower on random data). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")
#endif
#include "../core/internal.h"

#include <stdlib.h>
#include <string.h>

/* A contiguous float32 tensor of rank ndim (ndim < 0: any rank). */
static inline sp_status nn_f32(const sp_tensor *t, int ndim, const char *op, const char *what) {
    if (!t) return sp_error(SP_EINVAL, "%s: %s is NULL", op, what);
    if (t->dtype != SP_FLOAT32)
        return sp_error(SP_EINVAL, "%s: %s must be float32, got %s", op, what, sp_dtype_name(t->dtype));
    if (ndim >= 0 && t->ndim != ndim)
        return sp_error(SP_EINVAL, "%s: %s must be %d-D, got %d-D", op, what, ndim, t->ndim);
    if (!sp_tensor_is_contiguous(t)) return sp_error(SP_EINVAL, "%s: %s must be contiguous", op, what);
    return SP_OK;
}
static inline sp_status nn_numel(const sp_tensor *t, int64_t n, const char *op, const char *what) {
    if (sp_tensor_numel(t) != n)
        return sp_error(SP_EINVAL, "%s: %s has %lld elements, expected %lld", op, what,
                        (long long)sp_tensor_numel(t), (long long)n);
    return SP_OK;
}
static inline sp_status nn_shape4(const sp_tensor *t, int64_t a, int64_t b, int64_t c, int64_t d, const char *op,
                                  const char *what) {
    if (t->shape[0] != a || t->shape[1] != b || t->shape[2] != c || t->shape[3] != d)
        return sp_error(SP_EINVAL, "%s: %s is [%lld,%lld,%lld,%lld], expected [%lld,%lld,%lld,%lld]", op, what,
                        (long long)t->shape[0], (long long)t->shape[1], (long long)t->shape[2],
                        (long long)t->shape[3], (long long)a, (long long)b, (long long)c, (long long)d);
    return SP_OK;
}
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
