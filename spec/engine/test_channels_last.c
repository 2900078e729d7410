/* test_channels_last.c — channels-last (NHWC) operands (sp_tensor_empty_channels_last_on):
 * each op that takes them gives, read back in NCHW order, what it gives on NCHW tensors;
 * under oneDNN against the reference convolution; on the sim device (NCHW copies) too; and
 * every other op refuses them by name. */
#include "check.h"
#include "cpu/reference.h"

extern int sp_wino_off;        /* engine/cpu/conv_wino.c: test hook (hidden) */
extern long sp_dnnl_wino_runs; /* engine/cpu/conv_dnnl.c: oneDNN Winograd executions (hidden) */
extern int sp_gemm1x1_off;     /* engine/cpu/conv_dnnl.c: test hook (hidden) */
extern long sp_dnnl_gemm_runs; /* engine/cpu/conv_dnnl.c: 1x1 layers' sgemm calls (hidden) */
void sp_cpu_wcache_stats(uint64_t *hits, size_t *bytes); /* conv_dnnl.c: the kept weights (hidden) */
extern int sp_cvt_bf16_off;    /* engine/cpu/conv_dnnl.c: test hook (hidden) */
extern long sp_cvt_bf16_runs, sp_dnnl_resbin_runs; /* conv_dnnl.c: counters (hidden) */
int sp_cpu_bf16_native(void);  /* engine/cpu/bf16.c */

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* the suites that check oneDNN's paths pass with one note in a build without it */
#define NEED_ONEDNN() do { if (!sp_cpu_conv_kernel_available(SP_CONV_ONEDNN)) { \
    CHECK(1, "no oneDNN in this build: nothing to check"); return; } } while (0)
/* free every tensor of an array (NULL entries are a no-op) */
#define FREE_ALL(arr) do { for (size_t i_ = 0; i_ < sizeof(arr) / sizeof((arr)[0]); i_++) \
    sp_tensor_free((arr)[i_]); } while (0)

static sp_tensor *nchw(int64_t a, int64_t b, int64_t c, int64_t d, uint64_t *rng, int dev) {
    int64_t s[4] = {a, b, c, d};
    sp_tensor *t = NULL;
    sp_tensor_new_on(&t, SP_FLOAT32, 4, s, dev);
    if (rng) sp_rand_uniform(t, -1, 1, rng);
    return t;
}
static sp_tensor *vec(int64_t n, uint64_t *rng, int dev) {
    int64_t s[1] = {n};
    sp_tensor *t = NULL;
    sp_tensor_new_on(&t, SP_FLOAT32, 1, s, dev);
    if (rng) sp_rand_uniform(t, -1, 1, rng);
    return t;
}
/* a channels-last tensor holding t's values (cl != 0), or a contiguous copy */
static sp_tensor *as_layout(const sp_tensor *t, int cl) {
    int64_t s[4];
    sp_tensor_shape(t, s);
    sp_tensor *o = NULL;
    if (cl) sp_tensor_empty_channels_last_on(&o, sp_tensor_dtype(t), s, sp_tensor_device(t));
    else sp_tensor_empty_on(&o, sp_tensor_dtype(t), 4, s, sp_tensor_device(t));
    sp_tensor_copy(o, t);
    return o;
}
/* t's values in row-major (NCHW) order, as float */
static float *values(const sp_tensor *t) {
    size_t n = sp_tensor_nbytes(t);
    float *v = malloc(n);
    sp_tensor_read(t, v, n);
    return v;
}
static double maxdiff_t(const sp_tensor *a, const sp_tensor *b, double *big) {
    float *x = values(a), *y = values(b);
    double d = 0, m = 0;
    for (int64_t i = 0; i < sp_tensor_numel(a); i++) {
        d = fmax(d, fabs((double)x[i] - y[i]));
        if (isnan(x[i]) != isnan(y[i])) d = INFINITY;
        m = fmax(m, fabs((double)y[i]));
    }
    free(x); free(y);
    if (big) *big = m;
    return d;
}
static int same_bits(const sp_tensor *a, const sp_tensor *b) {
    float *x = values(a), *y = values(b);
    int r = sp_tensor_numel(a) == sp_tensor_numel(b) && !memcmp(x, y, sizeof(float) * (size_t)sp_tensor_numel(a));
    free(x); free(y);
    return r;
}

SUITE(cl_tensor) {
    int64_t s[4] = {2, 3, 4, 5};
    sp_tensor *t = NULL, *src = NULL;
    CHECK_OK(sp_tensor_empty_channels_last_on(&t, SP_FLOAT32, s, SP_DEVICE_CPU));
    CHECK(sp_tensor_is_channels_last(t) && !sp_tensor_is_contiguous(t), "channels-last, not contiguous");
    CHECK(sp_tensor_stride(t, 0) == 60 && sp_tensor_stride(t, 1) == 1 && sp_tensor_stride(t, 2) == 15 &&
              sp_tensor_stride(t, 3) == 3,
          "NHWC strides");
    CHECK(sp_tensor_dim(t, 1) == 3 && sp_tensor_dim(t, 3) == 5, "logical shape stays NCHW");
    uint64_t r = 5;
    src = nchw(2, 3, 4, 5, &r, SP_DEVICE_CPU);
    CHECK_OK(sp_tensor_copy(t, src));
    CHECK(same_bits(t, src), "copied values read back in NCHW order");
    /* memory holds NHWC: element (n=1, c=2, h=3, w=4) */
    const float *m = sp_tensor_data(t), *ms = sp_tensor_data(src);
    CHECK(m[1 * 60 + 3 * 15 + 4 * 3 + 2] == ms[((1 * 3 + 2) * 4 + 3) * 5 + 4], "NHWC in memory");
    CHECK(!sp_tensor_is_channels_last(src) && sp_tensor_is_contiguous(src), "an NCHW tensor is not channels-last");
    sp_tensor *tr = NULL;
    sp_tensor_transpose(&tr, src, 2, 3);
    CHECK(!sp_tensor_is_channels_last(tr), "another stride order is not channels-last");
    sp_tensor_free(tr);
    int64_t one[4] = {2, 1, 4, 5};
    sp_tensor *c1 = NULL;
    CHECK_OK(sp_tensor_empty_channels_last_on(&c1, SP_FLOAT32, one, SP_DEVICE_CPU));
    CHECK(sp_tensor_is_channels_last(c1) && sp_tensor_is_contiguous(c1), "one channel: both layouts at once");
    sp_tensor_free(c1);
    int64_t bad[4] = {2, -1, 4, 5};
    CHECK(sp_tensor_empty_channels_last_on(&c1, SP_FLOAT32, bad, SP_DEVICE_CPU) != SP_OK && c1 == NULL,
          "a negative dim is refused");
    /* ops that do not take channels-last refuse it by name */
    int64_t ps[4] = {2, 3, 2, 2};
    sp_tensor *o = NULL, *sm = NULL, *si = NULL, *ga = NULL, *be = NULL, *mm = NULL, *mv = NULL;
    sp_tensor_new(&o, SP_FLOAT32, 4, ps);
    CHECK(sp_avgpool2d_forward(o, t, 2, 2, 2, 2, 0, 0, 0, 0, 0) == SP_EINVAL && strstr(sp_last_error(), "avgpool") &&
              strstr(sp_last_error(), "contiguous"),
          "avgpool refuses a channels-last x by name: %s", sp_last_error());
    sp_tensor *all[] = {t, src, o, sm, si, ga, be, mm, mv};
    FREE_ALL(all);
}

/* conv forward, plain and fused (conv -> BN -> [+ residual] -> [ReLU]), float32 and bf16,
 * every layout of x, out and residual, under each conv kernel, on the CPU and sim: equal
 * to the NCHW run (spore's kernels get NCHW copies: bit for bit; oneDNN runs an NHWC
 * primitive: its float32 result also against the reference convolution). */
static void conv_layouts(int dev, int kern) {
    uint64_t rng = 77;
    /* N C H W Co k s pad: a ResNet-like 3x3, a strided 1x1, the stem's 7x7/2 with 3
     * channels, and a LeNet-sized layer that spore's own kernels run under either kernel */
    int cases[][8] = {{2, 16, 9, 9, 32, 3, 1, 1}, {1, 24, 10, 10, 40, 1, 2, 0}, {2, 3, 15, 15, 16, 7, 2, 3},
                      {2, 1, 12, 12, 6, 5, 1, 0}};
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        int *q = cases[ci];
        int64_t N = q[0], C = q[1], H = q[2], W = q[3], Co = q[4], k = q[5];
        int s = q[6], p = q[7];
        int64_t Ho = (H + 2 * p - k) / s + 1, Wo = (W + 2 * p - k) / s + 1;
        sp_tensor *x = nchw(N, C, H, W, &rng, dev), *w = nchw(Co, C, k, k, &rng, dev), *b = vec(Co, &rng, dev);
        sp_tensor *ga = vec(Co, &rng, dev), *be = vec(Co, &rng, dev), *mu = vec(Co, &rng, dev), *va = vec(Co, &rng, dev);
        sp_tensor *res = nchw(N, Co, Ho, Wo, &rng, dev);
        sp_tensor *vabs = NULL;
        sp_tensor_clone(&vabs, va, SP_FLOAT32);
        sp_unary(va, vabs, SP_UN_ABS);
        sp_binary_scalar(va, va, 0.1, SP_OP_ADD, 0);
        sp_tensor_free(vabs);
        for (int bf = 0; bf < 2; bf++)
            for (int fused = 0; fused < 2; fused++) {
                sp_tensor *want = nchw(N, Co, Ho, Wo, NULL, dev);
                sp_status st = fused ? (bf ? sp_conv2d_bn_forward_bf16 : sp_conv2d_bn_forward)(
                                           want, x, w, NULL, ga, be, mu, va, 1e-5, res, 1, s, s, p, p, p, p, 1, 1, 1)
                                     : (bf ? sp_conv2d_forward_bf16 : sp_conv2d_forward)(want, x, w, b, s, s, p, p, p,
                                                                                         p, 1, 1, 1);
                if (bf && st == SP_EINVAL && strstr(sp_last_error(), "bf16")) { /* no bf16 on this device */
                    sp_tensor_free(want);
                    continue;
                }
                CHECK(st == SP_OK, "NCHW run: %s", sp_last_error());
                for (int lay = 1; lay < (fused ? 8 : 4); lay++) {
                    int clx = lay & 1, clo = (lay >> 1) & 1, clr = (lay >> 2) & 1;
                    sp_tensor *xx = as_layout(x, clx), *oo = as_layout(want, clo), *rr = as_layout(res, clr);
                    sp_fill(oo, 12345.0); /* every element must be written */
                    st = fused ? (bf ? sp_conv2d_bn_forward_bf16 : sp_conv2d_bn_forward)(
                                     oo, xx, w, NULL, ga, be, mu, va, 1e-5, rr, 1, s, s, p, p, p, p, 1, 1, 1)
                               : (bf ? sp_conv2d_forward_bf16 : sp_conv2d_forward)(oo, xx, w, b, s, s, p, p, p, p, 1,
                                                                                   1, 1);
                    CHECK(st == SP_OK, "dev %d kernel %d case %zu bf16 %d fused %d layout %d: %s", dev, kern, ci, bf,
                          fused, lay, sp_last_error());
                    double big = 0, d = maxdiff_t(oo, want, &big);
                    /* oneDNN's NHWC primitive sums in another order than its blocked one */
                    double tol = kern == SP_CONV_SPORE ? 0.0 : bf ? 1e-3 * (1 + big) : 1e-5 * (1 + big);
                    CHECK(d <= tol, "dev %d kernel %d case %zu bf16 %d fused %d layout x%d out%d res%d: diff %g", dev,
                          kern, ci, bf, fused, clx, clo, clr, d);
                    sp_tensor_free(xx); sp_tensor_free(oo); sp_tensor_free(rr);
                }
                if (!bf && !fused && dev == SP_DEVICE_CPU) { /* and the NHWC run against the reference */
                    sp_tensor *xx = as_layout(x, 1), *oo = as_layout(want, 1), *ref = nchw(N, Co, Ho, Wo, NULL, dev);
                    CHECK_OK(sp_conv2d_forward(oo, xx, w, b, s, s, p, p, p, p, 1, 1, 1));
                    CHECK_OK(sp_ref_conv2d_forward(ref, x, w, b, s, s, p, p, p, p, 1, 1, 1));
                    double big = 0, d = maxdiff_t(oo, ref, &big);
                    CHECK(d < 1e-4 + 4e-6 * big, "kernel %d case %zu NHWC vs reference: diff %g", kern, ci, d);
                    sp_tensor_free(xx); sp_tensor_free(oo); sp_tensor_free(ref);
                }
                sp_tensor_free(want);
            }
        /* the backward with channels-last x, grad_out and grad_x in every mix: spore's kernels
         * get NCHW copies (bit for bit); oneDNN runs NHWC primitives (float32 rounding) */
        sp_tensor *gy = nchw(N, Co, Ho, Wo, &rng, dev), *gx0 = nchw(N, C, H, W, NULL, dev);
        sp_tensor *gw0 = nchw(Co, C, k, k, NULL, dev), *gb0 = vec(Co, NULL, dev), *xx = as_layout(x, 1);
        CHECK_OK(sp_conv2d_backward(gx0, gw0, gb0, gy, x, w, s, s, p, p, p, p, 1, 1, 1));
        for (int lay = 1; lay < 8; lay++) {
            sp_tensor *xl = as_layout(x, lay & 1), *gyl = as_layout(gy, (lay >> 1) & 1), *gxl = as_layout(gx0, lay >> 2);
            sp_tensor *gw1 = nchw(Co, C, k, k, NULL, dev), *gb1 = vec(Co, NULL, dev);
            sp_fill(gxl, 777.0);
            CHECK_OK(sp_conv2d_backward(gxl, gw1, gb1, gyl, xl, w, s, s, p, p, p, p, 1, 1, 1));
            double bx = 0, bw = 0, bb = 0, dx = maxdiff_t(gxl, gx0, &bx), dw = maxdiff_t(gw1, gw0, &bw),
                   db = maxdiff_t(gb1, gb0, &bb);
            int exact = kern == SP_CONV_SPORE || (kern == SP_CONV_AUTO && lay == 0);
            double tol = 2e-5;
            CHECK(exact ? dx == 0 && dw == 0 && db == 0
                        : dx <= tol * (1 + bx) && dw <= tol * (1 + bw) && db <= tol * (1 + bb),
                  "dev %d kernel %d case %zu backward layout x%d gout%d gx%d: %g %g %g", dev, kern, ci, lay & 1,
                  (lay >> 1) & 1, lay >> 2, dx, dw, db);
            sp_tensor_free(xl); sp_tensor_free(gyl); sp_tensor_free(gxl); sp_tensor_free(gw1); sp_tensor_free(gb1);
        }
        sp_tensor *gx1 = nchw(N, C, H, W, NULL, dev), *gw1 = nchw(Co, C, k, k, NULL, dev);
        CHECK_OK(sp_conv2d_backward(gx1, gw1, NULL, gy, xx, w, s, s, p, p, p, p, 1, 1, 1));
        if (kern == SP_CONV_SPORE)
            CHECK(same_bits(gx0, gx1), "dev %d kernel %d case %zu: backward of a channels-last x", dev, kern, ci);
        sp_tensor_free(gb0);
        sp_tensor *all[] = {x, w, b, ga, be, mu, va, res, gy, gx0, gx1, gw0, gw1, xx};
        FREE_ALL(all);
    }
}
SUITE(cl_conv) {
    int def = sp_cpu_conv_kernel();
    for (int k = SP_CONV_SPORE; k <= SP_CONV_AUTO; k++) {
        if (!sp_cpu_conv_kernel_available(k)) continue;
        CHECK_OK(sp_cpu_conv_set_kernel(k));
        conv_layouts(SP_DEVICE_CPU, k);
        conv_layouts(SP_DEVICE_SIM, k);
    }
    CHECK_OK(sp_cpu_conv_set_kernel(def));
}

/* max pooling (values and argmax, NaNs, windows reaching the padding), the global mean and
 * ReLU's backward: bit for bit the NCHW results, in every layout mix */
SUITE(cl_pool) {
    uint64_t rng = 31;
    /* k s pt pb pl pr over 2x20x9x8 */
    int cases[][6] = {{3, 2, 0, 1, 0, 1}, {3, 2, 1, 1, 1, 1}, {2, 2, 0, 0, 0, 0}, {3, 1, 2, 2, 2, 2}};
    for (int dev = 0; dev <= SP_DEVICE_SIM; dev += SP_DEVICE_SIM)
        for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
            int *q = cases[ci];
            int64_t N = 2, C = 20, H = 9, W = 8, Ho = (H + q[2] + q[3] - q[0]) / q[1] + 1,
                    Wo = (W + q[4] + q[5] - q[0]) / q[1] + 1;
            sp_tensor *x = nchw(N, C, H, W, &rng, dev), *y = nchw(N, C, Ho, Wo, NULL, dev), *a = NULL, *a1 = NULL;
            int64_t idx[4] = {1, 3, 2, 2}, idx2[4] = {0, 5, 4, 4};
            sp_tensor_set(x, idx, NAN);
            sp_tensor_set(x, idx2, 0.5); /* ties with a neighbour */
            int64_t i3[4] = {0, 5, 4, 5};
            sp_tensor_set(x, i3, 0.5);
            int64_t as[4] = {N, C, Ho, Wo};
            sp_tensor_new_on(&a, SP_INT32, 4, as, dev);
            sp_tensor_new_on(&a1, SP_INT32, 4, as, dev);
            CHECK_OK(sp_maxpool2d_forward(y, a, x, q[0], q[0], q[1], q[1], q[2], q[3], q[4], q[5]));
            for (int lay = 1; lay < 4; lay++) {
                sp_tensor *xx = as_layout(x, lay & 1), *yy = as_layout(y, lay >> 1);
                sp_fill(yy, 7);
                CHECK_OK(sp_maxpool2d_forward(yy, a1, xx, q[0], q[0], q[1], q[1], q[2], q[3], q[4], q[5]));
                int32_t *va = malloc(sp_tensor_nbytes(a)), *vb = malloc(sp_tensor_nbytes(a));
                sp_tensor_read(a, va, sp_tensor_nbytes(a));
                sp_tensor_read(a1, vb, sp_tensor_nbytes(a));
                CHECK(same_bits(yy, y) && !memcmp(va, vb, sp_tensor_nbytes(a)),
                      "dev %d maxpool case %zu layout %d: values and argmax as NCHW", dev, ci, lay);
                free(va); free(vb);
                sp_tensor_free(xx); sp_tensor_free(yy);
            }
            int64_t gs[2] = {N, C};
            sp_tensor *g0 = NULL, *g1 = NULL, *xx = as_layout(x, 1);
            sp_tensor_new_on(&g0, SP_FLOAT32, 2, gs, dev);
            sp_tensor_new_on(&g1, SP_FLOAT32, 2, gs, dev);
            sp_tensor_set(x, idx, 0.25); /* no NaN for the mean */
            sp_tensor_copy(xx, x);
            CHECK_OK(sp_global_avgpool_forward(g0, x));
            CHECK_OK(sp_global_avgpool_forward(g1, xx));
            float *v0 = values(g0), *v1 = values(g1);
            CHECK(!memcmp(v0, v1, sizeof(float) * (size_t)(N * C)), "dev %d global mean of a channels-last x", dev);
            free(v0); free(v1);
            /* ReLU's backward with channels-last grad_out and y */
            sp_tensor *gy = nchw(N, C, H, W, &rng, dev), *gx0 = nchw(N, C, H, W, NULL, dev), *gx1 = nchw(N, C, H, W, NULL, dev);
            sp_tensor *gyc = as_layout(gy, 1);
            CHECK_OK(sp_relu_backward(gx0, gy, x));
            CHECK_OK(sp_relu_backward(gx1, gyc, xx));
            CHECK(same_bits(gx0, gx1), "dev %d relu backward, channels-last grad_out and y", dev);
            sp_tensor *flat = NULL;
            int64_t fs[1] = {N * C * H * W};
            sp_tensor_new_on(&flat, SP_FLOAT32, 1, fs, dev);
            CHECK(sp_relu_backward(flat, gyc, xx) == SP_EINVAL && strstr(sp_last_error(), "relu_backward"),
                  "a channels-last y needs a grad_x of its shape: %s", sp_last_error());
            sp_tensor *all[] = {x, y, a, a1, g0, g1, xx, gy, gx0, gx1, gyc, flat};
            FREE_ALL(all);
        }
}

/* auto routes by layout: an all-NCHW call runs spore's kernels (their bits), a call with a
 * channels-last operand runs oneDNN's NHWC primitive (its bits) */
static sp_tensor *conv_under(int kern, const sp_tensor *x, const sp_tensor *w, int cl_out) {
    sp_cpu_conv_set_kernel(kern);
    int64_t s[4] = {sp_tensor_dim(x, 0), sp_tensor_dim(w, 0), sp_tensor_dim(x, 2), sp_tensor_dim(x, 3)};
    sp_tensor *o = NULL;
    if (cl_out) sp_tensor_empty_channels_last_on(&o, SP_FLOAT32, s, SP_DEVICE_CPU);
    else sp_tensor_empty_on(&o, SP_FLOAT32, 4, s, SP_DEVICE_CPU);
    CHECK_OK(sp_conv2d_forward(o, x, w, NULL, 1, 1, 1, 1, 1, 1, 1, 1, 1));
    return o;
}
SUITE(cl_conv_auto) {
    int def = sp_cpu_conv_kernel();
    CHECK(sp_cpu_conv_kernel_available(SP_CONV_AUTO), "auto is always available");
    uint64_t r = 3;
    sp_tensor *x = nchw(2, 16, 10, 9, &r, SP_DEVICE_CPU), *w = nchw(24, 16, 3, 3, &r, SP_DEVICE_CPU);
    sp_tensor *a0 = conv_under(SP_CONV_AUTO, x, w, 0), *s0 = conv_under(SP_CONV_SPORE, x, w, 0);
    CHECK(same_bits(a0, s0), "auto, NCHW: spore's kernels");
    sp_tensor *a1 = conv_under(SP_CONV_AUTO, x, w, 1), *s1 = conv_under(SP_CONV_SPORE, x, w, 1);
    if (sp_cpu_conv_kernel_available(SP_CONV_ONEDNN)) {
        sp_tensor *o1 = conv_under(SP_CONV_ONEDNN, x, w, 1);
        CHECK(same_bits(a1, o1) && !same_bits(a1, s1), "auto, channels-last out: oneDNN's NHWC primitive");
        sp_tensor_free(o1);
    } else
        CHECK(same_bits(a1, s1), "auto without oneDNN: spore's kernels");
    sp_tensor *all[] = {x, w, a0, s0, a1, s1};
    FREE_ALL(all);
    CHECK_OK(sp_cpu_conv_set_kernel(def));
}

/* oneDNN's Winograd F(4x4, 3x3) under auto, for channels-last 3x3 stride-1 layers with 64
 * or more output tiles: the forward (with a bias), grad_x, and grad_w / grad_b added to what
 * they held, against the double-precision reference within 3e-5 of the largest value (the
 * bound spore's own Winograd is held to, spec/engine/test_nn.c); the Winograd primitive
 * ran (sp_dnnl_wino_runs) where oneDNN has it for the shape, and with sp_wino_off the
 * direct primitive runs the same calls within the same bound. Channels that are not a
 * multiple of 16 and 32-tile layers take the direct kernels; they are checked alike. */
static double rel_to_ref(const sp_tensor *got, const sp_tensor *ref) {
    double big = 0, d = maxdiff_t(got, ref, &big);
    return d / (big > 0 ? big : 1);
}
/* One convolution case against the double-precision reference (cl_winograd, cl_gemm1x1):
 * x, w, optional bias, grad_out and the reference forward and backward (grad_w prefilled
 * with 0.5, grad_b with -0.25: the gradients add to what they held) */
typedef struct {
    int s, p;
    sp_tensor *x, *w, *b, *gy, *ref, *gxr, *gwr, *gbr, *xx, *gyl;
} conv_case;
static void conv_case_make(conv_case *k, int64_t N, int64_t C, int64_t H, int64_t W, int64_t Co, int64_t kk, int s,
                           int p, int bias, int gy_cl, uint64_t *rng) {
    int64_t Ho = (H + 2 * p - kk) / s + 1, Wo = (W + 2 * p - kk) / s + 1;
    k->s = s, k->p = p;
    k->x = nchw(N, C, H, W, rng, SP_DEVICE_CPU), k->w = nchw(Co, C, kk, kk, rng, SP_DEVICE_CPU);
    k->b = bias ? vec(Co, rng, SP_DEVICE_CPU) : NULL, k->gy = nchw(N, Co, Ho, Wo, rng, SP_DEVICE_CPU);
    k->ref = nchw(N, Co, Ho, Wo, NULL, SP_DEVICE_CPU), k->gxr = nchw(N, C, H, W, NULL, SP_DEVICE_CPU);
    k->gwr = nchw(Co, C, kk, kk, NULL, SP_DEVICE_CPU), k->gbr = vec(Co, NULL, SP_DEVICE_CPU);
    sp_fill(k->gwr, 0.5);
    sp_fill(k->gbr, -0.25);
    CHECK_OK(sp_ref_conv2d_forward(k->ref, k->x, k->w, k->b, s, s, p, p, p, p, 1, 1, 1));
    CHECK_OK(sp_ref_conv2d_backward(k->gxr, k->gwr, k->gbr, k->gy, k->x, k->w, s, s, p, p, p, p, 1, 1, 1));
    k->xx = as_layout(k->x, 1), k->gyl = as_layout(k->gy, gy_cl);
}
/* the forward, then the backward (grad_x / grad_w / grad_b where asked) on the channels-last
 * operands, into outputs that must be written (NaN) or added to; err: the four errors
 * relative to the reference's largest value; *fr / *br: what *counter grew by in each */
static void conv_case_run(const conv_case *k, int gx_on, int gw_on, int gb_on, const long *counter, double err[4],
                          long *fr, long *br) {
    int s = k->s, p = k->p;
    sp_tensor *oo = as_layout(k->ref, 1), *gxl = as_layout(k->gxr, 1), *gw = NULL, *gb = NULL;
    sp_tensor_clone(&gw, k->gwr, SP_FLOAT32);
    sp_tensor_clone(&gb, k->gbr, SP_FLOAT32);
    sp_fill(oo, NAN);
    sp_fill(gxl, NAN);
    sp_fill(gw, 0.5);
    sp_fill(gb, -0.25);
    long r0 = *counter;
    CHECK_OK(sp_conv2d_forward(oo, k->xx, k->w, k->b, s, s, p, p, p, p, 1, 1, 1));
    long r1 = *counter;
    CHECK_OK(sp_conv2d_backward(gx_on ? gxl : NULL, gw_on ? gw : NULL, gb_on ? gb : NULL, k->gyl, k->xx, k->w, s, s, p,
                                p, p, p, 1, 1, 1));
    *fr = r1 - r0, *br = *counter - r1;
    err[0] = rel_to_ref(oo, k->ref), err[1] = gx_on ? rel_to_ref(gxl, k->gxr) : 0;
    err[2] = gw_on ? rel_to_ref(gw, k->gwr) : 0, err[3] = gb_on ? rel_to_ref(gb, k->gbr) : 0;
    sp_tensor *f[] = {oo, gxl, gw, gb};
    for (size_t i = 0; i < 4; i++) sp_tensor_free(f[i]);
}
static void conv_case_free(conv_case *k) {
    sp_tensor *all[] = {k->x, k->w, k->b, k->gy, k->ref, k->gxr, k->gwr, k->gbr, k->xx, k->gyl};
    FREE_ALL(all);
}
SUITE(cl_winograd) {
    NEED_ONEDNN();
    int def = sp_cpu_conv_kernel(), off0 = sp_wino_off;
    CHECK_OK(sp_cpu_conv_set_kernel(SP_CONV_AUTO));
    /* oneDNN 2.6 has Winograd on AVX-512 only: elsewhere the direct primitives run these */
    __builtin_cpu_init();
    int wino_isa = __builtin_cpu_supports("avx512f");
    uint64_t rng = 5;
    /* N C H W Co pad bias expect-Winograd */
    int cases[][8] = {{4, 16, 16, 16, 32, 1, 1, 1}, {2, 32, 22, 22, 16, 1, 0, 1}, {4, 16, 18, 18, 16, 0, 1, 1},
                      {3, 20, 17, 15, 24, 1, 1, 0}, {2, 16, 14, 14, 16, 1, 0, 0}};
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        int *q = cases[ci];
        conv_case k;
        conv_case_make(&k, q[0], q[1], q[2], q[3], q[4], 3, 1, q[5], q[6], 1, &rng);
        for (int off = 0; off < 2; off++) {
            sp_wino_off = off;
            double e[4];
            long fr, br;
            conv_case_run(&k, 1, 1, q[6], &sp_dnnl_wino_runs, e, &fr, &br);
            CHECK(e[0] < 3e-5 && e[1] < 3e-5 && e[2] < 3e-5 && e[3] < 3e-5,
                  "case %zu wino_off %d: forward %g, grad_x %g, grad_w %g, grad_b %g of the largest", ci, off, e[0], e[1],
                  e[2], e[3]);
            CHECK(fr + br == (off || !q[7] || !wino_isa ? 0 : 3),
                  "case %zu wino_off %d: %ld Winograd executions (forward, grad_w, grad_x)", ci, off, fr + br);
        }
        conv_case_free(&k);
    }
    sp_wino_off = off0;
    CHECK_OK(sp_cpu_conv_set_kernel(def));
}

/* A bf16 fused forward (conv -> BN -> + residual -> ReLU) on channels-last operands under
 * auto (conv_dnnl.c): x rounded to bf16 by spore's loop (cvt_bf16, where the CPU has
 * AVX512_BF16) gives oneDNN's reorder's bits, NaN, infinities, float32 denormals, ties and the
 * masked tail included, threaded or not; the residual read in place by a binary-add post-op
 * and the in-place one (residual overlapping out: the post-op sum, where oneDNN may pick
 * another kernel) are each the convolution of the bf16-rounded operands in double, folded,
 * plus the residual, then ReLU, within 1e-5 of the largest value. Every output element is
 * written (NaN-filled). */
static float bf16_round(float v) { return sp_bf16_to_f32(sp_f32_to_bf16(v)); }
SUITE(cl_bf16_input_residual) {
    NEED_ONEDNN();
    int def = sp_cpu_conv_kernel(), off0 = sp_cvt_bf16_off;
    CHECK_OK(sp_cpu_conv_set_kernel(SP_CONV_AUTO));
    uint64_t rng = 23;
    /* N C H W Co k pad: a 1x1 residual layer, a 3x3 one, 3 channels (numel not a multiple of 32:
     * the masked tail), and one over CVT_PAR (2^16) elements (threaded) */
    int cases[][7] = {{2, 16, 7, 9, 64, 1, 0}, {1, 32, 10, 10, 32, 3, 1}, {2, 3, 15, 13, 16, 3, 1},
                      {2, 64, 32, 33, 64, 1, 0}};
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        int *q = cases[ci];
        int64_t N = q[0], C = q[1], H = q[2], W = q[3], Co = q[4], k = q[5];
        int p = q[6];
        int64_t Ho = H + 2 * p - k + 1, Wo = W + 2 * p - k + 1, nx = N * C * H * W, no = N * Co * Ho * Wo;
        sp_tensor *x = nchw(N, C, H, W, &rng, SP_DEVICE_CPU), *w = nchw(Co, C, k, k, &rng, SP_DEVICE_CPU);
        sp_tensor *ga = vec(Co, &rng, SP_DEVICE_CPU), *be = vec(Co, &rng, SP_DEVICE_CPU);
        sp_tensor *mu = vec(Co, &rng, SP_DEVICE_CPU), *va = vec(Co, NULL, SP_DEVICE_CPU);
        sp_tensor *res = nchw(N, Co, Ho, Wo, &rng, SP_DEVICE_CPU);
        sp_fill(va, 0.7);
        for (int special = 0; special < 2; special++) {
            if (special) { /* NaN, infinities, float32 denormals, bf16 ties, a huge value */
                float *vx = values(x);
                float sv[] = {NAN, INFINITY, -INFINITY, 1e-39f, -3e-39f, 1.00390625f, 1.01171875f, 3e38f};
                for (size_t i = 0; i < sizeof sv / sizeof *sv; i++) vx[(i * 7919) % nx] = sv[i];
                sp_tensor_write(x, vx, sizeof(float) * (size_t)nx);
                free(vx);
            }
            sp_tensor *xl = as_layout(x, 1), *rl = as_layout(res, 1);
            sp_tensor *o[3];
            long cr[3], rb[3];
            for (int run = 0; run < 3; run++) { /* spore's loop, oneDNN's reorder, then in place */
                sp_cvt_bf16_off = run == 1;
                o[run] = as_layout(res, 1);
                if (run < 2) sp_fill(o[run], NAN);
                long c0 = sp_cvt_bf16_runs, r0 = sp_dnnl_resbin_runs;
                CHECK_OK(sp_conv2d_bn_forward_bf16(o[run], xl, w, NULL, ga, be, mu, va, 1e-3, run < 2 ? rl : o[run], 1,
                                                   1, 1, p, p, p, p, 1, 1, 1));
                cr[run] = sp_cvt_bf16_runs - c0, rb[run] = sp_dnnl_resbin_runs - r0;
            }
            sp_cvt_bf16_off = off0;
            int nat = sp_cpu_bf16_native();
            CHECK(cr[0] == nat && cr[1] == 0 && cr[2] == nat, "case %zu special %d: spore's rounding ran %ld, %ld, %ld times",
                  ci, special, cr[0], cr[1], cr[2]);
            /* oneDNN 2.6 runs bf16 convolutions natively only with AVX512_BF16 (elsewhere it may
             * decline them: spore's kernels run the layer, no post-op at all) */
            CHECK(rb[2] == 0 && (!nat || (rb[0] == 1 && rb[1] == 1)),
                  "case %zu special %d: binary residual ran %ld, %ld, %ld times", ci, special, rb[0], rb[1], rb[2]);
            CHECK(same_bits(o[0], o[1]), "case %zu special %d: spore's rounding gives oneDNN's reorder's bits", ci, special);
            double big2 = 0, d2 = maxdiff_t(o[2], o[0], &big2); /* oneDNN may pick another kernel for each */
            CHECK(d2 <= 1e-5 * big2, "case %zu special %d: the binary residual vs the in-place sum: %g of %g", ci,
                  special, d2, big2);
            if (!special) { /* against the bf16-rounded operands' convolution in double */
                float *vx = values(x), *vw = values(w);
                for (int64_t i = 0; i < nx; i++) vx[i] = bf16_round(vx[i]);
                for (int64_t i = 0; i < Co * C * k * k; i++) vw[i] = bf16_round(vw[i]);
                sp_tensor *xr = nchw(N, C, H, W, NULL, SP_DEVICE_CPU), *wr = nchw(Co, C, k, k, NULL, SP_DEVICE_CPU);
                sp_tensor *ref = nchw(N, Co, Ho, Wo, NULL, SP_DEVICE_CPU);
                sp_tensor_write(xr, vx, sizeof(float) * (size_t)nx);
                sp_tensor_write(wr, vw, sizeof(float) * (size_t)(Co * C * k * k));
                CHECK_OK(sp_ref_conv2d_forward(ref, xr, wr, NULL, 1, 1, p, p, p, p, 1, 1, 1));
                float *vr = values(ref), *vres = values(res), *vg = values(ga), *vb = values(be), *vm = values(mu);
                for (int run = 0; run < 3; run += 2) {
                    float *got = values(o[run]);
                    double d = 0, big = 0;
                    for (int64_t i = 0; i < no; i++) {
                        int64_t ch = (i / (Ho * Wo)) % Co;
                        double inv = 1.0 / sqrt(0.7 + 1e-3), y = (vr[i] - vm[ch]) * inv * vg[ch] + vb[ch] + vres[i];
                        y = y > 0 ? y : 0;
                        d = isnan(got[i]) ? INFINITY : fmax(d, fabs(y - got[i]));
                        big = fmax(big, fabs(y));
                    }
                    CHECK(d <= 1e-5 * big, "case %zu run %d: fused bf16 forward vs the reference: %g of %g", ci, run, d,
                          big);
                    free(got);
                }
                free(vx); free(vw); free(vr); free(vres); free(vg); free(vb); free(vm);
                sp_tensor *f[] = {xr, wr, ref};
                FREE_ALL(f);
            }
            sp_tensor *f[] = {xl, rl, o[0], o[1], o[2]};
            FREE_ALL(f);
        }
        sp_tensor *all[] = {x, w, ga, be, mu, va, res};
        FREE_ALL(all);
    }
    CHECK_OK(sp_cpu_conv_set_kernel(def));
}

/* sp_add_relu_backward: grad_x = (a + b) * (y > 0), against a naive loop on the values read
 * back (the float sum, then the 0/1 mask: NaN and infinities through, -0 as the product
 * gives) bit for bit, in every layout mix (one order: the fused kernel; mixed: the add and
 * relu_backward), in place, on a 2-D tensor, on the CPU and sim; bad arguments refused by name */
SUITE(cl_add_relu_backward) {
    uint64_t rng = 41;
    int64_t shapes[][4] = {{2, 5, 7, 9}, {2, 64, 96, 96}}; /* the second over SP_NN_PAR_MIN: threaded */
    for (int dev = 0; dev <= SP_DEVICE_SIM; dev += SP_DEVICE_SIM)
        for (int si = 0; si < 2; si++) {
            int64_t *q = shapes[si];
            sp_tensor *a = nchw(q[0], q[1], q[2], q[3], &rng, dev), *b = nchw(q[0], q[1], q[2], q[3], &rng, dev);
            sp_tensor *y = nchw(q[0], q[1], q[2], q[3], &rng, dev);
            int64_t n = sp_tensor_numel(a);
            float *va = values(a), *vb = values(b), *vy = values(y);
            va[3] = NAN, va[4] = INFINITY, vb[4] = -INFINITY, va[5] = INFINITY, vy[5] = -1, vy[6] = 0, vy[7] = -0.0f;
            vy[3] = 1, vy[4] = 1;
            sp_tensor_write(a, va, sizeof(float) * (size_t)n);
            sp_tensor_write(b, vb, sizeof(float) * (size_t)n);
            sp_tensor_write(y, vy, sizeof(float) * (size_t)n);
            float *want = malloc(sizeof(float) * (size_t)n);
            for (int64_t i = 0; i < n; i++) {
                float sum = va[i] + vb[i];
                want[i] = sum * (vy[i] > 0.0f ? 1.0f : 0.0f);
            }
            for (int lay = 0; lay < 16; lay++) {
                sp_tensor *al = as_layout(a, lay & 1), *bl = as_layout(b, (lay >> 1) & 1);
                sp_tensor *yl = as_layout(y, (lay >> 2) & 1), *gl = as_layout(y, lay >> 3);
                sp_fill(gl, 777.0);
                CHECK_OK(sp_add_relu_backward(gl, al, bl, yl));
                float *got = values(gl);
                CHECK(!memcmp(got, want, sizeof(float) * (size_t)n), "dev %d shape %d layout a%d b%d y%d gx%d: bits",
                      dev, si, lay & 1, (lay >> 1) & 1, (lay >> 2) & 1, lay >> 3);
                free(got);
                if (lay == 0 || lay == 15) { /* in place: grad_x is a */
                    CHECK_OK(sp_add_relu_backward(al, al, bl, yl));
                    got = values(al);
                    CHECK(!memcmp(got, want, sizeof(float) * (size_t)n), "dev %d shape %d layout %d in place", dev, si,
                          lay);
                    free(got);
                }
                sp_tensor_free(al); sp_tensor_free(bl); sp_tensor_free(yl); sp_tensor_free(gl);
            }
            free(va); free(vb); free(vy); free(want);
            sp_tensor_free(a); sp_tensor_free(b); sp_tensor_free(y);
        }
    /* any rank (contiguous); refusals */
    int64_t s2[2] = {3, 4}, s3[2] = {4, 4};
    sp_tensor *a = NULL, *b = NULL, *y = NULL, *g = NULL, *bad = NULL, *iy = NULL;
    sp_tensor_new(&a, SP_FLOAT32, 2, s2); sp_tensor_new(&b, SP_FLOAT32, 2, s2);
    sp_tensor_new(&y, SP_FLOAT32, 2, s2); sp_tensor_new(&g, SP_FLOAT32, 2, s2);
    sp_tensor_new(&bad, SP_FLOAT32, 2, s3); sp_tensor_new(&iy, SP_INT32, 2, s2);
    sp_rand_uniform(a, -1, 1, &rng); sp_rand_uniform(b, -1, 1, &rng); sp_rand_uniform(y, -1, 1, &rng);
    CHECK_OK(sp_add_relu_backward(g, a, b, y));
    const float *pa = sp_tensor_data(a), *pb = sp_tensor_data(b), *py = sp_tensor_data(y), *pg = sp_tensor_data(g);
    int ok = 1;
    for (int i = 0; i < 12; i++) ok &= pg[i] == (py[i] > 0 ? pa[i] + pb[i] : (pa[i] + pb[i]) * 0.0f);
    CHECK(ok, "2-D: the naive values");
    CHECK(sp_add_relu_backward(g, a, bad, y) == SP_EINVAL && strstr(sp_last_error(), "add_relu_backward") &&
              strstr(sp_last_error(), "b has 16 elements"),
          "a size mismatch names b: %s", sp_last_error());
    CHECK(sp_add_relu_backward(g, a, b, iy) == SP_EINVAL && strstr(sp_last_error(), "y must be float32"),
          "an int32 y is refused by name: %s", sp_last_error());
    CHECK(sp_add_relu_backward(g, NULL, b, y) == SP_EINVAL && strstr(sp_last_error(), "add_relu_backward"),
          "NULL refused: %s", sp_last_error());
    sp_tensor *all[] = {a, b, y, g, bad, iy};
    FREE_ALL(all);
}

/* 1x1 stride-1 layers on channels-last operands as oneDNN sgemm calls (conv_dnnl.c): the
 * forward of a widening layer (Co >= 4C), grad_x (overwritten: it starts as NaN) and grad_w
 * (added to what it held) against the double-precision reference within 3e-5 of the largest
 * value, under auto and onednn, with the count of GEMMs each call made; with sp_gemm1x1_off,
 * with a bias, padding, a stride or an NCHW operand the convolution primitives run the same
 * calls (no GEMM) within the same bound; spore's own kernels make none. */
SUITE(cl_gemm1x1) {
    NEED_ONEDNN();
    int def = sp_cpu_conv_kernel(), off0 = sp_gemm1x1_off;
    uint64_t rng = 9;
    /* N C H W Co stride pad bias grad_x grad_w gout-NCHW; then the GEMMs expected: forward, backward */
    int cases[][13] = {
        {2, 40, 7, 9, 160, 1, 0, 0, 1, 1, 0, 1, 2}, /* widening: all three */
        {3, 48, 5, 6, 12, 1, 0, 0, 1, 1, 0, 0, 2},  /* narrowing: the forward stays a primitive */
        {1, 8, 3, 3, 32, 1, 0, 0, 0, 1, 0, 1, 1},   /* grad_w only */
        {2, 24, 4, 5, 24, 1, 0, 0, 1, 0, 0, 0, 1},  /* grad_x only */
        {2, 16, 6, 6, 64, 1, 0, 1, 1, 1, 0, 0, 0},  /* a bias (and its gradient): primitives */
        {2, 16, 6, 6, 64, 1, 1, 0, 1, 1, 0, 0, 0},  /* padded */
        {2, 16, 8, 8, 64, 2, 0, 0, 1, 1, 0, 0, 0},  /* strided */
        {2, 16, 6, 7, 64, 1, 0, 0, 1, 1, 1, 1, 0}}; /* grad_out NCHW: the backward's primitive */
    for (int kern = SP_CONV_SPORE; kern <= SP_CONV_AUTO; kern++) {
        CHECK_OK(sp_cpu_conv_set_kernel(kern));
        for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
            int *q = cases[ci];
            conv_case k;
            conv_case_make(&k, q[0], q[1], q[2], q[3], q[4], 1, q[5], q[6], q[7], !q[10], &rng);
            for (int off = 0; off < 2; off++) {
                sp_gemm1x1_off = off;
                double e[4];
                long fr, br;
                conv_case_run(&k, q[8], q[9], q[7], &sp_dnnl_gemm_runs, e, &fr, &br);
                CHECK(e[0] < 3e-5 && e[1] < 3e-5 && e[2] < 3e-5 && e[3] < 3e-5,
                      "kernel %d case %zu gemm_off %d: forward %g, grad_x %g, grad_w %g, grad_b %g of the largest", kern,
                      ci, off, e[0], e[1], e[2], e[3]);
                int on = !off && kern != SP_CONV_SPORE;
                CHECK(fr == (on ? q[11] : 0) && br == (on ? q[12] : 0),
                      "kernel %d case %zu gemm_off %d: %ld forward and %ld backward GEMMs", kern, ci, off, fr, br);
            }
            conv_case_free(&k);
        }
    }
    sp_gemm1x1_off = off0;
    CHECK_OK(sp_cpu_conv_set_kernel(def));
}

/* The eval-mode conv -> BN [-> + residual] [-> ReLU] of 1x1 GEMM layers (conv_dnnl.c's
 * gemm_eval: layers with a residual, and widening ones; narrowing ones without a residual
 * keep the primitive): against the reference convolution with the fold, residual and ReLU
 * in double, within 3e-5 of the largest value, over three calls (w read as it is, then
 * kept transposed, then from the cache: the last two bit for bit alike), and again after
 * w is rewritten (the kept copy must not be used); GEMM counts as expected; NaN-filled
 * outputs, so every element is written. */
SUITE(cl_gemm1x1_eval) {
    NEED_ONEDNN();
    int def = sp_cpu_conv_kernel();
    CHECK_OK(sp_cpu_conv_set_kernel(SP_CONV_AUTO));
    uint64_t rng = 13;
    /* N C H W Co residual relu GEMM-expected */
    int cases[][8] = {{2, 40, 7, 9, 160, 1, 1, 1}, {1, 48, 5, 5, 192, 0, 0, 1}, {3, 64, 4, 6, 32, 1, 0, 1},
                      {2, 64, 5, 4, 32, 0, 1, 0}, {1, 33, 300, 1, 132, 1, 1, 1}};
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        int *q = cases[ci];
        int64_t N = q[0], C = q[1], H = q[2], W = q[3], Co = q[4], n = N * Co * H * W;
        double eps = 1e-4;
        sp_tensor *x = nchw(N, C, H, W, &rng, SP_DEVICE_CPU), *w = nchw(Co, C, 1, 1, &rng, SP_DEVICE_CPU);
        sp_tensor *ga = vec(Co, &rng, SP_DEVICE_CPU), *be = vec(Co, &rng, SP_DEVICE_CPU), *mu = vec(Co, &rng, SP_DEVICE_CPU);
        sp_tensor *va = vec(Co, &rng, SP_DEVICE_CPU), *res = q[5] ? nchw(N, Co, H, W, &rng, SP_DEVICE_CPU) : NULL;
        float *pv = sp_tensor_data(va);
        for (int64_t o = 0; o < Co; o++) pv[o] = fabsf(pv[o]) + 0.1f;
        sp_tensor *xx = as_layout(x, 1), *rr = res ? as_layout(res, 1) : NULL;
        for (int round = 0; round < 2; round++) {
            if (round) sp_rand_uniform(w, -1, 1, &rng); /* rewritten: the kept copy is stale */
            sp_tensor *conv = nchw(N, Co, H, W, NULL, SP_DEVICE_CPU);
            CHECK_OK(sp_ref_conv2d_forward(conv, x, w, NULL, 1, 1, 0, 0, 0, 0, 1, 1, 1));
            float *cv = values(conv), *rv = res ? values(res) : NULL;
            const float *g = sp_tensor_data(ga), *b = sp_tensor_data(be), *m = sp_tensor_data(mu);
            double *want = malloc(sizeof(double) * (size_t)n), big = 0;
            for (int64_t i = 0; i < n; i++) {
                int64_t o = (i / (H * W)) % Co;
                double a = g[o] / sqrt((double)pv[o] + eps), v = cv[i] * a + (b[o] - m[o] * a);
                if (rv) v += rv[i];
                if (q[6] && v < 0) v = 0;
                want[i] = v, big = fmax(big, fabs(v));
            }
            float *prev = NULL;
            for (int call = 0; call < 3; call++) {
                sp_tensor *oo = as_layout(conv, 1);
                sp_fill(oo, NAN);
                long r0 = sp_dnnl_gemm_runs;
                uint64_t h0, h1;
                size_t kb;
                sp_cpu_wcache_stats(&h0, &kb);
                CHECK_OK(sp_conv2d_bn_forward(oo, xx, w, NULL, ga, be, mu, va, eps, rr, q[6], 1, 1, 0, 0, 0, 0, 1, 1, 1));
                sp_cpu_wcache_stats(&h1, &kb);
                long runs = sp_dnnl_gemm_runs - r0;
                CHECK(h1 - h0 == (call == 2 ? 1u : 0u), "case %zu round %d call %d: %llu kept-weight hits", ci, round,
                      call, (unsigned long long)(h1 - h0));
                float *got = values(oo);
                double d = 0;
                for (int64_t i = 0; i < n; i++) d = isnan(got[i]) ? INFINITY : fmax(d, fabs(got[i] - want[i]));
                CHECK(d <= 3e-5 * big, "case %zu round %d call %d: %g of the largest", ci, round, call, d / big);
                CHECK(runs == q[7], "case %zu round %d call %d: %ld GEMMs", ci, round, call, runs);
                if (call == 2)
                    CHECK(!memcmp(got, prev, sizeof(float) * (size_t)n), "case %zu round %d: kept weights, bit for bit",
                          ci, round);
                free(prev);
                prev = got;
                sp_tensor_free(oo);
            }
            free(prev); free(cv); free(rv); free(want);
            sp_tensor_free(conv);
        }
        sp_tensor *all[] = {x, w, ga, be, mu, va, res, xx, rr};
        FREE_ALL(all);
    }
    CHECK_OK(sp_cpu_conv_set_kernel(def));
}

/* The 1x1 GEMM paths from several threads at once: threads 0 and 1 share the weights (the
 * transposed copy is kept and read concurrently), thread 2 has its own; each runs the eval
 * forward (with a residual) and the backward 12 times, every result bit for bit the
 * one-thread one. Under make SANITIZE=thread (OMP_NUM_THREADS=1, as libgomp's own
 * synchronisation is invisible to it) this is the kept-weights cache's race check. */
typedef struct {
    sp_tensor *x, *w, *ga, *be, *mu, *va, *res, *gy, *y0, *gx0, *gw0;
    int bad;
} g1_job;
static void g1_run(g1_job *j, sp_tensor *y, sp_tensor *gx, sp_tensor *gw) {
    sp_fill(gw, 0.25);
    if (sp_conv2d_bn_forward(y, j->x, j->w, NULL, j->ga, j->be, j->mu, j->va, 1e-4, j->res, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1) ||
        sp_conv2d_backward(gx, gw, NULL, j->gy, j->x, j->w, 1, 1, 0, 0, 0, 0, 1, 1, 1))
        j->bad++;
}
static int g1_same(sp_tensor *a, sp_tensor *b) {
    float *x = values(a), *y = values(b);
    int r = !memcmp(x, y, sp_tensor_nbytes(a));
    free(x); free(y);
    return r;
}
static void *g1_thread(void *arg) {
    g1_job *j = arg;
    sp_tensor *y = as_layout(j->y0, 1), *gx = as_layout(j->gx0, 1), *gw = NULL;
    sp_tensor_clone(&gw, j->gw0, SP_FLOAT32);
    for (int it = 0; it < 12; it++) {
        g1_run(j, y, gx, gw);
        if (!g1_same(y, j->y0) || !g1_same(gx, j->gx0) || !g1_same(gw, j->gw0)) j->bad++;
    }
    sp_tensor_free(y); sp_tensor_free(gx); sp_tensor_free(gw);
    return NULL;
}
SUITE(cl_gemm1x1_threads) {
    NEED_ONEDNN();
    int def = sp_cpu_conv_kernel();
    CHECK_OK(sp_cpu_conv_set_kernel(SP_CONV_AUTO));
    uint64_t rng = 71;
    int64_t N = 2, C = 48, H = 6, W = 7, Co = 192;
    sp_tensor *w[2] = {nchw(Co, C, 1, 1, &rng, SP_DEVICE_CPU), nchw(Co, C, 1, 1, &rng, SP_DEVICE_CPU)};
    g1_job jobs[3];
    long g0 = sp_dnnl_gemm_runs;
    for (int t = 0; t < 3; t++) {
        g1_job *j = &jobs[t];
        memset(j, 0, sizeof *j);
        sp_tensor *x = nchw(N, C, H, W, &rng, SP_DEVICE_CPU), *r = nchw(N, Co, H, W, &rng, SP_DEVICE_CPU);
        sp_tensor *g = nchw(N, Co, H, W, &rng, SP_DEVICE_CPU);
        j->x = as_layout(x, 1), j->res = as_layout(r, 1), j->gy = as_layout(g, 1);
        sp_tensor_free(x); sp_tensor_free(r); sp_tensor_free(g);
        j->w = w[t == 2];
        j->ga = vec(Co, &rng, SP_DEVICE_CPU), j->be = vec(Co, &rng, SP_DEVICE_CPU), j->mu = vec(Co, &rng, SP_DEVICE_CPU);
        j->va = vec(Co, &rng, SP_DEVICE_CPU);
        sp_binary_scalar(j->va, j->va, 2.0, SP_OP_ADD, 0);
        sp_tensor *y = nchw(N, Co, H, W, NULL, SP_DEVICE_CPU), *gx = nchw(N, C, H, W, NULL, SP_DEVICE_CPU);
        j->y0 = as_layout(y, 1), j->gx0 = as_layout(gx, 1), j->gw0 = nchw(Co, C, 1, 1, NULL, SP_DEVICE_CPU);
        sp_tensor_free(y); sp_tensor_free(gx);
        for (int k = 0; k < 3; k++) g1_run(j, j->y0, j->gx0, j->gw0); /* the third: kept weights */
    }
    pthread_t th[3];
    for (int t = 0; t < 3; t++) CHECK(pthread_create(&th[t], NULL, g1_thread, &jobs[t]) == 0, "thread %d", t);
    for (int t = 0; t < 3; t++) pthread_join(th[t], NULL);
    CHECK(sp_dnnl_gemm_runs - g0 == 3 * (3 + 12) * 3, "every call through the GEMMs (%ld)", sp_dnnl_gemm_runs - g0);
    for (int t = 0; t < 3; t++) {
        CHECK(jobs[t].bad == 0, "thread %d: %d of 12 concurrent runs differ from the one-thread run", t, jobs[t].bad);
        sp_tensor *all[] = {jobs[t].x, jobs[t].ga, jobs[t].be, jobs[t].mu, jobs[t].va, jobs[t].res, jobs[t].gy,
                            jobs[t].y0, jobs[t].gx0, jobs[t].gw0};
        FREE_ALL(all);
    }
    sp_tensor_free(w[0]); sp_tensor_free(w[1]);
    CHECK_OK(sp_cpu_conv_set_kernel(def));
}

/* BatchNorm (training and eval; + residual, ReLU), its backward (plain and through ReLU's
 * mask), ReLU's backward, add and the pools' backward on channels-last operands: against the
 * NCHW kernels (the NHWC sums run in another order: float rounding), on the CPU and sim */
SUITE(cl_batchnorm) {
    uint64_t rng = 17;
    for (int dev = 0; dev <= SP_DEVICE_SIM; dev += SP_DEVICE_SIM)
        for (int training = 0; training < 2; training++)
            for (int v = 0; v < 4; v++) {
                int res = v & 1, relu = v >> 1;
                int64_t N = 3, C = 24, H = 7, W = 9;
                sp_tensor *x = nchw(N, C, H, W, &rng, dev), *r = nchw(N, C, H, W, &rng, dev);
                sp_tensor *ga = vec(C, &rng, dev), *be = vec(C, &rng, dev), *mm[2], *mv[2], *sm[2], *si[2], *y[2];
                for (int i = 0; i < 2; i++) {
                    mm[i] = vec(C, NULL, dev), mv[i] = vec(C, NULL, dev), sm[i] = vec(C, NULL, dev), si[i] = vec(C, NULL, dev);
                    sp_fill(mm[i], 0.1);
                    sp_fill(mv[i], 2.0);
                }
                sp_binary_scalar(x, x, 0.5, SP_OP_ADD, 0); /* a mean away from 0 */
                y[0] = nchw(N, C, H, W, NULL, dev);
                y[1] = as_layout(y[0], 1);
                sp_tensor *xc = as_layout(x, 1), *rc = as_layout(r, 1);
                CHECK_OK(sp_batchnorm_act_forward(y[0], sm[0], si[0], x, ga, be, mm[0], mv[0], training, 1, 0.9, 1e-5,
                                                  res ? r : NULL, relu));
                CHECK_OK(sp_batchnorm_act_forward(y[1], sm[1], si[1], xc, ga, be, mm[1], mv[1], training, 1, 0.9, 1e-5,
                                                  res ? rc : NULL, relu));
                double big, d = maxdiff_t(y[1], y[0], &big);
                CHECK(d <= 2e-6 * (1 + big) && maxdiff_t(mm[1], mm[0], NULL) <= 1e-6 &&
                          maxdiff_t(mv[1], mv[0], NULL) <= 1e-5 && maxdiff_t(si[1], si[0], NULL) <= 1e-5,
                      "dev %d bn forward training %d res %d relu %d: %g", dev, training, res, relu, d);
                /* backward: plain (relu 0) or through the ReLU's mask */
                sp_tensor *g = nchw(N, C, H, W, &rng, dev), *gc = as_layout(g, 1);
                sp_tensor *gx0 = nchw(N, C, H, W, NULL, dev), *gx1 = as_layout(gx0, 1);
                sp_tensor *gg0 = vec(C, NULL, dev), *gb0 = vec(C, NULL, dev), *gg1 = vec(C, NULL, dev), *gb1 = vec(C, NULL, dev);
                if (relu) {
                    CHECK_OK(sp_batchnorm_relu_backward(gx0, gg0, gb0, g, y[0], x, ga, sm[0], si[0], training));
                    CHECK_OK(sp_batchnorm_relu_backward(gx1, gg1, gb1, gc, y[1], xc, ga, sm[0], si[0], training));
                } else {
                    CHECK_OK(sp_batchnorm_backward(gx0, gg0, gb0, g, x, ga, sm[0], si[0], training));
                    CHECK_OK(sp_batchnorm_backward(gx1, gg1, gb1, gc, xc, ga, sm[0], si[0], training));
                }
                double bx, bg, bb, dx = maxdiff_t(gx1, gx0, &bx), dg = maxdiff_t(gg1, gg0, &bg), db = maxdiff_t(gb1, gb0, &bb);
                CHECK(dx <= 1e-5 * (1 + bx) && dg <= 1e-5 * (1 + bg) && db <= 1e-5 * (1 + bb),
                      "dev %d bn backward training %d relu %d: %g %g %g", dev, training, relu, dx, dg, db);
                /* mixed layouts run on NCHW copies: the NCHW bits */
                sp_tensor *gx2 = nchw(N, C, H, W, NULL, dev), *gg2 = vec(C, NULL, dev), *gb2 = vec(C, NULL, dev);
                CHECK_OK(sp_batchnorm_backward(gx2, gg2, gb2, gc, x, ga, sm[0], si[0], training));
                sp_tensor *gx3 = nchw(N, C, H, W, NULL, dev), *gg3 = vec(C, NULL, dev), *gb3 = vec(C, NULL, dev);
                CHECK_OK(sp_batchnorm_backward(gx3, gg3, gb3, g, x, ga, sm[0], si[0], training));
                CHECK(same_bits(gx2, gx3) && same_bits(gg2, gg3), "dev %d bn backward, mixed layouts", dev);
                /* ReLU's backward and add, all channels-last: the NCHW bits */
                sp_tensor *rb0 = nchw(N, C, H, W, NULL, dev), *rb1 = as_layout(rb0, 1);
                CHECK_OK(sp_relu_backward(rb0, g, x));
                CHECK_OK(sp_relu_backward(rb1, gc, xc));
                CHECK(same_bits(rb0, rb1), "dev %d relu backward, all channels-last", dev);
                CHECK_OK(sp_binary(rb0, g, x, SP_OP_ADD_RELU));
                CHECK_OK(sp_binary(rb1, gc, xc, SP_OP_ADD_RELU));
                CHECK(same_bits(rb0, rb1), "dev %d add+relu, all channels-last", dev);
                sp_tensor *all[] = {x, r, ga, be, mm[0], mm[1], mv[0], mv[1], sm[0], sm[1], si[0], si[1], y[0], y[1],
                                    xc, rc, g, gc, gx0, gx1, gg0, gb0, gg1, gb1, gx2, gg2, gb2, gx3, gg3, gb3, rb0, rb1};
                FREE_ALL(all);
            }
    /* the pools' backward with channels-last grad_x and grad_out: the NCHW bits */
    for (int dev = 0; dev <= SP_DEVICE_SIM; dev += SP_DEVICE_SIM) {
        int64_t N = 2, C = 20, H = 9, W = 8, Ho = 4, Wo = 4;
        sp_tensor *x = nchw(N, C, H, W, &rng, dev), *y = nchw(N, C, Ho, Wo, NULL, dev), *a = NULL;
        int64_t as[4] = {N, C, Ho, Wo};
        sp_tensor_new_on(&a, SP_INT32, 4, as, dev);
        CHECK_OK(sp_maxpool2d_forward(y, a, x, 3, 3, 2, 2, 0, 1, 0, 1));
        sp_tensor *gy = nchw(N, C, Ho, Wo, &rng, dev), *gyc = as_layout(gy, 1);
        sp_tensor *gx0 = nchw(N, C, H, W, NULL, dev), *gx1 = as_layout(gx0, 1), *gx2 = nchw(N, C, H, W, NULL, dev);
        CHECK_OK(sp_maxpool2d_backward(gx0, gy, a));
        CHECK_OK(sp_maxpool2d_backward(gx1, gyc, a));
        CHECK_OK(sp_maxpool2d_backward(gx2, gyc, a));
        CHECK(same_bits(gx0, gx1) && same_bits(gx0, gx2), "dev %d maxpool backward, channels-last", dev);
        int64_t gs[2] = {N, C};
        sp_tensor *g2 = NULL;
        sp_tensor_new_on(&g2, SP_FLOAT32, 2, gs, dev);
        sp_rand_uniform(g2, -1, 1, &rng);
        CHECK_OK(sp_global_avgpool_backward(gx0, g2));
        CHECK_OK(sp_global_avgpool_backward(gx1, g2));
        CHECK(same_bits(gx0, gx1), "dev %d global mean backward, channels-last", dev);
        sp_tensor *all[] = {x, y, a, gy, gyc, gx0, gx1, gx2, g2};
        FREE_ALL(all);
    }
}

/* The channels-last loops that run on libgomp's pool above SP_NN_PAR_MIN elements (norm.c,
 * pool.c, act.c, elementwise.c) and the flat momentum update above SP_NN_PAR_BIG: the same
 * bits on one thread and on two, and against NCHW / a naive loop in double. */
#include <omp.h>
SUITE(cl_threads) {
    uint64_t rng = 23;
    int64_t N = 2, C = 72, H = 96, W = 96, M = N * H * W; /* 1.3M elements */
    int saved = omp_get_max_threads();
    sp_tensor *x = nchw(N, C, H, W, &rng, SP_DEVICE_CPU), *g = nchw(N, C, H, W, &rng, SP_DEVICE_CPU);
    sp_binary_scalar(x, x, 0.75, SP_OP_ADD, 0);
    sp_tensor *xc = as_layout(x, 1), *gc = as_layout(g, 1), *ga = vec(C, &rng, 0), *be = vec(C, &rng, 0);
    sp_tensor *y[2], *sm[2], *si[2], *mm[2], *mv[2], *gx[2], *gg[2], *gb[2], *rb[2], *ad[2], *po[2], *pa[2], *pg[2];
    int64_t ps[4] = {N, C, H / 2, W / 2};
    for (int t = 0; t < 2; t++) {
        omp_set_num_threads(t + 1);
        y[t] = as_layout(x, 1), gx[t] = as_layout(x, 1), rb[t] = as_layout(x, 1), ad[t] = as_layout(x, 1);
        sm[t] = vec(C, NULL, 0), si[t] = vec(C, NULL, 0), mm[t] = vec(C, NULL, 0), mv[t] = vec(C, NULL, 0);
        gg[t] = vec(C, NULL, 0), gb[t] = vec(C, NULL, 0);
        sp_fill(mm[t], 0); sp_fill(mv[t], 1); sp_fill(gg[t], 0); sp_fill(gb[t], 0);
        CHECK_OK(sp_batchnorm_act_forward(y[t], sm[t], si[t], xc, ga, be, mm[t], mv[t], 1, 1, 0.9, 1e-5, NULL, 1));
        CHECK_OK(sp_batchnorm_relu_backward(gx[t], gg[t], gb[t], gc, y[t], xc, ga, sm[t], si[t], 1));
        CHECK_OK(sp_relu_backward(rb[t], gc, y[t]));
        CHECK_OK(sp_binary(ad[t], gc, xc, SP_OP_ADD_RELU));
        po[t] = NULL, pa[t] = NULL, pg[t] = as_layout(x, 1);
        sp_tensor_empty_channels_last_on(&po[t], SP_FLOAT32, ps, 0);
        sp_tensor_new_on(&pa[t], SP_INT32, 4, ps, 0);
        CHECK_OK(sp_maxpool2d_forward(po[t], pa[t], xc, 3, 3, 2, 2, 1, 0, 1, 0));
        sp_tensor *pgo = as_layout(po[t], 1);
        CHECK_OK(sp_maxpool2d_backward(pg[t], pgo, pa[t]));
        sp_tensor_free(pgo);
    }
    omp_set_num_threads(saved);
    CHECK(same_bits(y[0], y[1]) && same_bits(sm[0], sm[1]) && same_bits(si[0], si[1]) && same_bits(mv[0], mv[1]),
          "bn forward: one thread and two give the same bits");
    CHECK(same_bits(gx[0], gx[1]) && same_bits(gg[0], gg[1]) && same_bits(gb[0], gb[1]),
          "bn backward: one thread and two give the same bits");
    CHECK(same_bits(rb[0], rb[1]) && same_bits(ad[0], ad[1]), "relu backward, add+relu: the same bits");
    CHECK(same_bits(po[0], po[1]) && same_bits(pa[0], pa[1]) && same_bits(pg[0], pg[1]),
          "maxpool forward and backward: the same bits");
    /* the statistics against a naive double loop over the NCHW values */
    float *xv = values(x), *smv = values(sm[1]), *siv = values(si[1]);
    double worst = 0;
    for (int64_t c = 0; c < C; c++) {
        double s = 0, q = 0;
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = 0; i < H * W; i++) s += xv[(n * C + c) * H * W + i];
        double mean = s / (double)M;
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = 0; i < H * W; i++) { double d = xv[(n * C + c) * H * W + i] - mean; q += d * d; }
        double inv = 1.0 / sqrt(q / (double)M + 1e-5);
        worst = fmax(worst, fmax(fabs(smv[c] - mean), fabs(siv[c] - inv) / inv));
    }
    CHECK(worst < 1e-6, "bn statistics against a naive double loop: %g", worst);
    free(xv); free(smv); free(siv);
    /* and the whole forward against the NCHW loops, to float rounding */
    sp_tensor *y0 = nchw(N, C, H, W, NULL, 0), *s0 = vec(C, NULL, 0), *i0 = vec(C, NULL, 0), *m0 = vec(C, NULL, 0),
              *v0 = vec(C, NULL, 0);
    sp_fill(m0, 0); sp_fill(v0, 1);
    CHECK_OK(sp_batchnorm_act_forward(y0, s0, i0, x, ga, be, m0, v0, 1, 1, 0.9, 1e-5, NULL, 1));
    double big, d = maxdiff_t(y[1], y0, &big);
    CHECK(d <= 2e-6 * (1 + big), "bn forward against NCHW: %g", d);
    /* momentum over 4.5M floats (above SP_NN_PAR_BIG) against a naive loop */
    int64_t vs[1] = {(int64_t)9 << 19};
    sp_tensor *p = NULL, *v = NULL, *gr = NULL;
    sp_tensor_new_on(&p, SP_FLOAT32, 1, vs, 0), sp_tensor_new_on(&v, SP_FLOAT32, 1, vs, 0);
    sp_tensor_new_on(&gr, SP_FLOAT32, 1, vs, 0);
    sp_rand_uniform(p, -1, 1, &rng), sp_rand_uniform(v, -1, 1, &rng), sp_rand_uniform(gr, -1, 1, &rng);
    float *p0 = values(p), *vv0 = values(v), *g0 = values(gr);
    CHECK_OK(sp_momentum_update(p, v, gr, 0.1, 0.9, 0.01, 2.0, 0));
    float *p1 = values(p), *v1 = values(v);
    int64_t bad = 0;
    for (int64_t i = 0; i < vs[0]; i++) {
        float gi = g0[i] * 0.5f + 0.01f * p0[i], vi = 0.9f * vv0[i] + gi, pi = p0[i] - 0.1f * vi;
        bad += v1[i] != vi || p1[i] != pi;
    }
    CHECK(bad == 0, "momentum update over 4.5M floats: %lld elements differ from the naive loop", (long long)bad);
    free(p0); free(vv0); free(g0); free(p1); free(v1);
    sp_tensor *all[] = {x, g, xc, gc, ga, be, y0, s0, i0, m0, v0, p, v, gr};
    FREE_ALL(all);
    for (int t = 0; t < 2; t++) {
        sp_tensor *own[] = {y[t], sm[t], si[t], mm[t], mv[t], gx[t], gg[t], gb[t], rb[t], ad[t], po[t], pa[t], pg[t]};
        for (size_t i = 0; i < sizeof own / sizeof own[0]; i++) sp_tensor_free(own[i]);
    }
}

/* conv_dnnl.c keeps weights in oneDNN's layout while their bytes are unchanged: after every
 * kind of write (each engine path, a view sharing the storage, the optimizer, a host pointer,
 * a new tensor in a freed one's place) the convolution must give what a fresh copy of the
 * weights gives, bit for bit; and an unchanged weight must really be served from the cache. */
static int conv_fresh_same(const sp_tensor *x, sp_tensor *w, int bf16) {
    int64_t s[4] = {sp_tensor_dim(x, 0), sp_tensor_dim(w, 0), sp_tensor_dim(x, 2), sp_tensor_dim(x, 3)};
    sp_tensor *o = NULL, *r = NULL, *wc = as_layout(w, 0); /* a new storage: never kept */
    sp_tensor_empty_channels_last_on(&o, SP_FLOAT32, s, SP_DEVICE_CPU);
    sp_tensor_empty_channels_last_on(&r, SP_FLOAT32, s, SP_DEVICE_CPU);
    sp_status a = bf16 ? sp_conv2d_forward_bf16(o, x, w, NULL, 1, 1, 1, 1, 1, 1, 1, 1, 1)
                       : sp_conv2d_forward(o, x, w, NULL, 1, 1, 1, 1, 1, 1, 1, 1, 1);
    sp_status b = bf16 ? sp_conv2d_forward_bf16(r, x, wc, NULL, 1, 1, 1, 1, 1, 1, 1, 1, 1)
                       : sp_conv2d_forward(r, x, wc, NULL, 1, 1, 1, 1, 1, 1, 1, 1, 1);
    int same = !a && !b && same_bits(o, r);
    sp_tensor_free(o), sp_tensor_free(r), sp_tensor_free(wc);
    return same;
}
/* three calls (a miss, the keeping one, a hit), each as a fresh copy gives */
static int conv_thrice(const sp_tensor *x, sp_tensor *w, int bf16) {
    int ok = 1;
    for (int i = 0; i < 3; i++) ok &= conv_fresh_same(x, w, bf16);
    return ok;
}
SUITE(cl_weight_cache) {
    if (!sp_cpu_conv_kernel_available(SP_CONV_ONEDNN)) { CHECK(1, "no oneDNN: nothing is kept"); return; }
    int def = sp_cpu_conv_kernel();
    sp_cpu_conv_set_kernel(SP_CONV_AUTO);
    uint64_t r = 41, h0, h1;
    size_t b0, b1;
    int64_t Co = 24, C = 16, n = Co * C * 9, fs[1] = {n + 100}, ws[4] = {Co, C, 3, 3}, wst[4] = {C * 9, 9, 3, 1};
    sp_tensor *x0 = nchw(2, C, 10, 9, &r, SP_DEVICE_CPU), *x = as_layout(x0, 1);
    /* the weight: a view at offset 37 of a flat buffer, as the optimizer's flat state holds it */
    sp_tensor *flat = NULL, *w = NULL, *other = NULL;
    sp_tensor_new_on(&flat, SP_FLOAT32, 1, fs, SP_DEVICE_CPU);
    sp_rand_uniform(flat, -1, 1, &r);
    CHECK_OK(sp_tensor_view(&w, flat, 4, ws, wst, 37));
    sp_cpu_wcache_stats(&h0, &b0);
    CHECK(conv_thrice(x, w, 0), "unchanged weights");
    sp_cpu_wcache_stats(&h1, &b1);
    CHECK(h1 > h0 && b1 > b0, "the third call is served from the kept copy (hits %llu -> %llu, bytes %zu -> %zu)",
          (unsigned long long)h0, (unsigned long long)h1, b0, b1);
    CHECK_OK(sp_fill(w, 0.25));
    CHECK(conv_thrice(x, w, 0), "after sp_fill");
    float *buf = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++) buf[i] = (float)((i % 13) - 6) / 8.0f;
    CHECK_OK(sp_tensor_write(w, buf, sizeof(float) * (size_t)n));
    CHECK(conv_thrice(x, w, 0), "after sp_tensor_write");
    CHECK_OK(sp_binary_scalar(w, w, -1.5, SP_OP_MUL, 0));
    CHECK(conv_thrice(x, w, 0), "after an in-place product");
    int64_t at[4] = {5, 7, 1, 2};
    CHECK_OK(sp_tensor_set(w, at, 9.0));
    CHECK(conv_thrice(x, w, 0), "after sp_tensor_set");
    sp_tensor *src = nchw(Co, C, 3, 3, &r, SP_DEVICE_CPU);
    CHECK_OK(sp_tensor_copy(w, src));
    CHECK(conv_thrice(x, w, 0), "after sp_tensor_copy");
    /* the optimizer's update of the whole flat buffer (another handle on the storage) */
    sp_tensor *mom = NULL, *gr = NULL;
    sp_tensor_new_on(&mom, SP_FLOAT32, 1, fs, SP_DEVICE_CPU), sp_tensor_new_on(&gr, SP_FLOAT32, 1, fs, SP_DEVICE_CPU);
    sp_rand_uniform(gr, -1, 1, &r);
    sp_fill(mom, 0);
    CHECK_OK(sp_momentum_update(flat, mom, gr, 0.5, 0.9, 0.0, 1.0, 0));
    CHECK(conv_thrice(x, w, 0), "after a momentum update of the flat buffer");
    /* a write through another view that overlaps only part of the weight */
    int64_t os[1] = {50}, ost[1] = {1};
    CHECK_OK(sp_tensor_view(&other, flat, 1, os, ost, 30));
    CHECK_OK(sp_fill(other, -3.0));
    CHECK(conv_thrice(x, w, 0), "after a write through an overlapping view");
    /* bfloat16 and float32 on one weight, interleaved */
    CHECK(conv_fresh_same(x, w, 1) && conv_fresh_same(x, w, 0) && conv_fresh_same(x, w, 1) &&
              conv_fresh_same(x, w, 0) && conv_fresh_same(x, w, 1),
          "bf16 and float32 interleaved");
    CHECK_OK(sp_binary_scalar(w, w, 0.5, SP_OP_ADD, 0));
    CHECK(conv_thrice(x, w, 1), "bf16 after a write");
    /* a host pointer: nothing is kept from then on, and its writes show at once */
    float *hp = sp_tensor_data(flat);
    CHECK(conv_thrice(x, w, 0), "after sp_tensor_data");
    for (int64_t i = 0; i < n + 100; i++) hp[i] = -hp[i];
    CHECK(conv_thrice(x, w, 0), "after writes through the host pointer");
    /* a freed weight's place taken by a new tensor with other values */
    sp_tensor *w2 = nchw(Co, C, 3, 3, &r, SP_DEVICE_CPU);
    CHECK(conv_thrice(x, w2, 0), "a separate weight");
    sp_tensor_free(w2);
    sp_tensor *w3 = nchw(Co, C, 3, 3, &r, SP_DEVICE_CPU);
    CHECK(conv_thrice(x, w3, 0), "a new weight in a freed one's place");
    size_t b2;
    sp_cpu_wcache_stats(&h1, &b2);
    sp_tensor_free(w3);
    sp_cpu_wcache_stats(&h1, &b1);
    CHECK(b1 < b2, "a freed weight's kept copy goes with it (%zu -> %zu bytes)", b2, b1);
    free(buf);
    sp_tensor *all[] = {x0, x, flat, w, other, src, mom, gr};
    FREE_ALL(all);
    CHECK_OK(sp_cpu_conv_set_kernel(def));
}

/* bfloat16 activations (O2 inference, spore.nn.chain): sp_conv2d_bn_forward_bf16 with x, out
 * and residual bfloat16 channels-last, on the cpu and sim. The reference is the same call on
 * float32 channels-last copies of the bf16 operands (exact), its result rounded to bf16 nearest
 * even. With bf16 out oneDNN may run another kernel (another summation order), so every element
 * must be within one bf16 ulp of the rounded reference, and 90 % or more equal to it. Runs: all
 * bf16 (the binary residual), bf16 x with float32 out and residual (the numbers of a float32 x
 * the conv would round anyway: the same bits), the residual summed in place (out is the bf16
 * residual), no residual and no ReLU; conv_kernel "spore" (oneDNN declines: float32 copies,
 * spore's kernels, the result rounded: the bits of that path run by hand; also in a build
 * without oneDNN); refusals by name. */
static sp_tensor *dl_copy(const sp_tensor *t, int dev, int dtype, int cl) {
    int64_t s[4];
    sp_tensor_shape(t, s);
    sp_tensor *o = NULL;
    if (cl) sp_tensor_empty_channels_last_on(&o, dtype, s, dev);
    else sp_tensor_empty_on(&o, dtype, 4, s, dev);
    sp_tensor_copy(o, t);
    return o;
}
static float *fvalues(const sp_tensor *t) { /* any dtype and layout, as float32 NCHW on the CPU */
    sp_tensor *f = dl_copy(t, SP_DEVICE_CPU, SP_FLOAT32, 0);
    float *v = values(f);
    sp_tensor_free(f);
    return v;
}
/* got vs want (want bf16-representable): every element within one bf16 ulp of want, *eq of them equal */
static int within_ulp(const float *got, const float *want, int64_t n, int64_t *eq) {
    int ok = 1;
    *eq = 0;
    for (int64_t i = 0; i < n; i++) {
        if (got[i] == want[i] || (isnan(got[i]) && isnan(want[i]))) { (*eq)++; continue; }
        int e;
        frexpf(want[i], &e);
        float ulp = ldexpf(1.0f, e - 8); /* bf16: 8 significant bits */
        if (!(fabsf(got[i] - want[i]) <= ulp)) ok = 0;
    }
    return ok;
}
SUITE(cl_bf16_activations) {
    int def = sp_cpu_conv_kernel(), dn = sp_cpu_conv_kernel_available(SP_CONV_ONEDNN);
    uint64_t rng = 57;
    /* N C H W Co k pad stride: a 1x1 residual layer, a 3x3, a strided 3x3, 3 input channels, and
     * 1x1 maps (x, out: channels-last and contiguous alike; ResNet's last layers on small images) */
    int cases[][8] = {{2, 16, 7, 9, 64, 1, 0, 1}, {1, 32, 10, 10, 32, 3, 1, 1}, {2, 64, 14, 14, 128, 3, 1, 2},
                      {2, 3, 15, 13, 16, 3, 1, 1}, {2, 64, 1, 1, 128, 1, 0, 1}, {3, 32, 3, 3, 64, 3, 0, 1}};
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        int *q = cases[ci];
        int64_t N = q[0], C = q[1], H = q[2], W = q[3], Co = q[4], k = q[5];
        int p = q[6], s = q[7];
        int64_t Ho = (H + 2 * p - k) / s + 1, Wo = (W + 2 * p - k) / s + 1, no = N * Co * Ho * Wo;
        sp_tensor *x = nchw(N, C, H, W, &rng, SP_DEVICE_CPU), *w = nchw(Co, C, k, k, &rng, SP_DEVICE_CPU);
        sp_tensor *ga = vec(Co, &rng, SP_DEVICE_CPU), *be = vec(Co, &rng, SP_DEVICE_CPU);
        sp_tensor *mu = vec(Co, &rng, SP_DEVICE_CPU), *va = vec(Co, NULL, SP_DEVICE_CPU);
        sp_tensor *res = nchw(N, Co, Ho, Wo, &rng, SP_DEVICE_CPU);
        sp_fill(va, 0.7);
        for (int dev = 0; dev <= SP_DEVICE_SIM; dev += SP_DEVICE_SIM) {
            sp_tensor *wd = dl_copy(w, dev, SP_FLOAT32, 0), *gd = NULL, *bd = NULL, *md = NULL, *vd = NULL;
            int64_t s1[1] = {Co};
            sp_tensor *pv[4] = {ga, be, mu, va}, **pd[4] = {&gd, &bd, &md, &vd};
            for (int i = 0; i < 4; i++) { sp_tensor_new_on(pd[i], SP_FLOAT32, 1, s1, dev); sp_tensor_copy(*pd[i], pv[i]); }
            sp_tensor *xb = dl_copy(x, dev, SP_BFLOAT16, 1), *rb = dl_copy(res, dev, SP_BFLOAT16, 1);
            sp_tensor *xf = dl_copy(xb, dev, SP_FLOAT32, 1), *rf = dl_copy(rb, dev, SP_FLOAT32, 1);
            for (int kern = 0; kern < 2; kern++) { /* oneDNN (auto), then spore's (the fallback) */
                if (kern == 0 && !dn) continue;
                CHECK_OK(sp_cpu_conv_set_kernel(kern == 0 ? SP_CONV_AUTO : SP_CONV_SPORE));
                for (int variant = 0; variant < 2; variant++) { /* + residual, ReLU; neither */
                    const sp_tensor *r32 = variant ? NULL : rf, *r16 = variant ? NULL : rb;
                    int relu = !variant;
                    sp_tensor *o32 = dl_copy(res, dev, SP_FLOAT32, 1), *ob = dl_copy(res, dev, SP_BFLOAT16, 1);
                    sp_fill(o32, NAN), sp_fill(ob, NAN);
                    CHECK_OK(sp_conv2d_bn_forward_bf16(o32, xf, wd, NULL, gd, bd, md, vd, 1e-3, r32, relu, s, s, p, p, p,
                                                       p, 1, 1, 1));
                    CHECK_OK(sp_conv2d_bn_forward_bf16(ob, xb, wd, NULL, gd, bd, md, vd, 1e-3, r16, relu, s, s, p, p, p,
                                                       p, 1, 1, 1));
                    sp_tensor *want16 = dl_copy(o32, SP_DEVICE_CPU, SP_BFLOAT16, 0);
                    float *want = fvalues(want16), *got = fvalues(ob);
                    int64_t eq = 0;
                    if (kern == 1) /* the fallback is the float32 path rounded: its bits */
                        CHECK(!memcmp(got, want, sizeof(float) * (size_t)no),
                              "case %zu dev %d variant %d: spore's kernels on bf16 activations give the rounded float32 "
                              "path's bits", ci, dev, variant);
                    else
                        CHECK(within_ulp(got, want, no, &eq) && eq * 10 >= no * 9,
                              "case %zu dev %d variant %d: bf16 out vs the rounded float32 out: %lld of %lld equal, "
                              "the rest within one bf16 ulp", ci, dev, variant, (long long)eq, (long long)no);
                    /* bf16 x, float32 out and residual: the conv rounds a float32 x to the same bf16 */
                    sp_tensor *om = dl_copy(res, dev, SP_FLOAT32, 1);
                    sp_fill(om, NAN);
                    CHECK_OK(sp_conv2d_bn_forward_bf16(om, xb, wd, NULL, gd, bd, md, vd, 1e-3, r32, relu, s, s, p, p, p,
                                                       p, 1, 1, 1));
                    CHECK(same_bits(om, o32), "case %zu dev %d kern %d variant %d: a bf16 x gives the float32 x's bits",
                          ci, dev, kern, variant);
                    if (!variant) { /* the residual summed in place: out is the bf16 residual */
                        sp_tensor *oi = dl_copy(rb, dev, SP_BFLOAT16, 1);
                        CHECK_OK(sp_conv2d_bn_forward_bf16(oi, xb, wd, NULL, gd, bd, md, vd, 1e-3, oi, 1, s, s, p, p, p,
                                                           p, 1, 1, 1));
                        float *gi = fvalues(oi);
                        CHECK(within_ulp(gi, want, no, &eq) && eq * 10 >= no * 9,
                              "case %zu dev %d kern %d: in-place bf16 residual: %lld of %lld equal", ci, dev, kern,
                              (long long)eq, (long long)no);
                        free(gi);
                        sp_tensor_free(oi);
                    }
                    free(want), free(got);
                    sp_tensor *f[] = {o32, ob, want16, om};
                    FREE_ALL(f);
                }
            }
            CHECK_OK(sp_cpu_conv_set_kernel(def));
            if (ci == 0) { /* refusals, by name */
                sp_tensor *xn = dl_copy(x, dev, SP_BFLOAT16, 0), *o = dl_copy(res, dev, SP_FLOAT32, 1);
                sp_status st = sp_conv2d_bn_forward_bf16(o, xn, wd, NULL, gd, bd, md, vd, 1e-3, NULL, 1, 1, 1, 0, 0, 0, 0,
                                                         1, 1, 1);
                CHECK(st == SP_EINVAL && strstr(sp_last_error(), "x is bfloat16") && strstr(sp_last_error(), "channels-last"),
                      "an NCHW bf16 x is refused by name: %s", sp_last_error());
                st = sp_conv2d_bn_forward(o, xb, wd, NULL, gd, bd, md, vd, 1e-3, NULL, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1);
                CHECK(st == SP_EINVAL && strstr(sp_last_error(), "conv2d_bn_forward: x must be float32, got bfloat16"),
                      "the float32 fused forward refuses a bf16 x: %s", sp_last_error());
                st = sp_conv2d_forward_bf16(o, xb, wd, NULL, 1, 1, 0, 0, 0, 0, 1, 1, 1);
                CHECK(st == SP_EINVAL && strstr(sp_last_error(), "x must be float32"),
                      "the plain bf16 conv refuses a bf16 x: %s", sp_last_error());
                sp_tensor *f[] = {xn, o};
                FREE_ALL(f);
            }
            sp_tensor *f[] = {wd, gd, bd, md, vd, xb, rb, xf, rf};
            FREE_ALL(f);
        }
        sp_tensor *all[] = {x, w, ga, be, mu, va, res};
        FREE_ALL(all);
    }
    { /* a bf16 residual sharing a float32 out's memory ([1,4,1,1]: contiguous and channels-last) */
        int64_t sx[4] = {1, 8, 1, 1}, sw[4] = {4, 8, 1, 1}, so[4] = {1, 4, 1, 1}, s1[1] = {4};
        sp_tensor *x = NULL, *w = NULL, *o = NULL, *v = NULL, *alias = NULL;
        CHECK_OK(sp_tensor_new_on(&x, SP_BFLOAT16, 4, sx, SP_DEVICE_CPU));
        CHECK_OK(sp_tensor_new_on(&w, SP_FLOAT32, 4, sw, SP_DEVICE_CPU));
        CHECK_OK(sp_tensor_new_on(&o, SP_FLOAT32, 4, so, SP_DEVICE_CPU));
        CHECK_OK(sp_tensor_new_on(&v, SP_FLOAT32, 1, s1, SP_DEVICE_CPU));
        sp_fill(v, 1.0);
        CHECK_OK(sp_tensor_adopt(&alias, SP_BFLOAT16, 4, so, sp_tensor_data(o), 8, NULL, NULL));
        sp_status st = sp_conv2d_bn_forward_bf16(o, x, w, NULL, v, v, v, v, 1e-3, alias, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1);
        CHECK(st == SP_EINVAL && strstr(sp_last_error(), "residual (bfloat16) overlaps out (float32)"),
              "a bf16 residual overlapping a float32 out is refused: %s", sp_last_error());
        sp_tensor *f[] = {alias, x, w, o, v};
        FREE_ALL(f);
    }
    CHECK_OK(sp_cpu_conv_set_kernel(def));
}

/* max pooling of bfloat16 channels-last x into bfloat16 out (O2 inference): the float32
 * kernel's values and argmax on the same (widened) values, bit for bit, NaN and infinities
 * among them, windows reaching the padding and not, 1x1 maps, on the cpu and sim; mixed dtypes
 * and an NCHW bf16 x refused by name */
SUITE(cl_maxpool_bf16) {
    uint64_t rng = 61;
    /* N C H W k s pad */
    int cases[][7] = {{2, 64, 16, 16, 3, 2, 1}, {1, 3, 7, 9, 2, 2, 0}, {2, 19, 5, 5, 3, 1, 1}, {3, 32, 1, 1, 1, 1, 0}};
    for (int dev = 0; dev <= SP_DEVICE_SIM; dev += SP_DEVICE_SIM)
        for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
            int *q = cases[ci];
            int64_t N = q[0], C = q[1], H = q[2], W = q[3];
            int k = q[4], s = q[5], p = q[6];
            int64_t Ho = (H + 2 * p - k) / s + 1, Wo = (W + 2 * p - k) / s + 1, no = N * C * Ho * Wo;
            sp_tensor *x = nchw(N, C, H, W, &rng, SP_DEVICE_CPU);
            float *vx = values(x);
            float sv[] = {NAN, INFINITY, -INFINITY, 3e38f};
            for (size_t i = 0; i < sizeof sv / sizeof *sv; i++) vx[(i * 101) % (N * C * H * W)] = sv[i];
            sp_tensor_write(x, vx, sizeof(float) * (size_t)(N * C * H * W));
            free(vx);
            sp_tensor *xb = dl_copy(x, dev, SP_BFLOAT16, 1), *xf = dl_copy(xb, dev, SP_FLOAT32, 1);
            int64_t os[4] = {N, C, Ho, Wo};
            sp_tensor *ob = NULL, *of = NULL, *ab = NULL, *af = NULL;
            CHECK_OK(sp_tensor_empty_channels_last_on(&ob, SP_BFLOAT16, os, dev));
            CHECK_OK(sp_tensor_empty_channels_last_on(&of, SP_FLOAT32, os, dev));
            CHECK_OK(sp_tensor_new_on(&ab, SP_INT32, 4, os, dev));
            CHECK_OK(sp_tensor_new_on(&af, SP_INT32, 4, os, dev));
            CHECK_OK(sp_maxpool2d_forward(of, af, xf, k, k, s, s, p, p, p, p));
            CHECK_OK(sp_maxpool2d_forward(ob, ab, xb, k, k, s, s, p, p, p, p));
            float *gb = fvalues(ob), *gf = fvalues(of);
            int32_t *ia = malloc(sizeof(int32_t) * (size_t)no), *ib = malloc(sizeof(int32_t) * (size_t)no);
            sp_tensor_read(ab, ib, sizeof(int32_t) * (size_t)no);
            sp_tensor_read(af, ia, sizeof(int32_t) * (size_t)no);
            int same = 1;
            for (int64_t i = 0; i < no; i++)
                if (!(gb[i] == gf[i] || (isnan(gb[i]) && isnan(gf[i]))) || ia[i] != ib[i]) same = 0;
            CHECK(same, "case %zu dev %d: bf16 max pooling gives the float32 kernel's values and argmax", ci, dev);
            if (ci == 0) {
                sp_tensor *xn = dl_copy(x, dev, SP_BFLOAT16, 0);
                sp_status st = sp_maxpool2d_forward(of, af, xb, k, k, s, s, p, p, p, p);
                CHECK(st == SP_EINVAL && strstr(sp_last_error(), "x is bfloat16 but out is float32"),
                      "mixed dtypes refused: %s", sp_last_error());
                st = sp_maxpool2d_forward(ob, ab, xn, k, k, s, s, p, p, p, p);
                CHECK(st == SP_EINVAL && strstr(sp_last_error(), "channels-last"), "an NCHW bf16 x refused: %s",
                      sp_last_error());
                sp_tensor_free(xn);
            }
            free(gb), free(gf), free(ia), free(ib);
            sp_tensor *f[] = {x, xb, xf, ob, of, ab, af};
            FREE_ALL(f);
        }
}
