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

/* The build targets baseline x86-64 (SSE2, no FMA); loops marked SP_CLONES get AVX2/AVX-512
 * clones chosen at load time, as OpenBLAS picks its kernels. Not under ThreadSanitizer: its
 * instrumented ifunc resolvers would run before the TSan runtime starts (make SANITIZE=thread). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && !defined(__SANITIZE_THREAD__)
#define SP_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define SP_CLONES
#endif

/* AVX-512 F, BW, VL and DQ (the subset spore's own AVX-512 kernels use: conv_small.c,
 * pool.c, dense.c), probed once per process */
#if defined(__GNUC__) && defined(__x86_64__)
static inline int sp_cpu_avx512(void) {
    static int v = -1;
    if (v < 0) {
        __builtin_cpu_init();
        v = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
            __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    }
    return v;
}
#endif

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
/* Loops over channels-last operands: those tensors come from spore.nn's oneDNN chains
 * (conv_kernel auto or onednn), whose convolutions already run on libgomp's pool, so these
 * loops run there too above SP_NN_PAR_MIN whatever nn_omp says (scripts/bench/step_profile.lua,
 * ResNet50 training step at batch 8: BatchNorm forward 109 -> 67 ms, backward 140 -> 94 ms,
 * the joins' add and ReLU backward 80 -> 45 ms, max pooling 20 -> 11 ms). */
static inline int nn_par_cl(int64_t work) { return work > SP_NN_PAR_MIN; }
/* the policy for an elementwise loop over t's layout: nn_par_cl when t is channels-last */
static inline int nn_par_for(const sp_tensor *t, int64_t work) {
    return sp_tensor_is_contiguous(t) ? nn_par(work) : nn_par_cl(work);
}
/* One region over a whole model's flat optimizer state (tens of MB): the workers' spin after
 * it is small next to the work, so it runs on libgomp's pool whatever nn_omp says. */
#define SP_NN_PAR_BIG ((int64_t)1 << 22)
static inline int nn_par_big(int64_t work) { return work > SP_NN_PAR_BIG || nn_par(work); }
#define F32(t) _Generic((t), const sp_tensor *: (const float *)sp_data_ro((const sp_tensor *)(t)), default: (float *)sp_data_rw((sp_tensor *)(t)))
/* AVX2/AVX-512 clones of plain loops (ReLU), chosen at load time as conv.c's direct loops;
 * not under ThreadSanitizer (its ifunc resolvers would run before the TSan runtime) */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && !defined(__SANITIZE_THREAD__)
#define SP_NN_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define SP_NN_CLONES
#endif

/* The geometry of an already-checked convolution (conv.c, conv_dnnl.c). */
typedef struct {
    int64_t N, C, H, W, Co, kh, kw, Ho, Wo;
    int sh, sw, pt, pl, dh, dw, g, pb_, pr_;
} conv_geom;
static inline void conv_geom_of(conv_geom *c, const sp_tensor *x, const sp_tensor *w, int sh, int sw, int pt, int pb,
                                int pl, int pr, int dh, int dw, int groups) {
    c->N = x->shape[0]; c->C = x->shape[1]; c->H = x->shape[2]; c->W = x->shape[3];
    c->Co = w->shape[0]; c->kh = w->shape[2]; c->kw = w->shape[3];
    int64_t eh = (int64_t)dh * (c->kh - 1) + 1, ew = (int64_t)dw * (c->kw - 1) + 1;
    c->Ho = (c->H + pt + pb - eh) / sh + 1; c->Wo = (c->W + pl + pr - ew) / sw + 1;
    c->sh = sh; c->sw = sw; c->pt = pt; c->pl = pl; c->pb_ = pb; c->pr_ = pr; c->dh = dh; c->dw = dw; c->g = groups;
}

/* conv_dnnl.c: the convolution through oneDNN (sp_cpu_conv_kernel() == SP_CONV_ONEDNN).
 * 1: the layer ran there (its status in *st); 0: spore's kernels run it. The forward takes
 * the eval-mode epilogue (gamma..var non-NULL: BatchNorm's fold; residual; relu) and, with
 * bf16, rounds x and w to bfloat16 (amp_level "O2"; oneDNN's AMX kernels where the CPU has
 * them). */
/* conv_dnnl.c's kept weights: calls that used a kept copy so far, and the bytes kept now
 * (a test hook: spec/engine/test_channels_last.c) */
void sp_cpu_wcache_stats(uint64_t *hits, size_t *bytes);
int sp_cpu_dnnl_conv_forward(sp_status *st, sp_tensor *out, const sp_tensor *x, const sp_tensor *w,
                             const sp_tensor *bias, const sp_tensor *gamma, const sp_tensor *beta,
                             const sp_tensor *mean, const sp_tensor *var, double eps, const sp_tensor *residual,
                             int relu, int sh, int sw, int pt, int pb, int pl, int pr, int dh, int dw, int groups,
                             int bf16, const char *op);
int sp_cpu_dnnl_conv_backward(sp_status *st, sp_tensor *grad_x, sp_tensor *grad_w, sp_tensor *grad_b,
                              const sp_tensor *grad_out, const sp_tensor *x, const sp_tensor *w, int sh, int sw,
                              int pt, int pb, int pl, int pr, int dh, int dw, int groups, const char *op);

/* conv_wino.c: Winograd F(4x4,3x3) forward for 3x3 stride-1 undilated ungrouped layers.
 * sp_wino_off (a hidden test hook) turns it off, and oneDNN's Winograd (conv_dnnl.c) for the
 * primitives made afterwards; sp_dnnl_wino_runs counts oneDNN Winograd executions (tests). */
extern int sp_wino_off;
extern long sp_dnnl_wino_runs;
/* norm.c: O = X * a + b [+ R] [ReLU] per channel over M channels-last rows of C (O may be X),
 * on libgomp's pool when par */
void sp_cpu_nhwc_apply(float *O, const float *X, const float *R, int64_t M, int64_t C, const float *a,
                       const float *b, int relu, int par);
/* conv_dnnl.c: 1x1 stride-1 channels-last layers as oneDNN sgemm calls; sp_gemm1x1_off (a
 * hidden test hook) turns that off, sp_dnnl_gemm_runs counts the sgemm calls (tests). */
extern int sp_gemm1x1_off;
extern long sp_dnnl_gemm_runs;
/* conv_dnnl.c, a bf16 forward on channels-last operands: sp_cvt_bf16_off (a hidden test hook)
 * rounds x through oneDNN's reorder instead of spore's loop, sp_cvt_bf16_runs counts that
 * loop's calls; sp_dnnl_resbin_runs counts the fused forwards that read their residual as a
 * binary-add post-op (tests) */
extern int sp_cvt_bf16_off;
extern long sp_cvt_bf16_runs, sp_dnnl_resbin_runs;
int sp_cpu_wino_applies(int64_t N, int64_t C, int64_t Co, int64_t Ho, int64_t Wo, int64_t kh, int64_t kw, int sh,
                        int sw, int dh, int dw, int groups);
sp_status sp_cpu_wino_forward(float *O, const float *X, const float *Wt, const float *bias, int64_t N, int64_t C,
                              int64_t H, int64_t W, int64_t Co, int64_t Ho, int64_t Wo, int pt, int pl, sp_device *dev,
                              const char *op);

/* conv_small.c: direct AVX-512 convolution for small-channel small-map layers (LeNet's
 * conv2). The kernels return 1 when done, 0 when not applicable here, -1 out of memory. */
int sp_cpu_conv_small_applies(int64_t C, int64_t H, int64_t W, int64_t Co, int64_t kh, int64_t kw, int sh, int sw,
                              int pt, int pb, int pl, int pr, int dh, int dw, int groups);
int sp_cpu_conv_small_forward(float *O, const float *X, const float *Wt, const float *B, int64_t N, int64_t C,
                              int64_t H, int64_t W, int64_t Co, int64_t kh, int64_t kw, sp_device *dev);
int sp_cpu_conv_small_backward(float *GX, float *GW, float *GB, const float *GO, const float *X, const float *Wt,
                               int64_t N, int64_t C, int64_t H, int64_t W, int64_t Co, int64_t kh, int64_t kw,
                               sp_device *dev);
/* conv_small.c: the same for first layers (C*kh*kw <= 32), vectorised along output rows;
 * the backward does grad_w and grad_b only */
int sp_cpu_conv_rows_applies(int64_t C, int64_t H, int64_t W, int64_t Co, int64_t kh, int64_t kw, int sh, int sw,
                             int pt, int pb, int pl, int pr, int dh, int dw, int groups);
int sp_cpu_conv_rows_forward(float *O, const float *X, const float *Wt, const float *B, int64_t N, int64_t C,
                             int64_t H, int64_t W, int64_t Co, int64_t kh, int64_t kw);
int sp_cpu_conv_rows_backward(float *GW, float *GB, const float *GO, const float *X, int64_t N, int64_t C, int64_t H,
                              int64_t W, int64_t Co, int64_t kh, int64_t kw, sp_device *dev);
#endif
