/* pool.c — CPU kernels (checked by engine/ops/nn_ops.c): MaxPool2d / AvgPool2d (explicit padding) and global mean, NCHW float32. */
#include "nn_common.h"

#include <omp.h>

#include <math.h>
#include <string.h>

/* output size of an (already checked) pooling window */
static void pool_out(const sp_tensor *x, int kh, int kw, int sh, int sw, int pt, int pb, int pl, int pr, int64_t *Ho,
                     int64_t *Wo) {
    *Ho = (x->shape[2] + pt + pb - kh) / sh + 1;
    *Wo = (x->shape[3] + pl + pr - kw) / sw + 1;
}

/* the window of output o along one axis (stride st, padding before p, kernel k), clipped to [0, n) */
static inline void win(int64_t o, int st, int p, int k, int64_t n, int64_t *lo, int64_t *hi) {
    int64_t a = o * st - p, b = a + k;
    *lo = a < 0 ? 0 : a;
    *hi = b > n ? n : b;
}

/* Max over each window of NC planes; inlined with constant kh/kw/strides for fast paths. */
static inline __attribute__((always_inline)) void maxpool_planes(float *O, int32_t *A, const float *X, int64_t NC,
                                                                 int64_t H, int64_t W, int64_t Ho, int64_t Wo,
                                                                 int kh, int kw, int stride_h, int stride_w,
                                                                 int pad_top, int pad_left) {
    for (int64_t nc = 0; nc < NC; nc++) {
        const float *xp = X + nc * H * W;
        for (int64_t oh = 0; oh < Ho; oh++) {
            int64_t h0, h1, w0, w1;
            win(oh, stride_h, pad_top, kh, H, &h0, &h1);
            for (int64_t ow = 0; ow < Wo; ow++) {
                win(ow, stride_w, pad_left, kw, W, &w0, &w1);
                /* branch-free selects (random data mispredicts a branch half the time);
                 * a NaN wins and then stays */
                float best = -INFINITY;
                int32_t bi = (h0 < h1 && w0 < w1) ? (int32_t)(h0 * W + w0) : -1;
                int nan = 0;
                for (int64_t ih = h0; ih < h1; ih++)
                    for (int64_t iw = w0; iw < w1; iw++) {
                        float v = xp[ih * W + iw];
                        int32_t idx = (int32_t)(ih * W + iw);
                        int32_t m = -(int32_t)(v > best); /* all ones when v wins */
                        nan |= v != v;
                        bi = (idx & m) | (bi & ~m);
                        best = best > v ? best : v;        /* maxss */
                    }
                if (nan) best = NAN;
                O[(nc * Ho + oh) * Wo + ow] = bi < 0 ? 0.0f : best;
                A[(nc * Ho + oh) * Wo + ow] = bi;
            }
        }
    }
}

/* The same with every window inside the plane (no padding reached): fixed trip counts. */
static inline __attribute__((always_inline)) void maxpool_planes_inner(float *O, int32_t *A, const float *X,
                                                                       int64_t NC, int64_t H, int64_t W, int64_t Ho,
                                                                       int64_t Wo, int kh, int kw, int sh, int sw) {
    for (int64_t nc = 0; nc < NC; nc++) {
        const float *xp = X + nc * H * W;
        float *o = O + nc * Ho * Wo;
        int32_t *a = A + nc * Ho * Wo;
        for (int64_t oh = 0; oh < Ho; oh++)
            for (int64_t ow = 0; ow < Wo; ow++) {
                int64_t h0 = oh * sh, w0 = ow * sw;
                float best = -INFINITY;
                int32_t bi = (int32_t)(h0 * W + w0);
                int nan = 0;
                for (int i = 0; i < kh; i++)
                    for (int j = 0; j < kw; j++) {
                        float v = xp[(h0 + i) * W + w0 + j];
                        int32_t idx = (int32_t)((h0 + i) * W + w0 + j);
                        int32_t m = -(int32_t)(v > best);
                        nan |= v != v;
                        bi = (idx & m) | (bi & ~m);
                        best = best > v ? best : v;
                    }
                o[oh * Wo + ow] = nan ? NAN : best;
                a[oh * Wo + ow] = bi;
            }
    }
}

/* pool_rows.c; sp_maxpool_scalar (a hidden test hook) keeps the scalar loop for comparison */
void sp_cpu_maxpool_rows(float *O, int32_t *A, const float *X, int64_t NC, int64_t H, int64_t W, int64_t Ho,
                         int64_t Wo, int kh, int kw, int sh, int sw, int pt, int pl);
int sp_maxpool_scalar; /* 1: the scalar loop (spec/engine/test_nn.c compares the two; never set by the library) */

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define POOL_AVX512 1
/* 2x2 stride-2 windows, all inside the plane (LeNet's pools): 16 outputs a vector, the
 * even and odd input columns of both rows separated by permutes. The scalar loop's exact
 * sequence per lane: scan (0,0) (0,1) (1,0) (1,1), index taken where v > best, best =
 * maxps(best, v), any NaN makes the output NaN; so values, argmax ties and NaNs agree. */
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq"))) static void
maxpool2_avx512(float *O, int32_t *A, const float *X, int64_t NC, int64_t H, int64_t W, int64_t Ho, int64_t Wo) {
    const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i od = _mm512_add_epi32(ev, _mm512_set1_epi32(1));
    const __m512i lane2 = _mm512_slli_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), 1);
    const __m512 qnan = _mm512_set1_ps(NAN);
    for (int64_t nc = 0; nc < NC; nc++) {
        const float *xp = X + nc * H * W;
        float *o = O + nc * Ho * Wo;
        int32_t *a = A + nc * Ho * Wo;
        for (int64_t oh = 0; oh < Ho; oh++) {
            const float *r0 = xp + 2 * oh * W, *r1 = r0 + W;
            for (int64_t ow = 0; ow < Wo; ow += 16) {
                int64_t n = Wo - ow < 16 ? Wo - ow : 16, ni = 2 * n; /* ni <= W - 2*ow: inside */
                __mmask16 mo = (__mmask16)((1u << n) - 1);
                __mmask16 m0 = (__mmask16)(ni >= 16 ? 0xffff : (1u << ni) - 1);
                __mmask16 m1 = (__mmask16)(ni > 16 ? (1u << (ni - 16)) - 1 : 0);
                __m512 a0 = _mm512_maskz_loadu_ps(m0, r0 + 2 * ow), a1 = _mm512_maskz_loadu_ps(m1, r0 + 2 * ow + 16);
                __m512 b0 = _mm512_maskz_loadu_ps(m0, r1 + 2 * ow), b1 = _mm512_maskz_loadu_ps(m1, r1 + 2 * ow + 16);
                __m512 v[4] = {_mm512_permutex2var_ps(a0, ev, a1), _mm512_permutex2var_ps(a0, od, a1),
                               _mm512_permutex2var_ps(b0, ev, b1), _mm512_permutex2var_ps(b0, od, b1)};
                __m512i base = _mm512_add_epi32(_mm512_set1_epi32((int32_t)(2 * oh * W + 2 * ow)), lane2);
                __m512i idx[4] = {base, _mm512_add_epi32(base, _mm512_set1_epi32(1)),
                                  _mm512_add_epi32(base, _mm512_set1_epi32((int32_t)W)),
                                  _mm512_add_epi32(base, _mm512_set1_epi32((int32_t)W + 1))};
                __m512 best = _mm512_set1_ps(-INFINITY);
                __m512i bi = idx[0];
                __mmask16 nan = 0;
                for (int k = 0; k < 4; k++) {
                    __mmask16 gt = _mm512_cmp_ps_mask(v[k], best, _CMP_GT_OQ);
                    bi = _mm512_mask_mov_epi32(bi, gt, idx[k]);
                    nan |= _mm512_cmp_ps_mask(v[k], v[k], _CMP_UNORD_Q);
                    best = _mm512_max_ps(best, v[k]); /* best > v ? best : v */
                }
                best = _mm512_mask_mov_ps(best, nan, qnan);
                _mm512_mask_storeu_ps(o + oh * Wo + ow, mo, best);
                _mm512_mask_storeu_epi32(a + oh * Wo + ow, mo, bi);
            }
        }
    }
}

/* Backward of 2x2/2 windows that tile the plane exactly (H = 2*Ho, W = 2*Wo): every input
 * element lies in one window, so each is written once, g where the window's argmax names it
 * and 0 elsewhere (0 + g, as the scatter into zeros gives: -0 becomes +0), with no memset.
 * An argmax outside its own window (another pooling's geometry) stops it: returns 0 and the
 * caller's scatter redoes the whole plane set. */
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq"))) static int
maxpool2_bwd_avx512(float *G, const float *GO, const int32_t *A, int64_t NC, int64_t Ho, int64_t Wo) {
    const int64_t W = 2 * Wo, HW = 4 * Ho * Wo, HoWo = Ho * Wo;
    const __m512i lane2 = _mm512_slli_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), 1);
    const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi = _mm512_add_epi32(lo, _mm512_set1_epi32(8));
    const __m512 zero = _mm512_setzero_ps();
    for (int64_t nc = 0; nc < NC; nc++) {
        float *g = G + nc * HW;
        const float *go = GO + nc * HoWo;
        const int32_t *a = A + nc * HoWo;
        for (int64_t oh = 0; oh < Ho; oh++) {
            float *r0 = g + 2 * oh * W, *r1 = r0 + W;
            for (int64_t ow = 0; ow < Wo; ow += 16) {
                int64_t n = Wo - ow < 16 ? Wo - ow : 16, ni = 2 * n;
                __mmask16 mo = (__mmask16)((1u << n) - 1);
                __mmask16 m0 = (__mmask16)(ni >= 16 ? 0xffff : (1u << ni) - 1);
                __mmask16 m1 = (__mmask16)(ni > 16 ? (1u << (ni - 16)) - 1 : 0);
                __m512 gv = _mm512_maskz_loadu_ps(mo, go + oh * Wo + ow);
                __m512i av = _mm512_maskz_loadu_epi32(mo, a + oh * Wo + ow);
                __m512i i00 = _mm512_add_epi32(_mm512_set1_epi32((int32_t)(2 * oh * W + 2 * ow)), lane2);
                __mmask16 e00 = _mm512_cmpeq_epi32_mask(av, i00);
                __mmask16 e01 = _mm512_cmpeq_epi32_mask(av, _mm512_add_epi32(i00, _mm512_set1_epi32(1)));
                __mmask16 e10 = _mm512_cmpeq_epi32_mask(av, _mm512_add_epi32(i00, _mm512_set1_epi32((int32_t)W)));
                __mmask16 e11 = _mm512_cmpeq_epi32_mask(av, _mm512_add_epi32(i00, _mm512_set1_epi32((int32_t)W + 1)));
                if ((__mmask16)((e00 | e01 | e10 | e11) & mo) != mo) return 0;
                __m512 v00 = _mm512_add_ps(zero, _mm512_maskz_mov_ps(e00, gv));
                __m512 v01 = _mm512_add_ps(zero, _mm512_maskz_mov_ps(e01, gv));
                __m512 v10 = _mm512_add_ps(zero, _mm512_maskz_mov_ps(e10, gv));
                __m512 v11 = _mm512_add_ps(zero, _mm512_maskz_mov_ps(e11, gv));
                _mm512_mask_storeu_ps(r0 + 2 * ow, m0, _mm512_permutex2var_ps(v00, lo, v01));
                _mm512_mask_storeu_ps(r0 + 2 * ow + 16, m1, _mm512_permutex2var_ps(v00, hi, v01));
                _mm512_mask_storeu_ps(r1 + 2 * ow, m0, _mm512_permutex2var_ps(v10, lo, v11));
                _mm512_mask_storeu_ps(r1 + 2 * ow + 16, m1, _mm512_permutex2var_ps(v10, hi, v11));
            }
        }
    }
    return 1;
}

#endif

/* Channels-last x and out (NHWC in memory; argmax stays NCHW, as the backward reads it): each
 * channel's sequence is the plane loop's above (window clipped to the plane, scanned row by
 * row, index taken where v > best, best = max, a NaN wins, an empty window gives 0 and -1),
 * with the channels in vector lanes. ws: per thread, C-element scratch b, bi and nan.
 * bf16 (a constant in each caller): bfloat16 x and out (O2 inference, engine/ops), each value
 * widened exactly to float32; the max of bf16 values is one of them, so the float32 result's
 * upper half is stored as it is (a NaN as bf16's quiet NaN). */
static inline float bf16_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline __attribute__((always_inline)) void maxpool_nhwc_row(void *O, int32_t *A, const void *X, int64_t row,
                                                                   int64_t C, int64_t H, int64_t W, int64_t Ho,
                                                                   int64_t Wo, int kh, int kw, int sh, int sw, int pt,
                                                                   int pl, char *ws, int bf16) {
    int64_t n = row / Ho, oh = row % Ho;
    char *mine = ws + (size_t)omp_get_thread_num() * (size_t)C * (sizeof(float) + 2 * sizeof(int32_t));
    float *b = (float *)mine;
    int32_t *bi = (int32_t *)(mine + C * sizeof(float)), *nan = bi + C;
    int64_t h0, h1, w0, w1;
    win(oh, sh, pt, kh, H, &h0, &h1);
    for (int64_t ow = 0; ow < Wo; ow++) {
        win(ow, sw, pl, kw, W, &w0, &w1);
        int32_t b0 = (h0 < h1 && w0 < w1) ? (int32_t)(h0 * W + w0) : -1;
        for (int64_t c = 0; c < C; c++) b[c] = -INFINITY, bi[c] = b0, nan[c] = 0;
        for (int64_t ih = h0; ih < h1; ih++)
            for (int64_t iw = w0; iw < w1; iw++) {
                int64_t r = ((n * H + ih) * W + iw) * C;
                int32_t idx = (int32_t)(ih * W + iw);
                for (int64_t c = 0; c < C; c++) {
                    float v = bf16 ? bf16_f32(((const uint16_t *)X)[r + c]) : ((const float *)X)[r + c];
                    int32_t m = -(int32_t)(v > b[c]);
                    nan[c] |= -(int32_t)(v != v);
                    bi[c] = (idx & m) | (bi[c] & ~m);
                    b[c] = b[c] > v ? b[c] : v;
                }
            }
        int64_t o = ((n * Ho + oh) * Wo + ow) * C;
        if (bf16)
            for (int64_t c = 0; c < C; c++) {
                uint32_t u;
                memcpy(&u, &b[c], 4);
                ((uint16_t *)O)[o + c] = b0 < 0 ? 0 : nan[c] ? (uint16_t)0x7fc0 : (uint16_t)(u >> 16);
            }
        else
            for (int64_t c = 0; c < C; c++) ((float *)O)[o + c] = b0 < 0 ? 0.0f : nan[c] ? NAN : b[c];
        int32_t *a = A + (n * C * Ho + oh) * Wo + ow;
        for (int64_t c = 0; c < C; c++) a[c * Ho * Wo] = bi[c];
    }
}
/* rows of outputs on libgomp's pool (nn_par_cl), each thread with its own scratch */
SP_CLONES static void maxpool_nhwc(float *O, int32_t *A, const float *X, int64_t N, int64_t C, int64_t H, int64_t W,
                                   int64_t Ho, int64_t Wo, int kh, int kw, int sh, int sw, int pt, int pl, char *ws) {
#pragma omp parallel for schedule(static) if (nn_par_cl(N * Ho * Wo * C * kh * kw))
    for (int64_t row = 0; row < N * Ho; row++)
        maxpool_nhwc_row(O, A, X, row, C, H, W, Ho, Wo, kh, kw, sh, sw, pt, pl, ws, 0);
}
SP_CLONES static void maxpool_nhwc_bf16(uint16_t *O, int32_t *A, const uint16_t *X, int64_t N, int64_t C, int64_t H,
                                        int64_t W, int64_t Ho, int64_t Wo, int kh, int kw, int sh, int sw, int pt,
                                        int pl, char *ws) {
#pragma omp parallel for schedule(static) if (nn_par_cl(N * Ho * Wo * C * kh * kw))
    for (int64_t row = 0; row < N * Ho; row++)
        maxpool_nhwc_row(O, A, X, row, C, H, W, Ho, Wo, kh, kw, sh, sw, pt, pl, ws, 1);
}

/* out [N,C,Ho,Wo] = max over window; argmax [N,C,Ho,Wo] int32 = h*W+w of the max */
sp_status sp_cpu_maxpool2d_forward(sp_tensor *out, sp_tensor *argmax, const sp_tensor *x, int kh, int kw,
                                   int stride_h, int stride_w, int pad_top, int pad_bottom, int pad_left,
                                   int pad_right) {
    int64_t Ho = 0, Wo = 0;
    pool_out(x, kh, kw, stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right, &Ho, &Wo);
    int64_t N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
    const float *X = F32(x);
    float *O = F32(out);
    int32_t *A = SP_DATA(argmax);
    int bf16 = x->dtype == SP_BFLOAT16; /* bf16 x and out: both channels-last (engine/ops) */
    if (bf16 || !sp_tensor_is_contiguous(x) || !sp_tensor_is_contiguous(out)) { /* both channels-last */
        size_t n = (size_t)C * (sizeof(float) + 2 * sizeof(int32_t)) * (size_t)omp_get_max_threads();
        char *ws = sp_workspace(SP_DEV(x), 0, n);
        if (!ws) return sp_error(SP_ENOMEM, "maxpool2d_forward: no memory for %zu bytes of scratch", n);
        if (bf16)
            maxpool_nhwc_bf16((uint16_t *)O, A, (const uint16_t *)X, N, C, H, W, Ho, Wo, kh, kw, stride_h, stride_w,
                              pad_top, pad_left, ws);
        else
            maxpool_nhwc(O, A, X, N, C, H, W, Ho, Wo, kh, kw, stride_h, stride_w, pad_top, pad_left, ws);
        return SP_OK;
    }
/* serial: a 2-core machine gains little here and the OpenMP region costs BLAS time.
 * The common shapes get the window size as a compile-time constant (fully unrolled). */
    int inner = pad_top == 0 && pad_left == 0 && (Ho - 1) * stride_h + kh <= H && (Wo - 1) * stride_w + kw <= W;
#ifdef POOL_AVX512
    if (inner && kh == 2 && kw == 2 && stride_h == 2 && stride_w == 2 && sp_cpu_avx512())
        maxpool2_avx512(O, A, X, N * C, H, W, Ho, Wo);
    else
#endif
    if (inner && kh == 2 && kw == 2 && stride_h == 2 && stride_w == 2)
        maxpool_planes_inner(O, A, X, N * C, H, W, Ho, Wo, 2, 2, 2, 2);
    else if (inner)
        maxpool_planes_inner(O, A, X, N * C, H, W, Ho, Wo, kh, kw, stride_h, stride_w);
    else if (sp_maxpool_scalar)
        maxpool_planes(O, A, X, N * C, H, W, Ho, Wo, kh, kw, stride_h, stride_w, pad_top, pad_left);
    else /* windows reaching the padding: a row of outputs at a time (pool_rows.c) */
        sp_cpu_maxpool_rows(O, A, X, N * C, H, W, Ho, Wo, kh, kw, stride_h, stride_w, pad_top, pad_left);
    return SP_OK;
}

/* channels-last grad_x and grad_out (argmax NCHW): the same scatter, position by position */
static void maxpool_bwd_nhwc(float *G, const float *GO, const int32_t *A, int64_t N, int64_t C, int64_t HW,
                             int64_t HoWo) {
    /* image by image on libgomp's pool (nn_par_cl): an image's scatter stays in its own rows */
#pragma omp parallel for schedule(static) if (nn_par_cl(N * C * HW))
    for (int64_t n = 0; n < N; n++) {
        memset(G + n * HW * C, 0, sizeof(float) * (size_t)(HW * C));
        for (int64_t c = 0; c < C; c++) {
            const int32_t *a = A + (n * C + c) * HoWo;
            for (int64_t i = 0; i < HoWo; i++)
                if (a[i] >= 0 && a[i] < HW) G[(n * HW + a[i]) * C + c] += GO[(n * HoWo + i) * C + c];
        }
    }
}

/* grad_x [N,C,H,W] = scatter of grad_out [N,C,Ho,Wo] through argmax */
sp_status sp_cpu_maxpool2d_backward(sp_tensor *grad_x, const sp_tensor *grad_out, const sp_tensor *argmax) {
    int64_t NC = grad_x->shape[0] * grad_x->shape[1], HW = grad_x->shape[2] * grad_x->shape[3];
    int64_t HoWo = grad_out->shape[2] * grad_out->shape[3];
    float *G = F32(grad_x);
    const float *GO = F32(grad_out);
    const int32_t *A = SP_DATA(argmax);
    if (SP_CL_ANY(grad_x, grad_out)) { /* both channels-last (engine/ops) */
        maxpool_bwd_nhwc(G, GO, A, grad_x->shape[0], grad_x->shape[1], HW, HoWo);
        return SP_OK;
    }
#ifdef POOL_AVX512
    int64_t Ho = grad_out->shape[2], Wo = grad_out->shape[3];
    if (grad_x->shape[2] == 2 * Ho && grad_x->shape[3] == 2 * Wo && Wo > 0 && sp_cpu_avx512() &&
        maxpool2_bwd_avx512(G, GO, A, NC, Ho, Wo))
        return SP_OK;
#endif
    memset(G, 0, sizeof(float) * (size_t)(NC * HW));
#pragma omp parallel for schedule(static) if (nn_par(NC * HoWo))
    for (int64_t nc = 0; nc < NC; nc++)
        for (int64_t i = 0; i < HoWo; i++) {
            int32_t a = A[nc * HoWo + i];
            if (a >= 0 && a < HW) G[nc * HW + a] += GO[nc * HoWo + i];
        }
    return SP_OK;
}

static inline int64_t avg_count(int64_t oh, int64_t ow, int kh, int kw, int sh, int sw, int pt, int pl, int64_t H,
                                int64_t W, int count_pad) {
    if (count_pad) return (int64_t)kh * kw;
    int64_t h0 = oh * sh - pt, w0 = ow * sw - pl;
    int64_t h1 = h0 + kh, w1 = w0 + kw;
    if (h0 < 0) h0 = 0;
    if (w0 < 0) w0 = 0;
    if (h1 > H) h1 = H;
    if (w1 > W) w1 = W;
    int64_t c = (h1 - h0) * (w1 - w0);
    return c > 0 ? c : 1;
}

/* out [N,C,Ho,Wo] = mean over window (divisor: in-bounds count, or kh*kw with count_pad) */
sp_status sp_cpu_avgpool2d_forward(sp_tensor *out, const sp_tensor *x, int kh, int kw, int stride_h, int stride_w,
                                   int pad_top, int pad_bottom, int pad_left, int pad_right, int count_pad) {
    int64_t Ho = 0, Wo = 0;
    pool_out(x, kh, kw, stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right, &Ho, &Wo);
    int64_t N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
    const float *X = F32(x);
    float *O = F32(out);
#pragma omp parallel for schedule(static) if (nn_par(N * C * Ho * Wo * kh * kw))
    for (int64_t nc = 0; nc < N * C; nc++) {
        const float *xp = X + nc * H * W;
        for (int64_t oh = 0; oh < Ho; oh++)
            for (int64_t ow = 0; ow < Wo; ow++) {
                double s = 0;
                for (int i = 0; i < kh; i++) {
                    int64_t ih = oh * stride_h - pad_top + i;
                    if (ih < 0 || ih >= H) continue;
                    for (int j = 0; j < kw; j++) {
                        int64_t iw = ow * stride_w - pad_left + j;
                        if (iw >= 0 && iw < W) s += xp[ih * W + iw];
                    }
                }
                O[(nc * Ho + oh) * Wo + ow] =
                    (float)(s / (double)avg_count(oh, ow, kh, kw, stride_h, stride_w, pad_top, pad_left, H, W, count_pad));
            }
    }
    return SP_OK;
}

/* grad_x [N,C,H,W] from grad_out [N,C,Ho,Wo] */
sp_status sp_cpu_avgpool2d_backward(sp_tensor *grad_x, const sp_tensor *grad_out, int kh, int kw, int stride_h,
                                    int stride_w, int pad_top, int pad_bottom, int pad_left, int pad_right,
                                    int count_pad) {
    int64_t Ho = 0, Wo = 0;
    pool_out(grad_x, kh, kw, stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right, &Ho, &Wo);
    int64_t N = grad_x->shape[0], C = grad_x->shape[1], H = grad_x->shape[2], W = grad_x->shape[3];
    float *G = F32(grad_x);
    const float *GO = F32(grad_out);
    memset(G, 0, sizeof(float) * (size_t)(N * C * H * W));
#pragma omp parallel for schedule(static) if (nn_par(N * C * Ho * Wo * kh * kw))
    for (int64_t nc = 0; nc < N * C; nc++) {
        float *gp = G + nc * H * W;
        for (int64_t oh = 0; oh < Ho; oh++)
            for (int64_t ow = 0; ow < Wo; ow++) {
                float g = GO[(nc * Ho + oh) * Wo + ow] /
                          (float)avg_count(oh, ow, kh, kw, stride_h, stride_w, pad_top, pad_left, H, W, count_pad);
                for (int i = 0; i < kh; i++) {
                    int64_t ih = oh * stride_h - pad_top + i;
                    if (ih < 0 || ih >= H) continue;
                    for (int j = 0; j < kw; j++) {
                        int64_t iw = ow * stride_w - pad_left + j;
                        if (iw >= 0 && iw < W) gp[ih * W + iw] += g;
                    }
                }
            }
    }
    return SP_OK;
}

/* out [N,C] (or [N,C,1,1]) = mean over H,W of x [N,C,H,W] */
/* channels-last x: each channel's sum in double over the positions in the plane loop's order */
SP_CLONES static void gap_nhwc(float *O, const float *X, int64_t N, int64_t C, int64_t HW, double *acc) {
    for (int64_t n = 0; n < N; n++) {
        for (int64_t c = 0; c < C; c++) acc[c] = 0;
        for (int64_t j = 0; j < HW; j++) {
            const float *r = X + (n * HW + j) * C;
            for (int64_t c = 0; c < C; c++) acc[c] += r[c];
        }
        for (int64_t c = 0; c < C; c++) O[n * C + c] = HW ? (float)(acc[c] / (double)HW) : 0.0f;
    }
}

sp_status sp_cpu_global_avgpool_forward(sp_tensor *out, const sp_tensor *x) {
    int64_t NC = x->shape[0] * x->shape[1], HW = x->shape[2] * x->shape[3];
    const float *X = F32(x);
    float *O = F32(out);
    if (!sp_tensor_is_contiguous(x)) { /* channels-last (engine/ops) */
        double *acc = sp_workspace(SP_DEV(x), 0, sizeof(double) * (size_t)x->shape[1]);
        if (!acc) return sp_error(SP_ENOMEM, "global_avgpool_forward: no memory for scratch");
        gap_nhwc(O, X, x->shape[0], x->shape[1], HW, acc);
        return SP_OK;
    }
    for (int64_t i = 0; i < NC; i++) {
        double s = 0;
        for (int64_t j = 0; j < HW; j++) s += X[i * HW + j];
        O[i] = HW ? (float)(s / (double)HW) : 0.0f;
    }
    return SP_OK;
}

/* grad_x [N,C,H,W] = grad_out [N,C] / (H*W) broadcast */
sp_status sp_cpu_global_avgpool_backward(sp_tensor *grad_x, const sp_tensor *grad_out) {
    int64_t NC = grad_x->shape[0] * grad_x->shape[1], HW = grad_x->shape[2] * grad_x->shape[3];
    const float *GO = F32(grad_out);
    float *G = F32(grad_x);
    if (!sp_tensor_is_contiguous(grad_x)) { /* channels-last (engine/ops) */
        int64_t N = grad_x->shape[0], C = grad_x->shape[1];
        for (int64_t n = 0; n < N; n++)
            for (int64_t j = 0; j < HW; j++)
                for (int64_t c = 0; c < C; c++) G[(n * HW + j) * C + c] = GO[n * C + c] / (float)HW;
        return SP_OK;
    }
    for (int64_t i = 0; i < NC; i++) {
        float g = GO[i] / (float)HW;
        for (int64_t j = 0; j < HW; j++) G[i * HW + j] = g;
    }
    return SP_OK;
}
