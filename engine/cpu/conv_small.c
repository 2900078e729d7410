/* conv_small.c — direct AVX-512 convolution for small-channel, small-map layers (LeNet's
 * conv2: 6->16, 5x5 valid on 14x14), float32 NCHW, stride 1, no padding or dilation, one
 * group. im2col + GEMM there was bound by writing and re-reading the 150x100 column matrix
 * per image (perf: im2col_plain_ld 14%, sgemm 12%, itcopy 7% of LeNet inference) and the
 * GEMM was thin (M = 16).
 *
 * Layout: output channels go in the 16 lanes of a zmm vector (blocks of 16, the last
 * masked by zero weights), so one weight vector per tap serves a tile of up to 2 output
 * rows x 12 columns, each an FMA with a broadcast input pixel (no im2col). Per image the
 * tile results go to a [HW][16] scratch that is transposed into NCHW with the bias.
 *  - grad_w: grad_out is transposed to [HW][16] per image; the weight gradient of one
 *    input channel and a band of kernel rows (<= 25 taps) stays in registers over all
 *    positions: one grad_out vector load per position serves every tap of the band.
 *  - grad_x: vectorised along the input row (16 columns a vector, the last masked): the
 *    full correlation of grad_out (zero-padded by kh-1, kw-1) with the flipped kernels;
 *    each shifted grad_out row vector serves up to 8 input channels x 2 rows.
 *  - grad_x of 8 or more images on rows up to 16 wide: images in the lanes instead (gx_lanes).
 * Needs AVX-512F (checked at run time); elsewhere sp_cpu_conv_small_* return 0 and the
 * caller keeps its im2col path. Scratch: workspace slots 0 (weights), 1 (per-image
 * tiles / padded grad_out) and 2 (weight-gradient accumulators), each thread its own.
 * Threads: from 8 images on, each kernel splits its work over libgomp's pool when that has
 * been measured faster on this machine lately (windows of calls, pp_begin below), else runs
 * on the caller's thread; the split never changes a bit. */
#include "nn_common.h"

#include <omp.h>
#include <time.h>

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define SP_SMALL_X86 1
/* no predictive commoning: GCC otherwise carries the broadcast pixels from one tap to the
 * next in scalar registers (xs[p + 1] at kj is xs[p] at kj + 1), spilling them and adding a
 * vbroadcastss per FMA; the kernels want {1to16} memory operands */
#define KFN __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,fma"), optimize("no-predictive-commoning")))
#define KIN                                                                                              \
    __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,fma"), optimize("no-predictive-commoning"), \
                   always_inline)) static inline
#endif

int sp_cpu_conv_small_applies(int64_t C, int64_t H, int64_t W, int64_t Co, int64_t kh, int64_t kw, int sh, int sw,
                              int pt, int pb, int pl, int pr, int dh, int dw, int groups) {
#ifdef SP_SMALL_X86
    if (!sp_cpu_avx512()) return 0;
    if (sh != 1 || sw != 1 || dh != 1 || dw != 1 || groups != 1 || pt || pb || pl || pr) return 0;
    if (kh < 1 || kw < 1 || kh > H || kw > W || kh > 7 || (kw != 3 && kw != 5)) return 0;
    int64_t Ho = H - kh + 1, Wo = W - kw + 1;
    /* small maps and channel counts only: larger layers are GEMM-shaped (Winograd, BLAS) */
    /* 3x3 layers of 16+ channels stay with Winograd (conv_wino.c: 2.25x fewer products) */
    if (kh == 3 && kw == 3 && C >= 16 && Co >= 16) return 0;
    return C >= 2 && C <= 64 && Co >= 8 && Co <= 64 && Ho * Wo <= 400 && W <= 64;
#else
    (void)C; (void)H; (void)W; (void)Co; (void)kh; (void)kw; (void)sh; (void)sw; (void)pt; (void)pb; (void)pl;
    (void)pr; (void)dh; (void)dw; (void)groups;
    return 0;
#endif
}

#ifdef SP_SMALL_X86
/* ---- one thread or libgomp's pool: measured over windows of calls ---------------------
 * Each kernel below splits its work (images, input channels or kernel-row bands: outputs
 * that do not overlap, so the bits do not depend on the split) over libgomp's threads when
 * that has been the faster way lately. The calling thread runs its calls in windows of
 * PP_WIN (all these kernels together), each window one way, and times each window from its
 * first call to its last, so what runs between the calls counts too (a split leaves
 * libgomp's worker spinning on the core that OpenBLAS's worker wants, and a worker asleep
 * since the last split wakes slowly: timing the kernels alone favoured one thread on a
 * quiet machine where the loop was faster split). The first windows alternate; then the
 * way whose last PP_KEEP windows have the lower median runs, and every PP_EXPLORE-th window
 * tries the other. A median: on a shared VM a window now and then takes milliseconds more
 * (the vCPU descheduled). On a quiet 2-core machine the split wins (LeNet5 training at
 * batch 32: 549 -> 452 us a step, median of 12 alternating runs); with the other core busy
 * a region waits for a worker that the scheduler shares with the load and one thread wins,
 * so neither way is right for every machine state. Batches under 8 stay on one thread
 * (not counted). sp_small_par (a hidden test hook): -1 measured (the default), 0 never,
 * 1 always; sp_small_par_runs counts the calls that split. */
int sp_small_par = -1;
long sp_small_par_runs;
enum { PP_WIN = 48, PP_KEEP = 3, PP_EXPLORE = 12 };
typedef struct {
    float w[2][PP_KEEP]; /* seconds a call of the last windows run one thread [0] and split [1] */
    uint8_t next[2], cnt[2], mode;
    uint32_t calls, nwin;
    double t0; /* the current window's first call */
} pp_state;
static _Thread_local pp_state pp;
typedef struct { int counted; } pp_run;
static double pp_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
static float pp_median(const float *t, int n) {
    float v[PP_KEEP];
    for (int i = 0; i < n; i++) { /* insertion sort of at most PP_KEEP */
        int j = i;
        for (; j > 0 && v[j - 1] > t[i]; j--) v[j] = v[j - 1];
        v[j] = t[i];
    }
    return v[n / 2];
}
/* 1: split this call of a kernel over N images (the choice is the calling thread's) */
static int pp_begin(pp_run *r, int64_t N) {
    r->counted = 0;
    int force = __atomic_load_n(&sp_small_par, __ATOMIC_RELAXED), mode;
    if (N < 8 || force == 0 || omp_get_max_threads() < 2) return 0;
    if (force == 1) mode = 1;
    else {
        if (pp.calls == 0) pp.t0 = pp_now();
        pp.calls++;
        r->counted = 1;
        mode = pp.mode;
    }
    if (mode) __atomic_add_fetch(&sp_small_par_runs, 1, __ATOMIC_RELAXED);
    return mode;
}
static void pp_end(pp_run *r) {
    if (!r->counted || pp.calls < PP_WIN) return;
    int m = pp.mode;
    pp.w[m][pp.next[m]] = (float)((pp_now() - pp.t0) / pp.calls);
    pp.next[m] = (uint8_t)((pp.next[m] + 1) % PP_KEEP);
    if (pp.cnt[m] < PP_KEEP) pp.cnt[m]++;
    pp.calls = 0;
    pp.nwin++;
    if (pp.cnt[0] < 2 || pp.cnt[1] < 2) pp.mode = (uint8_t)(pp.nwin & 1); /* the first windows alternate */
    else {
        int best = pp_median(pp.w[1], pp.cnt[1]) < pp_median(pp.w[0], pp.cnt[0]);
        pp.mode = (uint8_t)(pp.nwin % PP_EXPLORE == 0 ? !best : best);
    }
}
/* fn(ctx, i0, i1) over [0, n): on the caller's thread, or one contiguous range per thread of
 * the pool. No region at all on one thread: entering one, even under if(0), cost about
 * 1 us a call (8 % of a LeNet5 forward at batch 1). fn returns 0 when out of memory. */
typedef int (*pp_fn)(void *ctx, int64_t i0, int64_t i1);
static int pp_for(int par, int64_t n, pp_fn fn, void *ctx) {
    if (!par) return fn(ctx, 0, n);
    int ok = 1;
#pragma omp parallel
    {
        int64_t t = omp_get_thread_num(), T = omp_get_num_threads();
        int64_t i0 = n * t / T, i1 = n * (t + 1) / T;
        if (i0 < i1 && !fn(ctx, i0, i1)) {
#pragma omp atomic write
            ok = 0;
        }
    }
    return ok;
}
typedef struct {
    int64_t N, C, H, W, Co, kh, kw, Ho, Wo, CB; /* CB: 16-channel output blocks */
} sgeom;

/* 16x16 transpose in registers: r[i] lane l <-> r[l] lane i */
KIN void tr16(__m512 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {
        __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]);
        __m512d c = _mm512_castps_pd(t[4 * i + 2]), d = _mm512_castps_pd(t[4 * i + 3]);
        r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    /* r[4i + j], 128-bit lane L: column 4L + j of rows 4i..4i+3 */
    __m512 o[16];
    for (int j = 0; j < 4; j++) {
        __m512 e = _mm512_shuffle_f32x4(r[j], r[4 + j], 0x88), f = _mm512_shuffle_f32x4(r[j], r[4 + j], 0xdd);
        __m512 g = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0x88), h = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0xdd);
        o[j] = _mm512_shuffle_f32x4(e, g, 0x88);
        o[8 + j] = _mm512_shuffle_f32x4(e, g, 0xdd);
        o[4 + j] = _mm512_shuffle_f32x4(f, h, 0x88);
        o[12 + j] = _mm512_shuffle_f32x4(f, h, 0xdd);
    }
    for (int i = 0; i < 16; i++) r[i] = o[i];
}

static inline __mmask16 lanes(int64_t n) { return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1); }

/* dst[i][l] (rows of 16) = src[l * lds + i] for i < ni, l < nl; lanes from nl on are zero */
KFN static void to_lanes(float *dst, const float *src, int64_t lds, int64_t ni, int64_t nl) {
    for (int64_t i0 = 0; i0 < ni; i0 += 16) {
        int64_t n = ni - i0 < 16 ? ni - i0 : 16;
        __mmask16 m = lanes(n);
        __m512 r[16];
        for (int l = 0; l < 16; l++) r[l] = l < nl ? _mm512_maskz_loadu_ps(m, src + l * lds + i0) : _mm512_setzero_ps();
        tr16(r);
        for (int64_t i = 0; i < n; i++) _mm512_storeu_ps(dst + (i0 + i) * 16, r[i]);
    }
}

/* dst[l * ldd + i] = src[i][l] + bias[l] for i < ni, l < nl (bias may be NULL) */
KFN static void from_lanes(float *dst, int64_t ldd, const float *src, int64_t ni, int64_t nl, const float *bias) {
    for (int64_t i0 = 0; i0 < ni; i0 += 16) {
        int64_t n = ni - i0 < 16 ? ni - i0 : 16;
        __mmask16 m = lanes(n);
        __m512 r[16];
        for (int i = 0; i < 16; i++) r[i] = i < n ? _mm512_loadu_ps(src + (i0 + i) * 16) : _mm512_setzero_ps();
        tr16(r);
        for (int64_t l = 0; l < nl; l++)
            _mm512_mask_storeu_ps(dst + l * ldd + i0, m, _mm512_add_ps(r[l], _mm512_set1_ps(bias ? bias[l] : 0.0f)));
    }
}

/* ---- forward ---------------------------------------------------------------------- */

/* R rows x P columns of outputs at x (the tile's top-left input pixel), all taps; t: the
 * tile's first [16] slot in the [HW][16] scratch */
KIN void fwd_tile(float *t, const float *x, const float *wt, const sgeom *g, const int R, const int P) {
    __m512 a[2][12];
    for (int r = 0; r < R; r++)
        for (int p = 0; p < P; p++) a[r][p] = _mm512_setzero_ps();
    const float *w = wt;
    const int64_t W = g->W;
    for (int64_t ci = 0; ci < g->C; ci++)
        for (int64_t ki = 0; ki < g->kh; ki++) {
            const float *xr = x + (ci * g->H + ki) * W;
            for (int64_t kj = 0; kj < g->kw; kj++) {
                __m512 wv = _mm512_loadu_ps(w);
                w += 16;
                const float *xs = xr + kj;
                for (int r = 0; r < R; r++)
                    for (int p = 0; p < P; p++)
                        a[r][p] = _mm512_fmadd_ps(wv, _mm512_set1_ps(xs[r * W + p]), a[r][p]);
            }
        }
    for (int r = 0; r < R; r++)
        for (int p = 0; p < P; p++) _mm512_storeu_ps(t + (r * g->Wo + p) * 16, a[r][p]);
}

#define FWD_CASES(R)                                                                                      \
    switch (P) {                                                                                          \
    case 1: fwd_tile(t, xs, wt, g, R, 1); break;                                                          \
    case 2: fwd_tile(t, xs, wt, g, R, 2); break;                                                          \
    case 3: fwd_tile(t, xs, wt, g, R, 3); break;                                                          \
    case 4: fwd_tile(t, xs, wt, g, R, 4); break;                                                          \
    case 5: fwd_tile(t, xs, wt, g, R, 5); break;                                                          \
    case 6: fwd_tile(t, xs, wt, g, R, 6); break;                                                          \
    case 7: fwd_tile(t, xs, wt, g, R, 7); break;                                                          \
    case 8: fwd_tile(t, xs, wt, g, R, 8); break;                                                          \
    case 9: fwd_tile(t, xs, wt, g, R, 9); break;                                                          \
    case 10: fwd_tile(t, xs, wt, g, R, 10); break;                                                        \
    case 11: fwd_tile(t, xs, wt, g, R, 11); break;                                                        \
    default: fwd_tile(t, xs, wt, g, R, 12); break;                                                        \
    }

/* column chunks of at most 12, balanced (Wo = 14: 7 + 7, not 12 + 2) */
static inline int64_t col_chunk(int64_t Wo) {
    int64_t nch = (Wo + 11) / 12;
    return (Wo + nch - 1) / nch;
}

KFN static void fwd_image(float *tmp, const float *xn, const float *wt, const sgeom *g) {
    int64_t cw = col_chunk(g->Wo);
    for (int64_t oh = 0; oh < g->Ho; oh += 2) {
        int R = g->Ho - oh >= 2 ? 2 : 1;
        for (int64_t ow = 0; ow < g->Wo; ow += cw) {
            int P = (int)(g->Wo - ow < cw ? g->Wo - ow : cw);
            float *t = tmp + (oh * g->Wo + ow) * 16;
            const float *xs = xn + oh * g->W + ow;
            if (R == 2) { FWD_CASES(2) } else { FWD_CASES(1) }
        }
    }
}


static void geom(sgeom *g, int64_t N, int64_t C, int64_t H, int64_t W, int64_t Co, int64_t kh, int64_t kw) {
    g->N = N; g->C = C; g->H = H; g->W = W; g->Co = Co; g->kh = kh; g->kw = kw;
    g->Ho = H - kh + 1; g->Wo = W - kw + 1; g->CB = (Co + 15) / 16;
}

typedef struct { float *O; const float *X, *wt, *B; const sgeom *g; sp_device *dev; } small_fwd_ctx;
KFN static int small_fwd_images(void *cp, int64_t n0, int64_t n1) {
    const small_fwd_ctx *c = cp;
    const sgeom *g = c->g;
    int64_t K = g->C * g->kh * g->kw, HW = g->Ho * g->Wo;
    float *tmp = sp_workspace(c->dev, 1, sizeof(float) * (size_t)(HW * 16)); /* this thread's */
    if (!tmp) return 0;
    for (int64_t n = n0; n < n1; n++) {
        const float *xn = c->X + n * g->C * g->H * g->W;
        float *on = c->O + n * g->Co * HW;
        for (int64_t cb = 0; cb < g->CB; cb++) {
            fwd_image(tmp, xn, c->wt + cb * K * 16, g);
            int64_t nco = g->Co - cb * 16 < 16 ? g->Co - cb * 16 : 16;
            from_lanes(on + cb * 16 * HW, HW, tmp, HW, nco, c->B ? c->B + cb * 16 : NULL); /* bias last */
        }
    }
    return 1;
}
int sp_cpu_conv_small_forward(float *O, const float *X, const float *Wt, const float *B, int64_t N, int64_t C,
                              int64_t H, int64_t W, int64_t Co, int64_t kh, int64_t kw, sp_device *dev) {
    sgeom g;
    geom(&g, N, C, H, W, Co, kh, kw);
    int64_t K = C * kh * kw;
    float *wt = sp_workspace(dev, 0, sizeof(float) * (size_t)(g.CB * K * 16));
    if (!wt) return -1;
    /* wt[cb][k][lane] = w[cb*16 + lane][k], zero past Co */
    for (int64_t cb = 0; cb < g.CB; cb++)
        to_lanes(wt + cb * K * 16, Wt + cb * 16 * K, K, K, Co - cb * 16 < 16 ? Co - cb * 16 : 16);
    small_fwd_ctx c = {O, X, wt, B, &g, dev};
    pp_run pr;
    int ok = pp_for(pp_begin(&pr, N), N, small_fwd_images, &c);
    pp_end(&pr);
    return ok ? 1 : -1;
}

/* ---- weight gradient ------------------------------------------------------------------ */

/* acc (the band's RB x KW vectors, [ki][kj][16]) += sum over positions of gt[p] x
 * x[ci][oh + k0 + r][ow + kj] */
KIN void gw_band(float *acc, const float *gt, const float *xc, const sgeom *g, const int RB, const int KW) {
    __m512 a[7][5];
    for (int r = 0; r < RB; r++)
        for (int j = 0; j < KW; j++) a[r][j] = _mm512_loadu_ps(acc + (r * KW + j) * 16);
    const int64_t W = g->W;
    for (int64_t oh = 0; oh < g->Ho; oh++) {
        const float *xr = xc + oh * W;
        const float *gr = gt + oh * g->Wo * 16;
        for (int64_t ow = 0; ow < g->Wo; ow++) {
            __m512 gv = _mm512_loadu_ps(gr + ow * 16);
            const float *xs = xr + ow;
            for (int r = 0; r < RB; r++)
                for (int j = 0; j < KW; j++) a[r][j] = _mm512_fmadd_ps(gv, _mm512_set1_ps(xs[r * W + j]), a[r][j]);
        }
    }
    for (int r = 0; r < RB; r++)
        for (int j = 0; j < KW; j++) _mm512_storeu_ps(acc + (r * KW + j) * 16, a[r][j]);
}

/* bands of kernel rows: 5 rows of 5 taps, 7 rows of 3 */
KFN static void gw_image(float *acc, const float *gt, const float *xn, const sgeom *g, int64_t c0, int64_t c1) {
    int64_t band = g->kw == 5 ? 5 : 7;
    for (int64_t ci = c0; ci < c1; ci++)
        for (int64_t k0 = 0; k0 < g->kh; k0 += band) {
            int rb = (int)(g->kh - k0 < band ? g->kh - k0 : band);
            float *ac = acc + ((ci * g->kh + k0) * g->kw) * 16;
            const float *xc = xn + (ci * g->H + k0) * g->W;
            if (g->kw == 5) {
                switch (rb) {
                case 1: gw_band(ac, gt, xc, g, 1, 5); break;
                case 2: gw_band(ac, gt, xc, g, 2, 5); break;
                case 3: gw_band(ac, gt, xc, g, 3, 5); break;
                case 4: gw_band(ac, gt, xc, g, 4, 5); break;
                default: gw_band(ac, gt, xc, g, 5, 5); break;
                }
            } else {
                switch (rb) {
                case 1: gw_band(ac, gt, xc, g, 1, 3); break;
                case 2: gw_band(ac, gt, xc, g, 2, 3); break;
                case 3: gw_band(ac, gt, xc, g, 3, 3); break;
                case 4: gw_band(ac, gt, xc, g, 4, 3); break;
                case 5: gw_band(ac, gt, xc, g, 5, 3); break;
                case 6: gw_band(ac, gt, xc, g, 6, 3); break;
                default: gw_band(ac, gt, xc, g, 7, 3); break;
                }
            }
        }
}


/* ---- input gradient ------------------------------------------------------------------- */

/* gx rows ih, ih+1 (RH of them), columns [iw0, iw0+16) masked by m, channels
 * [ci0, ci0 + CI): sum over co, ki, kj of w[co][ci][ki][kj] * gpad row (ih - ki + kh-1)
 * at column iw0 - kj + kw-1 */
KIN void gx_tile(float *gxn, const float *gp, const float *wx, const sgeom *g, int64_t Hp, int64_t Wp, int64_t ih,
                 int64_t iw0, __mmask16 m, int64_t ci0, const int RH, const int CI) {
    __m512 a[2][8];
    for (int r = 0; r < RH; r++)
        for (int c = 0; c < CI; c++) a[r][c] = _mm512_setzero_ps();
    /* kernel rows whose grad_out row (ih + r - ki) exists for some r: the others would
     * only read the zero padding (LeNet's conv2: 71% of the taps remain) */
    int64_t ki0 = ih + 1 - g->Ho > 0 ? ih + 1 - g->Ho : 0, ki1 = ih + RH - 1 < g->kh - 1 ? ih + RH - 1 : g->kh - 1;
    for (int64_t co = 0; co < g->Co; co++)
        for (int64_t ki = ki0; ki <= ki1; ki++) {
            const float *row = gp + (co * Hp + ih - ki + g->kh - 1) * Wp + iw0 + g->kw - 1;
            const float *wk = wx + ((co * g->kh + ki) * g->kw) * g->C + ci0;
            for (int64_t kj = 0; kj < g->kw; kj++) {
                __m512 v[2];
                for (int r = 0; r < RH; r++) {
                    v[r] = _mm512_loadu_ps(row + r * Wp - kj);
                    __asm__("" : "+v"(v[r])); /* one load for the CI products (GCC folded one into each) */
                }
                const float *ws = wk + kj * g->C;
                for (int c = 0; c < CI; c++) {
                    __m512 wv = _mm512_set1_ps(ws[c]);
                    for (int r = 0; r < RH; r++) a[r][c] = _mm512_fmadd_ps(wv, v[r], a[r][c]);
                }
            }
        }
    for (int r = 0; r < RH; r++)
        for (int c = 0; c < CI; c++)
            _mm512_mask_storeu_ps(gxn + ((ci0 + c) * g->H + ih + r) * g->W + iw0, m, a[r][c]);
}

#define GX_CASES(RH)                                                                                      \
    switch (ci) {                                                                                         \
    case 1: gx_tile(gxn, gp, wx, g, Hp, Wp, ih, iw0, m, ci0, RH, 1); break;                               \
    case 2: gx_tile(gxn, gp, wx, g, Hp, Wp, ih, iw0, m, ci0, RH, 2); break;                               \
    case 3: gx_tile(gxn, gp, wx, g, Hp, Wp, ih, iw0, m, ci0, RH, 3); break;                               \
    case 4: gx_tile(gxn, gp, wx, g, Hp, Wp, ih, iw0, m, ci0, RH, 4); break;                               \
    case 5: gx_tile(gxn, gp, wx, g, Hp, Wp, ih, iw0, m, ci0, RH, 5); break;                               \
    case 6: gx_tile(gxn, gp, wx, g, Hp, Wp, ih, iw0, m, ci0, RH, 6); break;                               \
    case 7: gx_tile(gxn, gp, wx, g, Hp, Wp, ih, iw0, m, ci0, RH, 7); break;                               \
    default: gx_tile(gxn, gp, wx, g, Hp, Wp, ih, iw0, m, ci0, RH, 8); break;                              \
    }

KFN static void gx_image(float *gxn, const float *gp, const float *wx, const sgeom *g, int64_t Hp, int64_t Wp) {
    /* channel blocks balanced (6: one of 6; 12: two of 6) */
    int64_t nb = (g->C + 7) / 8, cbs = (g->C + nb - 1) / nb;
    for (int64_t ih = 0; ih < g->H; ih += 2) {
        int RH = g->H - ih >= 2 ? 2 : 1;
        for (int64_t iw0 = 0; iw0 < g->W; iw0 += 16) {
            __mmask16 m = g->W - iw0 >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (g->W - iw0)) - 1);
            for (int64_t ci0 = 0; ci0 < g->C; ci0 += cbs) {
                int64_t ci = g->C - ci0 < cbs ? g->C - ci0 : cbs;
                if (RH == 2) { GX_CASES(2) } else { GX_CASES(1) }
            }
        }
    }
}

/* grad_x with 16 images in the lanes (rows up to 16 wide): every product is a useful one.
 * The kernel above puts an input row in the lanes and reads grad_out zero-padded, so on
 * LeNet5's conv2 (10x10 -> 14x14, 5x5) 4 of every 14 lanes and 29 % of the kernel rows
 * multiply zeros. Here grad_out is transposed to [Co][Ho][Wo][16 images] (to_lanes), and
 * each grad_x row of one input channel (W <= 16 accumulators) gathers, for every output
 * channel and kernel row ki whose grad_out row exists, each grad_out vector times the KW
 * weights into the W - Wo + 1 = KW columns it reaches; the result is transposed back. */
KIN void gxl_row(float *gt, const float *T, const float *Wt, const sgeom *g, int64_t ih, int64_t ci, const int KW) {
    __m512 acc[16];
    for (int i = 0; i < 16; i++) acc[i] = _mm512_setzero_ps();
    const int64_t Ho = g->Ho, Wo = g->Wo, kh = g->kh;
    int64_t ki0 = ih - Ho + 1 > 0 ? ih - Ho + 1 : 0, ki1 = ih < kh - 1 ? ih : kh - 1;
    for (int64_t co = 0; co < g->Co; co++)
        for (int64_t ki = ki0; ki <= ki1; ki++) {
            const float *tr = T + (co * Ho + ih - ki) * Wo * 16;
            const float *wk = Wt + ((co * g->C + ci) * kh + ki) * KW;
            __m512 wv[5];
            for (int kj = 0; kj < KW; kj++) wv[kj] = _mm512_set1_ps(wk[kj]);
#pragma GCC unroll 16
            for (int ow = 0; ow < 17 - KW; ow++) {
                if (ow >= Wo) break;
                __m512 v = _mm512_loadu_ps(tr + ow * 16);
                __asm__("" : "+v"(v)); /* one load for the KW products */
                for (int kj = 0; kj < KW; kj++) acc[ow + kj] = _mm512_fmadd_ps(wv[kj], v, acc[ow + kj]);
            }
        }
    float *o = gt + (ci * g->H + ih) * g->W * 16;
    for (int i = 0; i < 16; i++)
        if (i < g->W) _mm512_storeu_ps(o + i * 16, acc[i]);
}
typedef struct { float *gt; const float *T, *Wt; const sgeom *g; } gx_lanes_ctx;
KFN static int gx_lanes(void *cp, int64_t c0, int64_t c1) { /* input channels c0..c1-1 */
    const gx_lanes_ctx *c = cp;
    for (int64_t ci = c0; ci < c1; ci++)
        for (int64_t ih = 0; ih < c->g->H; ih++) {
            if (c->g->kw == 5) gxl_row(c->gt, c->T, c->Wt, c->g, ih, ci, 5);
            else gxl_row(c->gt, c->T, c->Wt, c->g, ih, ci, 3);
        }
    return 1;
}
/* the lanes path: rows of at most 16 (W), 3 or 5 taps wide (conv_small's), a group of 8 or
 * more images */
static int gx_lanes_applies(const sgeom *g, int64_t nimg) { return g->W <= 16 && nimg >= 8; }

/* grad_b [Co] += sum over images and positions of grad_out [N,Co,HW], in double: four
 * 8-lane accumulators (32 terms a step, the tail of each image's plane masked), their lanes
 * summed at the end. The serial double sum it replaces was bound by the add's latency:
 * LeNet5's conv1 at batch 32 (150,528 terms) took 85 us of a 580 us training step. */
KFN static void grad_bias(float *GB, const float *GO, int64_t N, int64_t Co, int64_t HW) {
    for (int64_t o = 0; o < Co; o++) {
        __m512d a0 = _mm512_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
        for (int64_t n = 0; n < N; n++) {
            const float *p = GO + (n * Co + o) * HW;
            int64_t i = 0;
            for (; i + 32 <= HW; i += 32) {
                a0 = _mm512_add_pd(a0, _mm512_cvtps_pd(_mm256_loadu_ps(p + i)));
                a1 = _mm512_add_pd(a1, _mm512_cvtps_pd(_mm256_loadu_ps(p + i + 8)));
                a2 = _mm512_add_pd(a2, _mm512_cvtps_pd(_mm256_loadu_ps(p + i + 16)));
                a3 = _mm512_add_pd(a3, _mm512_cvtps_pd(_mm256_loadu_ps(p + i + 24)));
            }
            for (; i < HW; i += 8) {
                __mmask8 m = (__mmask8)(HW - i >= 8 ? 0xff : (1u << (HW - i)) - 1u);
                a0 = _mm512_add_pd(a0, _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, p + i)));
            }
        }
        GB[o] += (float)_mm512_reduce_add_pd(_mm512_add_pd(_mm512_add_pd(a0, a1), _mm512_add_pd(a2, a3)));
    }
}

/* the weight gradient's accumulators of input channels c0..c1-1 over all images (each thread
 * transposes grad_out itself) */
typedef struct { float *acc; const float *GO, *X; const sgeom *g; sp_device *dev; } small_gw_ctx;
KFN static int small_gw_chans(void *cp, int64_t c0, int64_t c1) {
    const small_gw_ctx *c = cp;
    const sgeom *g = c->g;
    int64_t HW = g->Ho * g->Wo, K = g->C * g->kh * g->kw;
    float *gt = sp_workspace(c->dev, 1, sizeof(float) * (size_t)(HW * 16));
    if (!gt) return 0;
    for (int64_t n = 0; n < g->N; n++)
        for (int64_t cb = 0; cb < g->CB; cb++) {
            int64_t nco = g->Co - cb * 16 < 16 ? g->Co - cb * 16 : 16;
            to_lanes(gt, c->GO + (n * g->Co + cb * 16) * HW, HW, HW, nco); /* gt[p][lane] */
            gw_image(c->acc + cb * K * 16, gt, c->X + n * g->C * g->H * g->W, g, c0, c1);
        }
    return 1;
}
/* grad_x of images n0..n1-1 by the row kernel (grad_out zero-padded in this thread's slot 1) */
typedef struct { float *GX; const float *GO, *wx; const sgeom *g; int64_t Hp, Wp; sp_device *dev; } gx_rows_ctx;
KFN static int gx_rows_images(void *cp, int64_t n0, int64_t n1) {
    const gx_rows_ctx *c = cp;
    const sgeom *g = c->g;
    int64_t Hp = c->Hp, Wp = c->Wp, HW = g->Ho * g->Wo;
    float *gp = sp_workspace(c->dev, 1, sizeof(float) * (size_t)(g->Co * Hp * Wp));
    if (!gp) return 0;
    memset(gp, 0, sizeof(float) * (size_t)(g->Co * Hp * Wp));
    for (int64_t n = n0; n < n1; n++) {
        const float *gon = c->GO + n * g->Co * HW;
        for (int64_t co = 0; co < g->Co; co++)
            for (int64_t oh = 0; oh < g->Ho; oh++)
                memcpy(gp + (co * Hp + oh + g->kh - 1) * Wp + g->kw - 1, gon + (co * g->Ho + oh) * g->Wo,
                       sizeof(float) * (size_t)g->Wo);
        gx_image(c->GX + n * g->C * g->H * g->W, gp, c->wx, g, Hp, Wp);
    }
    return 1;
}

/* grad_w [Co,C,kh,kw] += ..., grad_b [Co] += ..., grad_x [N,C,H,W] = ... (each optional) */
int sp_cpu_conv_small_backward(float *GX, float *GW, float *GB, const float *GO, const float *X, const float *Wt,
                               int64_t N, int64_t C, int64_t H, int64_t W, int64_t Co, int64_t kh, int64_t kw,
                               sp_device *dev) {
    sgeom g;
    geom(&g, N, C, H, W, Co, kh, kw);
    int64_t K = C * kh * kw, HW = g.Ho * g.Wo;
    if (GB) grad_bias(GB, GO, N, Co, HW);
    if (GW) {
        float *acc = sp_workspace(dev, 2, sizeof(float) * (size_t)(g.CB * K * 16));
        if (!acc) return -1;
        memset(acc, 0, sizeof(float) * (size_t)(g.CB * K * 16));
        pp_run pr;
        small_gw_ctx c = {acc, GO, X, &g, dev};
        int ok = pp_for(pp_begin(&pr, C >= 2 ? N : 0), C, small_gw_chans, &c);
        pp_end(&pr);
        if (!ok) return -1;
        for (int64_t co = 0; co < Co; co++)
            for (int64_t k = 0; k < K; k++) GW[co * K + k] += acc[((co / 16) * K + k) * 16 + co % 16];
    }
    int64_t n0 = 0; /* images from n0 on take the row kernel below */
    if (GX && gx_lanes_applies(&g, N)) {
        int64_t P = Co * HW, Q = C * H * W;
        float *T = sp_workspace(dev, 0, sizeof(float) * (size_t)(P * 16));
        float *gt = sp_workspace(dev, 1, sizeof(float) * (size_t)(Q * 16));
        if (!T || !gt) return -1;
        pp_run pr;
        int par = pp_begin(&pr, C >= 2 ? N : 0);
        gx_lanes_ctx c = {gt, T, Wt, &g};
        for (; n0 < N && gx_lanes_applies(&g, N - n0); n0 += 16) {
            int64_t nl = N - n0 < 16 ? N - n0 : 16;
            to_lanes(T, GO + n0 * P, P, P, nl);
            pp_for(par, C, gx_lanes, &c);
            from_lanes(GX + n0 * Q, Q, gt, Q, nl, NULL);
        }
        pp_end(&pr);
    }
    if (GX && n0 < N) {
        GX += n0 * C * H * W, GO += n0 * Co * HW, N -= n0;
        /* grad_out padded by kh-1 rows and kw-1 columns each side, rows Wp apart and wide
         * enough for a full 16-vector at the last column chunk; the padding stays zero */
        int64_t Hp = g.Ho + 2 * (kh - 1), Wp = (W + 15) / 16 * 16 + kw - 1;
        float *wx = sp_workspace(dev, 0, sizeof(float) * (size_t)(Co * K));
        if (!wx) return -1;
        /* wx[co][ki][kj][ci] = w[co][ci][ki][kj] */
        for (int64_t co = 0; co < Co; co++)
            for (int64_t ci = 0; ci < C; ci++)
                for (int64_t t = 0; t < kh * kw; t++) wx[(co * kh * kw + t) * C + ci] = Wt[(co * C + ci) * kh * kw + t];
        pp_run pr;
        g.N = N;
        gx_rows_ctx c = {GX, GO, wx, &g, Hp, Wp, dev};
        int ok = pp_for(pp_begin(&pr, N), N, gx_rows_images, &c);
        pp_end(&pr);
        if (!ok) return -1;
    }
    return 1;
}

/* ---- first layers: rows of outputs in zmm vectors ---------------------------------------
 * Tiny reductions (C*kh*kw <= 32) and few output channels (LeNet's conv1: 1->6, 5x5 on
 * 32x32): channels in lanes would leave most lanes empty, so here the lanes run along the
 * output row (32 columns as two vectors, the second masked; 28 for LeNet). Forward: 2 rows
 * x 2 vectors x up to 6 channels of accumulators, each x vector loaded once per tap.
 * grad_w: per output channel, one vector accumulator per tap over the whole batch (the
 * gout row vectors times the shifted x rows), summed across lanes at the end. */

KIN void rows_tile(float *O, const float *xn, const float *Wt, const float *B, const sgeom *g, int64_t oh,
                   int64_t ow, int64_t co0, __mmask16 m1, const int RH, const int NV, const int CO) {
    __m512 a[6][2][2];
    for (int c = 0; c < CO; c++)
        for (int r = 0; r < RH; r++)
            for (int v = 0; v < NV; v++) a[c][r][v] = _mm512_setzero_ps();
    const int64_t W = g->W, K = g->C * g->kh * g->kw;
    for (int64_t ci = 0; ci < g->C; ci++)
        for (int64_t ki = 0; ki < g->kh; ki++) {
            const float *xr = xn + (ci * g->H + oh + ki) * W + ow;
            const float *wk = Wt + co0 * K + (ci * g->kh + ki) * g->kw;
            for (int64_t kj = 0; kj < g->kw; kj++) {
                __m512 xv[2][2];
                for (int r = 0; r < RH; r++) {
                    xv[r][0] = NV == 2 ? _mm512_loadu_ps(xr + r * W + kj) : _mm512_maskz_loadu_ps(m1, xr + r * W + kj);
                    if (NV == 2) xv[r][1] = _mm512_maskz_loadu_ps(m1, xr + r * W + kj + 16);
                }
                for (int c = 0; c < CO; c++) {
                    __m512 wv = _mm512_set1_ps(wk[c * K + kj]);
                    for (int r = 0; r < RH; r++)
                        for (int v = 0; v < NV; v++) a[c][r][v] = _mm512_fmadd_ps(wv, xv[r][v], a[c][r][v]);
                }
            }
        }
    for (int c = 0; c < CO; c++) {
        __m512 b = _mm512_set1_ps(B ? B[co0 + c] : 0.0f); /* bias last, as the GEMM path adds it */
        for (int r = 0; r < RH; r++) {
            float *orow = O + ((co0 + c) * g->Ho + oh + r) * g->Wo + ow;
            if (NV == 2) {
                _mm512_storeu_ps(orow, _mm512_add_ps(a[c][r][0], b));
                _mm512_mask_storeu_ps(orow + 16, m1, _mm512_add_ps(a[c][r][1], b));
            } else _mm512_mask_storeu_ps(orow, m1, _mm512_add_ps(a[c][r][0], b));
        }
    }
}

#define ROWS_CO(RH, NV)                                                                                   \
    switch (co) {                                                                                         \
    case 1: rows_tile(on, xn, Wt, B, &g, oh, ow, co0, m1, RH, NV, 1); break;                              \
    case 2: rows_tile(on, xn, Wt, B, &g, oh, ow, co0, m1, RH, NV, 2); break;                              \
    case 3: rows_tile(on, xn, Wt, B, &g, oh, ow, co0, m1, RH, NV, 3); break;                              \
    case 4: rows_tile(on, xn, Wt, B, &g, oh, ow, co0, m1, RH, NV, 4); break;                              \
    case 5: rows_tile(on, xn, Wt, B, &g, oh, ow, co0, m1, RH, NV, 5); break;                              \
    default: rows_tile(on, xn, Wt, B, &g, oh, ow, co0, m1, RH, NV, 6); break;                             \
    }

int sp_cpu_conv_rows_applies(int64_t C, int64_t H, int64_t W, int64_t Co, int64_t kh, int64_t kw, int sh, int sw,
                             int pt, int pb, int pl, int pr, int dh, int dw, int groups) {
    if (!sp_cpu_conv_small_applies(2, 16, 16, 16, 3, 3, 1, 1, 0, 0, 0, 0, 1, 1, 1)) return 0; /* AVX-512 */
    if (sh != 1 || sw != 1 || dh != 1 || dw != 1 || groups != 1 || pt || pb || pl || pr) return 0;
    if (kh < 1 || kw < 1 || kh > H || kw > W) return 0;
    return C * kh * kw <= 32 && Co >= 1 && Co <= 64 && W - kw + 1 >= 8;
}

typedef struct { float *O; const float *X, *Wt, *B; const sgeom *g; int64_t cbs; } rows_fwd_ctx;
KFN static int rows_fwd_images(void *cp, int64_t n0, int64_t n1) {
    const rows_fwd_ctx *c = cp;
    const sgeom g = *c->g;
    const float *Wt = c->Wt, *B = c->B;
    int64_t cbs = c->cbs, Co = g.Co;
    for (int64_t n = n0; n < n1; n++) {
        const float *xn = c->X + n * g.C * g.H * g.W;
        float *on = c->O + n * Co * g.Ho * g.Wo;
        for (int64_t oh = 0; oh < g.Ho; oh += 2) {
            int RH = g.Ho - oh >= 2 ? 2 : 1;
            for (int64_t ow = 0; ow < g.Wo; ow += 32) {
                int64_t left = g.Wo - ow;
                int NV = left > 16 ? 2 : 1;
                int64_t last = NV == 2 ? (left >= 32 ? 16 : left - 16) : left;
                __mmask16 m1 = last >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << last) - 1);
                for (int64_t co0 = 0; co0 < Co; co0 += cbs) {
                    int64_t co = Co - co0 < cbs ? Co - co0 : cbs;
                    if (RH == 2) {
                        if (NV == 2) { ROWS_CO(2, 2) } else { ROWS_CO(2, 1) }
                    } else {
                        if (NV == 2) { ROWS_CO(1, 2) } else { ROWS_CO(1, 1) }
                    }
                }
            }
        }
    }
    return 1;
}
KFN int sp_cpu_conv_rows_forward(float *O, const float *X, const float *Wt, const float *B, int64_t N, int64_t C,
                                 int64_t H, int64_t W, int64_t Co, int64_t kh, int64_t kw) {
    sgeom g;
    geom(&g, N, C, H, W, Co, kh, kw);
    /* channel blocks balanced, at most 6 */
    int64_t nb = (Co + 5) / 6, cbs = (Co + nb - 1) / nb;
    rows_fwd_ctx c = {O, X, Wt, B, &g, cbs};
    pp_run pr;
    pp_for(pp_begin(&pr, N), N, rows_fwd_images, &c);
    pp_end(&pr);
    return 1;
}

/* acc[c][j] (CO output channels from co0, the KW taps of kernel row ki of input channel ci)
 * += over all images and output rows of gout row vectors x the shifted x row: each x vector
 * loaded serves CO channels (the loads, most of them split across cache lines, bound this) */
KIN void rows_gw_band(float *acc, const float *GO, const float *X, const sgeom *g, int64_t co0, int64_t ci,
                      int64_t ki, const int CO, const int KW) {
    __m512 a[4][5];
    for (int c = 0; c < CO; c++)
        for (int j = 0; j < KW; j++) a[c][j] = _mm512_setzero_ps();
    const int64_t W = g->W, Wo = g->Wo, HW = g->Ho * Wo, full = Wo / 16 * 16;
    /* the row's full vectors unmasked (x reads stay within its row: ow + 15 + KW - 1 < W),
     * then its tail under one mask: no mask arithmetic per vector (75 -> 41 us for LeNet5's
     * conv1 at batch 32) */
    const __mmask16 mt = (__mmask16)((1u << (Wo - full)) - 1u);
    for (int64_t n = 0; n < g->N; n++) {
        const float *gon = GO + (n * g->Co + co0) * HW;
        const float *xc = X + (n * g->C + ci) * g->H * W + ki * W;
        for (int64_t oh = 0; oh < g->Ho; oh++) {
            const float *gr = gon + oh * Wo, *xr = xc + oh * W;
            for (int64_t ow = 0; ow < full; ow += 16) {
                __m512 gv[4];
                for (int c = 0; c < CO; c++) gv[c] = _mm512_loadu_ps(gr + c * HW + ow);
                for (int j = 0; j < KW; j++) {
                    __m512 xv = _mm512_loadu_ps(xr + ow + j);
                    __asm__("" : "+v"(xv)); /* one load for the CO products, not one folded into each */
                    for (int c = 0; c < CO; c++) a[c][j] = _mm512_fmadd_ps(gv[c], xv, a[c][j]);
                }
            }
            if (mt) {
                __m512 gv[4];
                for (int c = 0; c < CO; c++) gv[c] = _mm512_maskz_loadu_ps(mt, gr + c * HW + full);
                for (int j = 0; j < KW; j++) {
                    __m512 xv = _mm512_maskz_loadu_ps(mt, xr + full + j);
                    __asm__("" : "+v"(xv));
                    for (int c = 0; c < CO; c++) a[c][j] = _mm512_fmadd_ps(gv[c], xv, a[c][j]);
                }
            }
        }
    }
    for (int c = 0; c < CO; c++)
        for (int j = 0; j < KW; j++) _mm512_storeu_ps(acc + (c * KW + j) * 16, a[c][j]);
}

#define RGW(KW)                                                                                           \
    switch (co) {                                                                                         \
    case 1: rows_gw_band(acc, GO, X, &g, co0, ci, ki, 1, KW); break;                                      \
    case 2: rows_gw_band(acc, GO, X, &g, co0, ci, ki, 2, KW); break;                                      \
    case 3: rows_gw_band(acc, GO, X, &g, co0, ci, ki, 3, KW); break;                                      \
    default: rows_gw_band(acc, GO, X, &g, co0, ci, ki, 4, KW); break;                                     \
    }

/* grad_w [Co,C,kh,kw] += ...: channel blocks of at most 4 (balanced: 6 = 3 + 3), one
 * kernel row at a time, lanes summed in double at the end */
typedef struct { float *GW; const float *GO, *X; const sgeom *g; int64_t cbs; sp_device *dev; } rows_gw_ctx;
KFN static int rows_gw_bands(void *cp, int64_t b0, int64_t b1) {
    const rows_gw_ctx *cx = cp;
    const sgeom g = *cx->g;
    const float *GO = cx->GO, *X = cx->X;
    int64_t kh = g.kh, kw = g.kw, K = g.C * kh * kw, cbs = cx->cbs;
    float *acc = sp_workspace(cx->dev, 2, sizeof(float) * (size_t)(4 * 5 * 16)); /* this thread's */
    if (!acc) return 0;
    for (int64_t band = b0; band < b1; band++) {
        int64_t co0 = band / (g.C * kh) * cbs, ci = band / kh % g.C, ki = band % kh;
        int64_t co = g.Co - co0 < cbs ? g.Co - co0 : cbs;
        switch (kw) {
        case 1: RGW(1) break;
        case 2: RGW(2) break;
        case 3: RGW(3) break;
        case 4: RGW(4) break;
        default: RGW(5) break;
        }
        for (int64_t c = 0; c < co; c++)
            for (int64_t j = 0; j < kw; j++) {
                double s = 0;
                for (int l = 0; l < 16; l++) s += acc[(c * kw + j) * 16 + l];
                cx->GW[(co0 + c) * K + (ci * kh + ki) * kw + j] += (float)s;
            }
    }
    return 1;
}
/* bands (channel block, input channel, kernel row) split over the pool when measured faster */
static int rows_gw(float *GW, const float *GO, const float *X, const sgeom *gp, sp_device *dev) {
    int64_t nb = (gp->Co + 3) / 4, cbs = (gp->Co + nb - 1) / nb, nband = nb * gp->C * gp->kh;
    rows_gw_ctx c = {GW, GO, X, gp, cbs, dev};
    pp_run pr;
    int ok = pp_for(pp_begin(&pr, nband >= 2 ? gp->N : 0), nband, rows_gw_bands, &c);
    pp_end(&pr);
    return ok ? 1 : -1;
}

int sp_cpu_conv_rows_backward(float *GW, float *GB, const float *GO, const float *X, int64_t N, int64_t C, int64_t H,
                              int64_t W, int64_t Co, int64_t kh, int64_t kw, sp_device *dev) {
    if (kw > 5) return 0;
    sgeom g;
    geom(&g, N, C, H, W, Co, kh, kw);
    int64_t HW = g.Ho * g.Wo;
    if (GW && rows_gw(GW, GO, X, &g, dev) < 0) return -1;
    if (GB) grad_bias(GB, GO, N, Co, HW);
    return 1;
}
#else
int sp_cpu_conv_small_forward(float *O, const float *X, const float *Wt, const float *B, int64_t N, int64_t C,
                              int64_t H, int64_t W, int64_t Co, int64_t kh, int64_t kw, sp_device *dev) {
    (void)O; (void)X; (void)Wt; (void)B; (void)N; (void)C; (void)H; (void)W; (void)Co; (void)kh; (void)kw; (void)dev;
    return 0;
}
int sp_cpu_conv_small_backward(float *GX, float *GW, float *GB, const float *GO, const float *X, const float *Wt,
                               int64_t N, int64_t C, int64_t H, int64_t W, int64_t Co, int64_t kh, int64_t kw,
                               sp_device *dev) {
    (void)GX; (void)GW; (void)GB; (void)GO; (void)X; (void)Wt; (void)N; (void)C; (void)H; (void)W; (void)Co;
    (void)kh; (void)kw; (void)dev;
    return 0;
}
int sp_cpu_conv_rows_applies(int64_t C, int64_t H, int64_t W, int64_t Co, int64_t kh, int64_t kw, int sh, int sw,
                             int pt, int pb, int pl, int pr, int dh, int dw, int groups) {
    (void)C; (void)H; (void)W; (void)Co; (void)kh; (void)kw; (void)sh; (void)sw; (void)pt; (void)pb; (void)pl;
    (void)pr; (void)dh; (void)dw; (void)groups;
    return 0;
}
int sp_cpu_conv_rows_forward(float *O, const float *X, const float *Wt, const float *B, int64_t N, int64_t C,
                             int64_t H, int64_t W, int64_t Co, int64_t kh, int64_t kw) {
    (void)O; (void)X; (void)Wt; (void)B; (void)N; (void)C; (void)H; (void)W; (void)Co; (void)kh; (void)kw;
    return 0;
}
int sp_cpu_conv_rows_backward(float *GW, float *GB, const float *GO, const float *X, int64_t N, int64_t C, int64_t H,
                              int64_t W, int64_t Co, int64_t kh, int64_t kw, sp_device *dev) {
    (void)GW; (void)GB; (void)GO; (void)X; (void)N; (void)C; (void)H; (void)W; (void)Co; (void)kh; (void)kw; (void)dev;
    return 0;
}
#endif
