/* pool_rows.c — max pooling a whole output row at a time (sp_cpu_maxpool2d_forward's path
 * for windows that reach the padding, e.g. ResNet's 3×3/2 "same" pool): for each window tap
 * (i, j) in row-major order, one pass over the row's outputs updates their running max,
 * argmax and NaN flag. The per-output loop carried a 9-long dependency chain of maxss; here
 * the chains run side by side in vector lanes (the lanes are independent outputs), and the
 * tap order per output is the scalar loop's, so values and argmax (first maximum in
 * row-major order, NaN wins) are the same. Padding taps are skipped, as the scalar loop's
 * clamped windows skip them. */
#include "nn_common.h"

#include <math.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && !defined(__SANITIZE_THREAD__)
#define POOL_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define POOL_CLONES
#endif

enum { ROW_CHUNK = 256 };

/* one chunk of outputs [ow0, ow1) of row oh of one plane */
static inline void row_chunk(float *o, int32_t *a, const float *xp, int64_t H, int64_t W, int64_t oh, int64_t ow0,
                             int64_t ow1, int kh, int kw, int sh, int sw, int pt, int pl) {
    float best[ROW_CHUNK];
    int32_t bi[ROW_CHUNK];
    int32_t nan[ROW_CHUNK];
    int64_t n = ow1 - ow0;
    int64_t h0 = oh * sh - pt;
    int64_t hs = h0 < 0 ? 0 : h0, he = h0 + kh > H ? H : h0 + kh;
    for (int64_t k = 0; k < n; k++) {
        int64_t w0 = (ow0 + k) * sw - pl;
        if (w0 < 0) w0 = 0;
        int ok = hs < he && w0 < W && (ow0 + k) * sw - pl + kw > 0;
        best[k] = -INFINITY;
        bi[k] = ok ? (int32_t)(hs * W + w0) : -1;
        nan[k] = 0;
    }
    for (int64_t ih = hs; ih < he; ih++) {
        const float *xr = xp + ih * W;
        for (int j = 0; j < kw; j++) {
            /* outputs whose tap j lies inside the row: 0 <= (ow0+k)*sw - pl + j < W */
            int64_t off = j - pl, lo = 0, hi = n;
            while (lo < n && (ow0 + lo) * sw + off < 0) lo++;
            while (hi > lo && (ow0 + hi - 1) * sw + off >= W) hi--;
            const float *xs = xr + ow0 * sw + off;
            int32_t base = (int32_t)(ih * W + ow0 * sw + off);
            for (int64_t k = lo; k < hi; k++) {
                float v = xs[k * sw];
                int32_t m = -(int32_t)(v > best[k]);
                nan[k] |= v != v;
                bi[k] = ((base + (int32_t)(k * sw)) & m) | (bi[k] & ~m);
                best[k] = best[k] > v ? best[k] : v;
            }
        }
    }
    for (int64_t k = 0; k < n; k++) {
        o[k] = nan[k] ? NAN : (bi[k] < 0 ? 0.0f : best[k]);
        a[k] = bi[k];
    }
}

POOL_CLONES __attribute__((optimize("O3"))) void sp_cpu_maxpool_rows(float *O, int32_t *A, const float *X,
                                                                      int64_t NC, int64_t H, int64_t W, int64_t Ho,
                                                                      int64_t Wo, int kh, int kw, int sh, int sw,
                                                                      int pt, int pl) {
#pragma omp parallel for schedule(static) if (nn_par(NC * Ho * Wo * kh * kw))
    for (int64_t nc = 0; nc < NC; nc++) {
        const float *xp = X + nc * H * W;
        for (int64_t oh = 0; oh < Ho; oh++) {
            float *o = O + (nc * Ho + oh) * Wo;
            int32_t *a = A + (nc * Ho + oh) * Wo;
            for (int64_t ow0 = 0; ow0 < Wo; ow0 += ROW_CHUNK) {
                int64_t ow1 = ow0 + ROW_CHUNK < Wo ? ow0 + ROW_CHUNK : Wo;
                if (sh == 2 && sw == 2 && kh == 3 && kw == 3)
                    row_chunk(o + ow0, a + ow0, xp, H, W, oh, ow0, ow1, 3, 3, 2, 2, pt, pl);
                else
                    row_chunk(o + ow0, a + ow0, xp, H, W, oh, ow0, ow1, kh, kw, sh, sw, pt, pl);
            }
        }
    }
}
