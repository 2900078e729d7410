/* dense.c — CPU kernels (checked by engine/ops/nn_ops.c): Dense (fully connected) forward/backward, float32, weight [out, in]. */
#include "nn_common.h"

#include <cblas.h>

/* y [O] (+)= w [O,In] . x [In] on this thread. AVX-512: eight rows a pass, one x vector
 * load serving eight FMAs, the tail of each row masked; elsewhere a plain loop. */
#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define GEMV_AVX512 1
__attribute__((target("avx512f"))) static void gemv_avx512(float *y, const float *w, const float *x, int64_t O,
                                                          int64_t In, int acc) {
    const int64_t I16 = In & ~(int64_t)15;
    const __mmask16 tm = (__mmask16)((1u << (In & 15)) - 1);
    int64_t o = 0;
    for (; o + 8 <= O; o += 8) {
        const float *r = w + o * In;
        __m512 s[8];
        for (int k = 0; k < 8; k++) s[k] = _mm512_setzero_ps();
        for (int64_t i = 0; i < I16; i += 16) {
            __m512 xv = _mm512_loadu_ps(x + i);
            for (int k = 0; k < 8; k++) s[k] = _mm512_fmadd_ps(_mm512_loadu_ps(r + k * In + i), xv, s[k]);
        }
        if (tm) {
            __m512 xv = _mm512_maskz_loadu_ps(tm, x + I16);
            for (int k = 0; k < 8; k++) s[k] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tm, r + k * In + I16), xv, s[k]);
        }
        for (int k = 0; k < 8; k++) {
            float v = _mm512_reduce_add_ps(s[k]);
            y[o + k] = acc ? y[o + k] + v : v;
        }
    }
    for (; o < O; o++) {
        const float *r = w + o * In;
        __m512 s = _mm512_setzero_ps();
        for (int64_t i = 0; i < I16; i += 16) s = _mm512_fmadd_ps(_mm512_loadu_ps(r + i), _mm512_loadu_ps(x + i), s);
        if (tm) s = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tm, r + I16), _mm512_maskz_loadu_ps(tm, x + I16), s);
        float v = _mm512_reduce_add_ps(s);
        y[o] = acc ? y[o] + v : v;
    }
}
#endif
static void gemv_rows(float *y, const float *w, const float *x, int64_t O, int64_t In, int acc) {
#ifdef GEMV_AVX512
    if (sp_cpu_avx512()) { gemv_avx512(y, w, x, O, In, acc); return; }
#endif
    for (int64_t o = 0; o < O; o++) {
        const float *r = w + o * In;
        float s = 0;
        for (int64_t i = 0; i < In; i++) s += r[i] * x[i];
        y[o] = acc ? y[o] + s : s;
    }
}

/* out [N,O] = x [N,In] . w [O,In]^T + b [O] */
sp_status sp_cpu_dense_forward(sp_tensor *out, const sp_tensor *x, const sp_tensor *w, const sp_tensor *bias) {
    int64_t N = x->shape[0], In = x->shape[1], O = w->shape[0];
    float *o = F32(out);
    if (bias) {
        const float *b = F32(bias);
        for (int64_t n = 0; n < N; n++) memcpy(o + n * O, b, sizeof(float) * (size_t)O);
    }
    /* one row: a matrix-vector product. OpenBLAS's sgemm packs all of w for it (ResNet50's
     * 2048 -> 1001 head at batch 1: 0.86 ms, sgemv 0.21 ms, measured between forwards), and
     * its sgemv hands anything above 9216 weights to its threads: below 256 Ki weights (1 MiB,
     * where sgemm itself stays on one thread) the product runs here, on this thread (LeNet5
     * at batch 1: fc1 400 -> 120 and fc2 120 -> 84 went to both cores, and the forward took
     * 11.6-13.8 us) */
    if (N == 1 && O && In && O * In < 262144)
        gemv_rows(o, F32(w), F32(x), O, In, bias != NULL);
    else if (N == 1 && O && In)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)O, (int)In, 1.0f, F32(w), (int)In, F32(x), 1,
                    bias ? 1.0f : 0.0f, o, 1);
    else if (N && O && In)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, (int)O, (int)In, 1.0f, F32(x), (int)In, F32(w),
                    (int)In, bias ? 1.0f : 0.0f, o, (int)O);
    else if (!bias) memset(o, 0, sizeof(float) * (size_t)(N * O));
    return SP_OK;
}

/* grad_x [N,In] = grad_out [N,O] . w [O,In]; grad_w [O,In] += grad_out^T . x; grad_b [O] += sum_n */
sp_status sp_cpu_dense_backward(sp_tensor *grad_x, sp_tensor *grad_w, sp_tensor *grad_b, const sp_tensor *grad_out,
                                const sp_tensor *x, const sp_tensor *w) {
    int64_t N = x->shape[0], In = x->shape[1], O = w->shape[0];
    const float *go = F32(grad_out);
    if (grad_x) {
        if (O == 0) memset(F32(grad_x), 0, sizeof(float) * (size_t)(N * In));
        else if (N && In)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)N, (int)In, (int)O, 1.0f, go, (int)O, F32(w),
                        (int)In, 0.0f, F32(grad_x), (int)In);
    }
    if (grad_w) {
        if (N && O && In)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)O, (int)In, (int)N, 1.0f, go, (int)O, F32(x),
                        (int)In, 1.0f, F32(grad_w), (int)In);
    }
    if (grad_b) {
        float *gb = F32(grad_b);
        for (int64_t o = 0; o < O; o++) {
            double s = 0;
            for (int64_t n = 0; n < N; n++) s += go[n * O + o];
            gb[o] += (float)s;
        }
    }
    return SP_OK;
}
