/* test_nn.c — nn kernels against naive reference loops: conv2d (pad, stride,
 * dilation, groups) forward and backward, pooling, dense, softmax cross-entropy. */
#include "check.h"

#include <omp.h>
#include "cpu/reference.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static sp_tensor *mk(int nd, int64_t a, int64_t b, int64_t c, int64_t d, uint64_t *rng) {
    int64_t s[4] = {a, b, c, d};
    sp_tensor *t = NULL;
    sp_tensor_new(&t, SP_FLOAT32, nd, s);
    if (rng) sp_rand_uniform(t, -1, 1, rng);
    return t;
}
static float *D(sp_tensor *t) { return sp_tensor_data(t); }
/* the largest |a - b|; infinite where a is NaN (fmax would drop it: the NaN-filled grad_x
 * check below relies on this) */
static double maxdiff(const float *a, const double *b, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = isnan(a[i]) && !isnan(b[i]) ? INFINITY : fmax(m, fabs(a[i] - b[i]));
    return m;
}

extern int sp_wino_off; /* engine/cpu/conv_wino.c: test and benchmark hook (hidden) */
extern long sp_dnnl_wino_runs; /* engine/cpu/conv_dnnl.c: oneDNN Winograd executions (hidden) */
static double maxabs(const double *a, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs(a[i]));
    return m;
}

/* the suite under each conv kernel this build runs (spore's own; oneDNN's with DNNL=1) */
static void conv_vs_naive(int kern);
SUITE(nn_conv2d_vs_naive) {
    int def = sp_cpu_conv_kernel();
    for (int k = SP_CONV_SPORE; k <= SP_CONV_ONEDNN; k++) {
        if (!sp_cpu_conv_kernel_available(k)) continue;
        CHECK_OK(sp_cpu_conv_set_kernel(k));
        conv_vs_naive(k);
    }
    CHECK_OK(sp_cpu_conv_set_kernel(def));
    CHECK(sp_cpu_conv_set_kernel(7) == SP_EINVAL && strstr(sp_last_error(), "conv kernel"), "conv kernel 7 refused: %s",
          sp_last_error());
}
static void conv_vs_naive(int kern) {
    uint64_t rng = 42;
    /* N C H W Co kh kw sh sw pt pb pl pr dh dw g */
    int cases[][16] = {
        {1, 1, 5, 5, 1, 3, 3, 1, 1, 0, 0, 0, 0, 1, 1, 1},
        {2, 3, 7, 6, 4, 3, 3, 2, 2, 0, 1, 0, 1, 1, 1, 1},  /* same-style odd pad bottom/right */
        {2, 4, 9, 8, 6, 3, 2, 2, 1, 1, 1, 2, 0, 2, 1, 2},  /* dilation, groups */
        {1, 6, 5, 5, 6, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 3},  /* pointwise, grouped */
        {3, 4, 6, 6, 8, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1},  /* pointwise fast path */
        {2, 2, 8, 7, 3, 1, 1, 2, 2, 0, 0, 0, 0, 1, 1, 1},  /* 1x1 strided */
        {1, 2, 4, 4, 2, 5, 5, 1, 1, 2, 2, 2, 2, 1, 1, 1},
        /* Winograd F(4,3) forward (3x3 stride 1, >= 16 channels, >= 64 4x4 tiles): partial
         * tiles at the bottom/right, valid, odd per-side pads, batch 1, wider reductions */
        {4, 16, 15, 15, 17, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1},
        {1, 16, 34, 33, 16, 3, 3, 1, 1, 0, 0, 0, 0, 1, 1, 1},
        {3, 20, 17, 19, 24, 3, 3, 1, 1, 2, 0, 0, 2, 1, 1, 1},
        {1, 64, 32, 32, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1},
        /* batched backward (maps under 1024): 3 images a chunk, so 2 chunks (the second of 1);
         * a batched 1x1 with groups */
        {4, 32, 30, 30, 8, 5, 5, 1, 1, 2, 2, 2, 2, 1, 1, 1},
        {3, 8, 7, 7, 12, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 2},
        /* conv_small.c's direct AVX-512 kernels (stride 1, valid, 3 or 5 wide): LeNet's
         * conv2 at batch 1 and 3; 20 output channels (a masked second 16-block); 9 input
         * channels (two channel blocks); 30 columns (two masked 16-column chunks, three
         * output column chunks); 7x3 kernels (a 7-row band) and odd sizes; 2 rows (R = 1) */
        {1, 6, 14, 14, 16, 5, 5, 1, 1, 0, 0, 0, 0, 1, 1, 1},
        {3, 6, 14, 14, 16, 5, 5, 1, 1, 0, 0, 0, 0, 1, 1, 1},
        {2, 9, 11, 13, 20, 5, 5, 1, 1, 0, 0, 0, 0, 1, 1, 1},
        {2, 3, 9, 30, 8, 3, 3, 1, 1, 0, 0, 0, 0, 1, 1, 1},
        {1, 2, 10, 7, 33, 7, 3, 1, 1, 0, 0, 0, 0, 1, 1, 1},
        {2, 5, 6, 17, 12, 5, 5, 1, 1, 0, 0, 0, 0, 1, 1, 1},
        /* its grad_x with images in the lanes (8+ images, rows up to 16 wide): LeNet's conv2
         * at batch 21 (a group of 16, then 5 images on the row kernel); a masked group of 12
         * on 16-wide rows, 3 taps; 7x3 kernels on 3-row outputs (every kernel row clipped) */
        {21, 6, 14, 14, 16, 5, 5, 1, 1, 0, 0, 0, 0, 1, 1, 1},
        {12, 4, 9, 16, 8, 3, 3, 1, 1, 0, 0, 0, 0, 1, 1, 1},
        {8, 2, 9, 7, 9, 7, 3, 1, 1, 0, 0, 0, 0, 1, 1, 1},
        /* conv_small.c's row kernels for first layers (C*kh*kw <= 32): LeNet's conv1 at
         * batch 1 and 3; 38 columns (a 32 chunk and a masked one), 7 channels (blocks of 4
         * and 3); 3 input channels, odd rows; 2x4 kernels (18 columns: a 2-lane vector);
         * 4x7 kernels (too wide for the row grad_w: conv.c's direct path) */
        {1, 1, 32, 32, 6, 5, 5, 1, 1, 0, 0, 0, 0, 1, 1, 1},
        {3, 1, 32, 32, 6, 5, 5, 1, 1, 0, 0, 0, 0, 1, 1, 1},
        {2, 2, 12, 40, 7, 3, 3, 1, 1, 0, 0, 0, 0, 1, 1, 1},
        {1, 3, 9, 12, 2, 3, 3, 1, 1, 0, 0, 0, 0, 1, 1, 1},
        {2, 1, 10, 21, 9, 2, 4, 1, 1, 0, 0, 0, 0, 1, 1, 1},
        {1, 1, 12, 20, 3, 4, 7, 1, 1, 0, 0, 0, 0, 1, 1, 1},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        int *q = cases[ci];
        int64_t N = q[0], C = q[1], H = q[2], W = q[3], Co = q[4], kh = q[5], kw = q[6];
        int sh = q[7], sw = q[8], pt = q[9], pb = q[10], pl = q[11], pr = q[12], dh = q[13], dw = q[14], g = q[15];
        int64_t Ho = (H + pt + pb - dh * (kh - 1) - 1) / sh + 1, Wo = (W + pl + pr - dw * (kw - 1) - 1) / sw + 1;
        sp_tensor *x = mk(4, N, C, H, W, &rng), *w = mk(4, Co, C / g, kh, kw, &rng), *b = mk(1, Co, 0, 0, 0, &rng);
        sp_tensor *y = mk(4, N, Co, Ho, Wo, NULL), *gy = mk(4, N, Co, Ho, Wo, &rng);
        sp_tensor *gx = mk(4, N, C, H, W, NULL), *gw = mk(4, Co, C / g, kh, kw, NULL), *gb = mk(1, Co, 0, 0, 0, NULL);
        CHECK_OK(sp_conv2d_forward(y, x, w, b, sh, sw, pt, pb, pl, pr, dh, dw, g));
        /* grad_x is overwritten: stale values (here NaN) must not survive in it */
        CHECK_OK(sp_fill(gx, NAN));
        CHECK_OK(sp_conv2d_backward(gx, gw, gb, gy, x, w, sh, sw, pt, pb, pl, pr, dh, dw, g));
        double *ry = calloc(N * Co * Ho * Wo, 8), *rgx = calloc(N * C * H * W, 8), *rgw = calloc(Co * C / g * kh * kw, 8),
               *rgb = calloc(Co, 8);
        int64_t Cg = C / g, Cog = Co / g;
        for (int64_t n = 0; n < N; n++)
            for (int64_t o = 0; o < Co; o++)
                for (int64_t oh = 0; oh < Ho; oh++)
                    for (int64_t ow = 0; ow < Wo; ow++) {
                        int64_t yi = ((n * Co + o) * Ho + oh) * Wo + ow;
                        double s = D(b)[o], go = D(gy)[yi];
                        rgb[o] += go;
                        int64_t grp = o / Cog;
                        for (int64_t c = 0; c < Cg; c++)
                            for (int64_t i = 0; i < kh; i++)
                                for (int64_t j = 0; j < kw; j++) {
                                    int64_t ih = oh * sh - pt + i * dh, iw = ow * sw - pl + j * dw;
                                    if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                                    int64_t xi = ((n * C + grp * Cg + c) * H + ih) * W + iw;
                                    int64_t wi = ((o * Cg + c) * kh + i) * kw + j;
                                    s += D(x)[xi] * D(w)[wi];
                                    rgx[xi] += go * D(w)[wi];
                                    rgw[wi] += go * D(x)[xi];
                                }
                        ry[yi] = s;
                    }
        /* Winograd F(4,3) rounds more than a direct sum (its transforms scale by up to 8 and
         * cancel): allowed 3e-5 of the largest output; the im2col path 1e-4 absolute */
        int wino = kern == SP_CONV_SPORE && ci >= 7 && ci <= 10;
        double tol_y = wino ? 3e-5 * maxabs(ry, N * Co * Ho * Wo) : 1e-4;
        double tol_gx = wino ? 3e-5 * maxabs(rgx, N * C * H * W) : 1e-4;
        /* float32 sums in another order (oneDNN's blocked kernels): 4e-6 of the largest on top */
        double tol_gw = 1e-4 + 4e-6 * maxabs(rgw, Co * C / g * kh * kw), tol_gb = 1e-4 + 4e-6 * 2 * maxabs(rgb, Co);
        if (kern == SP_CONV_ONEDNN) {
            tol_y += 4e-6 * maxabs(ry, N * Co * Ho * Wo);
            tol_gx += 4e-6 * maxabs(rgx, N * C * H * W);
        }
        CHECK(maxdiff(D(y), ry, N * Co * Ho * Wo) < tol_y, "conv case %zu kernel %d forward diff %g", ci, kern,
              maxdiff(D(y), ry, N * Co * Ho * Wo));
        CHECK(maxdiff(D(gx), rgx, N * C * H * W) < tol_gx, "conv case %zu kernel %d grad_x diff %g", ci, kern,
              maxdiff(D(gx), rgx, N * C * H * W));
        if (wino) { /* the im2col path gives other bits: the Winograd one ran */
            sp_tensor *y2 = mk(4, N, Co, Ho, Wo, NULL);
            sp_wino_off = 1;
            CHECK_OK(sp_conv2d_forward(y2, x, w, b, sh, sw, pt, pb, pl, pr, dh, dw, g));
            sp_wino_off = 0;
            CHECK(memcmp(D(y), D(y2), sizeof(float) * (size_t)(N * Co * Ho * Wo)) != 0, "conv case %zu took Winograd", ci);
            sp_tensor_free(y2);
        }
        CHECK(maxdiff(D(gw), rgw, Co * Cg * kh * kw) < tol_gw, "conv case %zu kernel %d grad_w diff %g", ci, kern,
              maxdiff(D(gw), rgw, Co * Cg * kh * kw));
        CHECK(maxdiff(D(gb), rgb, Co) < tol_gb, "conv case %zu kernel %d grad_b diff", ci, kern);
        /* parameter gradients accumulate */
        CHECK_OK(sp_conv2d_backward(NULL, gw, gb, gy, x, w, sh, sw, pt, pb, pl, pr, dh, dw, g));
        for (int64_t i = 0; i < Co; i++) rgb[i] *= 2;
        CHECK(maxdiff(D(gb), rgb, Co) < tol_gb, "conv case %zu kernel %d grad_b accumulates", ci, kern);
        free(ry); free(rgx); free(rgw); free(rgb);
        sp_tensor_free(x); sp_tensor_free(w); sp_tensor_free(b); sp_tensor_free(y); sp_tensor_free(gy);
        sp_tensor_free(gx); sp_tensor_free(gw); sp_tensor_free(gb);
    }
    /* shape errors are reported, not crashed on */
    sp_tensor *x = mk(4, 1, 3, 5, 5, &rng), *w = mk(4, 2, 2, 3, 3, &rng), *y = mk(4, 1, 2, 3, 3, NULL);
    CHECK(sp_conv2d_forward(y, x, w, NULL, 1, 1, 0, 0, 0, 0, 1, 1, 1) == SP_EINVAL, "in-channel mismatch rejected");
    CHECK(strstr(sp_last_error(), "conv2d_forward") != NULL, "message names the kernel: %s", sp_last_error());
    sp_tensor_free(x); sp_tensor_free(w); sp_tensor_free(y);
}

/* The eval-mode fused convolution (conv -> BatchNorm -> [+ residual] -> [ReLU]) under each
 * conv kernel, against the reference convolution and the fold done here in double. With
 * oneDNN the fold, the join and ReLU are its post-ops. */
SUITE(nn_conv_bn_vs_naive) {
    uint64_t rng = 99;
    /* N C H W Co k s pad bias */
    int cases[][9] = {{2, 16, 9, 9, 32, 3, 1, 1, 0}, {1, 24, 10, 10, 40, 1, 2, 0, 1}, {2, 3, 15, 15, 16, 7, 2, 3, 0},
                      {1, 64, 7, 7, 64, 3, 1, 1, 1}};
    int def = sp_cpu_conv_kernel();
    for (int k = SP_CONV_SPORE; k <= SP_CONV_ONEDNN; k++) {
        if (!sp_cpu_conv_kernel_available(k)) continue;
        CHECK_OK(sp_cpu_conv_set_kernel(k));
        for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++)
            for (int variant = 0; variant < 4; variant++) {
                int *q = cases[ci], res = variant & 1, relu = (variant >> 1) & 1;
                int64_t N = q[0], C = q[1], H = q[2], W = q[3], Co = q[4], kk = q[5];
                int s = q[6], p = q[7];
                int64_t Ho = (H + 2 * p - kk) / s + 1, Wo = (W + 2 * p - kk) / s + 1, n = N * Co * Ho * Wo;
                sp_tensor *x = mk(4, N, C, H, W, &rng), *w = mk(4, Co, C, kk, kk, &rng);
                sp_tensor *b = q[8] ? mk(1, Co, 0, 0, 0, &rng) : NULL;
                sp_tensor *ga = mk(1, Co, 0, 0, 0, &rng), *be = mk(1, Co, 0, 0, 0, &rng), *mu = mk(1, Co, 0, 0, 0, &rng);
                sp_tensor *va = mk(1, Co, 0, 0, 0, &rng), *r = mk(4, N, Co, Ho, Wo, &rng);
                sp_tensor *y = mk(4, N, Co, Ho, Wo, NULL), *ry = mk(4, N, Co, Ho, Wo, NULL);
                for (int64_t o = 0; o < Co; o++) D(va)[o] = fabsf(D(va)[o]) + 0.1f;
                CHECK_OK(sp_conv2d_bn_forward(y, x, w, b, ga, be, mu, va, 1e-5, res ? r : NULL, relu, s, s, p, p, p, p,
                                              1, 1, 1));
                CHECK_OK(sp_ref_conv2d_forward(ry, x, w, b, s, s, p, p, p, p, 1, 1, 1));
                double *want = malloc(sizeof(double) * (size_t)n), big = 0;
                for (int64_t i = 0; i < n; i++) {
                    int64_t o = (i / (Ho * Wo)) % Co;
                    double inv = 1.0 / sqrt((double)D(va)[o] + 1e-5);
                    double v = (D(ry)[i] - D(mu)[o]) * inv * D(ga)[o] + D(be)[o] + (res ? D(r)[i] : 0.0);
                    want[i] = relu && v < 0 ? 0.0 : v;
                    big = fmax(big, fabs(want[i]));
                }
                double d = maxdiff(D(y), want, n);
                CHECK(d < 1e-4 + 4e-6 * big, "conv_bn case %zu variant %d kernel %d: diff %g (largest %g)", ci,
                      variant, k, d, big);
                free(want);
                sp_tensor *all[] = {x, w, b, ga, be, mu, va, r, y, ry};
                for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) sp_tensor_free(all[i]);
            }
    }
    CHECK_OK(sp_cpu_conv_set_kernel(def));
}

/* Four threads run convolutions at once under each conv kernel, with geometries they share
 * (oneDNN: the same cached primitive) and of their own (made concurrently), forward with the
 * eval epilogue and backward: every result equals the one-thread result bit for bit (same
 * kernel, same sums). Under make SANITIZE=thread this is the primitive table's and the
 * per-thread streams' race check. */
typedef struct {
    int tid, kern, bad, p;
    sp_tensor *x, *w, *ga, *be, *mu, *va, *gy, *want_y, *want_gx, *want_gw;
} conv_job;
static int conv_job_geom(int tid, int *C, int *Co, int *k, int *H, int *W) {
    /* threads 0 and 1 share a geometry (3x3, 16 channels, 2x24x24: 72 output tiles of 4x4,
     * whose backward runs oneDNN's Winograd under the onednn kernel), 2 and 3 have their own */
    int g = tid < 2 ? 0 : tid - 1;
    *C = g == 0 ? 16 : 8 + 4 * g; *Co = 16 + 8 * g; *k = g == 2 ? 1 : 3;
    *H = g == 0 ? 24 : 12; *W = g == 0 ? 24 : 11;
    return g;
}
static void conv_job_run(conv_job *j, sp_tensor *y, sp_tensor *gx, sp_tensor *gw) {
    sp_fill(gw, 0);
    int p = j->p;
    if (sp_conv2d_bn_forward(y, j->x, j->w, NULL, j->ga, j->be, j->mu, j->va, 1e-5, NULL, 1, 1, 1, p, p, p, p, 1, 1,
                             1) ||
        sp_conv2d_backward(gx, gw, NULL, j->gy, j->x, j->w, 1, 1, p, p, p, p, 1, 1, 1))
        j->bad++;
}
static void *conv_job_thread(void *arg) {
    conv_job *j = arg;
    sp_tensor *y = NULL, *gx = NULL, *gw = NULL;
    sp_tensor_clone(&y, j->want_y, SP_FLOAT32);
    sp_tensor_clone(&gx, j->want_gx, SP_FLOAT32);
    sp_tensor_clone(&gw, j->want_gw, SP_FLOAT32);
    for (int it = 0; it < 20; it++) {
        conv_job_run(j, y, gx, gw);
        if (memcmp(D(y), D(j->want_y), sizeof(float) * (size_t)sp_tensor_numel(y)) ||
            memcmp(D(gx), D(j->want_gx), sizeof(float) * (size_t)sp_tensor_numel(gx)) ||
            memcmp(D(gw), D(j->want_gw), sizeof(float) * (size_t)sp_tensor_numel(gw)))
            j->bad++;
    }
    sp_tensor_free(y); sp_tensor_free(gx); sp_tensor_free(gw);
    return NULL;
}
SUITE(nn_conv_threads) {
    int def = sp_cpu_conv_kernel();
    for (int k = SP_CONV_SPORE; k <= SP_CONV_ONEDNN; k++) {
        if (!sp_cpu_conv_kernel_available(k)) continue;
        CHECK_OK(sp_cpu_conv_set_kernel(k));
        conv_job jobs[4];
        long wino0 = sp_dnnl_wino_runs;
        for (int t = 0; t < 4; t++) {
            int C, Co, kk, H, W;
            conv_job_geom(t, &C, &Co, &kk, &H, &W);
            conv_job *j = &jobs[t];
            memset(j, 0, sizeof *j);
            j->tid = t; j->kern = k; j->p = kk / 2;
            uint64_t r = t < 2 ? 1234 : 1234 + (uint64_t)t; /* threads 0 and 1: the same data too */
            j->x = mk(4, 2, C, H, W, &r); j->w = mk(4, Co, C, kk, kk, &r);
            j->ga = mk(1, Co, 0, 0, 0, &r); j->be = mk(1, Co, 0, 0, 0, &r); j->mu = mk(1, Co, 0, 0, 0, &r);
            j->va = mk(1, Co, 0, 0, 0, &r);
            for (int64_t o = 0; o < Co; o++) D(j->va)[o] = fabsf(D(j->va)[o]) + 0.1f;
            j->gy = mk(4, 2, Co, H, W, &r);
            j->want_y = mk(4, 2, Co, H, W, NULL); j->want_gx = mk(4, 2, C, H, W, NULL);
            j->want_gw = mk(4, Co, C, kk, kk, NULL);
            conv_job_run(j, j->want_y, j->want_gx, j->want_gw); /* the one-thread answer */
        }
        pthread_t th[4];
        for (int t = 0; t < 4; t++) CHECK(pthread_create(&th[t], NULL, conv_job_thread, &jobs[t]) == 0, "thread %d", t);
        for (int t = 0; t < 4; t++) pthread_join(th[t], NULL);
        if (k == SP_CONV_ONEDNN)
            CHECK(sp_dnnl_wino_runs - wino0 >= 2 * 21 * 2, "onednn: threads 0 and 1 ran the backward as Winograd (%ld runs)",
                  sp_dnnl_wino_runs - wino0);
        for (int t = 0; t < 4; t++) {
            CHECK(jobs[t].bad == 0, "kernel %d thread %d: %d of 20 concurrent runs differ from the one-thread run", k,
                  t, jobs[t].bad);
            sp_tensor *all[] = {jobs[t].x, jobs[t].w, jobs[t].ga, jobs[t].be, jobs[t].mu, jobs[t].va, jobs[t].gy,
                                jobs[t].want_y, jobs[t].want_gx, jobs[t].want_gw};
            for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) sp_tensor_free(all[i]);
        }
    }
    CHECK_OK(sp_cpu_conv_set_kernel(def));
}

/* conv_small.c's kernels split over libgomp's threads (images, input channels, kernel-row
 * bands: outputs that do not overlap): one thread (sp_small_par 0), always split (1) and
 * the measured choice (-1, over enough calls for windows of both ways: 700 calls on the
 * first case) give the same bits after every call, forward, grad_w (added to what it held)
 * and grad_x, for LeNet5's conv1 (the row kernels) and conv2 (the direct ones; grad_x with
 * images in the lanes, and at batch 21 the last 5 on the row kernel) at batches 32, 21 and
 * 3 (under 8: never split); splits counted (sp_small_par_runs) where libgomp has two
 * threads. */
extern int sp_small_par;
extern long sp_small_par_runs;
SUITE(nn_conv_small_split) {
    int def = sp_cpu_conv_kernel(), par0 = sp_small_par;
    CHECK_OK(sp_cpu_conv_set_kernel(SP_CONV_SPORE));
    uint64_t rng = 77;
    /* N C H W Co k */
    int cases[][6] = {{32, 1, 32, 32, 6, 5}, {32, 6, 14, 14, 16, 5}, {21, 6, 14, 14, 16, 5}, {3, 6, 14, 14, 16, 5}};
    int two = omp_get_max_threads() >= 2;
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        int *q = cases[ci];
        int64_t N = q[0], C = q[1], H = q[2], W = q[3], Co = q[4], k = q[5], Ho = H - k + 1, Wo = W - k + 1;
        size_t ny = sizeof(float) * (size_t)(N * Co * Ho * Wo), nx = sizeof(float) * (size_t)(N * C * H * W);
        size_t nw = sizeof(float) * (size_t)(Co * C * k * k);
        sp_tensor *x = mk(4, N, C, H, W, &rng), *w = mk(4, Co, C, k, k, &rng), *gy = mk(4, N, Co, Ho, Wo, &rng);
        sp_tensor *y[2], *gx[2], *gw[2];
        long runs[3];
        int reps[3] = {1, 1, ci == 0 ? 350 : 10}, same = 1;
        for (int m = 0; m < 3; m++) {
            sp_small_par = m == 2 ? -1 : m;
            int s = m ? 1 : 0; /* results of mode m go to slot s; slot 0 holds one thread's */
            if (m < 2) y[s] = mk(4, N, Co, Ho, Wo, NULL), gx[s] = mk(4, N, C, H, W, NULL), gw[s] = mk(4, Co, C, k, k, NULL);
            long r0 = sp_small_par_runs;
            for (int rep = 0; rep < reps[m]; rep++) {
                sp_fill(y[s], NAN), sp_fill(gx[s], NAN), sp_fill(gw[s], 0.25);
                CHECK_OK(sp_conv2d_forward(y[s], x, w, NULL, 1, 1, 0, 0, 0, 0, 1, 1, 1));
                CHECK_OK(sp_conv2d_backward(C > 1 ? gx[s] : NULL, gw[s], NULL, gy, x, w, 1, 1, 0, 0, 0, 0, 1, 1, 1));
                if (m && (memcmp(D(y[0]), D(y[1]), ny) || (C > 1 && memcmp(D(gx[0]), D(gx[1]), nx)) ||
                          memcmp(D(gw[0]), D(gw[1]), nw)))
                    same = 0;
            }
            runs[m] = sp_small_par_runs - r0;
        }
        sp_small_par = par0;
        CHECK(same, "case %zu: the forced split and the measured choice give one thread's bits", ci);
        /* splits: forward, grad_w and grad_x (conv2) each once a call when forced */
        long per = C > 1 ? 3 : 2, want = N < 8 || !two ? 0 : per;
        CHECK(runs[0] == 0 && runs[1] == want, "case %zu: %ld splits one-thread, %ld forced (want %ld)", ci, runs[0],
              runs[1], want);
        CHECK(runs[2] <= reps[2] * want && (ci != 0 || !two || runs[2] > 0),
              "case %zu: the measured choice split %ld of %ld calls", ci, runs[2], reps[2] * per);
        sp_tensor *all[] = {x, w, gy, y[0], y[1], gx[0], gx[1], gw[0], gw[1]};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) sp_tensor_free(all[i]);
    }
    CHECK_OK(sp_cpu_conv_set_kernel(def));
}

SUITE(nn_pool_vs_naive) {
    uint64_t rng = 7;
    int cases[][8] = {{3, 3, 2, 2, 0, 1, 0, 1}, {2, 2, 2, 2, 0, 0, 0, 0}, {3, 2, 1, 2, 1, 1, 0, 1}};
    for (int ci = 0; ci < 3; ci++) {
        int *q = cases[ci];
        int64_t N = 2, C = 3, H = 7, W = 6;
        int64_t Ho = (H + q[4] + q[5] - q[0]) / q[2] + 1, Wo = (W + q[6] + q[7] - q[1]) / q[3] + 1;
        sp_tensor *x = mk(4, N, C, H, W, &rng), *y = mk(4, N, C, Ho, Wo, NULL), *a = NULL, *gy = mk(4, N, C, Ho, Wo, &rng);
        sp_tensor *gx = mk(4, N, C, H, W, NULL);
        int64_t s[4] = {N, C, Ho, Wo};
        sp_tensor_new(&a, SP_INT32, 4, s);
        for (int avg = 0; avg < 2; avg++) {
            if (avg) {
                CHECK_OK(sp_avgpool2d_forward(y, x, q[0], q[1], q[2], q[3], q[4], q[5], q[6], q[7], 0));
                CHECK_OK(sp_avgpool2d_backward(gx, gy, q[0], q[1], q[2], q[3], q[4], q[5], q[6], q[7], 0));
            } else {
                CHECK_OK(sp_maxpool2d_forward(y, a, x, q[0], q[1], q[2], q[3], q[4], q[5], q[6], q[7]));
                CHECK_OK(sp_maxpool2d_backward(gx, gy, a));
            }
            double *ry = calloc(N * C * Ho * Wo, 8), *rg = calloc(N * C * H * W, 8);
            for (int64_t nc = 0; nc < N * C; nc++)
                for (int64_t oh = 0; oh < Ho; oh++)
                    for (int64_t ow = 0; ow < Wo; ow++) {
                        double best = -INFINITY, sum = 0; int64_t bi = -1, cnt = 0;
                        for (int i = 0; i < q[0]; i++)
                            for (int j = 0; j < q[1]; j++) {
                                int64_t ih = oh * q[2] - q[4] + i, iw = ow * q[3] - q[6] + j;
                                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                                double v = D(x)[nc * H * W + ih * W + iw];
                                sum += v; cnt++;
                                if (v > best) { best = v; bi = ih * W + iw; }
                            }
                        int64_t yi = (nc * Ho + oh) * Wo + ow;
                        ry[yi] = avg ? sum / cnt : best;
                        if (avg) {
                            for (int i = 0; i < q[0]; i++)
                                for (int j = 0; j < q[1]; j++) {
                                    int64_t ih = oh * q[2] - q[4] + i, iw = ow * q[3] - q[6] + j;
                                    if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                                    rg[nc * H * W + ih * W + iw] += D(gy)[yi] / cnt;
                                }
                        } else rg[nc * H * W + bi] += D(gy)[yi];
                    }
            CHECK(maxdiff(D(y), ry, N * C * Ho * Wo) < 1e-5, "pool case %d avg=%d forward", ci, avg);
            CHECK(maxdiff(D(gx), rg, N * C * H * W) < 1e-5, "pool case %d avg=%d backward", ci, avg);
            free(ry); free(rg);
        }
        sp_tensor_free(x); sp_tensor_free(y); sp_tensor_free(a); sp_tensor_free(gy); sp_tensor_free(gx);
    }
}

extern int sp_maxpool_scalar; /* engine/cpu/pool.c: test hook (hidden) */
/* max pooling's row kernel (pool_rows.c, windows reaching the padding) against the scalar
 * loop it replaced: same values and argmax, bit for bit, with ties (values on a coarse
 * grid), -inf and NaN inputs, rows longer than one 256-output chunk, and stride 1 to 3 */
SUITE(nn_maxpool_rows_vs_scalar) {
    uint64_t rng = 99;
    /* kh kw sh sw pt pb pl pr H W */
    int cases[][10] = {{3, 3, 2, 2, 0, 1, 0, 1, 112, 112}, {3, 3, 2, 2, 1, 1, 1, 1, 9, 530},
                       {2, 3, 1, 3, 1, 0, 2, 1, 6, 17}, {3, 2, 3, 1, 0, 2, 1, 0, 11, 13}};
    for (int ci = 0; ci < 4; ci++) {
        int *q = cases[ci];
        int64_t N = 2, C = 3, H = q[8], W = q[9];
        int64_t Ho = (H + q[4] + q[5] - q[0]) / q[2] + 1, Wo = (W + q[6] + q[7] - q[1]) / q[3] + 1;
        sp_tensor *x = mk(4, N, C, H, W, &rng), *y1 = mk(4, N, C, Ho, Wo, NULL), *y2 = mk(4, N, C, Ho, Wo, NULL);
        sp_tensor *a1 = NULL, *a2 = NULL;
        int64_t s[4] = {N, C, Ho, Wo};
        sp_tensor_new(&a1, SP_INT32, 4, s);
        sp_tensor_new(&a2, SP_INT32, 4, s);
        float *xv = D(x);
        for (int64_t i = 0; i < N * C * H * W; i++) {
            xv[i] = floorf(xv[i] * 4.0f); /* ties */
            if (i % 97 == 5) xv[i] = -INFINITY;
            if (i % 389 == 11) xv[i] = NAN;
        }
        sp_maxpool_scalar = 1;
        CHECK_OK(sp_maxpool2d_forward(y1, a1, x, q[0], q[1], q[2], q[3], q[4], q[5], q[6], q[7]));
        sp_maxpool_scalar = 0;
        CHECK_OK(sp_maxpool2d_forward(y2, a2, x, q[0], q[1], q[2], q[3], q[4], q[5], q[6], q[7]));
        int64_t n = N * C * Ho * Wo, bad = 0, nans = 0;
        for (int64_t i = 0; i < n; i++) {
            float u = D(y1)[i], v = D(y2)[i];
            if (u != u) nans++;
            if (!((u == v) || (u != u && v != v)) || ((int32_t *)sp_tensor_data(a1))[i] != ((int32_t *)sp_tensor_data(a2))[i])
                bad++;
        }
        CHECK(bad == 0, "maxpool rows case %d: %lld of %lld outputs differ from the scalar loop", ci, (long long)bad,
              (long long)n);
        CHECK(nans > 0, "maxpool rows case %d: the NaN inputs reached no output", ci);
        sp_tensor_free(x); sp_tensor_free(y1); sp_tensor_free(y2); sp_tensor_free(a1); sp_tensor_free(a2);
    }
}

SUITE(nn_dense_xent_optim) {
    uint64_t rng = 3;
    int64_t N = 3, In = 5, O = 4;
    sp_tensor *x = mk(2, N, In, 0, 0, &rng), *w = mk(2, O, In, 0, 0, &rng), *b = mk(1, O, 0, 0, 0, &rng), *y = mk(2, N, O, 0, 0, NULL);
    CHECK_OK(sp_dense_forward(y, x, w, b));
    double r[12];
    for (int n = 0; n < N; n++)
        for (int o = 0; o < O; o++) {
            double s = D(b)[o];
            for (int i = 0; i < In; i++) s += D(x)[n * In + i] * D(w)[o * In + i];
            r[n * O + o] = s;
        }
    CHECK(maxdiff(D(y), r, N * O) < 1e-5, "dense forward vs naive");
    sp_tensor *loss = mk(1, N, 0, 0, 0, NULL), *prob = mk(2, N, O, 0, 0, NULL), *lab = NULL, *g = mk(2, N, O, 0, 0, NULL);
    int64_t s1 = N;
    sp_tensor_new(&lab, SP_INT32, 1, &s1);
    int32_t *L = sp_tensor_data(lab);
    L[0] = 1; L[1] = 3; L[2] = 0;
    CHECK_OK(sp_softmax_xent_forward(loss, prob, y, lab));
    for (int n = 0; n < N; n++) {
        double se = 0;
        for (int o = 0; o < O; o++) se += exp(D(y)[n * O + o]);
        double ref = log(se) - D(y)[n * O + L[n]];
        CHECK(fabs(D(loss)[n] - ref) < 1e-5, "xent row %d: %g vs %g", n, D(loss)[n], ref);
    }
    L[2] = 9;
    CHECK(sp_softmax_xent_forward(loss, prob, y, lab) == SP_EINVAL, "label out of range rejected");
    /* momentum: two steps by hand */
    sp_tensor *p = mk(1, 2, 0, 0, 0, NULL), *v = mk(1, 2, 0, 0, 0, NULL), *gr = mk(1, 2, 0, 0, 0, NULL);
    D(p)[0] = 1; D(p)[1] = -2; D(gr)[0] = 0.5f; D(gr)[1] = 1;
    CHECK_OK(sp_momentum_update(p, v, gr, 0.1, 0.9, 0, 1, 0));
    CHECK_OK(sp_momentum_update(p, v, gr, 0.1, 0.9, 0, 1, 0));
    /* v1 = g, p1 = p - .1g; v2 = .9g + g = 1.9g; p2 = p1 - .19g */
    CHECK(fabsf(D(p)[0] - (1 - 0.29f * 0.5f)) < 1e-6 && fabsf(D(p)[1] - (-2 - 0.29f)) < 1e-6, "momentum two steps");
    sp_tensor_free(x); sp_tensor_free(w); sp_tensor_free(b); sp_tensor_free(y); sp_tensor_free(loss);
    sp_tensor_free(prob); sp_tensor_free(lab); sp_tensor_free(g); sp_tensor_free(p); sp_tensor_free(v); sp_tensor_free(gr);
}
