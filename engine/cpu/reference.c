/* reference.c — the readable reference path of each nn kernel family: the definition,
 * written as plain nested loops with double accumulators. No BLAS, no im2col, no
 * unrolling, no vectors, no threads. The fast paths (the public sp_* kernels) are tested
 * against these in spec/engine/test_reference.c; see reference.h. */
#include "reference.h"

#include "../core/internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- checks: enough to keep every index below in bounds, with a message ---- */

#define REF_TRY(x) do { sp_status s_ = (x); if (s_) return s_; } while (0)

/* t is a contiguous tensor of dtype; ndim >= 0: of that rank; numel >= 0: of that size */
static sp_status need(const sp_tensor *t, int dtype, int ndim, int64_t numel, const char *op, const char *what) {
    if (!t) return sp_error(SP_EINVAL, "%s: %s is NULL", op, what);
    if (t->dtype != dtype)
        return sp_error(SP_EINVAL, "%s: %s must be %s, got %s", op, what, sp_dtype_name(dtype), sp_dtype_name(t->dtype));
    if (ndim >= 0 && t->ndim != ndim) return sp_error(SP_EINVAL, "%s: %s must be %d-D, got %d-D", op, what, ndim, t->ndim);
    if (!sp_tensor_is_contiguous(t)) return sp_error(SP_EINVAL, "%s: %s must be contiguous", op, what);
    if (numel >= 0 && sp_tensor_numel(t) != numel)
        return sp_error(SP_EINVAL, "%s: %s has %lld elements, expected %lld", op, what, (long long)sp_tensor_numel(t),
                        (long long)numel);
    return SP_OK;
}
#define F(t) ((float *)SP_DATA(t))
#define I32(t) ((int32_t *)SP_DATA(t))

/* element [a,b,c,d] of a contiguous [*,B,C,D] array */
static inline int64_t at4(int64_t B, int64_t C, int64_t D, int64_t a, int64_t b, int64_t c, int64_t d) {
    return ((a * B + b) * C + c) * D + d;
}

/* ---- Conv2d ---- */

typedef struct {
    int64_t N, C, H, W, Co, kh, kw, Ho, Wo, Cg, Cog;
} conv_dims;

static sp_status conv_dims_of(conv_dims *d, const char *op, const sp_tensor *x, const sp_tensor *w, int sh, int sw,
                              int pt, int pb, int pl, int pr, int dh, int dw, int groups) {
    REF_TRY(need(x, SP_FLOAT32, 4, -1, op, "x"));
    REF_TRY(need(w, SP_FLOAT32, 4, -1, op, "weight"));
    if (sh < 1 || sw < 1 || dh < 1 || dw < 1 || groups < 1 || pt < 0 || pb < 0 || pl < 0 || pr < 0)
        return sp_error(SP_EINVAL, "%s: stride/dilation/groups must be >= 1 and padding >= 0", op);
    d->N = x->shape[0]; d->C = x->shape[1]; d->H = x->shape[2]; d->W = x->shape[3];
    d->Co = w->shape[0]; d->kh = w->shape[2]; d->kw = w->shape[3];
    if (d->C % groups || d->Co % groups || w->shape[1] != d->C / groups)
        return sp_error(SP_EINVAL, "%s: channels (in %lld, out %lld, weight in %lld) do not fit groups %d", op,
                        (long long)d->C, (long long)d->Co, (long long)w->shape[1], groups);
    int64_t span_h = (int64_t)dh * (d->kh - 1) + 1, span_w = (int64_t)dw * (d->kw - 1) + 1;
    if (d->H + pt + pb < span_h || d->W + pl + pr < span_w)
        return sp_error(SP_EINVAL, "%s: padded input smaller than the dilated kernel", op);
    d->Ho = (d->H + pt + pb - span_h) / sh + 1;
    d->Wo = (d->W + pl + pr - span_w) / sw + 1;
    d->Cg = d->C / groups;
    d->Cog = d->Co / groups;
    return SP_OK;
}

/* out[n,o,oh,ow] = bias[o] + sum_{c,i,j} x[n, g*Cg + c, oh*sh - pt + i*dh, ow*sw - pl + j*dw] * w[o,c,i,j]
 * with g = o / (Co/groups) and out-of-range x read as 0 */
sp_status sp_ref_conv2d_forward(sp_tensor *out, const sp_tensor *x, const sp_tensor *w, const sp_tensor *bias,
                                int stride_h, int stride_w, int pad_top, int pad_bottom, int pad_left, int pad_right,
                                int dil_h, int dil_w, int groups) {
    const char *op = "ref_conv2d_forward";
    conv_dims d;
    REF_TRY(conv_dims_of(&d, op, x, w, stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right, dil_h, dil_w,
                         groups));
    REF_TRY(need(out, SP_FLOAT32, 4, d.N * d.Co * d.Ho * d.Wo, op, "out"));
    if (bias) REF_TRY(need(bias, SP_FLOAT32, -1, d.Co, op, "bias"));
    const float *X = F(x), *Wt = F(w);
    float *O = F(out);
    for (int64_t n = 0; n < d.N; n++)
        for (int64_t o = 0; o < d.Co; o++) {
            int64_t g = o / d.Cog;
            for (int64_t oh = 0; oh < d.Ho; oh++)
                for (int64_t ow = 0; ow < d.Wo; ow++) {
                    double s = bias ? F(bias)[o] : 0.0;
                    for (int64_t c = 0; c < d.Cg; c++)
                        for (int64_t i = 0; i < d.kh; i++)
                            for (int64_t j = 0; j < d.kw; j++) {
                                int64_t ih = oh * stride_h - pad_top + i * dil_h;
                                int64_t iw = ow * stride_w - pad_left + j * dil_w;
                                if (ih < 0 || ih >= d.H || iw < 0 || iw >= d.W) continue;
                                s += (double)X[at4(d.C, d.H, d.W, n, g * d.Cg + c, ih, iw)] *
                                     Wt[at4(d.Cg, d.kh, d.kw, o, c, i, j)];
                            }
                    O[at4(d.Co, d.Ho, d.Wo, n, o, oh, ow)] = (float)s;
                }
        }
    return SP_OK;
}

/* The same sum read backwards: every (output, tap) pair that touched x[n,ci,ih,iw] and
 * w[o,c,i,j] sends grad_out[n,o,oh,ow] back to both. grad_x is overwritten; grad_w and
 * grad_b accumulate. */
sp_status sp_ref_conv2d_backward(sp_tensor *grad_x, sp_tensor *grad_w, sp_tensor *grad_b, const sp_tensor *grad_out,
                                 const sp_tensor *x, const sp_tensor *w, int stride_h, int stride_w, int pad_top,
                                 int pad_bottom, int pad_left, int pad_right, int dil_h, int dil_w, int groups) {
    const char *op = "ref_conv2d_backward";
    conv_dims d;
    REF_TRY(conv_dims_of(&d, op, x, w, stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right, dil_h, dil_w,
                         groups));
    REF_TRY(need(grad_out, SP_FLOAT32, 4, d.N * d.Co * d.Ho * d.Wo, op, "grad_out"));
    if (grad_x) REF_TRY(need(grad_x, SP_FLOAT32, -1, d.N * d.C * d.H * d.W, op, "grad_x"));
    if (grad_w) REF_TRY(need(grad_w, SP_FLOAT32, -1, sp_tensor_numel(w), op, "grad_w"));
    if (grad_b) REF_TRY(need(grad_b, SP_FLOAT32, -1, d.Co, op, "grad_b"));
    int64_t nx = d.N * d.C * d.H * d.W, nw = sp_tensor_numel(w);
    double *gx = calloc((size_t)(nx > 0 ? nx : 1), sizeof(double));
    double *gw = calloc((size_t)(nw > 0 ? nw : 1), sizeof(double));
    double *gb = calloc((size_t)(d.Co > 0 ? d.Co : 1), sizeof(double));
    if (!gx || !gw || !gb) {
        free(gx); free(gw); free(gb);
        return sp_error(SP_ENOMEM, "%s: cannot allocate the double accumulators", op);
    }
    const float *X = F(x), *Wt = F(w), *GO = F(grad_out);
    for (int64_t n = 0; n < d.N; n++)
        for (int64_t o = 0; o < d.Co; o++) {
            int64_t g = o / d.Cog;
            for (int64_t oh = 0; oh < d.Ho; oh++)
                for (int64_t ow = 0; ow < d.Wo; ow++) {
                    double go = GO[at4(d.Co, d.Ho, d.Wo, n, o, oh, ow)];
                    gb[o] += go;
                    for (int64_t c = 0; c < d.Cg; c++)
                        for (int64_t i = 0; i < d.kh; i++)
                            for (int64_t j = 0; j < d.kw; j++) {
                                int64_t ih = oh * stride_h - pad_top + i * dil_h;
                                int64_t iw = ow * stride_w - pad_left + j * dil_w;
                                if (ih < 0 || ih >= d.H || iw < 0 || iw >= d.W) continue;
                                int64_t xi = at4(d.C, d.H, d.W, n, g * d.Cg + c, ih, iw);
                                int64_t wi = at4(d.Cg, d.kh, d.kw, o, c, i, j);
                                gx[xi] += go * Wt[wi];
                                gw[wi] += go * X[xi];
                            }
                }
        }
    if (grad_x) for (int64_t i = 0; i < nx; i++) F(grad_x)[i] = (float)gx[i];
    if (grad_w) for (int64_t i = 0; i < nw; i++) F(grad_w)[i] += (float)gw[i];
    if (grad_b) for (int64_t i = 0; i < d.Co; i++) F(grad_b)[i] += (float)gb[i];
    free(gx); free(gw); free(gb);
    return SP_OK;
}

/* ---- Dense ---- */

/* out[n,o] = bias[o] + sum_i x[n,i] * w[o,i] */
sp_status sp_ref_dense_forward(sp_tensor *out, const sp_tensor *x, const sp_tensor *w, const sp_tensor *bias) {
    const char *op = "ref_dense_forward";
    REF_TRY(need(x, SP_FLOAT32, 2, -1, op, "x"));
    REF_TRY(need(w, SP_FLOAT32, 2, -1, op, "weight"));
    int64_t N = x->shape[0], In = x->shape[1], O = w->shape[0];
    if (w->shape[1] != In) return sp_error(SP_EINVAL, "%s: weight is not [out, %lld]", op, (long long)In);
    REF_TRY(need(out, SP_FLOAT32, 2, N * O, op, "out"));
    if (bias) REF_TRY(need(bias, SP_FLOAT32, -1, O, op, "bias"));
    for (int64_t n = 0; n < N; n++)
        for (int64_t o = 0; o < O; o++) {
            double s = bias ? F(bias)[o] : 0.0;
            for (int64_t i = 0; i < In; i++) s += (double)F(x)[n * In + i] * F(w)[o * In + i];
            F(out)[n * O + o] = (float)s;
        }
    return SP_OK;
}

/* grad_x[n,i] = sum_o go[n,o] w[o,i]; grad_w[o,i] += sum_n go[n,o] x[n,i]; grad_b[o] += sum_n go[n,o] */
sp_status sp_ref_dense_backward(sp_tensor *grad_x, sp_tensor *grad_w, sp_tensor *grad_b, const sp_tensor *grad_out,
                                const sp_tensor *x, const sp_tensor *w) {
    const char *op = "ref_dense_backward";
    REF_TRY(need(x, SP_FLOAT32, 2, -1, op, "x"));
    REF_TRY(need(w, SP_FLOAT32, 2, -1, op, "weight"));
    int64_t N = x->shape[0], In = x->shape[1], O = w->shape[0];
    if (w->shape[1] != In) return sp_error(SP_EINVAL, "%s: weight is not [out, %lld]", op, (long long)In);
    REF_TRY(need(grad_out, SP_FLOAT32, 2, N * O, op, "grad_out"));
    const float *GO = F(grad_out);
    if (grad_x) {
        REF_TRY(need(grad_x, SP_FLOAT32, -1, N * In, op, "grad_x"));
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = 0; i < In; i++) {
                double s = 0;
                for (int64_t o = 0; o < O; o++) s += (double)GO[n * O + o] * F(w)[o * In + i];
                F(grad_x)[n * In + i] = (float)s;
            }
    }
    if (grad_w) {
        REF_TRY(need(grad_w, SP_FLOAT32, -1, O * In, op, "grad_w"));
        for (int64_t o = 0; o < O; o++)
            for (int64_t i = 0; i < In; i++) {
                double s = 0;
                for (int64_t n = 0; n < N; n++) s += (double)GO[n * O + o] * F(x)[n * In + i];
                F(grad_w)[o * In + i] += (float)s;
            }
    }
    if (grad_b) {
        REF_TRY(need(grad_b, SP_FLOAT32, -1, O, op, "grad_b"));
        for (int64_t o = 0; o < O; o++) {
            double s = 0;
            for (int64_t n = 0; n < N; n++) s += GO[n * O + o];
            F(grad_b)[o] += (float)s;
        }
    }
    return SP_OK;
}

/* ---- BatchNorm2d ---- */

/* training: mean and biased variance over (N,H,W) per channel; with update, moving =
 * momentum*moving + (1-momentum)*batch (unbiased variance). eval: the moving statistics.
 * out = (x - mean) / sqrt(var + eps) * gamma + beta; save_mean/save_invstd keep mean and
 * 1/sqrt(var + eps). */
sp_status sp_ref_batchnorm_forward(sp_tensor *out, sp_tensor *save_mean, sp_tensor *save_invstd, const sp_tensor *x,
                                   const sp_tensor *gamma, const sp_tensor *beta, sp_tensor *moving_mean,
                                   sp_tensor *moving_var, int training, int update, double momentum, double eps) {
    const char *op = "ref_batchnorm_forward";
    REF_TRY(need(x, SP_FLOAT32, 4, -1, op, "x"));
    int64_t N = x->shape[0], C = x->shape[1], HW = x->shape[2] * x->shape[3], M = N * HW;
    REF_TRY(need(out, SP_FLOAT32, -1, N * C * HW, op, "out"));
    REF_TRY(need(save_mean, SP_FLOAT32, -1, C, op, "save_mean"));
    REF_TRY(need(save_invstd, SP_FLOAT32, -1, C, op, "save_invstd"));
    REF_TRY(need(gamma, SP_FLOAT32, -1, C, op, "gamma"));
    REF_TRY(need(beta, SP_FLOAT32, -1, C, op, "beta"));
    REF_TRY(need(moving_mean, SP_FLOAT32, -1, C, op, "moving_mean"));
    REF_TRY(need(moving_var, SP_FLOAT32, -1, C, op, "moving_variance"));
    if (training && M < 1) return sp_error(SP_EINVAL, "%s: training needs at least one value per channel", op);
    const float *X = F(x);
    for (int64_t c = 0; c < C; c++) {
        double mean, var;
        if (training) {
            double s = 0;
            for (int64_t n = 0; n < N; n++)
                for (int64_t i = 0; i < HW; i++) s += X[(n * C + c) * HW + i];
            mean = s / (double)M;
            double q = 0;
            for (int64_t n = 0; n < N; n++)
                for (int64_t i = 0; i < HW; i++) {
                    double dv = X[(n * C + c) * HW + i] - mean;
                    q += dv * dv;
                }
            var = q / (double)M;
            if (update) {
                double unbiased = M > 1 ? q / (double)(M - 1) : var;
                F(moving_mean)[c] = (float)(momentum * F(moving_mean)[c] + (1.0 - momentum) * mean);
                F(moving_var)[c] = (float)(momentum * F(moving_var)[c] + (1.0 - momentum) * unbiased);
            }
        } else {
            mean = F(moving_mean)[c];
            var = F(moving_var)[c];
        }
        double invstd = 1.0 / sqrt(var + eps);
        F(save_mean)[c] = (float)mean;
        F(save_invstd)[c] = (float)invstd;
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = 0; i < HW; i++) {
                int64_t k = (n * C + c) * HW + i;
                F(out)[k] = (float)((X[k] - mean) * invstd * F(gamma)[c] + F(beta)[c]);
            }
    }
    return SP_OK;
}

/* xhat = (x - save_mean) * save_invstd. grad_gamma += sum(go * xhat); grad_beta += sum(go);
 * grad_x = gamma * invstd * (go - mean(go) - xhat * mean(go * xhat)) when training (the
 * batch statistics depend on x), gamma * invstd * go in eval. */
sp_status sp_ref_batchnorm_backward(sp_tensor *grad_x, sp_tensor *grad_gamma, sp_tensor *grad_beta,
                                    const sp_tensor *grad_out, const sp_tensor *x, const sp_tensor *gamma,
                                    const sp_tensor *save_mean, const sp_tensor *save_invstd, int training) {
    const char *op = "ref_batchnorm_backward";
    REF_TRY(need(x, SP_FLOAT32, 4, -1, op, "x"));
    int64_t N = x->shape[0], C = x->shape[1], HW = x->shape[2] * x->shape[3], M = N * HW;
    REF_TRY(need(grad_out, SP_FLOAT32, -1, N * C * HW, op, "grad_out"));
    if (grad_x) REF_TRY(need(grad_x, SP_FLOAT32, -1, N * C * HW, op, "grad_x"));
    if (grad_gamma) REF_TRY(need(grad_gamma, SP_FLOAT32, -1, C, op, "grad_gamma"));
    if (grad_beta) REF_TRY(need(grad_beta, SP_FLOAT32, -1, C, op, "grad_beta"));
    REF_TRY(need(gamma, SP_FLOAT32, -1, C, op, "gamma"));
    REF_TRY(need(save_mean, SP_FLOAT32, -1, C, op, "save_mean"));
    REF_TRY(need(save_invstd, SP_FLOAT32, -1, C, op, "save_invstd"));
    const float *X = F(x), *GO = F(grad_out);
    for (int64_t c = 0; c < C; c++) {
        double mean = F(save_mean)[c], invstd = F(save_invstd)[c];
        double sum_go = 0, sum_go_xhat = 0;
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = 0; i < HW; i++) {
                int64_t k = (n * C + c) * HW + i;
                sum_go += GO[k];
                sum_go_xhat += GO[k] * (X[k] - mean) * invstd;
            }
        if (grad_gamma) F(grad_gamma)[c] += (float)sum_go_xhat;
        if (grad_beta) F(grad_beta)[c] += (float)sum_go;
        if (!grad_x) continue;
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = 0; i < HW; i++) {
                int64_t k = (n * C + c) * HW + i;
                double g = GO[k];
                if (training && M > 0) {
                    double xhat = (X[k] - mean) * invstd;
                    g = g - sum_go / (double)M - xhat * (sum_go_xhat / (double)M);
                }
                F(grad_x)[k] = (float)(F(gamma)[c] * invstd * g);
            }
    }
    return SP_OK;
}

/* ---- ReLU ---- */

/* out = x > 0 ? x : 0 */
sp_status sp_ref_relu_forward(sp_tensor *out, const sp_tensor *x) {
    const char *op = "ref_relu_forward";
    REF_TRY(need(x, SP_FLOAT32, -1, -1, op, "x"));
    int64_t n = sp_tensor_numel(x);
    REF_TRY(need(out, SP_FLOAT32, -1, n, op, "out"));
    for (int64_t i = 0; i < n; i++) {
        float v = F(x)[i];
        F(out)[i] = v > 0.0f ? v : 0.0f;
    }
    return SP_OK;
}

/* grad_x = y > 0 ? grad_out : 0 */
sp_status sp_ref_relu_backward(sp_tensor *grad_x, const sp_tensor *grad_out, const sp_tensor *y) {
    const char *op = "ref_relu_backward";
    REF_TRY(need(y, SP_FLOAT32, -1, -1, op, "y"));
    int64_t n = sp_tensor_numel(y);
    REF_TRY(need(grad_out, SP_FLOAT32, -1, n, op, "grad_out"));
    REF_TRY(need(grad_x, SP_FLOAT32, -1, n, op, "grad_x"));
    for (int64_t i = 0; i < n; i++) F(grad_x)[i] = F(y)[i] > 0.0f ? F(grad_out)[i] : 0.0f;
    return SP_OK;
}

/* ---- Pooling ---- */

static sp_status pool_dims(const char *op, const sp_tensor *x, int kh, int kw, int sh, int sw, int pt, int pb, int pl,
                           int pr, int64_t *Ho, int64_t *Wo) {
    REF_TRY(need(x, SP_FLOAT32, 4, -1, op, "x"));
    if (kh < 1 || kw < 1 || sh < 1 || sw < 1 || pt < 0 || pb < 0 || pl < 0 || pr < 0)
        return sp_error(SP_EINVAL, "%s: kernel and stride must be >= 1, padding >= 0", op);
    int64_t Hp = x->shape[2] + pt + pb, Wp = x->shape[3] + pl + pr;
    if (Hp < kh || Wp < kw) return sp_error(SP_EINVAL, "%s: padded input smaller than the kernel", op);
    *Ho = (Hp - kh) / sh + 1;
    *Wo = (Wp - kw) / sw + 1;
    return SP_OK;
}

/* out = the largest in-bounds value of each window (padding never wins); argmax = its
 * flat index h*W + w within the plane, the first in row-major order on a tie. A window
 * with no in-bounds pixel gives 0 and argmax -1. A NaN in the window makes the output
 * NaN (argmax then left to the fast path's rule; compare it only on NaN-free data). */
sp_status sp_ref_maxpool2d_forward(sp_tensor *out, sp_tensor *argmax, const sp_tensor *x, int kh, int kw,
                                   int stride_h, int stride_w, int pad_top, int pad_bottom, int pad_left,
                                   int pad_right) {
    const char *op = "ref_maxpool2d_forward";
    int64_t Ho, Wo;
    REF_TRY(pool_dims(op, x, kh, kw, stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right, &Ho, &Wo));
    int64_t N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
    REF_TRY(need(out, SP_FLOAT32, -1, N * C * Ho * Wo, op, "out"));
    REF_TRY(need(argmax, SP_INT32, -1, N * C * Ho * Wo, op, "argmax"));
    for (int64_t p = 0; p < N * C; p++)
        for (int64_t oh = 0; oh < Ho; oh++)
            for (int64_t ow = 0; ow < Wo; ow++) {
                float best = 0.0f;
                int64_t best_at = -1;
                int nan = 0;
                for (int i = 0; i < kh; i++)
                    for (int j = 0; j < kw; j++) {
                        int64_t ih = oh * stride_h - pad_top + i, iw = ow * stride_w - pad_left + j;
                        if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                        float v = F(x)[p * H * W + ih * W + iw];
                        if (isnan(v)) { nan = 1; continue; }
                        if (best_at < 0 || v > best) { best = v; best_at = ih * W + iw; }
                    }
                if (best_at < 0) /* all NaN: the window's first in-bounds pixel */
                    for (int i = 0; i < kh && best_at < 0 && nan; i++)
                        for (int j = 0; j < kw && best_at < 0; j++) {
                            int64_t ih = oh * stride_h - pad_top + i, iw = ow * stride_w - pad_left + j;
                            if (ih >= 0 && ih < H && iw >= 0 && iw < W) best_at = ih * W + iw;
                        }
                F(out)[(p * Ho + oh) * Wo + ow] = nan ? NAN : best;
                I32(argmax)[(p * Ho + oh) * Wo + ow] = (int32_t)best_at;
            }
    return SP_OK;
}

/* grad_x = 0, then grad_x[argmax] += grad_out for each output (argmax -1: nothing) */
sp_status sp_ref_maxpool2d_backward(sp_tensor *grad_x, const sp_tensor *grad_out, const sp_tensor *argmax) {
    const char *op = "ref_maxpool2d_backward";
    REF_TRY(need(grad_x, SP_FLOAT32, 4, -1, op, "grad_x"));
    REF_TRY(need(grad_out, SP_FLOAT32, 4, -1, op, "grad_out"));
    REF_TRY(need(argmax, SP_INT32, -1, sp_tensor_numel(grad_out), op, "argmax"));
    int64_t NC = grad_x->shape[0] * grad_x->shape[1], HW = grad_x->shape[2] * grad_x->shape[3];
    if (grad_out->shape[0] * grad_out->shape[1] != NC) return sp_error(SP_EINVAL, "%s: N*C differ", op);
    int64_t HoWo = grad_out->shape[2] * grad_out->shape[3];
    double *g = calloc((size_t)(NC * HW > 0 ? NC * HW : 1), sizeof(double));
    if (!g) return sp_error(SP_ENOMEM, "%s: cannot allocate the accumulator", op);
    for (int64_t p = 0; p < NC; p++)
        for (int64_t i = 0; i < HoWo; i++) {
            int32_t a = I32(argmax)[p * HoWo + i];
            if (a >= 0 && a < HW) g[p * HW + a] += F(grad_out)[p * HoWo + i];
        }
    for (int64_t i = 0; i < NC * HW; i++) F(grad_x)[i] = (float)g[i];
    free(g);
    return SP_OK;
}

/* the number of pixels a window averages over: kh*kw with count_pad, else its in-bounds ones */
static int64_t avg_divisor(int64_t oh, int64_t ow, int kh, int kw, int sh, int sw, int pt, int pl, int64_t H,
                           int64_t W, int count_pad) {
    if (count_pad) return (int64_t)kh * kw;
    int64_t n = 0;
    for (int i = 0; i < kh; i++)
        for (int j = 0; j < kw; j++) {
            int64_t ih = oh * sh - pt + i, iw = ow * sw - pl + j;
            if (ih >= 0 && ih < H && iw >= 0 && iw < W) n++;
        }
    return n;
}

/* out = (sum of the window's in-bounds pixels) / divisor; 0 for an empty window */
sp_status sp_ref_avgpool2d_forward(sp_tensor *out, const sp_tensor *x, int kh, int kw, int stride_h, int stride_w,
                                   int pad_top, int pad_bottom, int pad_left, int pad_right, int count_pad) {
    const char *op = "ref_avgpool2d_forward";
    int64_t Ho, Wo;
    REF_TRY(pool_dims(op, x, kh, kw, stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right, &Ho, &Wo));
    int64_t N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
    REF_TRY(need(out, SP_FLOAT32, -1, N * C * Ho * Wo, op, "out"));
    for (int64_t p = 0; p < N * C; p++)
        for (int64_t oh = 0; oh < Ho; oh++)
            for (int64_t ow = 0; ow < Wo; ow++) {
                double s = 0;
                for (int i = 0; i < kh; i++)
                    for (int j = 0; j < kw; j++) {
                        int64_t ih = oh * stride_h - pad_top + i, iw = ow * stride_w - pad_left + j;
                        if (ih >= 0 && ih < H && iw >= 0 && iw < W) s += F(x)[p * H * W + ih * W + iw];
                    }
                int64_t n = avg_divisor(oh, ow, kh, kw, stride_h, stride_w, pad_top, pad_left, H, W, count_pad);
                F(out)[(p * Ho + oh) * Wo + ow] = n ? (float)(s / (double)n) : 0.0f;
            }
    return SP_OK;
}

/* grad_x = 0, then each window's in-bounds pixels get grad_out / divisor */
sp_status sp_ref_avgpool2d_backward(sp_tensor *grad_x, const sp_tensor *grad_out, int kh, int kw, int stride_h,
                                    int stride_w, int pad_top, int pad_bottom, int pad_left, int pad_right,
                                    int count_pad) {
    const char *op = "ref_avgpool2d_backward";
    int64_t Ho, Wo;
    REF_TRY(pool_dims(op, grad_x, kh, kw, stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right, &Ho, &Wo));
    int64_t N = grad_x->shape[0], C = grad_x->shape[1], H = grad_x->shape[2], W = grad_x->shape[3];
    REF_TRY(need(grad_out, SP_FLOAT32, -1, N * C * Ho * Wo, op, "grad_out"));
    double *g = calloc((size_t)(N * C * H * W > 0 ? N * C * H * W : 1), sizeof(double));
    if (!g) return sp_error(SP_ENOMEM, "%s: cannot allocate the accumulator", op);
    for (int64_t p = 0; p < N * C; p++)
        for (int64_t oh = 0; oh < Ho; oh++)
            for (int64_t ow = 0; ow < Wo; ow++) {
                int64_t n = avg_divisor(oh, ow, kh, kw, stride_h, stride_w, pad_top, pad_left, H, W, count_pad);
                if (!n) continue;
                double share = F(grad_out)[(p * Ho + oh) * Wo + ow] / (double)n;
                for (int i = 0; i < kh; i++)
                    for (int j = 0; j < kw; j++) {
                        int64_t ih = oh * stride_h - pad_top + i, iw = ow * stride_w - pad_left + j;
                        if (ih >= 0 && ih < H && iw >= 0 && iw < W) g[p * H * W + ih * W + iw] += share;
                    }
            }
    for (int64_t i = 0; i < N * C * H * W; i++) F(grad_x)[i] = (float)g[i];
    free(g);
    return SP_OK;
}

/* out[n,c] = mean over (h,w) of x[n,c,h,w] (0 for an empty plane) */
sp_status sp_ref_global_avgpool_forward(sp_tensor *out, const sp_tensor *x) {
    const char *op = "ref_global_avgpool_forward";
    REF_TRY(need(x, SP_FLOAT32, 4, -1, op, "x"));
    int64_t NC = x->shape[0] * x->shape[1], HW = x->shape[2] * x->shape[3];
    REF_TRY(need(out, SP_FLOAT32, -1, NC, op, "out"));
    for (int64_t p = 0; p < NC; p++) {
        double s = 0;
        for (int64_t i = 0; i < HW; i++) s += F(x)[p * HW + i];
        F(out)[p] = HW ? (float)(s / (double)HW) : 0.0f;
    }
    return SP_OK;
}

/* grad_x[n,c,h,w] = grad_out[n,c] / (H*W) */
sp_status sp_ref_global_avgpool_backward(sp_tensor *grad_x, const sp_tensor *grad_out) {
    const char *op = "ref_global_avgpool_backward";
    REF_TRY(need(grad_x, SP_FLOAT32, 4, -1, op, "grad_x"));
    int64_t NC = grad_x->shape[0] * grad_x->shape[1], HW = grad_x->shape[2] * grad_x->shape[3];
    REF_TRY(need(grad_out, SP_FLOAT32, -1, NC, op, "grad_out"));
    for (int64_t p = 0; p < NC; p++)
        for (int64_t i = 0; i < HW; i++) F(grad_x)[p * HW + i] = (float)((double)F(grad_out)[p] / (double)HW);
    return SP_OK;
}

/* ---- softmax and softmax cross-entropy ---- */

/* p = exp(x - max) / sum(exp(x - max)) along the row; returns logsumexp(x) */
static double softmax_row(float *p, const float *x, int64_t C) {
    double m = -INFINITY;
    for (int64_t c = 0; c < C; c++) if (x[c] > m) m = x[c];
    double s = 0;
    for (int64_t c = 0; c < C; c++) s += exp((double)x[c] - m);
    for (int64_t c = 0; c < C; c++) p[c] = (float)(exp((double)x[c] - m) / s);
    return m + log(s);
}

sp_status sp_ref_softmax_forward(sp_tensor *out, const sp_tensor *x) {
    const char *op = "ref_softmax_forward";
    REF_TRY(need(x, SP_FLOAT32, 2, -1, op, "x"));
    int64_t N = x->shape[0], C = x->shape[1];
    REF_TRY(need(out, SP_FLOAT32, -1, N * C, op, "out"));
    for (int64_t n = 0; n < N; n++) softmax_row(F(out) + n * C, F(x) + n * C, C);
    return SP_OK;
}

/* labels: int32 [N] class ids in [0, C) (sparse) or float32 [N,C] (dense) */
static sp_status labels_of(const char *op, const sp_tensor *labels, int64_t N, int64_t C, int *sparse) {
    if (labels && labels->dtype == SP_INT32) {
        REF_TRY(need(labels, SP_INT32, -1, N, op, "labels"));
        for (int64_t n = 0; n < N; n++)
            if (I32(labels)[n] < 0 || I32(labels)[n] >= C)
                return sp_error(SP_EINVAL, "%s: label %d at row %lld is out of range [0, %lld)", op, I32(labels)[n],
                                (long long)n, (long long)C);
        *sparse = 1;
        return SP_OK;
    }
    REF_TRY(need(labels, SP_FLOAT32, -1, N * C, op, "labels"));
    *sparse = 0;
    return SP_OK;
}

/* the label weight of class c in row n: one-hot for sparse labels */
static double label_at(const sp_tensor *labels, int sparse, int64_t n, int64_t c, int64_t C) {
    if (sparse) return I32(labels)[n] == c ? 1.0 : 0.0;
    return F(labels)[n * C + c];
}

/* loss[n] = sum_c label[n,c] * (logsumexp(x[n]) - x[n,c]); prob = softmax(x) */
sp_status sp_ref_softmax_xent_forward(sp_tensor *loss, sp_tensor *prob, const sp_tensor *logits,
                                      const sp_tensor *labels) {
    const char *op = "ref_softmax_xent_forward";
    REF_TRY(need(logits, SP_FLOAT32, 2, -1, op, "logits"));
    int64_t N = logits->shape[0], C = logits->shape[1];
    REF_TRY(need(loss, SP_FLOAT32, -1, N, op, "loss"));
    REF_TRY(need(prob, SP_FLOAT32, -1, N * C, op, "prob"));
    int sparse;
    REF_TRY(labels_of(op, labels, N, C, &sparse));
    for (int64_t n = 0; n < N; n++) {
        double lse = softmax_row(F(prob) + n * C, F(logits) + n * C, C), s = 0;
        for (int64_t c = 0; c < C; c++) s += label_at(labels, sparse, n, c, C) * (lse - F(logits)[n * C + c]);
        F(loss)[n] = (float)s;
    }
    return SP_OK;
}

/* d loss[n] / d x[n,c] = prob[n,c] * sum_c' label[n,c'] - label[n,c], times grad_loss[n]
 * (1 when NULL) and scale */
sp_status sp_ref_softmax_xent_backward(sp_tensor *grad_x, const sp_tensor *prob, const sp_tensor *labels,
                                       const sp_tensor *grad_loss, double scale) {
    const char *op = "ref_softmax_xent_backward";
    REF_TRY(need(prob, SP_FLOAT32, 2, -1, op, "prob"));
    int64_t N = prob->shape[0], C = prob->shape[1];
    REF_TRY(need(grad_x, SP_FLOAT32, -1, N * C, op, "grad_x"));
    if (grad_loss) REF_TRY(need(grad_loss, SP_FLOAT32, -1, N, op, "grad_loss"));
    int sparse;
    REF_TRY(labels_of(op, labels, N, C, &sparse));
    for (int64_t n = 0; n < N; n++) {
        double k = scale * (grad_loss ? F(grad_loss)[n] : 1.0), total = 0;
        for (int64_t c = 0; c < C; c++) total += label_at(labels, sparse, n, c, C);
        for (int64_t c = 0; c < C; c++)
            F(grad_x)[n * C + c] = (float)(k * (F(prob)[n * C + c] * total - label_at(labels, sparse, n, c, C)));
    }
    return SP_OK;
}

/* The weighted, smoothed cross-entropy written out: row n's target distribution q is built
 * explicitly (one-hot for a sparse label, scaled by weight, plus the smoothing term), then
 * loss[n] = -sum_c q[c] log softmax(x[n])[c], row_weight[n] = w[y] (0 if ignored) or 1,
 * grad = (softmax * sum(q) - q) * grad_loss[n] * scale. */
static void ce_target(double *q, const sp_tensor *labels, int sparse, const sp_tensor *weight, int64_t ignore_index,
                      double a, double b, int64_t n, int64_t C, double *rw) {
    int32_t y = sparse ? I32(labels)[n] : -1;
    for (int64_t c = 0; c < C; c++) q[c] = 0;
    *rw = 1;
    if (sparse && (int64_t)y == ignore_index) { *rw = 0; return; }
    for (int64_t c = 0; c < C; c++) {
        double w = weight ? F(weight)[c] : 1.0;
        double onehot = sparse ? (c == y ? 1.0 : 0.0) : F(labels)[n * C + c];
        q[c] = (a * onehot + b) * w;
    }
    if (sparse) {
        /* a*w[y] on the label, b*w[c] everywhere: (a*onehot + b)*w[c] is the same thing */
        *rw = weight ? F(weight)[y] : 1.0;
    }
}

sp_status sp_ref_cross_entropy_forward(sp_tensor *loss, sp_tensor *row_weight, sp_tensor *prob,
                                       const sp_tensor *logits, const sp_tensor *labels, const sp_tensor *weight,
                                       int64_t ignore_index, double a, double b) {
    const char *op = "ref_cross_entropy_forward";
    REF_TRY(need(logits, SP_FLOAT32, 2, -1, op, "logits"));
    int64_t N = logits->shape[0], C = logits->shape[1];
    REF_TRY(need(loss, SP_FLOAT32, -1, N, op, "loss"));
    REF_TRY(need(prob, SP_FLOAT32, -1, N * C, op, "prob"));
    if (weight) REF_TRY(need(weight, SP_FLOAT32, 1, C, op, "weight"));
    if (row_weight) REF_TRY(need(row_weight, SP_FLOAT32, -1, N, op, "row_weight"));
    int sparse = labels->dtype == SP_INT32;
    double *q = malloc((size_t)C * sizeof *q);
    if (!q) return sp_error(SP_ENOMEM, "%s: out of memory", op);
    for (int64_t n = 0; n < N; n++) {
        double lse = softmax_row(F(prob) + n * C, F(logits) + n * C, C), rw, s = 0;
        ce_target(q, labels, sparse, weight, ignore_index, a, b, n, C, &rw);
        for (int64_t c = 0; c < C; c++) s -= q[c] * ((double)F(logits)[n * C + c] - lse);
        F(loss)[n] = (float)s;
        if (row_weight) F(row_weight)[n] = (float)rw;
    }
    free(q);
    return SP_OK;
}

sp_status sp_ref_cross_entropy_backward(sp_tensor *grad_x, const sp_tensor *prob, const sp_tensor *labels,
                                        const sp_tensor *weight, const sp_tensor *grad_loss, int64_t ignore_index,
                                        double a, double b, double scale) {
    const char *op = "ref_cross_entropy_backward";
    REF_TRY(need(prob, SP_FLOAT32, 2, -1, op, "prob"));
    int64_t N = prob->shape[0], C = prob->shape[1];
    REF_TRY(need(grad_x, SP_FLOAT32, -1, N * C, op, "grad_x"));
    if (grad_loss) REF_TRY(need(grad_loss, SP_FLOAT32, -1, N, op, "grad_loss"));
    int sparse = labels->dtype == SP_INT32;
    double *q = malloc((size_t)C * sizeof *q);
    if (!q) return sp_error(SP_ENOMEM, "%s: out of memory", op);
    for (int64_t n = 0; n < N; n++) {
        double rw, total = 0, k = scale * (grad_loss ? F(grad_loss)[n] : 1.0);
        ce_target(q, labels, sparse, weight, ignore_index, a, b, n, C, &rw);
        for (int64_t c = 0; c < C; c++) total += q[c];
        for (int64_t c = 0; c < C; c++) F(grad_x)[n * C + c] = (float)(k * (F(prob)[n * C + c] * total - q[c]));
    }
    free(q);
    return SP_OK;
}

/* ---- optimizers (in place; formulas as in spore.h) ---- */

static sp_status opt_need(const char *op, const sp_tensor *p, const sp_tensor *g, const sp_tensor *s1,
                          const char *n1, const sp_tensor *s2, const char *n2, double loss_scale) {
    REF_TRY(need(p, SP_FLOAT32, -1, -1, op, "param"));
    int64_t n = sp_tensor_numel(p);
    REF_TRY(need(g, SP_FLOAT32, -1, n, op, "grad"));
    if (s1) REF_TRY(need(s1, SP_FLOAT32, -1, n, op, n1));
    if (s2) REF_TRY(need(s2, SP_FLOAT32, -1, n, op, n2));
    if (loss_scale == 0) return sp_error(SP_EINVAL, "%s: loss_scale is 0", op);
    return SP_OK;
}

/* g' = g/loss_scale + wd*p; v = u*v + g'; p -= lr*v (Nesterov: p -= lr*g' + lr*u*v) */
sp_status sp_ref_momentum_update(sp_tensor *param, sp_tensor *moment, const sp_tensor *grad, double lr,
                                 double momentum, double weight_decay, double loss_scale, int nesterov) {
    REF_TRY(opt_need("ref_momentum_update", param, grad, moment, "moment", NULL, NULL, loss_scale));
    for (int64_t i = 0; i < sp_tensor_numel(param); i++) {
        double p = F(param)[i], g = F(grad)[i] / loss_scale + weight_decay * p;
        double v = momentum * F(moment)[i] + g;
        F(moment)[i] = (float)v;
        F(param)[i] = (float)(nesterov ? p - (lr * g + lr * momentum * v) : p - lr * v);
    }
    return SP_OK;
}

/* g' = g/loss_scale + wd*p; with momentum u > 0: accum = g' on the first step, else
 * u*accum + (1-dampening)*g'; p -= lr*(nesterov ? g' + u*accum : accum). u = 0: p -= lr*g'. */
sp_status sp_ref_sgd_update(sp_tensor *param, sp_tensor *accum, const sp_tensor *grad, double lr, double momentum,
                            double dampening, double weight_decay, double loss_scale, int nesterov, int first) {
    REF_TRY(opt_need("ref_sgd_update", param, grad, accum, "accum", NULL, NULL, loss_scale));
    for (int64_t i = 0; i < sp_tensor_numel(param); i++) {
        double p = F(param)[i], g = F(grad)[i] / loss_scale + weight_decay * p;
        if (momentum > 0) {
            double a = first ? g : momentum * F(accum)[i] + (1.0 - dampening) * g;
            F(accum)[i] = (float)a;
            F(param)[i] = (float)(p - lr * (nesterov ? g + momentum * a : a));
        } else {
            F(param)[i] = (float)(p - lr * g);
        }
    }
    return SP_OK;
}

/* g' = g/loss_scale + wd*p; m += (g'-m)(1-b1); v += (g'^2-v)(1-b2);
 * p -= lr*sqrt(1-b2^t)/(1-b1^t) * (nesterov ? m*b1 + (1-b1)*g' : m) / (sqrt(v) + eps) */
sp_status sp_ref_adam_update(sp_tensor *param, sp_tensor *m, sp_tensor *v, const sp_tensor *grad, double lr,
                             double beta1, double beta2, double eps, double beta1_power, double beta2_power,
                             double weight_decay, double loss_scale, int nesterov) {
    const char *op = "ref_adam_update";
    REF_TRY(opt_need(op, param, grad, m, "moment1", v, "moment2", loss_scale));
    if (beta1_power >= 1) return sp_error(SP_EINVAL, "%s: beta1_power must be < 1, got %g", op, beta1_power);
    double step = lr * sqrt(1.0 - beta2_power) / (1.0 - beta1_power);
    for (int64_t i = 0; i < sp_tensor_numel(param); i++) {
        double p = F(param)[i], g = F(grad)[i] / loss_scale + weight_decay * p;
        double mi = F(m)[i] + (g - F(m)[i]) * (1.0 - beta1);
        double vi = F(v)[i] + (g * g - F(v)[i]) * (1.0 - beta2);
        F(m)[i] = (float)mi;
        F(v)[i] = (float)vi;
        double num = nesterov ? mi * beta1 + (1.0 - beta1) * g : mi;
        F(param)[i] = (float)(p - step * num / (sqrt(vi) + eps));
    }
    return SP_OK;
}

/* AMSGrad: g' = g/loss_scale + wd*p; m = b1*m + (1-b1)*g'; v = b2*v + (1-b2)*g'^2;
 * vhat = max(vhat, v); p -= lr*sqrt(1-b2^t)/(1-b1^t) * m/(sqrt(vhat)+eps) */
sp_status sp_ref_adam_amsgrad_update(sp_tensor *param, sp_tensor *m, sp_tensor *v, sp_tensor *vhat,
                                     const sp_tensor *grad, double lr, double beta1, double beta2, double eps,
                                     double beta1_power, double beta2_power, double weight_decay,
                                     double loss_scale) {
    const char *op = "ref_adam_amsgrad_update";
    REF_TRY(opt_need(op, param, grad, m, "moment1", v, "moment2", loss_scale));
    REF_TRY(opt_need(op, param, grad, vhat, "vhat", NULL, NULL, loss_scale));
    double step = lr * sqrt(1.0 - beta2_power) / (1.0 - beta1_power);
    for (int64_t i = 0; i < sp_tensor_numel(param); i++) {
        double p = F(param)[i], g = F(grad)[i] / loss_scale + weight_decay * p;
        double mi = beta1 * F(m)[i] + (1.0 - beta1) * g, vi = beta2 * F(v)[i] + (1.0 - beta2) * g * g;
        double h = F(vhat)[i] > vi ? F(vhat)[i] : vi;
        F(m)[i] = (float)mi; F(v)[i] = (float)vi; F(vhat)[i] = (float)h;
        F(param)[i] = (float)(p - step * mi / (sqrt(h) + eps));
    }
    return SP_OK;
}

/* AdamWeightDecay: m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2; p -= lr*(m/(sqrt(v)+eps) + wd*p) */
sp_status sp_ref_adamw_update(sp_tensor *param, sp_tensor *m, sp_tensor *v, const sp_tensor *grad, double lr,
                              double beta1, double beta2, double eps, double weight_decay) {
    REF_TRY(opt_need("ref_adamw_update", param, grad, m, "moment1", v, "moment2", 1.0));
    for (int64_t i = 0; i < sp_tensor_numel(param); i++) {
        double p = F(param)[i], g = F(grad)[i];
        double mi = beta1 * F(m)[i] + (1.0 - beta1) * g, vi = beta2 * F(v)[i] + (1.0 - beta2) * g * g;
        F(m)[i] = (float)mi; F(v)[i] = (float)vi;
        F(param)[i] = (float)(p - lr * (mi / (sqrt(vi) + eps) + weight_decay * p));
    }
    return SP_OK;
}

/* g += wd*p; then each of `rows` rows loses its mean (rows = 0: no centralization) */
sp_status sp_ref_grad_centralize(sp_tensor *grad, const sp_tensor *param, double weight_decay, int64_t rows) {
    int64_t n = sp_tensor_numel(grad);
    REF_TRY(opt_need("ref_grad_centralize", grad, grad, param, "param", NULL, NULL, 1.0));
    if (param)
        for (int64_t i = 0; i < n; i++) F(grad)[i] = (float)((double)F(grad)[i] + weight_decay * F(param)[i]);
    if (rows <= 0) return SP_OK;
    int64_t cols = n / rows;
    for (int64_t r = 0; r < rows; r++) {
        double s = 0;
        for (int64_t j = 0; j < cols; j++) s += F(grad)[r * cols + j];
        for (int64_t j = 0; j < cols; j++) F(grad)[r * cols + j] = (float)(F(grad)[r * cols + j] - s / cols);
    }
    return SP_OK;
}

/* ---- bfloat16 (amp_level "O2") ------------------------------------------- */

/* float32 -> nearest bfloat16 (ties to even) -> float32, from the definition: keep the top
 * 16 bits of the float32 pattern after adding half an ulp of bf16 (NaN kept NaN). */
float sp_ref_bf16_round(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if (isnan(f)) return f;
    uint32_t lsb = (u >> 16) & 1u;
    u = (u + 0x7fffu + lsb) & 0xffff0000u;
    memcpy(&f, &u, 4);
    return f;
}

/* out[M,N] = a[M,K] · b[K,N] with every element of a and b rounded to bfloat16 first;
 * products and sums in double (contiguous 2-D float32). */
sp_status sp_ref_gemm_bf16(sp_tensor *out, const sp_tensor *a, const sp_tensor *b) {
    const char *op = "ref_gemm_bf16";
    REF_TRY(need(a, SP_FLOAT32, 2, -1, op, "a"));
    REF_TRY(need(b, SP_FLOAT32, 2, -1, op, "b"));
    int64_t M = a->shape[0], K = a->shape[1], N = b->shape[1];
    if (b->shape[0] != K) return sp_error(SP_EINVAL, "%s: b is not [%lld, N]", op, (long long)K);
    REF_TRY(need(out, SP_FLOAT32, 2, M * N, op, "out"));
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double s = 0;
            for (int64_t k = 0; k < K; k++)
                s += (double)sp_ref_bf16_round(F(a)[m * K + k]) * (double)sp_ref_bf16_round(F(b)[k * N + n]);
            F(out)[m * N + n] = (float)s;
        }
    return SP_OK;
}
