/* test_reference.c — every fast path of the nn kernels (the public sp_* functions) against
 * the readable reference path (engine/cpu/reference.c, sp_ref_*), on random inputs over a
 * grid of shapes chosen so that each branch of engine/cpu/conv.c and pool.c runs.
 *
 * Tolerances: float32 accumulations (conv, dense, batchnorm, softmax, optimizers) pass
 * when |fast - ref| <= 1e-4 * max(|ref|, 1) (the reference sums in double; 1e-5 for the
 * short optimizer and pooling sums; batchnorm's forward against its largest term |x*a|). Exact: max pooling values and argmax (ties included),
 * ReLU. */
#include "check.h"
#include "cpu/reference.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 20240607;

static sp_tensor *tnew(int dtype, int nd, int64_t a, int64_t b, int64_t c, int64_t d) {
    int64_t s[4] = {a, b, c, d};
    sp_tensor *t = NULL;
    sp_status st = sp_tensor_new(&t, dtype, nd, s);
    CHECK(st == SP_OK && t, "tensor_new: %s", sp_last_error());
    return t;
}
static sp_tensor *rnd(int nd, int64_t a, int64_t b, int64_t c, int64_t d, double lo, double hi) {
    sp_tensor *t = tnew(SP_FLOAT32, nd, a, b, c, d);
    if (t) sp_rand_uniform(t, lo, hi, &rng);
    return t;
}
static sp_tensor *clone(const sp_tensor *src) {
    sp_tensor *t = NULL;
    int64_t s[SP_MAX_DIMS];
    int nd = sp_tensor_shape(src, s);
    sp_tensor_new(&t, sp_tensor_dtype(src), nd, s);
    sp_tensor_copy(t, src);
    return t;
}
static float *D(const sp_tensor *t) { return sp_tensor_data(t); }
static void frees(sp_tensor **ts, int n) { for (int i = 0; i < n; i++) sp_tensor_free(ts[i]); }

/* Largest |a - b| / max(|b|, floor) over the tensor; NaN == NaN counts as equal. */
static double worst(const sp_tensor *a, const sp_tensor *b, double floor_) {
    int64_t n = sp_tensor_numel(b);
    if (sp_tensor_numel(a) != n) return INFINITY;
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
        double x = D(a)[i], y = D(b)[i];
        if (isnan(x) || isnan(y)) { if (!(isnan(x) && isnan(y))) return INFINITY; continue; }
        double e = fabs(x - y) / fmax(fabs(y), floor_);
        if (e > m) m = e;
    }
    return m;
}
#define CLOSE(a, b, tol, ...) CLOSE_FLOOR(a, b, tol, 1.0, __VA_ARGS__)
#define CLOSE_FLOOR(a, b, tol, floor_, ...) do { double w_ = worst((a), (b), (floor_)); char what_[256]; \
    snprintf(what_, sizeof what_, __VA_ARGS__); \
    CHECK(w_ <= (tol), "%s: relative error %.3g > %.1g", what_, w_, (double)(tol)); } while (0)
static int same_bits_f(const sp_tensor *a, const sp_tensor *b) {
    for (int64_t i = 0; i < sp_tensor_numel(b); i++) {
        float x = D(a)[i], y = D(b)[i];
        if (!(x == y || (isnan(x) && isnan(y)))) return 0;
    }
    return 1;
}
static int same_i32(const sp_tensor *a, const sp_tensor *b) {
    return memcmp(sp_tensor_data(a), sp_tensor_data(b), sizeof(int32_t) * (size_t)sp_tensor_numel(b)) == 0;
}

/* ---- Conv2d ---- */

typedef struct {
    const char *path; /* the branch of engine/cpu/conv.c this shape takes */
    int N, C, H, W, Co, kh, kw, sh, sw, pt, pb, pl, pr, dh, dw, g, bias;
} conv_case;

/* conv.c's branches: is_direct (groups 1, stride 1, dilation 1, no padding, C*kh*kw <= 32,
 * Wo >= 8; forward and grad_w/grad_b, Co in blocks of 3 and 1, Wo in 32-wide blocks of four
 * overlapping 8-vectors); the batch GEMM (N > 1, Ho*Wo < 1024), its images in chunks of
 * NB = max(2^17/(K*HW), ceil(2048/HW)); the per-image GEMM (N = 1 or Ho*Wo >= 1024), with
 * the pointwise shortcut (1x1, stride 1, no padding) or im2col; im2col_plain / col2im_plain
 * (no top/left padding, stride_w 1, Wo >= 8, every tap in bounds) or the general im2col. */
static const conv_case conv_cases[] = {
    {"direct: LeNet conv1, Wo 28, Co 6 = 2 blocks of 3", 3, 1, 32, 32, 6, 5, 5, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1},
    {"direct: Wo 43 (two 32-wide blocks), Co 4 = 3 + 1", 2, 2, 10, 45, 4, 3, 3, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1},
    {"direct: Wo 8 exactly, K 27, no bias", 1, 3, 6, 10, 2, 3, 3, 1, 1, 0, 0, 0, 0, 1, 1, 1, 0},
    {"direct: K = 32 (the limit), 4x4 kernel", 2, 2, 12, 20, 5, 4, 4, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1},
    {"direct: single image, Co 1", 1, 1, 9, 17, 1, 2, 2, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1},
    {"batch GEMM: K 36 > 32, im2col_plain", 3, 4, 12, 12, 5, 3, 3, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1},
    {"batch GEMM: groups 3, stride 2, padded (general im2col)", 4, 6, 11, 11, 9, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 3, 1},
    {"batch GEMM: chunked, NB 3 of N 4 (HW 900, K 72)", 4, 8, 32, 32, 8, 3, 3, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1},
    {"batch GEMM: dilation 2, asymmetric padding, stride (2,1)", 2, 3, 13, 13, 4, 3, 3, 2, 1, 2, 1, 0, 2, 2, 2, 1, 0},
    {"batch GEMM: 1x1 (pointwise shapes still go batched)", 3, 8, 6, 6, 16, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1},
    {"batch GEMM: Wo < 8 unpadded (not plain, not direct)", 2, 1, 7, 7, 3, 3, 3, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1},
    {"batch GEMM: kernel = input (1x1 output)", 2, 3, 5, 5, 2, 5, 5, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1},
    {"batch GEMM: 1x1 stride 2", 2, 2, 8, 7, 3, 1, 1, 2, 2, 0, 0, 0, 0, 1, 1, 1, 0},
    {"per image: pointwise", 1, 8, 9, 9, 12, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1},
    {"per image: pointwise, groups 3", 1, 6, 5, 5, 6, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 3, 0},
    {"per image: im2col_plain, K 36", 1, 4, 12, 14, 3, 3, 3, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1},
    {"per image: im2col_plain with stride_h 2", 1, 4, 15, 12, 3, 3, 3, 2, 1, 0, 0, 0, 0, 1, 1, 1, 1},
    {"per image: general im2col, stride (2,1), dilation (1,2), padded", 1, 3, 15, 15, 4, 3, 3, 2, 1, 1, 1, 1, 1, 1, 2, 1, 1},
    {"per image: HW 1156 >= 1024 with a batch, padded", 2, 2, 34, 34, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1},
    {"per image: HW 1156 >= 1024, im2col_plain, K 36", 2, 4, 36, 36, 2, 3, 3, 1, 1, 0, 0, 0, 0, 1, 1, 1, 0},
    {"per image: bottom/right padding only (same, odd)", 1, 2, 10, 9, 3, 2, 2, 1, 1, 0, 1, 0, 1, 1, 1, 1, 1},
    {"per image: grouped, dilated, strided, padded", 1, 4, 9, 8, 6, 3, 2, 2, 1, 1, 1, 2, 0, 2, 1, 2, 1},
};

static void reference_conv2d_under(int kern);
/* under each conv kernel this build runs */
SUITE(reference_conv2d) {
    int def = sp_cpu_conv_kernel();
    for (int k = SP_CONV_SPORE; k <= SP_CONV_ONEDNN; k++) {
        if (!sp_cpu_conv_kernel_available(k)) continue;
        CHECK_OK(sp_cpu_conv_set_kernel(k));
        reference_conv2d_under(k);
    }
    CHECK_OK(sp_cpu_conv_set_kernel(def));
}
static void reference_conv2d_under(int kern) {
    (void)kern;
    for (size_t ci = 0; ci < sizeof conv_cases / sizeof conv_cases[0]; ci++) {
        const conv_case *q = &conv_cases[ci];
        int64_t Ho = (q->H + q->pt + q->pb - q->dh * (q->kh - 1) - 1) / q->sh + 1;
        int64_t Wo = (q->W + q->pl + q->pr - q->dw * (q->kw - 1) - 1) / q->sw + 1;
        sp_tensor *x = rnd(4, q->N, q->C, q->H, q->W, -1, 1), *w = rnd(4, q->Co, q->C / q->g, q->kh, q->kw, -1, 1);
        sp_tensor *b = q->bias ? rnd(1, q->Co, 0, 0, 0, -1, 1) : NULL;
        sp_tensor *y = tnew(SP_FLOAT32, 4, q->N, q->Co, Ho, Wo), *ry = tnew(SP_FLOAT32, 4, q->N, q->Co, Ho, Wo);
        int a[6] = {q->sh, q->sw, q->pt, q->pb, q->pl, q->pr};
#define CONV_ARGS a[0], a[1], a[2], a[3], a[4], a[5], q->dh, q->dw, q->g
        CHECK_OK(sp_conv2d_forward(y, x, w, b, CONV_ARGS));
        CHECK_OK(sp_ref_conv2d_forward(ry, x, w, b, CONV_ARGS));
        CLOSE(y, ry, 1e-4, "conv2d forward [%s]", q->path);

        /* backward: grad_w/grad_b accumulate onto the same random start in every run */
        sp_tensor *gy = rnd(4, q->N, q->Co, Ho, Wo, -1, 1);
        sp_tensor *gw0 = rnd(4, q->Co, q->C / q->g, q->kh, q->kw, -1, 1), *gb0 = rnd(1, q->Co, 0, 0, 0, -1, 1);
        sp_tensor *rgx = rnd(4, q->N, q->C, q->H, q->W, -1, 1), *rgw = clone(gw0), *rgb = clone(gb0);
        CHECK_OK(sp_ref_conv2d_backward(rgx, rgw, rgb, gy, x, w, CONV_ARGS));
        /* all three gradients */
        sp_tensor *gx = rnd(4, q->N, q->C, q->H, q->W, -1, 1), *gw = clone(gw0), *gb = clone(gb0);
        CHECK_OK(sp_conv2d_backward(gx, gw, gb, gy, x, w, CONV_ARGS));
        CLOSE(gx, rgx, 1e-4, "conv2d grad_x [%s]", q->path);
        CLOSE(gw, rgw, 1e-4, "conv2d grad_w (+=) [%s]", q->path);
        CLOSE(gb, rgb, 1e-4, "conv2d grad_b (+=) [%s]", q->path);
        /* parameters only (a first layer: the direct path returns early) */
        sp_tensor *gw2 = clone(gw0), *gb2 = clone(gb0);
        CHECK_OK(sp_conv2d_backward(NULL, gw2, gb2, gy, x, w, CONV_ARGS));
        CLOSE(gw2, rgw, 1e-4, "conv2d grad_w without grad_x [%s]", q->path);
        CLOSE(gb2, rgb, 1e-4, "conv2d grad_b without grad_x [%s]", q->path);
        /* input only */
        sp_tensor *gx3 = rnd(4, q->N, q->C, q->H, q->W, -1, 1);
        CHECK_OK(sp_conv2d_backward(gx3, NULL, NULL, gy, x, w, CONV_ARGS));
        CLOSE(gx3, rgx, 1e-4, "conv2d grad_x alone [%s]", q->path);
#undef CONV_ARGS
        sp_tensor *all[] = {x, w, y, ry, gy, gw0, gb0, rgx, rgw, rgb, gx, gw, gb, gw2, gb2, gx3};
        frees(all, sizeof all / sizeof all[0]);
        sp_tensor_free(b);
    }
}

/* the reference itself: a hand-computed 1-channel case and a refused shape */
SUITE(reference_conv2d_by_hand) {
    sp_tensor *x = tnew(SP_FLOAT32, 4, 1, 1, 2, 3), *w = tnew(SP_FLOAT32, 4, 1, 1, 1, 2);
    sp_tensor *y = tnew(SP_FLOAT32, 4, 1, 1, 2, 2), *bad = tnew(SP_FLOAT32, 4, 1, 1, 2, 3);
    float xv[6] = {1, 2, 3, 4, 5, 6}, wv[2] = {10, 1};
    memcpy(D(x), xv, sizeof xv);
    memcpy(D(w), wv, sizeof wv);
    CHECK_OK(sp_ref_conv2d_forward(y, x, w, NULL, 1, 1, 0, 0, 0, 0, 1, 1, 1));
    float want[4] = {12, 23, 45, 56};
    CHECK(memcmp(D(y), want, sizeof want) == 0, "ref conv [1 2 3;4 5 6] * [10 1] = %g %g %g %g", D(y)[0], D(y)[1],
          D(y)[2], D(y)[3]);
    CHECK(sp_ref_conv2d_forward(bad, x, w, NULL, 1, 1, 0, 0, 0, 0, 1, 1, 1) == SP_EINVAL, "ref conv: wrong out shape refused");
    sp_tensor *all[] = {x, w, y, bad};
    frees(all, 4);
}

/* ---- pooling ---- */

typedef struct {
    const char *path; /* the branch of engine/cpu/pool.c */
    int N, C, H, W, kh, kw, sh, sw, pt, pb, pl, pr;
} pool_case;

/* pool.c's max branches: "inner" (no top/left padding, every window inside the plane) with
 * the 2x2/2 window unrolled or any window; padded windows with 2x2/2 or 3x3/2 unrolled, or
 * any window. A window entirely in the padding gives 0 and argmax -1. */
static const pool_case pool_cases[] = {
    {"inner 2x2/2", 2, 3, 8, 10, 2, 2, 2, 2, 0, 0, 0, 0},
    {"inner 2x2/2, odd size (last row/col dropped)", 2, 2, 9, 7, 2, 2, 2, 2, 0, 0, 0, 0},
    {"padded 2x2/2 (same, odd: bottom/right)", 2, 2, 9, 7, 2, 2, 2, 2, 0, 1, 0, 1},
    {"inner 3x3/2 (generic inner)", 1, 3, 11, 11, 3, 3, 2, 2, 0, 0, 0, 0},
    {"padded 3x3/2 (ResNet stem, pad 1)", 2, 4, 12, 12, 3, 3, 2, 2, 1, 1, 1, 1},
    {"padded 3x3/2 (same on 9: 1,1)", 1, 2, 9, 9, 3, 3, 2, 2, 1, 1, 1, 1},
    {"padded generic 2x3 / (1,2)", 2, 2, 7, 9, 2, 3, 1, 2, 1, 0, 2, 1},
    {"inner generic 3x2 / (1,1)", 1, 2, 6, 5, 3, 2, 1, 1, 0, 0, 0, 0},
    {"generic, windows entirely in the padding", 1, 2, 3, 3, 2, 2, 1, 1, 3, 0, 0, 2},
    {"1x1 / 1 (identity)", 1, 2, 4, 5, 1, 1, 1, 1, 0, 0, 0, 0},
    {"inner with bottom/right padding unused", 1, 1, 8, 8, 2, 2, 2, 2, 0, 1, 0, 1},
    /* the AVX-512 2x2/2 path: 16 outputs a vector, the last one masked */
    {"inner 2x2/2, LeNet's 28x28", 2, 3, 28, 28, 2, 2, 2, 2, 0, 0, 0, 0},
    {"inner 2x2/2, 70 wide (3 vectors, last masked)", 1, 2, 6, 70, 2, 2, 2, 2, 0, 0, 0, 0},
    {"inner 2x2/2, 35 wide odd (last column dropped)", 1, 1, 5, 35, 2, 2, 2, 2, 0, 0, 0, 0},
};

static void quantize(sp_tensor *t) { /* values in {-1, -0.75, ..., 1}: plenty of ties */
    for (int64_t i = 0; i < sp_tensor_numel(t); i++) D(t)[i] = floorf(D(t)[i] * 4.0f) / 4.0f;
}

SUITE(reference_pool2d) {
    for (size_t ci = 0; ci < sizeof pool_cases / sizeof pool_cases[0]; ci++) {
        const pool_case *q = &pool_cases[ci];
        int64_t Ho = (q->H + q->pt + q->pb - q->kh) / q->sh + 1, Wo = (q->W + q->pl + q->pr - q->kw) / q->sw + 1;
#define POOL_ARGS q->kh, q->kw, q->sh, q->sw, q->pt, q->pb, q->pl, q->pr
        for (int ties = 0; ties < 2; ties++) {
            sp_tensor *x = rnd(4, q->N, q->C, q->H, q->W, -1, 1);
            if (ties) quantize(x);
            sp_tensor *y = tnew(SP_FLOAT32, 4, q->N, q->C, Ho, Wo), *ry = tnew(SP_FLOAT32, 4, q->N, q->C, Ho, Wo);
            sp_tensor *am = tnew(SP_INT32, 4, q->N, q->C, Ho, Wo), *ram = tnew(SP_INT32, 4, q->N, q->C, Ho, Wo);
            CHECK_OK(sp_maxpool2d_forward(y, am, x, POOL_ARGS));
            CHECK_OK(sp_ref_maxpool2d_forward(ry, ram, x, POOL_ARGS));
            CHECK(same_bits_f(y, ry), "maxpool forward [%s%s]: values differ", q->path, ties ? ", ties" : "");
            CHECK(same_i32(am, ram), "maxpool argmax [%s%s]: indices differ", q->path, ties ? ", ties" : "");
            sp_tensor *gy = rnd(4, q->N, q->C, Ho, Wo, -1, 1);
            sp_tensor *gx = rnd(4, q->N, q->C, q->H, q->W, -1, 1), *rgx = rnd(4, q->N, q->C, q->H, q->W, -1, 1);
            CHECK_OK(sp_maxpool2d_backward(gx, gy, am));
            CHECK_OK(sp_ref_maxpool2d_backward(rgx, gy, am));
            CLOSE(gx, rgx, 1e-5, "maxpool backward [%s]", q->path);
            for (int cp = 0; cp < 2; cp++) {
                CHECK_OK(sp_avgpool2d_forward(y, x, POOL_ARGS, cp));
                CHECK_OK(sp_ref_avgpool2d_forward(ry, x, POOL_ARGS, cp));
                CLOSE(y, ry, 1e-5, "avgpool forward [%s, count_pad %d]", q->path, cp);
                CHECK_OK(sp_avgpool2d_backward(gx, gy, POOL_ARGS, cp));
                CHECK_OK(sp_ref_avgpool2d_backward(rgx, gy, POOL_ARGS, cp));
                CLOSE(gx, rgx, 1e-5, "avgpool backward [%s, count_pad %d]", q->path, cp);
            }
            sp_tensor *all[] = {x, y, ry, am, ram, gy, gx, rgx};
            frees(all, sizeof all / sizeof all[0]);
        }
#undef POOL_ARGS
    }
    /* the reference's own rules, by hand: first max wins a tie; an all-padding window is 0 / -1 */
    sp_tensor *x = tnew(SP_FLOAT32, 4, 1, 1, 2, 2), *y = tnew(SP_FLOAT32, 4, 1, 1, 2, 2),
              *am = tnew(SP_INT32, 4, 1, 1, 2, 2);
    float xv[4] = {5, 5, -1, 5};
    memcpy(D(x), xv, sizeof xv);
    CHECK_OK(sp_ref_maxpool2d_forward(y, am, x, 2, 2, 2, 2, 0, 2, 0, 2)); /* windows (0,0) data, others padding */
    int32_t *A = sp_tensor_data(am);
    CHECK(D(y)[0] == 5 && A[0] == 0, "ref maxpool tie: first max (index 0), got %g at %d", D(y)[0], A[0]);
    CHECK(D(y)[3] == 0 && A[3] == -1, "ref maxpool all-padding window: 0 and -1, got %g and %d", D(y)[3], A[3]);
    /* a NaN in the window makes the output NaN in both paths */
    sp_tensor *yf = tnew(SP_FLOAT32, 4, 1, 1, 1, 1), *yr = tnew(SP_FLOAT32, 4, 1, 1, 1, 1);
    sp_tensor *af = tnew(SP_INT32, 4, 1, 1, 1, 1), *ar = tnew(SP_INT32, 4, 1, 1, 1, 1);
    D(x)[1] = NAN;
    CHECK_OK(sp_maxpool2d_forward(yf, af, x, 2, 2, 2, 2, 0, 0, 0, 0));
    CHECK_OK(sp_ref_maxpool2d_forward(yr, ar, x, 2, 2, 2, 2, 0, 0, 0, 0));
    CHECK(isnan(D(yf)[0]) && isnan(D(yr)[0]), "maxpool with a NaN: fast %g, reference %g", D(yf)[0], D(yr)[0]);
    sp_tensor *all[] = {x, y, am, yf, yr, af, ar};
    frees(all, 7);
}

SUITE(reference_global_avgpool) {
    int shapes[][4] = {{2, 3, 7, 7}, {1, 5, 1, 1}, {4, 2, 3, 9}};
    for (int i = 0; i < 3; i++) {
        int *s = shapes[i];
        sp_tensor *x = rnd(4, s[0], s[1], s[2], s[3], -1, 1);
        sp_tensor *y = tnew(SP_FLOAT32, 2, s[0], s[1], 0, 0), *ry = tnew(SP_FLOAT32, 2, s[0], s[1], 0, 0);
        CHECK_OK(sp_global_avgpool_forward(y, x));
        CHECK_OK(sp_ref_global_avgpool_forward(ry, x));
        CLOSE(y, ry, 1e-5, "global avgpool forward %dx%dx%dx%d", s[0], s[1], s[2], s[3]);
        sp_tensor *gy = rnd(2, s[0], s[1], 0, 0, -1, 1), *gx = clone(x), *rgx = clone(x);
        CHECK_OK(sp_global_avgpool_backward(gx, gy));
        CHECK_OK(sp_ref_global_avgpool_backward(rgx, gy));
        CLOSE(gx, rgx, 1e-6, "global avgpool backward %dx%dx%dx%d", s[0], s[1], s[2], s[3]);
        sp_tensor *all[] = {x, y, ry, gy, gx, rgx};
        frees(all, 6);
    }
}

/* ---- Dense ---- */

SUITE(reference_dense) {
    /* one row: ResNet50's head at batch 1 goes through sgemv; below 256 Ki weights (LeNet5's
     * 400 -> 120) spore's own product, eight rows a pass with the row tails masked; with and
     * without a bias */
    int cases[][4] = {{1, 1, 1, 1}, {5, 7, 3, 0}, {64, 120, 84, 1}, {3, 800, 10, 1}, {17, 33, 65, 1},
                      {1, 2048, 1001, 1}, {1, 300, 7, 0}, {1, 400, 120, 1}, {1, 37, 19, 0}, {1, 16, 9, 1}};
    for (int i = 0; i < (int)(sizeof cases / sizeof cases[0]); i++) {
        int N = cases[i][0], In = cases[i][1], O = cases[i][2], hb = cases[i][3];
        sp_tensor *x = rnd(2, N, In, 0, 0, -1, 1), *w = rnd(2, O, In, 0, 0, -1, 1);
        sp_tensor *b = hb ? rnd(1, O, 0, 0, 0, -1, 1) : NULL;
        sp_tensor *y = tnew(SP_FLOAT32, 2, N, O, 0, 0), *ry = tnew(SP_FLOAT32, 2, N, O, 0, 0);
        CHECK_OK(sp_dense_forward(y, x, w, b));
        CHECK_OK(sp_ref_dense_forward(ry, x, w, b));
        CLOSE(y, ry, 1e-4, "dense forward %dx%d->%d", N, In, O);
        sp_tensor *gy = rnd(2, N, O, 0, 0, -1, 1), *gw0 = rnd(2, O, In, 0, 0, -1, 1), *gb0 = rnd(1, O, 0, 0, 0, -1, 1);
        sp_tensor *gx = rnd(2, N, In, 0, 0, -1, 1), *gw = clone(gw0), *gb = clone(gb0);
        sp_tensor *rgx = rnd(2, N, In, 0, 0, -1, 1), *rgw = clone(gw0), *rgb = clone(gb0);
        CHECK_OK(sp_dense_backward(gx, gw, gb, gy, x, w));
        CHECK_OK(sp_ref_dense_backward(rgx, rgw, rgb, gy, x, w));
        CLOSE(gx, rgx, 1e-4, "dense grad_x %dx%d->%d", N, In, O);
        CLOSE(gw, rgw, 1e-4, "dense grad_w (+=) %dx%d->%d", N, In, O);
        CLOSE(gb, rgb, 1e-4, "dense grad_b (+=) %dx%d->%d", N, In, O);
        sp_tensor *all[] = {x, w, y, ry, gy, gw0, gb0, gx, gw, gb, rgx, rgw, rgb};
        frees(all, sizeof all / sizeof all[0]);
        sp_tensor_free(b);
    }
}

/* ---- BatchNorm2d ---- */

SUITE(reference_batchnorm) {
    /* the last: maps wider than norm.c's 16 float lanes, with a tail */
    int shapes[][4] = {{2, 3, 4, 5}, {1, 4, 1, 1}, {8, 16, 7, 7}, {4, 2, 1, 1}, {2, 3, 37, 35}};
    for (int si = 0; si < 5; si++)
        for (int mode = 0; mode < 3; mode++) { /* 0: train + update, 1: train, no update, 2: eval */
            int *s = shapes[si], training = mode < 2, update = mode == 0;
            int64_t C = s[1];
            sp_tensor *x = rnd(4, s[0], s[1], s[2], s[3], -2, 3), *ga = rnd(1, C, 0, 0, 0, 0.5, 1.5),
                      *be = rnd(1, C, 0, 0, 0, -1, 1);
            sp_tensor *mm = rnd(1, C, 0, 0, 0, -1, 1), *mv = rnd(1, C, 0, 0, 0, 0.5, 1.5);
            sp_tensor *rmm = clone(mm), *rmv = clone(mv);
            sp_tensor *y = clone(x), *ry = clone(x), *sm = clone(mm), *si_ = clone(mm), *rsm = clone(mm),
                      *rsi = clone(mm);
            CHECK_OK(sp_batchnorm_forward(y, sm, si_, x, ga, be, mm, mv, training, update, 0.9, 1e-5));
            CHECK_OK(sp_ref_batchnorm_forward(ry, rsm, rsi, x, ga, be, rmm, rmv, training, update, 0.9, 1e-5));
            /* the fast path folds the affine map into y = x*a + b with a = gamma*invstd in float:
             * its error scales with the terms, x*a, not with y (large when var ~ 0, N*H*W = 1) */
            double term = 1.0;
            for (int64_t i = 0; i < sp_tensor_numel(x); i++) {
                int64_t c = (i / (s[2] * s[3])) % C;
                term = fmax(term, fabs(D(x)[i] * D(rsi)[c] * D(ga)[c]));
            }
            CLOSE_FLOOR(y, ry, 1e-4, term, "batchnorm forward %dx%dx%dx%d mode %d", s[0], s[1], s[2], s[3], mode);
            CLOSE(sm, rsm, 1e-5, "batchnorm save_mean mode %d", mode);
            CLOSE(si_, rsi, 1e-4, "batchnorm save_invstd mode %d", mode);
            CLOSE(mm, rmm, 1e-5, "batchnorm moving_mean mode %d", mode);
            CLOSE(mv, rmv, 1e-5, "batchnorm moving_variance mode %d", mode);
            sp_tensor *gy = rnd(4, s[0], s[1], s[2], s[3], -1, 1), *gg0 = rnd(1, C, 0, 0, 0, -1, 1),
                      *gb0 = rnd(1, C, 0, 0, 0, -1, 1);
            sp_tensor *gx = clone(x), *gg = clone(gg0), *gb = clone(gb0), *rgx = clone(x), *rgg = clone(gg0),
                      *rgb = clone(gb0);
            CHECK_OK(sp_batchnorm_backward(gx, gg, gb, gy, x, ga, sm, si_, training));
            CHECK_OK(sp_ref_batchnorm_backward(rgx, rgg, rgb, gy, x, ga, sm, si_, training));
            CLOSE(gx, rgx, 1e-4, "batchnorm grad_x %dx%dx%dx%d mode %d", s[0], s[1], s[2], s[3], mode);
            CLOSE(gg, rgg, 1e-4, "batchnorm grad_gamma (+=) mode %d", mode);
            CLOSE(gb, rgb, 1e-4, "batchnorm grad_beta (+=) mode %d", mode);
            sp_tensor *all[] = {x, ga, be, mm, mv, rmm, rmv, y, ry, sm, si_, rsm, rsi, gy, gg0, gb0, gx, gg, gb,
                                rgx, rgg, rgb};
            frees(all, sizeof all / sizeof all[0]);
        }
}

/* ---- ReLU ---- */

SUITE(reference_relu) {
    sp_tensor *x = rnd(1, 1037, 0, 0, 0, -1, 1);
    D(x)[0] = 0.0f; D(x)[1] = -0.0f; D(x)[2] = 1e-30f; D(x)[3] = -1e-30f;
    sp_tensor *y = clone(x), *ry = clone(x), *inplace = clone(x);
    CHECK_OK(sp_unary(y, x, SP_UN_RELU));
    CHECK_OK(sp_ref_relu_forward(ry, x));
    CHECK(same_bits_f(y, ry), "relu forward differs from the reference");
    CHECK_OK(sp_unary(inplace, inplace, SP_UN_RELU));
    CHECK(same_bits_f(inplace, ry), "relu forward in place differs from the reference");
    sp_tensor *gy = rnd(1, 1037, 0, 0, 0, -1, 1), *gx = clone(x), *rgx = clone(x);
    CHECK_OK(sp_relu_backward(gx, gy, ry));
    CHECK_OK(sp_ref_relu_backward(rgx, gy, ry));
    CHECK(same_bits_f(gx, rgx), "relu backward differs from the reference");
    /* the residual join: sp_binary SP_OP_ADD_RELU == relu(a + b) computed naively */
    sp_tensor *z = rnd(1, 1037, 0, 0, 0, -1, 1), *j = clone(x), *rj = clone(x);
    CHECK_OK(sp_binary(j, x, z, SP_OP_ADD_RELU));
    for (int i = 0; i < 1037; i++) { float v = D(x)[i] + D(z)[i]; D(rj)[i] = v > 0.0f ? v : 0.0f; }
    CHECK(same_bits_f(j, rj), "binary add_relu differs from relu(a + b)");
    CHECK_OK(sp_binary(z, z, x, SP_OP_ADD_RELU)); /* in place */
    CHECK(same_bits_f(z, rj), "binary add_relu in place differs from relu(a + b)");
    sp_tensor *all[] = {x, y, ry, inplace, gy, gx, rgx, z, j, rj};
    frees(all, 10);
}

/* ---- softmax and cross-entropy ---- */

SUITE(reference_softmax_xent) {
    int shapes[][2] = {{1, 1}, {4, 10}, {3, 1000}, {32, 7}};
    for (int i = 0; i < 4; i++) {
        int N = shapes[i][0], C = shapes[i][1];
        sp_tensor *x = rnd(2, N, C, 0, 0, -30, 30); /* wide logits: the max shift matters */
        sp_tensor *p = tnew(SP_FLOAT32, 2, N, C, 0, 0), *rp = tnew(SP_FLOAT32, 2, N, C, 0, 0);
        CHECK_OK(sp_softmax_forward(p, x));
        CHECK_OK(sp_ref_softmax_forward(rp, x));
        CLOSE(p, rp, 1e-5, "softmax %dx%d", N, C);
        sp_tensor *sparse = tnew(SP_INT32, 1, N, 0, 0, 0), *dense = rnd(2, N, C, 0, 0, 0, 1);
        for (int n = 0; n < N; n++) ((int32_t *)sp_tensor_data(sparse))[n] = (int32_t)((n * 7 + 3) % C);
        sp_tensor *labels[2] = {sparse, dense};
        for (int l = 0; l < 2; l++) {
            sp_tensor *loss = tnew(SP_FLOAT32, 1, N, 0, 0, 0), *rloss = tnew(SP_FLOAT32, 1, N, 0, 0, 0);
            CHECK_OK(sp_softmax_xent_forward(loss, p, x, labels[l]));
            CHECK_OK(sp_ref_softmax_xent_forward(rloss, rp, x, labels[l]));
            CLOSE(loss, rloss, 1e-5, "xent loss %dx%d %s", N, C, l ? "dense" : "sparse");
            CLOSE(p, rp, 1e-5, "xent prob %dx%d %s", N, C, l ? "dense" : "sparse");
            sp_tensor *gl = rnd(1, N, 0, 0, 0, -1, 2);
            for (int withg = 0; withg < 2; withg++) {
                sp_tensor *gx = tnew(SP_FLOAT32, 2, N, C, 0, 0), *rgx = tnew(SP_FLOAT32, 2, N, C, 0, 0);
                CHECK_OK(sp_softmax_xent_backward(gx, p, labels[l], withg ? gl : NULL, 1.0 / N));
                CHECK_OK(sp_ref_softmax_xent_backward(rgx, p, labels[l], withg ? gl : NULL, 1.0 / N));
                CLOSE(gx, rgx, 1e-5, "xent backward %dx%d %s grad_loss %d", N, C, l ? "dense" : "sparse", withg);
                sp_tensor_free(gx); sp_tensor_free(rgx);
            }
            sp_tensor *all[] = {loss, rloss, gl};
            frees(all, 3);
        }
        sp_tensor *all[] = {x, p, rp, sparse, dense};
        frees(all, 5);
    }
}

/* weighted, smoothed cross-entropy (CrossEntropyLoss, CrossEntropySmooth) against the written-out
 * target distribution: weight or not, ignored rows (ignore_index inside and outside [0, C)),
 * sparse and dense labels, a/b as label smoothing and as the zoo's on/off values */
SUITE(reference_cross_entropy) {
    int shapes[][2] = {{1, 2}, {5, 7}, {4, 1001}};
    double ab[][2] = {{1, 0}, {0.9, 0.1 / 7}, {0.9f - 0.1f / 1000, 0.1f / 1000}};
    for (int i = 0; i < 3; i++) {
        int N = shapes[i][0], C = shapes[i][1];
        sp_tensor *x = rnd(2, N, C, 0, 0, -20, 20);
        sp_tensor *w = rnd(1, C, 0, 0, 0, 0.1, 2);
        sp_tensor *sparse = tnew(SP_INT32, 1, N, 0, 0, 0), *dense = rnd(2, N, C, 0, 0, 0, 1);
        for (int n = 0; n < N; n++) ((int32_t *)sp_tensor_data(sparse))[n] = (int32_t)((n * 5 + 1) % C);
        if (N > 2) ((int32_t *)sp_tensor_data(sparse))[1] = -100; /* ignored, outside [0, C) */
        int64_t ign[] = {-100, 0};                                /* 0: ignored inside [0, C) */
        sp_tensor *labels[2] = {sparse, dense};
        for (int l = 0; l < 2; l++)
            for (int wi = 0; wi < 2; wi++)
                for (int k = 0; k < 3; k++)
                    for (int g = 0; g < (l ? 1 : 2); g++) {
                        sp_tensor *W = wi ? w : NULL;
                        /* ignore_index 0: row 1 holds a 0 (ignored) instead of -100 (out of range then) */
                        if (N > 2) ((int32_t *)sp_tensor_data(sparse))[1] = g ? 0 : -100;
                        sp_tensor *loss = tnew(SP_FLOAT32, 1, N, 0, 0, 0), *rloss = tnew(SP_FLOAT32, 1, N, 0, 0, 0);
                        sp_tensor *rw = tnew(SP_FLOAT32, 1, N, 0, 0, 0), *rrw = tnew(SP_FLOAT32, 1, N, 0, 0, 0);
                        sp_tensor *p = tnew(SP_FLOAT32, 2, N, C, 0, 0), *rp = tnew(SP_FLOAT32, 2, N, C, 0, 0);
                        CHECK_OK(sp_cross_entropy_forward(loss, rw, p, x, labels[l], W, ign[g], ab[k][0], ab[k][1]));
                        CHECK_OK(sp_ref_cross_entropy_forward(rloss, rrw, rp, x, labels[l], W, ign[g], ab[k][0], ab[k][1]));
                        CLOSE(loss, rloss, 1e-5, "ce loss %dx%d labels %d weight %d ab %d ignore %d", N, C, l, wi, k, g);
                        CLOSE(rw, rrw, 0, "ce row weight %dx%d labels %d weight %d ab %d ignore %d", N, C, l, wi, k, g);
                        sp_tensor *gx = tnew(SP_FLOAT32, 2, N, C, 0, 0), *rgx = tnew(SP_FLOAT32, 2, N, C, 0, 0);
                        CHECK_OK(sp_cross_entropy_backward(gx, p, labels[l], W, NULL, ign[g], ab[k][0], ab[k][1], 0.5));
                        CHECK_OK(sp_ref_cross_entropy_backward(rgx, p, labels[l], W, NULL, ign[g], ab[k][0], ab[k][1], 0.5));
                        CLOSE(gx, rgx, 1e-5, "ce backward %dx%d labels %d weight %d ab %d ignore %d", N, C, l, wi, k, g);
                        sp_tensor *all[] = {loss, rloss, rw, rrw, p, rp, gx, rgx};
                        frees(all, 8);
                    }
        /* a label outside [0, C) that is not ignore_index is an error naming the row */
        ((int32_t *)sp_tensor_data(sparse))[0] = (int32_t)C;
        sp_tensor *loss = tnew(SP_FLOAT32, 1, N, 0, 0, 0), *p = tnew(SP_FLOAT32, 2, N, C, 0, 0);
        CHECK(sp_cross_entropy_forward(loss, NULL, p, x, sparse, NULL, -100, 1, 0) == SP_EINVAL, "label out of range");
        sp_tensor *all[] = {x, w, sparse, dense, loss, p};
        frees(all, 6);
    }
}

/* ---- optimizers: three steps each, the state carried over ---- */

enum { OPT_N = 1031, OPT_STEPS = 3 };

SUITE(reference_optimizers) {
    /* Momentum: {nesterov, weight_decay, loss_scale} */
    double mcfg[][3] = {{0, 0, 1}, {1, 0, 1}, {0, 1e-2, 128}, {1, 1e-2, 128}};
    for (int c = 0; c < 4; c++) {
        sp_tensor *p = rnd(1, OPT_N, 0, 0, 0, -1, 1), *v = rnd(1, OPT_N, 0, 0, 0, -0.1, 0.1);
        sp_tensor *rp = clone(p), *rv = clone(v);
        for (int s = 0; s < OPT_STEPS; s++) {
            sp_tensor *g = rnd(1, OPT_N, 0, 0, 0, -1, 1);
            CHECK_OK(sp_momentum_update(p, v, g, 0.1, 0.9, mcfg[c][1], mcfg[c][2], (int)mcfg[c][0]));
            CHECK_OK(sp_ref_momentum_update(rp, rv, g, 0.1, 0.9, mcfg[c][1], mcfg[c][2], (int)mcfg[c][0]));
            sp_tensor_free(g);
        }
        CLOSE(p, rp, 1e-5, "momentum param, config %d", c);
        CLOSE(v, rv, 1e-5, "momentum moment, config %d", c);
        sp_tensor *all[] = {p, v, rp, rv};
        frees(all, 4);
    }
    /* SGD: {momentum, dampening, weight_decay, loss_scale, nesterov} */
    double scfg[][5] = {{0, 0, 0, 1, 0}, {0.9, 0, 0, 1, 0}, {0.9, 0.1, 1e-2, 64, 0}, {0.9, 0, 1e-2, 1, 1}};
    for (int c = 0; c < 4; c++) {
        sp_tensor *p = rnd(1, OPT_N, 0, 0, 0, -1, 1), *a = rnd(1, OPT_N, 0, 0, 0, -0.1, 0.1);
        sp_tensor *rp = clone(p), *ra = clone(a);
        for (int s = 0; s < OPT_STEPS; s++) {
            sp_tensor *g = rnd(1, OPT_N, 0, 0, 0, -1, 1);
            CHECK_OK(sp_sgd_update(p, a, g, 0.05, scfg[c][0], scfg[c][1], scfg[c][2], scfg[c][3], (int)scfg[c][4],
                                   s == 0));
            CHECK_OK(sp_ref_sgd_update(rp, ra, g, 0.05, scfg[c][0], scfg[c][1], scfg[c][2], scfg[c][3],
                                       (int)scfg[c][4], s == 0));
            sp_tensor_free(g);
        }
        CLOSE(p, rp, 1e-5, "sgd param, config %d", c);
        CLOSE(a, ra, 1e-5, "sgd accum, config %d", c);
        sp_tensor *all[] = {p, a, rp, ra};
        frees(all, 4);
    }
    /* Adam: {nesterov, weight_decay, loss_scale} */
    double acfg[][3] = {{0, 0, 1}, {1, 0, 1}, {0, 1e-2, 32}, {1, 1e-2, 32}};
    for (int c = 0; c < 4; c++) {
        sp_tensor *p = rnd(1, OPT_N, 0, 0, 0, -1, 1), *m = rnd(1, OPT_N, 0, 0, 0, -0.1, 0.1),
                  *v = rnd(1, OPT_N, 0, 0, 0, 0, 0.01);
        sp_tensor *rp = clone(p), *rm = clone(m), *rv = clone(v);
        double b1p = 1, b2p = 1;
        for (int s = 0; s < OPT_STEPS; s++) {
            b1p *= 0.9; b2p *= 0.999;
            sp_tensor *g = rnd(1, OPT_N, 0, 0, 0, -1, 1);
            CHECK_OK(sp_adam_update(p, m, v, g, 1e-3, 0.9, 0.999, 1e-8, b1p, b2p, acfg[c][1], acfg[c][2],
                                    (int)acfg[c][0]));
            CHECK_OK(sp_ref_adam_update(rp, rm, rv, g, 1e-3, 0.9, 0.999, 1e-8, b1p, b2p, acfg[c][1], acfg[c][2],
                                        (int)acfg[c][0]));
            sp_tensor_free(g);
        }
        CLOSE(p, rp, 1e-5, "adam param, config %d", c);
        CLOSE(m, rm, 1e-5, "adam moment1, config %d", c);
        CLOSE(v, rv, 1e-5, "adam moment2, config %d", c);
        sp_tensor *all[] = {p, m, v, rp, rm, rv};
        frees(all, 6);
    }
    /* AMSGrad {weight_decay, loss_scale} and AdamWeightDecay {weight_decay} */
    double qcfg[][2] = {{0, 1}, {1e-2, 16}};
    for (int c = 0; c < 2; c++) {
        sp_tensor *p = rnd(1, OPT_N, 0, 0, 0, -1, 1), *m = rnd(1, OPT_N, 0, 0, 0, -0.1, 0.1),
                  *v = rnd(1, OPT_N, 0, 0, 0, 0, 0.01), *h = rnd(1, OPT_N, 0, 0, 0, 0, 0.02);
        sp_tensor *rp = clone(p), *rm = clone(m), *rv = clone(v), *rh = clone(h);
        sp_tensor *wp = clone(p), *wm = clone(m), *wv = clone(v);
        sp_tensor *wrp = clone(p), *wrm = clone(m), *wrv = clone(v);
        double b1p = 1, b2p = 1;
        for (int s = 0; s < OPT_STEPS; s++) {
            b1p *= 0.9; b2p *= 0.999;
            sp_tensor *g = rnd(1, OPT_N, 0, 0, 0, -1, 1);
            CHECK_OK(sp_adam_amsgrad_update(p, m, v, h, g, 1e-3, 0.9, 0.999, 1e-8, b1p, b2p, qcfg[c][0], qcfg[c][1]));
            CHECK_OK(sp_ref_adam_amsgrad_update(rp, rm, rv, rh, g, 1e-3, 0.9, 0.999, 1e-8, b1p, b2p, qcfg[c][0],
                                                qcfg[c][1]));
            CHECK_OK(sp_adamw_update(wp, wm, wv, g, 1e-2, 0.9, 0.999, 1e-6, qcfg[c][0] * 10));
            CHECK_OK(sp_ref_adamw_update(wrp, wrm, wrv, g, 1e-2, 0.9, 0.999, 1e-6, qcfg[c][0] * 10));
            sp_tensor_free(g);
        }
        CLOSE(p, rp, 1e-5, "amsgrad param, config %d", c);
        CLOSE(h, rh, 1e-5, "amsgrad vhat, config %d", c);
        CLOSE(wp, wrp, 1e-5, "adamw param, config %d", c);
        CLOSE(wm, wrm, 1e-5, "adamw moment1, config %d", c);
        CLOSE(wv, wrv, 1e-5, "adamw moment2, config %d", c);
        sp_tensor *all[] = {p, m, v, h, rp, rm, rv, rh, wp, wm, wv, wrp, wrm, wrv};
        frees(all, 14);
    }
    /* gradient centralization with the decay folded in: [7, 48] rows, and rows = 0 */
    for (int rows = 0; rows <= 7; rows += 7) {
        sp_tensor *g = rnd(1, 7 * 48, 0, 0, 0, -1, 1), *p = rnd(1, 7 * 48, 0, 0, 0, -1, 1);
        sp_tensor *rg = clone(g);
        CHECK_OK(sp_grad_centralize(g, p, 0.05, rows));
        CHECK_OK(sp_ref_grad_centralize(rg, p, 0.05, rows));
        CLOSE(g, rg, 1e-5, "grad_centralize, rows %d", rows);
        sp_tensor *all[] = {g, p, rg};
        frees(all, 3);
    }
    sp_tensor *g5 = rnd(1, 10, 0, 0, 0, -1, 1);
    CHECK(sp_grad_centralize(g5, NULL, 0, 3) == SP_EINVAL, "grad_centralize accepted 3 rows of 10 elements");
    sp_tensor_free(g5);
}

/* ---- bfloat16 (amp_level "O2"): engine/cpu/bf16*.c against the naive bf16-rounded GEMM
 * (sp_ref_gemm_bf16) and, on inputs already exactly bf16, against the float32 references
 * (then the only difference is float32 vs double summation). Every microkernel this CPU
 * runs (amx, avx512, portable: sp_cpu_bf16_set_kernel) must pass. */
static void round_bf16(sp_tensor *t) {
    for (int64_t i = 0; i < sp_tensor_numel(t); i++) D(t)[i] = sp_ref_bf16_round(D(t)[i]);
}
static sp_tensor *transpose2(const sp_tensor *a) {
    int64_t s[2];
    sp_tensor_shape(a, s);
    sp_tensor *t = tnew(SP_FLOAT32, 2, s[1], s[0], 0, 0);
    for (int64_t i = 0; i < s[0]; i++)
        for (int64_t j = 0; j < s[1]; j++) D(t)[j * s[0] + i] = D(a)[i * s[1] + j];
    return t;
}
static void bf16_cases(int kern);
SUITE(reference_bf16) {
    CHECK(sp_ref_bf16_round(1.0f + 1.0f / 256) == 1.0f, "bf16 tie rounds to even (down)");
    CHECK(sp_ref_bf16_round(1.0f + 3.0f / 256) == 1.0f + 4.0f / 256, "bf16 tie rounds to even (up)");
    int def = sp_cpu_bf16_kernel(), ran = 0;
    CHECK(sp_cpu_bf16_kernel_available(def), "the default bf16 kernel %d is available", def);
    CHECK(sp_cpu_bf16_kernel_available(0), "the portable bf16 kernel is always available");
    CHECK(sp_cpu_bf16_set_kernel(3) == SP_EINVAL, "bf16 kernel 3 accepted");
    for (int k = 0; k <= 2; k++) {
        if (!sp_cpu_bf16_kernel_available(k)) {
            CHECK(sp_cpu_bf16_set_kernel(k) == SP_EINVAL && strstr(sp_last_error(), "does not run here"),
                  "unavailable bf16 kernel %d accepted (%s)", k, sp_last_error());
            continue;
        }
        CHECK_OK(sp_cpu_bf16_set_kernel(k));
        CHECK(sp_cpu_bf16_kernel() == k, "bf16 kernel %d not selected", k);
        bf16_cases(k);
        ran++;
    }
    CHECK_OK(sp_cpu_bf16_set_kernel(def));
    CHECK(ran >= 1 + sp_cpu_has_bf16(), "bf16: %d kernels ran", ran);
}
static void bf16_cases(int kern) {
    /* N, In, O: M (=N), K (=In) and N (=O) off the 8/16/32 blocks, K odd, N = 1; 2 K blocks
     * (K > 256) with several A blocks (M > 32), two above the OpenMP threshold; M > N runs the
     * GEMM's wide-A path. N <= 8 on avx512 and amx: the row-dot kernel (sp_bf16_dense_rows),
     * its blocks of 4, 2 and 1 rows against 2, 4 and 1 weight rows, a K tail under 16 and
     * over 16, and ResNet50's head threaded */
    static const int dims[][3] = {{1, 1, 1}, {3, 5, 7}, {9, 33, 17}, {17, 64, 70}, {5, 300, 41}, {1, 77, 1},
                                  {40, 1, 3}, {33, 257, 65}, {70, 613, 131}, {64, 2048, 1}, {300, 360, 40},
                                  {7, 31, 5}, {8, 70, 9}, {6, 64, 18}, {2, 45, 7}, {1, 2048, 1001}, {4, 2048, 1001}};
    for (size_t c = 0; c < sizeof dims / sizeof dims[0]; c++) {
        int N = dims[c][0], In = dims[c][1], O = dims[c][2];
        sp_tensor *x = rnd(2, N, In, 0, 0, -2, 2), *w = rnd(2, O, In, 0, 0, -1, 1), *b = rnd(1, O, 0, 0, 0, -1, 1);
        sp_tensor *y = tnew(SP_FLOAT32, 2, N, O, 0, 0), *ry = tnew(SP_FLOAT32, 2, N, O, 0, 0);
        sp_tensor *wt = transpose2(w);
        CHECK_OK(sp_dense_forward_bf16(y, x, w, NULL));
        CHECK_OK(sp_ref_gemm_bf16(ry, x, wt));
        /* float32 sums of K terms against the double-summed reference: the error scales with
         * the sum's size, about sqrt(K) for these unit-sized terms (not with a small output),
         * so relative to max(|ref|, sqrt(K)); the K = 613 case reached 1.01e-5 of |ref| = 1
         * when the random data changed */
        double fk = sqrt((double)In), fo = sqrt((double)O), fn = sqrt((double)N);
        CLOSE_FLOOR(y, ry, 1e-5, fk, "bf16 (kernel %d) dense forward %dx%d->%d vs naive bf16 GEMM", kern, N, In, O);
        /* with bias: bias added in float32 */
        CHECK_OK(sp_dense_forward_bf16(y, x, w, b));
        for (int n = 0; n < N; n++) for (int o = 0; o < O; o++) D(ry)[n * O + o] += D(b)[o];
        CLOSE_FLOOR(y, ry, 1e-5, fk, "bf16 (kernel %d) dense forward + bias %dx%d->%d", kern, N, In, O);
        /* backward: grad_x = go·W, grad_w += goᵀ·x */
        sp_tensor *go = rnd(2, N, O, 0, 0, -1, 1), *gx = tnew(SP_FLOAT32, 2, N, In, 0, 0);
        sp_tensor *rgx = tnew(SP_FLOAT32, 2, N, In, 0, 0), *gw = tnew(SP_FLOAT32, 2, O, In, 0, 0);
        sp_tensor *rgw = tnew(SP_FLOAT32, 2, O, In, 0, 0), *got = transpose2(go);
        sp_fill(gw, 0.5);
        CHECK_OK(sp_dense_backward_bf16(gx, gw, NULL, go, x, w));
        CHECK_OK(sp_ref_gemm_bf16(rgx, go, w));
        CHECK_OK(sp_ref_gemm_bf16(rgw, got, x));
        for (int64_t i = 0; i < (int64_t)O * In; i++) D(rgw)[i] += 0.5f;
        CLOSE_FLOOR(gx, rgx, 1e-5, fo, "bf16 (kernel %d) dense grad_x %dx%d->%d", kern, N, In, O);
        CLOSE_FLOOR(gw, rgw, 1e-5, fn, "bf16 (kernel %d) dense grad_w (+=) %dx%d->%d", kern, N, In, O);
        sp_tensor *all[] = {x, w, b, y, ry, wt, go, gx, rgx, gw, rgw, got};
        frees(all, (int)(sizeof all / sizeof all[0]));
    }
    /* convolution: every geometry of the float32 grid and the bf16 GEMM's own (the input
     * converted to bf16 channel pairs, odd C, Co above and below N*Ho*Wo, several 32-row
     * blocks and K blocks), inputs rounded to bf16 first */
    static const conv_case bf16_conv_cases[] = {
        {"bf16: Co 40 > N*Ho*Wo 16 (weights in place), odd C", 1, 5, 4, 4, 40, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1},
        {"bf16: channel pairs, odd C, stride 2, padded", 2, 7, 9, 9, 12, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 0},
        {"bf16: channel pairs, Co 70, K 306 (two AMX K blocks)", 3, 33, 11, 11, 70, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1},
        {"bf16: Co 96 > 49 outputs, 3x3 on 7x7 (wide A)", 1, 64, 7, 7, 96, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0},
        {"bf16: 7x7 stride 2 on 3 channels (ResNet's stem)", 2, 3, 21, 21, 16, 7, 7, 2, 2, 3, 3, 3, 3, 1, 1, 1, 0},
    };
    size_t ngrid = sizeof conv_cases / sizeof conv_cases[0], nall = ngrid + sizeof bf16_conv_cases / sizeof bf16_conv_cases[0];
    for (size_t c = 0; c < nall; c++) {
        const conv_case *k = c < ngrid ? &conv_cases[c] : &bf16_conv_cases[c - ngrid];
        int64_t eh = (int64_t)k->dh * (k->kh - 1) + 1, ew = (int64_t)k->dw * (k->kw - 1) + 1;
        int64_t Ho = (k->H + k->pt + k->pb - eh) / k->sh + 1, Wo = (k->W + k->pl + k->pr - ew) / k->sw + 1;
        sp_tensor *x = rnd(4, k->N, k->C, k->H, k->W, -1, 1), *w = rnd(4, k->Co, k->C / k->g, k->kh, k->kw, -1, 1);
        sp_tensor *b = rnd(1, k->Co, 0, 0, 0, -1, 1), *go = rnd(4, k->N, k->Co, Ho, Wo, -1, 1);
        round_bf16(x); round_bf16(w); round_bf16(go);
        sp_tensor *y = tnew(SP_FLOAT32, 4, k->N, k->Co, Ho, Wo), *ry = tnew(SP_FLOAT32, 4, k->N, k->Co, Ho, Wo);
        CHECK_OK(sp_conv2d_forward_bf16(y, x, w, b, k->sh, k->sw, k->pt, k->pb, k->pl, k->pr, k->dh, k->dw, k->g));
        CHECK_OK(sp_ref_conv2d_forward(ry, x, w, b, k->sh, k->sw, k->pt, k->pb, k->pl, k->pr, k->dh, k->dw, k->g));
        CLOSE(y, ry, 1e-4, "bf16 (kernel %d) conv forward case %zu", kern, c);
        sp_tensor *gx = clone(x), *rgx = clone(x), *gw = clone(w), *rgw = clone(w), *gb = clone(b), *rgb = clone(b);
        CHECK_OK(sp_conv2d_backward_bf16(gx, gw, gb, go, x, w, k->sh, k->sw, k->pt, k->pb, k->pl, k->pr, k->dh, k->dw, k->g));
        CHECK_OK(sp_ref_conv2d_backward(rgx, rgw, rgb, go, x, w, k->sh, k->sw, k->pt, k->pb, k->pl, k->pr, k->dh, k->dw, k->g));
        CLOSE(gx, rgx, 1e-4, "bf16 (kernel %d) conv grad_x case %zu", kern, c);
        CLOSE(gw, rgw, 1e-4, "bf16 (kernel %d) conv grad_w (+=) case %zu", kern, c);
        CLOSE(gb, rgb, 1e-4, "bf16 (kernel %d) conv grad_b (+=) case %zu", kern, c);
        sp_tensor *all[] = {x, w, b, go, y, ry, gx, rgx, gw, rgw, gb, rgb};
        frees(all, (int)(sizeof all / sizeof all[0]));
    }
}
