/* conv.c — CPU kernels (checked by engine/ops/nn_ops.c): Conv2d forward/backward, NCHW,
 * float32: im2col + cblas_sgemm per image and group. Padding is explicit per side;
 * dilation and groups supported. Scratch buffers come from the device workspace:
 * slot 0 the im2col buffer, slot 1 the batched GEMM output, slot 2 the direct path's
 * weight-gradient accumulators. */
#include "nn_common.h"

#include <cblas.h>
#include <math.h>

/* keep im2col's short row copies inline (see im2col_ld) */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-tree-loop-distribute-patterns")
#endif

/* The output columns [lo, hi) whose input column ow*s + off lies inside [0, n). */
static inline void valid_range(int64_t n, int64_t off, int s, int64_t nout, int64_t *lo, int64_t *hi) {
    int64_t l = off >= 0 ? 0 : (-off + s - 1) / s;
    int64_t h = n - off > 0 ? (n - off + s - 1) / s : 0;
    if (h > nout) h = nout;
    if (l > h) l = h;
    *lo = l;
    *hi = h;
}


/* Rows go in 8-float vectors, four at a time; the last vector of a row starts at Wo-8 and
 * overlaps the previous one (forward: recomputed, same value; weight gradient: its
 * already-counted lanes are masked off). Needs Wo >= 8. */
typedef float v8f __attribute__((vector_size(32), aligned(4), may_alias));

/* im2col without padding or horizontal stride (every tap in bounds: LeNet's conv2): each
 * output row is one contiguous run of x, copied as 8-float vectors (the last one
 * overlapping) with no bounds or alias checks; 10-float rows went through scalar tails. */
static int im2col_plain(const conv_geom *c) {
    return c->pt == 0 && c->pl == 0 && c->sw == 1 && c->Wo >= 8 && (c->Ho - 1) * c->sh + (c->kh - 1) * c->dh < c->H &&
           (c->Wo - 1) + (c->kw - 1) * c->dw < c->W;
}
SP_CLONES static void im2col_plain_ld(float *col, int64_t ldc, const float *x, const conv_geom *c, int64_t c0,
                                      int64_t Cg) {
    int64_t rows = Cg * c->kh * c->kw, Wo = c->Wo;
    for (int64_t r = 0; r < rows; r++) {
        int64_t ci = r / (c->kh * c->kw), ki = (r / c->kw) % c->kh, kj = r % c->kw;
        const float *src = x + (c0 + ci) * c->H * c->W + ki * c->dh * c->W + kj * c->dw;
        float *dst = col + r * ldc;
        for (int64_t oh = 0; oh < c->Ho; oh++) {
            const float *sr = src + oh * c->sh * c->W;
            float *d = dst + oh * Wo;
            int64_t ow = 0;
            for (; ow + 8 <= Wo; ow += 8) *(v8f *)(d + ow) = *(const v8f *)(sr + ow);
            if (ow < Wo) *(v8f *)(d + Wo - 8) = *(const v8f *)(sr + Wo - 8);
        }
    }
}

/* col [Cg*kh*kw, Ho*Wo] (rows ldc apart) from x channels [c0, c0+Cg) of one image.
 * Bounds are resolved per row segment, so the inner loops are plain copies. */
/* Rows are short (LeNet: 28 floats), so the copies are plain loops: a memcpy call per
 * row segment cost more than the copy (perf: memmove + PLT ~17% of LeNet inference). */
static void im2col_ld(float *col, int64_t ldc, const float *x, const conv_geom *c, int64_t c0, int64_t Cg) {
    int64_t rows = Cg * c->kh * c->kw;
    if (im2col_plain(c) && !nn_par(rows * c->Ho * c->Wo)) { im2col_plain_ld(col, ldc, x, c, c0, Cg); return; }
#pragma omp parallel for schedule(static) if (nn_par(rows * c->Ho * c->Wo))
    for (int64_t r = 0; r < rows; r++) {
        int64_t ci = r / (c->kh * c->kw), ki = (r / c->kw) % c->kh, kj = r % c->kw;
        const float *xc = x + (c0 + ci) * c->H * c->W;
        float *dst = col + r * ldc;
        int64_t off = kj * c->dw - c->pl, lo, hi;
        valid_range(c->W, off, c->sw, c->Wo, &lo, &hi);
        for (int64_t oh = 0; oh < c->Ho; oh++) {
            int64_t ih = oh * c->sh - c->pt + ki * c->dh;
            float *d = dst + oh * c->Wo;
            if (ih < 0 || ih >= c->H) { for (int64_t ow = 0; ow < c->Wo; ow++) d[ow] = 0.0f; continue; }
            const float *xr = xc + ih * c->W + off;
            for (int64_t ow = 0; ow < lo; ow++) d[ow] = 0.0f;
            if (c->sw == 1) for (int64_t ow = lo; ow < hi; ow++) d[ow] = xr[ow];
            else for (int64_t ow = lo; ow < hi; ow++) d[ow] = xr[ow * c->sw];
            for (int64_t ow = hi; ow < c->Wo; ow++) d[ow] = 0.0f;
        }
    }
}

static void im2col(float *col, const float *x, const conv_geom *c, int64_t c0, int64_t Cg) {
    im2col_ld(col, c->Ho * c->Wo, x, c, c0, Cg);
}

/* col2im for the im2col_plain geometry: vector adds along each row, scalar tail */
SP_CLONES static void col2im_plain(float *gx, const float *col, int64_t HW, const conv_geom *c, int64_t c0,
                                   int64_t Cg) {
    int64_t K2 = c->kh * c->kw, Wo = c->Wo;
    for (int64_t ci = 0; ci < Cg; ci++) {
        float *g = gx + (c0 + ci) * c->H * c->W;
        for (int64_t k = 0; k < K2; k++) {
            int64_t ki = k / c->kw, kj = k % c->kw;
            const float *src = col + (ci * K2 + k) * HW;
            for (int64_t oh = 0; oh < c->Ho; oh++) {
                float *gr = g + (oh * c->sh + ki * c->dh) * c->W + kj * c->dw;
                const float *sr = src + oh * Wo;
                int64_t ow = 0;
                for (; ow + 8 <= Wo; ow += 8) *(v8f *)(gr + ow) += *(const v8f *)(sr + ow);
                for (; ow < Wo; ow++) gr[ow] += sr[ow];
            }
        }
    }
}

/* grad x channels [c0, c0+Cg) += col2im(col), col's rows ldc apart (Ho*Wo, or N*Ho*Wo for
 * the batched backward). Parallel over channels (no races). */
static void col2im_ld(float *gx, const float *col, int64_t ldc, const conv_geom *c, int64_t c0, int64_t Cg) {
    int64_t HW = ldc, K2 = c->kh * c->kw;
    if (im2col_plain(c) && !nn_par(Cg * K2 * c->Ho * c->Wo)) { col2im_plain(gx, col, ldc, c, c0, Cg); return; }
#pragma omp parallel for schedule(static) if (nn_par(Cg * K2 * c->Ho * c->Wo))
    for (int64_t ci = 0; ci < Cg; ci++) {
        float *g = gx + (c0 + ci) * c->H * c->W;
        for (int64_t k = 0; k < K2; k++) {
            int64_t ki = k / c->kw, kj = k % c->kw;
            const float *src = col + (ci * K2 + k) * HW;
            int64_t off = kj * c->dw - c->pl, lo, hi;
            valid_range(c->W, off, c->sw, c->Wo, &lo, &hi);
            for (int64_t oh = 0; oh < c->Ho; oh++) {
                int64_t ih = oh * c->sh - c->pt + ki * c->dh;
                if (ih < 0 || ih >= c->H) continue;
                float *gr = g + ih * c->W + off;
                const float *sr = src + oh * c->Wo;
                if (c->sw == 1) for (int64_t ow = lo; ow < hi; ow++) gr[ow] += sr[ow];
                else for (int64_t ow = lo; ow < hi; ow++) gr[ow * c->sw] += sr[ow];
            }
        }
    }
}

static void col2im(float *gx, const float *col, const conv_geom *c, int64_t c0, int64_t Cg) {
    col2im_ld(gx, col, c->Ho * c->Wo, c, c0, Cg);
}

/* Direct convolution for first-layer shapes: tiny reduction K = C*kh*kw (<= 32), stride 1,
 * no dilation or padding, one group (LeNet's conv1: 1->6, 5x5 on 32x32). im2col there writes
 * K copies of every input pixel and the GEMM is bound by reading them back (perf: im2col
 * ~30% of a LeNet training step); the direct loops run over output rows, vectorised along
 * the row, and touch each input row from cache. */
static int is_direct(const conv_geom *c) {
    return c->g == 1 && c->sh == 1 && c->sw == 1 && c->dh == 1 && c->dw == 1 && c->pt == 0 && c->pl == 0 &&
           c->Ho + c->kh - 1 == c->H && c->Wo + c->kw - 1 == c->W && c->C * c->kh * c->kw <= 32 && c->Wo >= 8;
}

static inline void chunk_starts(int64_t base, int64_t Wo, int64_t st[4]) {
    for (int c = 0; c < 4; c++) st[c] = base + 8 * c < Wo - 8 ? base + 8 * c : Wo - 8;
}

/* one row block of outputs for OB output channels: 4*OB independent accumulator chains,
 * enough to keep the FMA units busy; the x loads are shared by the OB channels */
#define DIRECT_FWD_BLOCK(OB)                                                                              \
    do {                                                                                                  \
        v8f a[OB][4];                                                                                     \
        for (int q = 0; q < (OB); q++) for (int k = 0; k < 4; k++) a[q][k] = (v8f){0};                   \
        for (int64_t ci = 0; ci < c->C; ci++)                                                             \
            for (int64_t ki = 0; ki < c->kh; ki++) {                                                      \
                const float *xr = xn + (ci * c->H + oh + ki) * c->W;                                      \
                int64_t t0 = (ci * c->kh + ki) * c->kw;                                                   \
                for (int64_t kj = 0; kj < c->kw; kj++) {                                                  \
                    const float *xs = xr + kj;                                                            \
                    v8f x0 = *(const v8f *)(xs + st[0]), x1 = *(const v8f *)(xs + st[1]);                 \
                    v8f x2 = *(const v8f *)(xs + st[2]), x3 = *(const v8f *)(xs + st[3]);                 \
                    for (int q = 0; q < (OB); q++) {                                                      \
                        float wv = Wt[(o + q) * K + t0 + kj];                                             \
                        a[q][0] += wv * x0; a[q][1] += wv * x1; a[q][2] += wv * x2; a[q][3] += wv * x3;   \
                    }                                                                                     \
                }                                                                                         \
            }                                                                                             \
        for (int q = 0; q < (OB); q++) {                                                                  \
            float b = B ? B[o + q] : 0.0f; /* bias last, as the GEMM path adds it */                      \
            float *orow = O + (n * c->Co + o + q) * HW + oh * c->Wo;                                      \
            /* reverse order: an overlapping chunk holds the same values anyway */                        \
            for (int k = 3; k >= 0; k--) *(v8f *)(orow + st[k]) = a[q][k] + b;                           \
        }                                                                                                 \
    } while (0)

SP_CLONES __attribute__((optimize("fp-contract=fast"))) static void
direct_forward(float *O, const float *X, const float *Wt, const float *B, const conv_geom *c) {
    int64_t HW = c->Ho * c->Wo, K = c->C * c->kh * c->kw;
    for (int64_t n = 0; n < c->N; n++) {
        const float *xn = X + n * c->C * c->H * c->W;
        for (int64_t oh = 0; oh < c->Ho; oh++)
            for (int64_t base = 0; base < c->Wo; base += 32) {
                int64_t st[4];
                chunk_starts(base, c->Wo, st);
                int64_t o = 0;
                for (; o + 3 <= c->Co; o += 3) DIRECT_FWD_BLOCK(3);
                for (; o < c->Co; o++) DIRECT_FWD_BLOCK(1);
            }
    }
}

typedef int32_t v8i __attribute__((vector_size(32), aligned(4), may_alias));

/* OB output channels at a time, so that each shifted x vector loaded serves OB weights */
#define DIRECT_GW_BLOCK(OB)                                                                                 \
    do {                                                                                                    \
        v8f gv[OB][4];                                                                                      \
        for (int q = 0; q < (OB); q++) {                                                                    \
            const float *g = GO + (n * c->Co + o + q) * HW + oh * c->Wo;                                    \
            for (int k = 0; k < 4; k++) gv[q][k] = (v8f)(*(const v8i *)(const void *)(g + st[k]) & m[k]);  \
        }                                                                                                   \
        for (int64_t ci = 0; ci < c->C; ci++)                                                               \
            for (int64_t ki = 0; ki < c->kh; ki++) {                                                        \
                const float *xr = xn + (ci * c->H + oh + ki) * c->W;                                        \
                int64_t t0 = (ci * c->kh + ki) * c->kw;                                                     \
                for (int64_t kj = 0; kj < c->kw; kj++) {                                                    \
                    const float *xs = xr + kj;                                                              \
                    v8f x0 = *(const v8f *)(xs + st[0]), x1 = *(const v8f *)(xs + st[1]);                   \
                    v8f x2 = *(const v8f *)(xs + st[2]), x3 = *(const v8f *)(xs + st[3]);                   \
                    for (int q = 0; q < (OB); q++)                                                          \
                        acc[(o + q) * K + t0 + kj] += (gv[q][0] * x0 + gv[q][1] * x1) +                     \
                                                      (gv[q][2] * x2 + gv[q][3] * x3);                      \
                }                                                                                           \
            }                                                                                               \
    } while (0)

/* grad_w (and grad_b) of the direct path: per output row, the 4 gout vectors (the
 * overlapping one masked to its new lanes) times the shifted x rows, into one vector
 * accumulator per weight, summed across lanes once at the end. */
SP_CLONES __attribute__((optimize("fp-contract=fast"))) static void
direct_grad_w(float *GW, const float *GO, const float *X, const conv_geom *c, v8f *acc) {
    int64_t HW = c->Ho * c->Wo, K = c->C * c->kh * c->kw;
    for (int64_t r = 0; r < c->Co * K; r++) acc[r] = (v8f){0};
    for (int64_t base = 0; base < c->Wo; base += 32) {
        int64_t st[4], prev = base;
        v8i m[4];
        chunk_starts(base, c->Wo, st);
        for (int k = 0; k < 4; k++) {
            for (int j = 0; j < 8; j++) m[k][j] = st[k] + j >= prev ? -1 : 0;
            if (st[k] + 8 > prev) prev = st[k] + 8;
        }
        for (int64_t n = 0; n < c->N; n++) {
            const float *xn = X + n * c->C * c->H * c->W;
            for (int64_t oh = 0; oh < c->Ho; oh++) {
                int64_t o = 0;
                for (; o + 3 <= c->Co; o += 3) DIRECT_GW_BLOCK(3);
                for (; o < c->Co; o++) DIRECT_GW_BLOCK(1);
            }
        }
    }
    for (int64_t r = 0; r < c->Co * K; r++) {
        double s = 0;
        for (int j = 0; j < 8; j++) s += acc[r][j];
        GW[r] += (float)s;
    }
}

/* grad_w and grad_b of the direct path; grad_x (a first layer usually needs none: LeNet's
 * chain skips it) stays on the GEMM + col2im path, whose scatter is cheaper than shifted
 * read-modify-write rows. */
static sp_status direct_backward(float *GW, float *GB, const float *GO, const float *X, const conv_geom *c,
                                 sp_device *dev, const char *op) {
    int64_t HW = c->Ho * c->Wo, K = c->C * c->kh * c->kw;
    if (GW) {
        v8f *acc = sp_workspace(dev, 2, sizeof(v8f) * (size_t)(c->Co * K));
        if (!acc) return sp_error(SP_ENOMEM, "%s: cannot allocate the weight-gradient accumulators", op);
        direct_grad_w(GW, GO, X, c, acc);
    }
    if (GB)
        for (int64_t n = 0; n < c->N; n++)
            for (int64_t o = 0; o < c->Co; o++) {
                const float *gon = GO + (n * c->Co + o) * HW;
                double s = 0;
                for (int64_t i = 0; i < HW; i++) s += gon[i];
                GB[o] += (float)s;
            }
    return SP_OK;
}

static int is_pointwise(const conv_geom *c) {
    return c->kh == 1 && c->kw == 1 && c->sh == 1 && c->sw == 1 && c->pt == 0 && c->pl == 0 && c->Ho == c->H &&
           c->Wo == c->W;
}

/* Small feature maps with a batch (HW < 1024): the GEMMs run over several images at once
 * ([Cog, nb*HW]) where per-image GEMMs would be thin (ResNet's late layers: 7x7 maps, a
 * 49-long reduction per image in the weight gradient). Returns the images per chunk, 0 for
 * per-image GEMMs. Chunks keep the im2col buffer cache-sized (about 512 KiB) while the
 * GEMM keeps at least 2048 columns: LeNet's conv1 wrote a 5 MB buffer per batch and spent
 * more time storing it than multiplying. */
static int64_t batch_chunk(const conv_geom *c, int64_t K, int64_t HW) {
    if (!(c->N > 1 && HW < 1024 && K * c->N * HW <= ((int64_t)1 << 24))) return 0;
    int64_t NB = ((int64_t)1 << 17) / (K * HW > 0 ? K * HW : 1), minb = (2048 + HW - 1) / HW;
    if (NB < minb) NB = minb;
    if (NB > c->N) NB = c->N;
    if (NB < 1) NB = 1;
    return NB;
}

/* The eval-mode epilogue of a fused convolution (sp_conv2d_bn_forward): per output channel
 * o, v = v * a[o] + b[o] with BatchNorm's own folding of its moving statistics (a = gamma *
 * invstd, b = beta - mean * invstd * gamma, as sp_cpu_batchnorm_forward computes them), then
 * + residual, then max(v, 0). It runs on each image's output right after its GEMM, while
 * that output is still in cache: BatchNorm, the residual add and ReLU were three more passes
 * over memory. NULL epilogue: a plain convolution. */
typedef struct {
    const float *gamma, *beta, *mean, *var, *res;
    double eps;
    int relu;
} conv_epi;

static inline void epi_coef(const conv_epi *e, int64_t o, float *a, float *b) {
    double inv = 1.0 / sqrt((double)e->var[o] + e->eps), mean = e->mean[o];
    *a = (float)(e->gamma[o] * inv);
    *b = (float)(e->beta[o] - mean * inv * e->gamma[o]);
}

/* out[i] = epi(src[i] + bias) for one channel's HW run (src may equal out); vectorised
 * for the CPU at hand (SP_CLONES), the four variants branch-free inside */
SP_CLONES static void epi_row(float *out, const float *src, int64_t HW, float bias, float a, float b, const float *r,
                           int relu) {
    if (r) {
        if (relu)
            for (int64_t i = 0; i < HW; i++) { float v = (src[i] + bias) * a + b + r[i]; out[i] = v > 0.0f ? v : 0.0f; }
        else
            for (int64_t i = 0; i < HW; i++) out[i] = (src[i] + bias) * a + b + r[i];
    } else if (relu) {
        for (int64_t i = 0; i < HW; i++) { float v = (src[i] + bias) * a + b; out[i] = v > 0.0f ? v : 0.0f; }
    } else {
        for (int64_t i = 0; i < HW; i++) out[i] = (src[i] + bias) * a + b;
    }
}

/* the epilogue over images [n0, n1) of out (already holding conv + bias) */
static void epi_images(float *O, const conv_geom *c, const conv_epi *e, int64_t n0, int64_t n1) {
    int64_t HW = c->Ho * c->Wo;
    for (int64_t o = 0; o < c->Co; o++) {
        float a, b;
        epi_coef(e, o, &a, &b);
        for (int64_t n = n0; n < n1; n++) {
            int64_t off = (n * c->Co + o) * HW;
            epi_row(O + off, O + off, HW, 0.0f, a, b, e->res ? e->res + off : NULL, e->relu);
        }
    }
}

/* out [N,Co,Ho,Wo] = x [N,C,H,W] (*) w [Co,C/g,kh,kw] + bias [Co], then the epilogue e */
static sp_status conv_forward(sp_tensor *out, const sp_tensor *x, const sp_tensor *w, const sp_tensor *bias,
                              const conv_geom *cg, const conv_epi *e, const char *op) {
    conv_geom c = *cg;
    sp_device *dev = SP_DEV(x);
    if (sp_cpu_conv_rows_applies(c.C, c.H, c.W, c.Co, c.kh, c.kw, c.sh, c.sw, c.pt, c.pb_, c.pl, c.pr_, c.dh, c.dw, c.g) &&
        sp_cpu_conv_rows_forward(F32(out), F32(x), F32(w), bias ? F32(bias) : NULL, c.N, c.C, c.H, c.W, c.Co, c.kh, c.kw)) {
        if (e) epi_images(F32(out), &c, e, 0, c.N);
        return SP_OK;
    }
    if (is_direct(&c)) {
        direct_forward(F32(out), F32(x), F32(w), bias ? F32(bias) : NULL, &c);
        if (e) epi_images(F32(out), &c, e, 0, c.N);
        return SP_OK;
    }
    if (sp_cpu_conv_small_applies(c.C, c.H, c.W, c.Co, c.kh, c.kw, c.sh, c.sw, c.pt, c.pb_, c.pl, c.pr_, c.dh, c.dw, c.g)) {
        if (sp_cpu_conv_small_forward(F32(out), F32(x), F32(w), bias ? F32(bias) : NULL, c.N, c.C, c.H, c.W, c.Co,
                                      c.kh, c.kw, dev) < 0)
            return sp_error(SP_ENOMEM, "%s: cannot allocate the direct convolution's scratch", op);
        if (e) epi_images(F32(out), &c, e, 0, c.N);
        return SP_OK;
    }
    if (!sp_wino_off && sp_cpu_wino_applies(c.N, c.C, c.Co, c.Ho, c.Wo, c.kh, c.kw, c.sh, c.sw, c.dh, c.dw, c.g)) {
        sp_status st = sp_cpu_wino_forward(F32(out), F32(x), F32(w), bias ? F32(bias) : NULL, c.N, c.C, c.H, c.W,
                                           c.Co, c.Ho, c.Wo, c.pt, c.pl, dev, op);
        if (!st && e) epi_images(F32(out), &c, e, 0, c.N);
        return st;
    }
    int64_t Cg = c.C / c.g, Cog = c.Co / c.g, K = Cg * c.kh * c.kw, HW = c.Ho * c.Wo;
    /* Small feature maps with a batch: one GEMM over all images ([Cog, N*HW]) keeps BLAS
     * efficient where per-image GEMMs would be thin (ResNet's late layers). */
    int64_t NB = batch_chunk(&c, K, HW);
    if (NB) {
        int64_t NHWmax = NB * HW;
        float *col = sp_workspace(dev, 0, sizeof(float) * (size_t)(K * NHWmax > 0 ? K * NHWmax : 1));
        float *tmp = sp_workspace(dev, 1, sizeof(float) * (size_t)(Cog * NHWmax > 0 ? Cog * NHWmax : 1));
        if (!col || !tmp) return sp_error(SP_ENOMEM, "%s: cannot allocate the batched im2col buffer", op);
        const float *X = F32(x), *Wt = F32(w);
        float *O = F32(out);
        for (int64_t n0 = 0; n0 < c.N; n0 += NB) {
            int64_t nb = c.N - n0 < NB ? c.N - n0 : NB, NHW = nb * HW;
            for (int g = 0; g < c.g; g++) {
                for (int64_t n = 0; n < nb; n++)
                    im2col_ld(col + n * HW, NHW, X + (n0 + n) * c.C * c.H * c.W, &c, g * Cg, Cg);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)Cog, (int)NHW, (int)K, 1.0f,
                            Wt + g * Cog * K, (int)K, col, (int)NHW, 0.0f, tmp, (int)NHW);
                for (int64_t o = 0; o < Cog; o++) {
                    float b = bias ? F32(bias)[g * Cog + o] : 0.0f, ea = 1.0f, eb = 0.0f;
                    if (e) epi_coef(e, g * Cog + o, &ea, &eb);
                    for (int64_t n = 0; n < nb; n++) {
                        int64_t off = ((n0 + n) * c.Co + g * Cog + o) * HW;
                        const float *src = tmp + o * NHW + n * HW;
                        if (e) epi_row(O + off, src, HW, b, ea, eb, e->res ? e->res + off : NULL, e->relu);
                        else for (int64_t i = 0; i < HW; i++) O[off + i] = src[i] + b;
                    }
                }
            }
        }
        return SP_OK;
    }
    int pw = is_pointwise(&c);
    float *col = NULL;
    if (!pw) {
        col = sp_workspace(dev, 0, sizeof(float) * (size_t)(K * HW > 0 ? K * HW : 1));
        if (!col) return sp_error(SP_ENOMEM, "%s: cannot allocate the im2col buffer (%lld floats)", op, (long long)(K * HW));
    }
    const float *X = F32(x), *Wt = F32(w);
    float *O = F32(out);
    for (int64_t n = 0; n < c.N; n++) {
        const float *xn = X + n * c.C * c.H * c.W;
        float *on = O + n * c.Co * HW;
        for (int g = 0; g < c.g; g++) {
            const float *B;
            if (pw) B = xn + g * Cg * c.H * c.W;
            else { im2col(col, xn, &c, g * Cg, Cg); B = col; }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)Cog, (int)HW, (int)K, 1.0f, Wt + g * Cog * K,
                        (int)K, B, (int)HW, 0.0f, on + g * Cog * HW, (int)HW);
        }
        if (e) {
            for (int64_t o = 0; o < c.Co; o++) {
                float a, b;
                epi_coef(e, o, &a, &b);
                epi_row(on + o * HW, on + o * HW, HW, bias ? F32(bias)[o] : 0.0f, a, b,
                        e->res ? e->res + (n * c.Co + o) * HW : NULL, e->relu);
            }
        } else if (bias) {
            const float *b = F32(bias);
            for (int64_t o = 0; o < c.Co; o++)
                for (int64_t i = 0; i < HW; i++) on[o * HW + i] += b[o];
        }
    }
    return SP_OK;
}

/* layers that spore's own direct kernels run under either conv kernel (LeNet-sized: their
 * per-call work is below what oneDNN's reorders and dispatch cost) */
static int spore_own(const conv_geom *c) {
    return is_direct(c) ||
           sp_cpu_conv_rows_applies(c->C, c->H, c->W, c->Co, c->kh, c->kw, c->sh, c->sw, c->pt, c->pb_, c->pl, c->pr_,
                                    c->dh, c->dw, c->g) ||
           sp_cpu_conv_small_applies(c->C, c->H, c->W, c->Co, c->kh, c->kw, c->sh, c->sw, c->pt, c->pb_, c->pl,
                                     c->pr_, c->dh, c->dw, c->g);
}

/* sp_conv2d_channels_last_native on the CPU: oneDNN runs this layer with channels-last
 * operands (sp_cpu_dnnl_conv_forward: selected, available, not spore_own) */
int sp_cpu_conv_cl_native(const sp_tensor *x, const sp_tensor *w, int stride_h, int stride_w, int pad_top,
                          int pad_bottom, int pad_left, int pad_right, int dil_h, int dil_w, int groups) {
    if (sp_cpu_conv_kernel() == SP_CONV_SPORE || !sp_cpu_conv_kernel_available(SP_CONV_ONEDNN)) return 0;
    conv_geom c;
    conv_geom_of(&c, x, w, stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right, dil_h, dil_w, groups);
    return !spore_own(&c);
}

sp_status sp_cpu_conv2d_forward(sp_tensor *out, const sp_tensor *x, const sp_tensor *w, const sp_tensor *bias,
                                int stride_h, int stride_w, int pad_top, int pad_bottom, int pad_left, int pad_right,
                                int dil_h, int dil_w, int groups) {
    conv_geom c;
    conv_geom_of(&c, x, w, stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right, dil_h, dil_w, groups);
    sp_status st;
    if (!spore_own(&c) &&
        sp_cpu_dnnl_conv_forward(&st, out, x, w, bias, NULL, NULL, NULL, NULL, 0.0, NULL, 0, stride_h, stride_w,
                                 pad_top, pad_bottom, pad_left, pad_right, dil_h, dil_w, groups, 0, "conv2d_forward"))
        return st;
    if (SP_CL_ANY(out, x)) /* channels-last operands oneDNN did not take: spore's kernels on NCHW copies */
        return sp_cl_conv_forward(sp_cpu_conv2d_forward, out, x, w, bias, stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right, dil_h, dil_w, groups);
    return conv_forward(out, x, w, bias, &c, NULL, "conv2d_forward");
}

/* bfloat16 activations (channels-last; engine/ops) where oneDNN does not run the layer (conv_kernel
 * "spore", a build without oneDNN, a declined geometry): float32 copies of the bf16 operands (exact),
 * the float32-activation path, and the result rounded into a bf16 out (nearest even), as oneDNN
 * rounds it */
static sp_status bf16_act_fallback(sp_tensor *out, const sp_tensor *x, const sp_tensor *w, const sp_tensor *bias,
                                   const sp_tensor *gamma, const sp_tensor *beta, const sp_tensor *mean,
                                   const sp_tensor *var, double eps, const sp_tensor *residual, int relu,
                                   int stride_h, int stride_w, int pad_top, int pad_bottom, int pad_left,
                                   int pad_right, int dil_h, int dil_w, int groups) {
    sp_tensor *xf = NULL, *rf = NULL, *of = NULL;
    int dev = sp_tensor_device(out);
    sp_status st = SP_OK;
    if (x->dtype == SP_BFLOAT16) st = sp_tensor_clone(&xf, x, SP_FLOAT32);
    if (!st && residual && residual->dtype == SP_BFLOAT16) st = sp_tensor_clone(&rf, residual, SP_FLOAT32);
    if (!st && out->dtype == SP_BFLOAT16) st = sp_tensor_empty_on(&of, SP_FLOAT32, 4, out->shape, dev);
    if (!st)
        st = sp_cpu_conv2d_bn_forward_bf16(of ? of : out, xf ? xf : x, w, bias, gamma, beta, mean, var, eps,
                                           rf ? rf : residual, relu, stride_h, stride_w, pad_top, pad_bottom, pad_left,
                                           pad_right, dil_h, dil_w, groups);
    if (!st && of) st = sp_tensor_copy(out, of);
    sp_tensor_free(xf), sp_tensor_free(rf), sp_tensor_free(of);
    return st;
}

/* the same with the convolution in bfloat16 (amp_level "O2", bf16_nn.c); the epilogue runs in
 * float32 as one pass over the output after it (BatchNorm, the join and ReLU were three) */
sp_status sp_cpu_conv2d_bn_forward_bf16(sp_tensor *out, const sp_tensor *x, const sp_tensor *w, const sp_tensor *bias,
                                        const sp_tensor *gamma, const sp_tensor *beta, const sp_tensor *mean,
                                        const sp_tensor *var, double eps, const sp_tensor *residual, int relu,
                                        int stride_h, int stride_w, int pad_top, int pad_bottom, int pad_left,
                                        int pad_right, int dil_h, int dil_w, int groups) {
    sp_status st;
    if (sp_cpu_dnnl_conv_forward(&st, out, x, w, bias, gamma, beta, mean, var, eps, residual, relu, stride_h, stride_w,
                                 pad_top, pad_bottom, pad_left, pad_right, dil_h, dil_w, groups, 1,
                                 "conv2d_bn_forward_bf16"))
        return st;
    if (x->dtype == SP_BFLOAT16 || out->dtype == SP_BFLOAT16 || (residual && residual->dtype == SP_BFLOAT16))
        return bf16_act_fallback(out, x, w, bias, gamma, beta, mean, var, eps, residual, relu, stride_h, stride_w,
                                 pad_top, pad_bottom, pad_left, pad_right, dil_h, dil_w, groups);
    if (SP_CL_ANY(out, x, residual)) /* channels-last operands oneDNN did not take: NCHW copies */
        return sp_cl_conv_bn_forward(sp_cpu_conv2d_bn_forward_bf16, out, x, w, bias, gamma, beta, mean, var, eps, residual, relu, stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right, dil_h, dil_w, groups);
    NN_TRY(sp_cpu_conv2d_forward_bf16(out, x, w, bias, stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right,
                                      dil_h, dil_w, groups));
    conv_geom c;
    conv_geom_of(&c, x, w, stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right, dil_h, dil_w, groups);
    conv_epi e = {F32(gamma), F32(beta), F32(mean), F32(var), residual ? F32(residual) : NULL, eps, relu};
    epi_images(F32(out), &c, &e, 0, c.N);
    return SP_OK;
}

/* out = [relu](BatchNorm_eval(x (*) w + bias) [+ residual]): the eval-mode conv -> BN
 * (-> add) (-> ReLU) chain in one call (checked by sp_conv2d_bn_forward) */
sp_status sp_cpu_conv2d_bn_forward(sp_tensor *out, const sp_tensor *x, const sp_tensor *w, const sp_tensor *bias,
                                   const sp_tensor *gamma, const sp_tensor *beta, const sp_tensor *mean,
                                   const sp_tensor *var, double eps, const sp_tensor *residual, int relu,
                                   int stride_h, int stride_w, int pad_top, int pad_bottom, int pad_left,
                                   int pad_right, int dil_h, int dil_w, int groups) {
    conv_geom c;
    conv_geom_of(&c, x, w, stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right, dil_h, dil_w, groups);
    sp_status st;
    if (!spore_own(&c) &&
        sp_cpu_dnnl_conv_forward(&st, out, x, w, bias, gamma, beta, mean, var, eps, residual, relu, stride_h,
                                 stride_w, pad_top, pad_bottom, pad_left, pad_right, dil_h, dil_w, groups, 0,
                                 "conv2d_bn_forward"))
        return st;
    if (SP_CL_ANY(out, x, residual)) /* channels-last operands oneDNN did not take: NCHW copies */
        return sp_cl_conv_bn_forward(sp_cpu_conv2d_bn_forward, out, x, w, bias, gamma, beta, mean, var, eps, residual, relu, stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right, dil_h, dil_w, groups);
    conv_epi e = {F32(gamma), F32(beta), F32(mean), F32(var), residual ? F32(residual) : NULL, eps, relu};
    return conv_forward(out, x, w, bias, &c, &e, "conv2d_bn_forward");
}

/* grad_b [Co] += sum over images and positions of grad_out */
static void bias_grad(float *GB, const float *GO, const conv_geom *c) {
    int64_t HW = c->Ho * c->Wo;
    for (int64_t n = 0; n < c->N; n++)
        for (int64_t o = 0; o < c->Co; o++) {
            const float *gon = GO + (n * c->Co + o) * HW;
            double s = 0;
            for (int64_t i = 0; i < HW; i++) s += gon[i];
            GB[o] += (float)s;
        }
}

/* The backward of batch_chunk's geometry: per chunk of nb images and group, grad_out is
 * gathered once into G [Cog, nb*HW]; grad_w += G col^T over nb*HW columns (one GEMM with
 * a reduction nb times longer than per image), and col = W^T G is scattered back with
 * col2im (a plain copy for 1x1 stride-1 layers). Slot 0: col, slot 1: G. */
static sp_status batched_backward(float *GX, float *GW, float *GB, const float *GO, const float *X, const float *Wt,
                                  const conv_geom *c, int64_t NB, sp_device *dev, const char *op) {
    int64_t Cg = c->C / c->g, Cog = c->Co / c->g, K = Cg * c->kh * c->kw, HW = c->Ho * c->Wo, NHWmax = NB * HW;
    int64_t CHW = c->C * c->H * c->W;
    int pw = is_pointwise(c);
    float *col = sp_workspace(dev, 0, sizeof(float) * (size_t)(K * NHWmax > 0 ? K * NHWmax : 1));
    float *G = sp_workspace(dev, 1, sizeof(float) * (size_t)(Cog * NHWmax > 0 ? Cog * NHWmax : 1));
    if (!col || !G) return sp_error(SP_ENOMEM, "%s: cannot allocate the batched im2col buffers", op);
    if (GX && !pw) memset(GX, 0, sizeof(float) * (size_t)(c->N * CHW));
    for (int64_t n0 = 0; n0 < c->N; n0 += NB) {
        int64_t nb = c->N - n0 < NB ? c->N - n0 : NB, NHW = nb * HW;
        for (int g = 0; g < c->g; g++) {
            for (int64_t n = 0; n < nb; n++)
                for (int64_t o = 0; o < Cog; o++)
                    memcpy(G + o * NHW + n * HW, GO + ((n0 + n) * c->Co + g * Cog + o) * HW, sizeof(float) * (size_t)HW);
            if (GW) {
                for (int64_t n = 0; n < nb; n++) im2col_ld(col + n * HW, NHW, X + (n0 + n) * CHW, c, g * Cg, Cg);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)Cog, (int)K, (int)NHW, 1.0f, G, (int)NHW, col,
                            (int)NHW, 1.0f, GW + g * Cog * K, (int)K);
            }
            if (GX) {
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)K, (int)NHW, (int)Cog, 1.0f, Wt + g * Cog * K,
                            (int)K, G, (int)NHW, 0.0f, col, (int)NHW);
                for (int64_t n = 0; n < nb; n++) {
                    float *gxn = GX + (n0 + n) * CHW;
                    if (pw)
                        for (int64_t ci = 0; ci < Cg; ci++)
                            memcpy(gxn + (g * Cg + ci) * HW, col + ci * NHW + n * HW, sizeof(float) * (size_t)HW);
                    else col2im_ld(gxn, col + n * HW, NHW, c, g * Cg, Cg);
                }
            }
        }
    }
    if (GB) bias_grad(GB, GO, c);
    return SP_OK;
}

/* grad_x [N,C,H,W] = conv^T(grad_out); grad_w [Co,C/g,kh,kw] += ...; grad_b [Co] += sum */
sp_status sp_cpu_conv2d_backward(sp_tensor *grad_x, sp_tensor *grad_w, sp_tensor *grad_b, const sp_tensor *grad_out,
                                 const sp_tensor *x, const sp_tensor *w, int stride_h, int stride_w, int pad_top,
                                 int pad_bottom, int pad_left, int pad_right, int dil_h, int dil_w, int groups) {
    const char *op = "conv2d_backward";
    conv_geom c;
    conv_geom_of(&c, x, w, stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right, dil_h, dil_w, groups);
    sp_device *dev = SP_DEV(x);
    sp_status dst;
    if (!spore_own(&c) &&
        sp_cpu_dnnl_conv_backward(&dst, grad_x, grad_w, grad_b, grad_out, x, w, stride_h, stride_w, pad_top,
                                  pad_bottom, pad_left, pad_right, dil_h, dil_w, groups, op))
        return dst;
    if (SP_CL_ANY(x, grad_out, grad_x)) /* channels-last operands oneDNN did not take: NCHW copies */
        return sp_cl_conv_backward(sp_cpu_conv2d_backward, grad_x, grad_w, grad_b, grad_out, x, w, stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right, dil_h, dil_w, groups);
    if (sp_cpu_conv_small_applies(c.C, c.H, c.W, c.Co, c.kh, c.kw, c.sh, c.sw, c.pt, c.pb_, c.pl, c.pr_, c.dh, c.dw, c.g))
        return sp_cpu_conv_small_backward(grad_x ? F32(grad_x) : NULL, grad_w ? F32(grad_w) : NULL,
                                          grad_b ? F32(grad_b) : NULL, F32(grad_out), F32(x), F32(w), c.N, c.C, c.H,
                                          c.W, c.Co, c.kh, c.kw, dev) < 0
                   ? sp_error(SP_ENOMEM, "%s: cannot allocate the direct convolution's scratch", op)
                   : SP_OK;
    int rows = sp_cpu_conv_rows_applies(c.C, c.H, c.W, c.Co, c.kh, c.kw, c.sh, c.sw, c.pt, c.pb_, c.pl, c.pr_, c.dh,
                                        c.dw, c.g)
                   ? sp_cpu_conv_rows_backward(grad_w ? F32(grad_w) : NULL, grad_b ? F32(grad_b) : NULL, F32(grad_out),
                                               F32(x), c.N, c.C, c.H, c.W, c.Co, c.kh, c.kw, dev)
                   : 0;
    if (rows < 0) return sp_error(SP_ENOMEM, "%s: cannot allocate the weight-gradient accumulators", op);
    if (rows) { if (!grad_x) return SP_OK; grad_w = grad_b = NULL; }
    if (is_direct(&c)) {
        NN_TRY(direct_backward(grad_w ? F32(grad_w) : NULL, grad_b ? F32(grad_b) : NULL, F32(grad_out), F32(x), &c, dev, op));
        if (!grad_x) return SP_OK;
        grad_w = grad_b = NULL;
    }
    /* grad_x of a 3x3 stride-1 layer is itself a 3x3 stride-1 convolution of grad_out with
     * the kernels flipped and in/out swapped, padded 2-p per side: Winograd where it pays */
    if (grad_x && !sp_wino_off && c.pt <= 2 && c.pb_ <= 2 && c.pl <= 2 && c.pr_ <= 2 &&
        sp_cpu_wino_applies(c.N, c.Co, c.C, c.H, c.W, c.kh, c.kw, c.sh, c.sw, c.dh, c.dw, c.g)) {
        float *wr = sp_workspace(dev, 2, sizeof(float) * (size_t)(c.C * c.Co * 9));
        if (!wr) return sp_error(SP_ENOMEM, "%s: cannot allocate the flipped kernels", op);
        const float *Wt = F32(w);
        for (int64_t o = 0; o < c.Co; o++)
            for (int64_t ci = 0; ci < c.C; ci++)
                for (int k = 0; k < 9; k++) wr[(ci * c.Co + o) * 9 + 8 - k] = Wt[(o * c.C + ci) * 9 + k];
        NN_TRY(sp_cpu_wino_forward(F32(grad_x), F32(grad_out), wr, NULL, c.N, c.Co, c.Ho, c.Wo, c.C, c.H, c.W,
                                   2 - c.pt, 2 - c.pl, dev, op));
        if (!grad_w && !grad_b) return SP_OK;
        grad_x = NULL;
    }
    int64_t Cg = c.C / c.g, Cog = c.Co / c.g, K = Cg * c.kh * c.kw, HW = c.Ho * c.Wo;
    int64_t NB = (grad_w || grad_x) ? batch_chunk(&c, K, HW) : 0;
    if (NB) return batched_backward(grad_x ? F32(grad_x) : NULL, grad_w ? F32(grad_w) : NULL,
                                    grad_b ? F32(grad_b) : NULL, F32(grad_out), F32(x), F32(w), &c, NB, dev, op);
    int pw = is_pointwise(&c);
    float *col = NULL;
    if (!pw) {
        col = sp_workspace(dev, 0, sizeof(float) * (size_t)(K * HW > 0 ? K * HW : 1));
        if (!col) return sp_error(SP_ENOMEM, "%s: cannot allocate the im2col buffer", op);
    }
    const float *X = F32(x), *Wt = F32(w), *GO = F32(grad_out);
    /* col2im accumulates into grad_x; the pointwise GEMMs overwrite every element (beta 0) */
    if (grad_x && !pw) memset(F32(grad_x), 0, sizeof(float) * (size_t)sp_tensor_numel(grad_x));
    for (int64_t n = 0; n < c.N; n++) {
        const float *xn = X + n * c.C * c.H * c.W;
        const float *gon = GO + n * c.Co * HW;
        for (int g = 0; g < c.g; g++) {
            const float *gog = gon + g * Cog * HW;
            if (grad_w) {
                const float *B;
                if (pw) B = xn + g * Cg * c.H * c.W;
                else { im2col(col, xn, &c, g * Cg, Cg); B = col; }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)Cog, (int)K, (int)HW, 1.0f, gog, (int)HW, B,
                            (int)HW, 1.0f, F32(grad_w) + g * Cog * K, (int)K);
            }
            if (grad_x) {
                float *gxn = F32(grad_x) + n * c.C * c.H * c.W;
                if (pw) {
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)K, (int)HW, (int)Cog, 1.0f,
                                Wt + g * Cog * K, (int)K, gog, (int)HW, 0.0f, gxn + g * Cg * c.H * c.W, (int)HW);
                } else {
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)K, (int)HW, (int)Cog, 1.0f,
                                Wt + g * Cog * K, (int)K, gog, (int)HW, 0.0f, col, (int)HW);
                    col2im(gxn, col, &c, g * Cg, Cg);
                }
            }
        }
        if (grad_b) {
            float *gb = F32(grad_b);
            for (int64_t o = 0; o < c.Co; o++) {
                double s = 0;
                for (int64_t i = 0; i < HW; i++) s += gon[o * HW + i];
                gb[o] += (float)s;
            }
        }
    }
    return SP_OK;
}
