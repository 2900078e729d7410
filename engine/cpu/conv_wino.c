/* conv_wino.c — Winograd F(4x4, 3x3) forward convolution for 3x3, stride 1, no dilation,
 * one group (ResNet's 3x3 layers): 36 SGEMMs [Co x C] x [C x tiles] in the transformed
 * domain instead of one [Co x 9C] x [9C x HW] im2col GEMM, 4x fewer multiply-adds
 * (Lavin & Gray 2015; the transforms are theirs, points 0, ±1, ±2, ∞). Called from conv.c
 * where sp_cpu_wino_applies() says it pays. Scratch: workspace slot 0 the transformed
 * input V [36][C][Tb], slot 1 the GEMM output M [36][Co][Tb], slot 3 the transformed
 * weights U [36][Co][C]. The transforms run 16 tiles at a time as vectors; the output
 * transform adds the bias, so the result replaces im2col + GEMM + bias one for one. */
#include "nn_common.h"

#include <cblas.h>

/* AVX2/AVX-512 clones chosen at load time, as conv.c's; not under ThreadSanitizer, whose
 * instrumented ifunc resolvers would run before the TSan runtime starts (a crash at load). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && !defined(__SANITIZE_THREAD__)
#define WINO_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define WINO_CLONES
#endif

#define WL 16 /* tiles per vector */
typedef float vw __attribute__((vector_size(WL * 4)));

/* 1: conv.c takes im2col even where Winograd applies (spec/engine/test_nn.c compares the
 * two paths; never set by the library) */
int sp_wino_off;

/* Worth it: the weight transform (about 160 flops and 36 floats per weight pair) must be
 * small beside the GEMM it saves, so enough tiles and channels. */
int sp_cpu_wino_applies(int64_t N, int64_t C, int64_t Co, int64_t Ho, int64_t Wo, int64_t kh, int64_t kw, int sh,
                        int sw, int dh, int dw, int groups) {
    if (kh != 3 || kw != 3 || sh != 1 || sw != 1 || dh != 1 || dw != 1 || groups != 1) return 0;
    if (C < 16 || Co < 16) return 0;
    int64_t T = N * ((Ho + 3) / 4) * ((Wo + 3) / 4);
    return T >= 32;
}

/* U[k][o][c] = (G g G^T)[k] for the 3x3 kernel g = w[o][c]; WL (o, c) pairs per vector,
 * the tail one at a time */
#define GT3(r, g)                                                              \
    do {                                                                       \
        r[0] = g[0] * 0.25f;                                                   \
        r[1] = (g[0] + g[1] + g[2]) * (-1.0f / 6);                             \
        r[2] = (g[0] - g[1] + g[2]) * (-1.0f / 6);                             \
        r[3] = g[0] * (1.0f / 24) + g[1] * (1.0f / 12) + g[2] * (1.0f / 6);    \
        r[4] = g[0] * (1.0f / 24) - g[1] * (1.0f / 12) + g[2] * (1.0f / 6);    \
        r[5] = g[2];                                                           \
    } while (0)
WINO_CLONES static void wino_weights(float *U, const float *w, int64_t Co, int64_t C) {
    int64_t CC = Co * C, nblk = CC / WL;
#pragma omp parallel for schedule(static) if (nn_par(CC * 36))
    for (int64_t b = 0; b < nblk; b++) {
        float gs[9][WL] __attribute__((aligned(64)));
        for (int l = 0; l < WL; l++)
            for (int k = 0; k < 9; k++) gs[k][l] = w[(b * WL + l) * 9 + k];
        vw g[3][3], t[6][3], col[3], r[6];
        for (int k = 0; k < 9; k++) __builtin_memcpy(&g[k / 3][k % 3], gs[k], sizeof(vw));
        for (int j = 0; j < 3; j++) {
            vw gc[3] = {g[0][j], g[1][j], g[2][j]}, tc[6];
            GT3(tc, gc);
            for (int i = 0; i < 6; i++) t[i][j] = tc[i];
        }
        (void)col;
        for (int i = 0; i < 6; i++) {
            GT3(r, t[i]);
            for (int j = 0; j < 6; j++) __builtin_memcpy(U + (i * 6 + j) * CC + b * WL, &r[j], sizeof(vw));
        }
    }
    for (int64_t oc = nblk * WL; oc < CC; oc++) {
        const float *g = w + oc * 9;
        float t[6][3], r[6];
        for (int j = 0; j < 3; j++) {
            float gc[3] = {g[j], g[3 + j], g[6 + j]}, tc[6];
            GT3(tc, gc);
            for (int i = 0; i < 6; i++) t[i][j] = tc[i];
        }
        for (int i = 0; i < 6; i++) {
            GT3(r, t[i]);
            for (int j = 0; j < 6; j++) U[(i * 6 + j) * CC + oc] = r[j];
        }
    }
}

/* r = B^T d for one 6-vector (each element a vector of WL tiles) */
#define BT6(r, d)                                                           \
    do {                                                                    \
        r[0] = 4.0f * d[0] - 5.0f * d[2] + d[4];                            \
        r[1] = -4.0f * (d[1] + d[2]) + d[3] + d[4];                         \
        r[2] = 4.0f * (d[1] - d[2]) - d[3] + d[4];                          \
        r[3] = 2.0f * (d[3] - d[1]) - d[2] + d[4];                          \
        r[4] = 2.0f * (d[1] - d[3]) - d[2] + d[4];                          \
        r[5] = 4.0f * d[1] - 5.0f * d[3] + d[5];                            \
    } while (0)

/* o = A^T m (6 -> 4) */
#define AT6(o, m)                                                           \
    do {                                                                    \
        vw s12 = m[1] + m[2], d12 = m[1] - m[2], s34 = m[3] + m[4], d34 = m[3] - m[4]; \
        o[0] = m[0] + s12 + s34;                                            \
        o[1] = d12 + 2.0f * d34;                                            \
        o[2] = s12 + 4.0f * s34;                                            \
        o[3] = d12 + 8.0f * d34 + m[5];                                     \
    } while (0)

typedef struct {
    int64_t N, C, H, W, Co, Ho, Wo, th, tw;
    int pt, pl;
} wgeom;

/* V[k][c][t - t0] for tiles [t0, t0 + nt), lanes past nt zero */
WINO_CLONES static void wino_input(float *V, int64_t ldv, const float *X, const wgeom *g, int64_t t0, int64_t nt) {
    int64_t C = g->C, H = g->H, W = g->W, per = g->th * g->tw;
    int64_t nblk = (nt + WL - 1) / WL;
#pragma omp parallel for schedule(static) collapse(2) if (nn_par(C * nt * 36))
    for (int64_t c = 0; c < C; c++)
        for (int64_t b = 0; b < nblk; b++) {
            float d[6][6][WL] __attribute__((aligned(64)));
            for (int l = 0; l < WL; l++) {
                int64_t t = t0 + b * WL + l;
                if (b * WL + l >= nt) {
                    for (int i = 0; i < 6; i++) for (int j = 0; j < 6; j++) d[i][j][l] = 0.0f;
                    continue;
                }
                int64_t n = t / per, r = t % per, y0 = (r / g->tw) * 4 - g->pt, x0 = (r % g->tw) * 4 - g->pl;
                const float *xc = X + (n * C + c) * H * W;
                if (y0 >= 0 && x0 >= 0 && y0 + 6 <= H && x0 + 6 <= W) {
                    for (int i = 0; i < 6; i++) {
                        const float *xr = xc + (y0 + i) * W + x0;
                        for (int j = 0; j < 6; j++) d[i][j][l] = xr[j];
                    }
                } else {
                    for (int i = 0; i < 6; i++) {
                        int64_t y = y0 + i;
                        for (int j = 0; j < 6; j++) {
                            int64_t x = x0 + j;
                            d[i][j][l] = (y >= 0 && y < H && x >= 0 && x < W) ? xc[y * W + x] : 0.0f;
                        }
                    }
                }
            }
            vw a[6][6], r6[6], col[6];
            /* columns: a[.][j] = B^T d[.][j] */
            for (int j = 0; j < 6; j++) {
                vw dc[6];
                for (int i = 0; i < 6; i++) __builtin_memcpy(&dc[i], d[i][j], sizeof(vw));
                BT6(col, dc);
                for (int i = 0; i < 6; i++) a[i][j] = col[i];
            }
            /* rows: V[i][.] = a[i][.] B */
            float *vb = V + c * ldv + b * WL;
            for (int i = 0; i < 6; i++) {
                BT6(r6, a[i]);
                for (int j = 0; j < 6; j++) __builtin_memcpy(vb + (i * 6 + j) * C * ldv, &r6[j], sizeof(vw));
            }
        }
}

/* out tiles from M[k][o][t - t0], + bias */
WINO_CLONES static void wino_output(float *O, const float *M, int64_t ldm, const float *bias, const wgeom *g,
                                    int64_t t0, int64_t nt) {
    int64_t Co = g->Co, Ho = g->Ho, Wo = g->Wo, per = g->th * g->tw;
    int64_t nblk = (nt + WL - 1) / WL;
#pragma omp parallel for schedule(static) collapse(2) if (nn_par(Co * nt * 36))
    for (int64_t o = 0; o < Co; o++)
        for (int64_t b = 0; b < nblk; b++) {
            const float *mb = M + o * ldm + b * WL;
            vw m[6][6], t[4][6], r[4];
            for (int k = 0; k < 36; k++) __builtin_memcpy(&m[k / 6][k % 6], mb + k * Co * ldm, sizeof(vw));
            for (int j = 0; j < 6; j++) {
                vw mc[6], oc[4];
                for (int i = 0; i < 6; i++) mc[i] = m[i][j];
                AT6(oc, mc);
                for (int i = 0; i < 4; i++) t[i][j] = oc[i];
            }
            float y[4][4][WL] __attribute__((aligned(64)));
            float bv = bias ? bias[o] : 0.0f;
            for (int i = 0; i < 4; i++) {
                AT6(r, t[i]);
                for (int j = 0; j < 4; j++) {
                    vw v = r[j] + bv;
                    __builtin_memcpy(y[i][j], &v, sizeof(vw));
                }
            }
            for (int l = 0; l < WL && b * WL + l < nt; l++) {
                int64_t tt = t0 + b * WL + l;
                int64_t n = tt / per, rr = tt % per, y0 = (rr / g->tw) * 4, x0 = (rr % g->tw) * 4;
                float *oc = O + (n * Co + o) * Ho * Wo;
                int64_t hi = Ho - y0 < 4 ? Ho - y0 : 4, wi = Wo - x0 < 4 ? Wo - x0 : 4;
                for (int64_t i = 0; i < hi; i++)
                    for (int64_t j = 0; j < wi; j++) oc[(y0 + i) * Wo + x0 + j] = y[i][j][l];
            }
        }
}

sp_status sp_cpu_wino_forward(float *O, const float *X, const float *Wt, const float *bias, int64_t N, int64_t C,
                              int64_t H, int64_t W, int64_t Co, int64_t Ho, int64_t Wo, int pt, int pl, sp_device *dev,
                              const char *op) {
    wgeom g = {N, C, H, W, Co, Ho, Wo, (Ho + 3) / 4, (Wo + 3) / 4, pt, pl};
    int64_t T = N * g.th * g.tw, mx = C > Co ? C : Co;
    /* a tile block keeps V and M near 2 MB each, at least 64 and at most 1024 tiles */
    int64_t Tb = (((int64_t)1 << 20) / (36 * mx)) / WL * WL;
    if (Tb < 128) Tb = 128;
    if (Tb > 1024) Tb = 1024;
    if (Tb > (T + WL - 1) / WL * WL) Tb = (T + WL - 1) / WL * WL;
    float *U = sp_workspace(dev, 3, sizeof(float) * (size_t)(36 * Co * C));
    float *V = sp_workspace(dev, 0, sizeof(float) * (size_t)(36 * C * Tb));
    float *M = sp_workspace(dev, 1, sizeof(float) * (size_t)(36 * Co * Tb));
    if (!U || !V || !M) return sp_error(SP_ENOMEM, "%s: cannot allocate the Winograd buffers", op);
    wino_weights(U, Wt, Co, C);
    for (int64_t t0 = 0; t0 < T; t0 += Tb) {
        int64_t nt = T - t0 < Tb ? T - t0 : Tb;
        wino_input(V, Tb, X, &g, t0, nt);
        for (int k = 0; k < 36; k++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)Co, (int)nt, (int)C, 1.0f, U + k * Co * C,
                        (int)C, V + k * C * Tb, (int)Tb, 0.0f, M + k * Co * Tb, (int)Tb);
        wino_output(O, M, Tb, bias, &g, t0, nt);
    }
    return SP_OK;
}
