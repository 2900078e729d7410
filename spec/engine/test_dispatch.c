/* test_dispatch.c — ops dispatch through the device kernel table: every op refuses
 * operands on different devices (cpu and sim) with a message naming the op and the
 * devices; ops on sim tensors give the cpu result; sp_tensor_resize in place and
 * reallocating; sp_tensor_data refuses sim memory. */
#include "check.h"
#include "core/internal.h" /* SP_DATA: a pointer into the sim arena, as a buggy host might hold */

#include <math.h>
#include <stdlib.h>
#include <string.h>

static sp_tensor *F(int dev, int nd, int64_t a, int64_t b, int64_t c, int64_t d) {
    int64_t s[4] = {a, b, c, d};
    sp_tensor *t = NULL;
    sp_tensor_new_on(&t, SP_FLOAT32, nd, s, dev);
    return t;
}
static sp_tensor *I32(int dev, int64_t n) {
    sp_tensor *t = NULL;
    sp_tensor_new_on(&t, SP_INT32, 1, &n, dev);
    return t;
}

/* st must be an error whose message names op and both devices */
static void mixed(const char *op, sp_status st) {
    const char *e = sp_last_error();
    CHECK(st != SP_OK && strstr(e, op) && strstr(e, "sim") && strstr(e, "cpu"),
          "%s with cpu and sim operands: status %d, message '%s'", op, st, e);
}

enum { C_ = SP_DEVICE_CPU, S_ = SP_DEVICE_SIM };

SUITE(dispatch_mixed_devices_refused) {
    uint64_t rng = 1;
    sp_tensor *a = F(C_, 2, 2, 3, 0, 0), *b = F(S_, 2, 2, 3, 0, 0), *o = F(C_, 2, 2, 3, 0, 0);
    mixed("add", sp_binary(o, a, b, SP_OP_ADD));
    mixed("mul", sp_binary_scalar(o, b, 2.0, SP_OP_MUL, 0));
    mixed("unary op", sp_unary(o, b, SP_UN_EXP));
    {
        sp_tensor *r = F(S_, 1, 2, 0, 0, 0);
        mixed("sum", sp_reduce_dim(r, a, SP_RED_SUM, 1, 0));
        sp_tensor_free(r);
    }
    {
        sp_tensor *m = F(C_, 2, 2, 2, 0, 0);
        mixed("matmul", sp_matmul(m, a, b, 0, 1, 1.0, 0.0));
        sp_tensor_free(m);
    }
    /* conv2d */
    sp_tensor *x = F(C_, 4, 1, 2, 5, 5), *w = F(C_, 4, 3, 2, 3, 3), *bs = F(S_, 1, 3, 0, 0, 0);
    sp_tensor *y = F(C_, 4, 1, 3, 3, 3), *ys = F(S_, 4, 1, 3, 3, 3), *gx = F(C_, 4, 1, 2, 5, 5);
    mixed("conv2d_forward", sp_conv2d_forward(y, x, w, bs, 1, 1, 0, 0, 0, 0, 1, 1, 1));
    mixed("conv2d_backward", sp_conv2d_backward(gx, NULL, NULL, ys, x, w, 1, 1, 0, 0, 0, 0, 1, 1, 1));
    /* dense */
    sp_tensor *dx = F(C_, 2, 2, 4, 0, 0), *dw = F(S_, 2, 3, 4, 0, 0), *dy = F(C_, 2, 2, 3, 0, 0);
    sp_tensor *dwc = F(C_, 2, 3, 4, 0, 0), *dgb = F(S_, 1, 3, 0, 0, 0);
    mixed("dense_forward", sp_dense_forward(dy, dx, dw, NULL));
    mixed("dense_backward", sp_dense_backward(NULL, NULL, dgb, dy, dx, dwc));
    /* batchnorm */
    sp_tensor *v[6];
    for (int i = 0; i < 6; i++) v[i] = F(i == 5 ? S_ : C_, 1, 2, 0, 0, 0);
    sp_tensor *bo = F(C_, 4, 1, 2, 5, 5);
    mixed("batchnorm_forward", sp_batchnorm_forward(bo, v[0], v[1], x, v[2], v[3], v[4], v[5], 1, 1, 0.9, 1e-5));
    mixed("batchnorm_backward", sp_batchnorm_backward(gx, NULL, v[5], bo, x, v[0], v[1], v[2], 1));
    /* activations */
    mixed("unary op", sp_unary(o, b, SP_UN_RELU));
    mixed("relu_backward", sp_relu_backward(o, a, b));
    mixed("dropout_forward", sp_dropout_forward(o, b, a, 0.5, &rng));
    mixed("add_relu", sp_binary(b, a, a, SP_OP_ADD_RELU));
    /* pooling */
    sp_tensor *po = F(C_, 4, 1, 2, 2, 2), *am = NULL, *pos = F(S_, 4, 1, 2, 2, 2);
    int64_t ams[4] = {1, 2, 2, 2};
    sp_tensor_new_on(&am, SP_INT32, 4, ams, S_);
    mixed("maxpool2d_forward", sp_maxpool2d_forward(po, am, x, 2, 2, 2, 2, 0, 0, 0, 0));
    mixed("maxpool2d_backward", sp_maxpool2d_backward(gx, po, am));
    mixed("avgpool2d_forward", sp_avgpool2d_forward(pos, x, 2, 2, 2, 2, 0, 0, 0, 0, 0));
    mixed("avgpool2d_backward", sp_avgpool2d_backward(gx, pos, 2, 2, 2, 2, 0, 0, 0, 0, 0));
    sp_tensor *gp = F(S_, 2, 1, 2, 0, 0);
    mixed("global_avgpool_forward", sp_global_avgpool_forward(gp, x));
    mixed("global_avgpool_backward", sp_global_avgpool_backward(gx, gp));
    /* losses */
    sp_tensor *lg = F(C_, 2, 2, 3, 0, 0), *pr = F(C_, 2, 2, 3, 0, 0), *ls = F(C_, 1, 2, 0, 0, 0);
    sp_tensor *lab = I32(S_, 2);
    mixed("softmax_forward", sp_softmax_forward(b, lg));
    mixed("softmax_xent_forward", sp_softmax_xent_forward(ls, pr, lg, lab));
    mixed("softmax_xent_backward", sp_softmax_xent_backward(pr, pr, lab, NULL, 1.0));
    /* optimizers */
    sp_tensor *p = F(C_, 1, 4, 0, 0, 0), *g = F(C_, 1, 4, 0, 0, 0), *m1 = F(C_, 1, 4, 0, 0, 0), *m2 = F(S_, 1, 4, 0, 0, 0);
    mixed("momentum_update", sp_momentum_update(p, m2, g, 0.1, 0.9, 0, 1, 0));
    mixed("sgd_update", sp_sgd_update(p, m2, g, 0.1, 0.9, 0, 0, 1, 0, 1));
    mixed("adam_update", sp_adam_update(p, m1, m2, g, 0.1, 0.9, 0.999, 1e-8, 0.9, 0.999, 0, 1, 0));
    /* the refused ops left the cpu operands alone */
    double s = 1;
    CHECK_OK(sp_reduce_all(p, SP_RED_SUM, &s));
    CHECK(s == 0, "refused momentum_update did not touch param (sum %g)", s);
    sp_tensor *all[] = {a, b, o, x, w, bs, y, ys, gx, dx, dw, dy, dwc, dgb, bo, po, am, pos, gp, lg, pr, ls, lab,
                        p, g, m1, m2, v[0], v[1], v[2], v[3], v[4], v[5]};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) sp_tensor_free(all[i]);
}

/* a cpu tensor of uniform values and its copy on sim */
static void pair(sp_tensor **c, sp_tensor **s, int nd, int64_t a, int64_t b, int64_t cc, int64_t d, uint64_t *rng) {
    *c = F(C_, nd, a, b, cc, d);
    sp_rand_uniform(*c, -1, 1, rng);
    sp_tensor_to_device(s, *c, S_);
}
/* max |cpu - sim| over all elements (sim read back through sp_tensor_read) */
static double diff(const sp_tensor *c, const sp_tensor *s) {
    int64_t n = sp_tensor_numel(c);
    if (sp_tensor_device(s) != S_ || sp_tensor_numel(s) != n) return INFINITY;
    float *h = malloc(sizeof(float) * (size_t)(n ? n : 1));
    if (sp_tensor_read(s, h, sp_tensor_nbytes(s))) { free(h); return INFINITY; }
    const float *cd = sp_tensor_data(c);
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs((double)cd[i] - h[i]));
    free(h);
    return m;
}

SUITE(dispatch_sim_matches_cpu) {
    uint64_t rng = 7;
    /* binary with broadcasting */
    sp_tensor *a, *as, *b, *bs, *o = F(C_, 2, 3, 4, 0, 0), *os = F(S_, 2, 3, 4, 0, 0);
    pair(&a, &as, 2, 3, 4, 0, 0, &rng);
    pair(&b, &bs, 1, 4, 0, 0, 0, &rng);
    CHECK_OK(sp_binary(o, a, b, SP_OP_SUB));
    CHECK_OK(sp_binary(os, as, bs, SP_OP_SUB));
    CHECK(diff(o, os) == 0, "binary on sim differs from cpu by %g", diff(o, os));
    CHECK(fabs(sp_tensor_data(o) ? ((float *)sp_tensor_data(o))[5] - (((float *)sp_tensor_data(a))[5] - ((float *)sp_tensor_data(b))[1]) : 1) == 0,
          "binary broadcast value o[1,1] = a[1,1] - b[1]");
    /* reductions */
    double r1 = 0, r2 = 1;
    CHECK_OK(sp_reduce_all(a, SP_RED_SUM, &r1));
    CHECK_OK(sp_reduce_all(as, SP_RED_SUM, &r2));
    CHECK(r1 == r2, "reduce_all sum cpu %.17g sim %.17g", r1, r2);
    sp_tensor *asT = NULL, *aT = NULL; /* a non-contiguous operand goes through a copy on sim */
    sp_tensor_transpose(&aT, a, 0, 1);
    sp_tensor_transpose(&asT, as, 0, 1);
    CHECK_OK(sp_reduce_all(aT, SP_RED_ARGMAX, &r1));
    CHECK_OK(sp_reduce_all(asT, SP_RED_ARGMAX, &r2));
    CHECK(r1 == r2, "reduce_all argmax of a transposed view: cpu %g sim %g", r1, r2);
    sp_tensor *rd = F(C_, 1, 3, 0, 0, 0), *rds = F(S_, 1, 3, 0, 0, 0);
    CHECK_OK(sp_reduce_dim(rd, a, SP_RED_MEAN, -1, 0));
    CHECK_OK(sp_reduce_dim(rds, as, SP_RED_MEAN, -1, 0));
    CHECK(diff(rd, rds) == 0, "reduce_dim on sim differs by %g", diff(rd, rds));
    double ref = 0;
    for (int j = 0; j < 4; j++) ref += ((float *)sp_tensor_data(a))[4 + j];
    CHECK(fabs(((float *)sp_tensor_data(rd))[1] - ref / 4) < 1e-6, "reduce_dim mean of row 1");
    /* matmul with a transposed operand: out [3,3] = a [3,4] . a^T */
    sp_tensor *m = F(C_, 2, 3, 3, 0, 0), *ms = F(S_, 2, 3, 3, 0, 0);
    CHECK_OK(sp_matmul(m, a, aT, 0, 0, 1.0, 0.0));
    CHECK_OK(sp_matmul(ms, as, asT, 0, 0, 1.0, 0.0));
    CHECK(diff(m, ms) < 1e-6, "matmul on sim differs by %g", diff(m, ms));
    /* conv2d forward: the batched path (N > 1, small maps), the per-image path and the
     * direct first-layer path */
    struct { int64_t N, C, H, Co, k; int pad; } cv[] = {{4, 3, 8, 5, 3, 1}, {1, 2, 40, 4, 3, 1}, {2, 1, 12, 6, 5, 0}};
    for (int i = 0; i < 3; i++) {
        sp_tensor *x, *xs, *w, *ws, *bb, *bbs;
        int64_t Ho = cv[i].H + 2 * cv[i].pad - cv[i].k + 1;
        pair(&x, &xs, 4, cv[i].N, cv[i].C, cv[i].H, cv[i].H, &rng);
        pair(&w, &ws, 4, cv[i].Co, cv[i].C, cv[i].k, cv[i].k, &rng);
        pair(&bb, &bbs, 1, cv[i].Co, 0, 0, 0, &rng);
        sp_tensor *y = F(C_, 4, cv[i].N, cv[i].Co, Ho, Ho), *ys = F(S_, 4, cv[i].N, cv[i].Co, Ho, Ho);
        int p = cv[i].pad;
        CHECK_OK(sp_conv2d_forward(y, x, w, bb, 1, 1, p, p, p, p, 1, 1, 1));
        CHECK_OK(sp_conv2d_forward(ys, xs, ws, bbs, 1, 1, p, p, p, p, 1, 1, 1));
        CHECK(diff(y, ys) < 1e-5, "conv2d_forward case %d on sim differs by %g", i, diff(y, ys));
        /* one output against a direct sum: y[n=0, co=0, 1, 1] */
        const float *X = sp_tensor_data(x), *W = sp_tensor_data(w), *B = sp_tensor_data(bb);
        double s = B[0];
        for (int64_t c = 0; c < cv[i].C; c++)
            for (int64_t u = 0; u < cv[i].k; u++)
                for (int64_t v = 0; v < cv[i].k; v++) {
                    int64_t ih = 1 + u - p, iw = 1 + v - p;
                    if (ih >= 0 && ih < cv[i].H && iw >= 0 && iw < cv[i].H)
                        s += (double)X[(c * cv[i].H + ih) * cv[i].H + iw] * W[(c * cv[i].k + u) * cv[i].k + v];
                }
        CHECK(fabs(((float *)sp_tensor_data(y))[Ho + 1] - s) < 1e-4, "conv2d case %d y[0,0,1,1] = %g, expected %g", i,
              ((float *)sp_tensor_data(y))[Ho + 1], s);
        sp_tensor *fr[] = {x, xs, w, ws, bb, bbs, y, ys};
        for (int k = 0; k < 8; k++) sp_tensor_free(fr[k]);
    }
    /* momentum update (Nesterov) */
    sp_tensor *p, *ps, *v, *vs, *g, *gs;
    pair(&p, &ps, 1, 100, 0, 0, 0, &rng);
    pair(&v, &vs, 1, 100, 0, 0, 0, &rng);
    pair(&g, &gs, 1, 100, 0, 0, 0, &rng);
    float p0 = ((float *)sp_tensor_data(p))[3], v0 = ((float *)sp_tensor_data(v))[3], g0 = ((float *)sp_tensor_data(g))[3];
    CHECK_OK(sp_momentum_update(p, v, g, 0.1, 0.9, 0.01, 2.0, 1));
    CHECK_OK(sp_momentum_update(ps, vs, gs, 0.1, 0.9, 0.01, 2.0, 1));
    CHECK(diff(p, ps) == 0 && diff(v, vs) == 0, "momentum_update on sim differs (param %g, moment %g)", diff(p, ps),
          diff(v, vs));
    double gg = g0 / 2.0 + 0.01 * p0, vv = 0.9 * v0 + gg, pp = p0 - (0.1 * gg + 0.1 * 0.9 * vv);
    CHECK(fabs(((float *)sp_tensor_data(p))[3] - pp) < 1e-6, "momentum_update param[3] = %g, expected %g",
          ((float *)sp_tensor_data(p))[3], pp);
    /* a kernel's data error comes back through the table: a sparse label out of range */
    sp_tensor *lg = F(S_, 2, 2, 3, 0, 0), *pr = F(S_, 2, 2, 3, 0, 0), *ls = F(S_, 1, 2, 0, 0, 0), *lab = NULL;
    int32_t labs[2] = {1, 3};
    int64_t two = 2;
    sp_tensor *labc = NULL;
    sp_tensor_from_data(&labc, SP_INT32, 1, &two, labs, sizeof labs);
    sp_tensor_to_device(&lab, labc, S_);
    sp_status st = sp_softmax_xent_forward(ls, pr, lg, lab);
    CHECK(st != SP_OK && strstr(sp_last_error(), "out of range"), "sim label out of range: %s", sp_last_error());
    /* sp_tensor_data refuses sim memory */
    CHECK(sp_tensor_data(os) == NULL && sp_last_error()[0], "sp_tensor_data(sim tensor) is NULL with an error");
    CHECK(sp_tensor_data(o) != NULL, "sp_tensor_data(cpu tensor) is the host address");
    sp_tensor *fr[] = {a, as, b, bs, o, os, aT, asT, rd, rds, m, ms, p, ps, v, vs, g, gs, lg, pr, ls, lab, labc};
    for (size_t k = 0; k < sizeof fr / sizeof fr[0]; k++) sp_tensor_free(fr[k]);
}

SUITE(dispatch_resize) {
    int64_t s44[2] = {4, 4}, s23[2] = {2, 3}, s55[2] = {5, 5}, s6 = 6, s0 = 0;
    sp_tensor *t = NULL;
    CHECK_OK(sp_tensor_new(&t, SP_FLOAT32, 2, s44));
    float *p0 = sp_tensor_data(t);
    for (int i = 0; i < 16; i++) p0[i] = (float)i;
    /* shrink: in place, prefix kept, contiguous strides */
    CHECK_OK(sp_tensor_resize(t, 2, s23));
    CHECK(sp_tensor_data(t) == p0, "shrinking resize keeps the storage");
    CHECK(sp_tensor_ndim(t) == 2 && sp_tensor_dim(t, 0) == 2 && sp_tensor_dim(t, 1) == 3 && sp_tensor_stride(t, 0) == 3,
          "resize sets shape [2,3] and strides");
    int ok = 1;
    for (int i = 0; i < 6; i++) ok &= ((float *)sp_tensor_data(t))[i] == (float)i;
    CHECK(ok, "shrinking resize keeps the first 6 values");
    /* back up to the capacity: still in place */
    CHECK_OK(sp_tensor_resize(t, 2, s44));
    CHECK(sp_tensor_data(t) == p0 && ((float *)sp_tensor_data(t))[15] == 15.0f, "regrow within capacity is in place");
    /* grow past the capacity: new storage, prefix kept */
    CHECK_OK(sp_tensor_resize(t, 2, s55));
    ok = sp_tensor_numel(t) == 25 && sp_tensor_is_contiguous(t);
    for (int i = 0; ok && i < 16; i++) ok &= ((float *)sp_tensor_data(t))[i] == (float)i;
    CHECK(ok, "growing resize to [5,5] keeps the 16 old values in order");
    /* views sharing the storage: refused, t unchanged */
    sp_tensor *v = NULL;
    CHECK_OK(sp_tensor_alias(&v, t));
    sp_status st = sp_tensor_resize(t, 1, &s6);
    CHECK(st != SP_OK && strstr(sp_last_error(), "resize") && strstr(sp_last_error(), "shares"),
          "resize with a view refused: %s", sp_last_error());
    CHECK(sp_tensor_numel(t) == 25, "refused resize leaves the shape");
    sp_tensor_free(v);
    CHECK_OK(sp_tensor_resize(t, 1, &s0));
    CHECK(sp_tensor_numel(t) == 0, "resize to empty");
    int64_t bad = -1;
    CHECK(sp_tensor_resize(t, 1, &bad) != SP_OK, "negative dimension refused");
    sp_tensor_free(t);
    /* the only handle on a transposed view: row-major prefix of the view's order */
    sp_tensor *base = NULL, *tr = NULL;
    int64_t s23b[2] = {2, 3};
    float vals[6] = {0, 1, 2, 3, 4, 5};
    CHECK_OK(sp_tensor_from_data(&base, SP_FLOAT32, 2, s23b, vals, sizeof vals));
    CHECK_OK(sp_tensor_transpose(&tr, base, 0, 1));
    sp_tensor_free(base);
    int64_t s4 = 4;
    CHECK_OK(sp_tensor_resize(tr, 1, &s4));
    const float *q = sp_tensor_data(tr);
    CHECK(q && q[0] == 0 && q[1] == 3 && q[2] == 1 && q[3] == 4, "resize of a transposed view keeps [0 3 1 4]");
    sp_tensor_free(tr);
    /* on sim: stays on sim, values kept */
    sp_tensor *c = NULL, *s = NULL;
    CHECK_OK(sp_tensor_from_data(&c, SP_FLOAT32, 2, s23b, vals, sizeof vals));
    CHECK_OK(sp_tensor_to_device(&s, c, SP_DEVICE_SIM));
    int64_t s8 = 8;
    CHECK_OK(sp_tensor_resize(s, 1, &s8));
    float back[8];
    CHECK(sp_tensor_device(s) == SP_DEVICE_SIM, "resized sim tensor stays on sim");
    CHECK_OK(sp_tensor_read(s, back, sizeof back));
    ok = 1;
    for (int i = 0; i < 6; i++) ok &= back[i] == (float)i;
    CHECK(ok, "resized sim tensor keeps its 6 values");
    sp_tensor_free(c);
    sp_tensor_free(s);
}

/* The data pipeline and explicit copies never hand host code a device pointer. */
SUITE(dispatch_host_only_ops_refuse_device_tensors) {
    int64_t s[4] = {2, 4, 4, 1}, so[4] = {1, 4, 4, 1}, idx[1] = {1};
    sp_tensor *img = NULL, *out = NULL, *dimg = NULL, *dout = NULL;
    CHECK_OK(sp_tensor_new(&img, SP_UINT8, 4, s));
    CHECK_OK(sp_tensor_new(&out, SP_FLOAT32, 4, so));
    CHECK_OK(sp_tensor_new_on(&dimg, SP_UINT8, 4, s, SP_DEVICE_SIM));
    CHECK_OK(sp_tensor_new_on(&dout, SP_FLOAT32, 4, so, SP_DEVICE_SIM));
    CHECK_OK(sp_image_batch(out, img, idx, 1, NULL, 0, NULL));
    sp_status st = sp_image_batch(dout, img, idx, 1, NULL, 0, NULL);
    CHECK(st == SP_EDEVICE && strstr(sp_last_error(), "image_batch: out is on device sim"),
          "image_batch into a sim tensor refused: '%s'", sp_last_error());
    st = sp_image_batch(out, dimg, idx, 1, NULL, 0, NULL);
    CHECK(st == SP_EDEVICE && strstr(sp_last_error(), "src is on device sim"), "image_batch from sim refused");
    st = sp_gather_rows(dout, img, idx, 1);
    CHECK(st == SP_EDEVICE && strstr(sp_last_error(), "gather_rows: dst is on device sim"), "gather_rows refused");
    /* host pointers into the sim arena are refused where the API takes host memory */
    CHECK(sp_tensor_data(dimg) == NULL, "no host address for a sim tensor");
    void *arena = SP_DATA(dimg);
    sp_tensor *bad = NULL;
    CHECK(sp_tensor_from_data(&bad, SP_UINT8, 4, s, arena, 32) == SP_EINVAL && !bad &&
          strstr(sp_last_error(), "sim device memory"), "from_data with a sim pointer refused: '%s'", sp_last_error());
    CHECK(sp_tensor_adopt(&bad, SP_UINT8, 4, s, arena, 32, NULL, NULL) == SP_EINVAL && !bad, "adopt of sim memory refused");
    CHECK(sp_tensor_read(img, arena, 32) == SP_EINVAL, "read into sim memory refused");
    CHECK(sp_tensor_write(img, arena, 32) == SP_EINVAL, "write from sim memory refused");
    sp_tensor *h = NULL;
    CHECK_OK(sp_tensor_to_device(&h, dimg, SP_DEVICE_CPU));
    CHECK(sp_tensor_device(h) == SP_DEVICE_CPU && sp_tensor_data(h) != NULL, "an explicit copy to the cpu is addressable");
    sp_tensor_free(h);
    sp_tensor *a[] = {img, out, dimg, dout};
    for (int i = 0; i < 4; i++) sp_tensor_free(a[i]);
}
