/* cuda_kernels.c — the CUDA devices (cuda:0..) and their kernel table (CUDA=1 builds
 * only). Compiled by cc, not nvcc: it unpacks the engine's tensors into plain pointers
 * and views and calls the .cu side through engine/cuda/cuda_api.h, which names no CUDA
 * type, so no CUDA header reaches engine C code.
 *
 * Kernels not worth a GPU version (random fills, whose values must equal the CPU's
 * stream; topk; count_equal; dropout; integer arithmetic with its division-by-zero
 * error; AMSGrad; gradient centralisation) run the CPU kernel on host copies of the
 * operands and copy the written tensors back: the same values as the CPU by
 * construction, at the price of two transfers. */
#include "core/internal.h"
#include "core/device.h"
#include "core/kernels.h"
#include "cpu/cpu_kernels.h"
#include "cuda/cuda_api.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

/* ---- views ------------------------------------------------------------------------ */

/* Views serve inputs and outputs alike, so each marks its storage written (core/internal.h:
 * conservative; device memory is never kept by the CPU's weight cache anyway). */
static void *view_data(const sp_tensor *t) {
    sp_storage_touch(t->st);
    return (void *)SP_DATA(t);
}
static spc_view V(const sp_tensor *t) {
    spc_view v;
    memset(&v, 0, sizeof v);
    v.data = view_data(t);
    v.dtype = t->dtype;
    v.ndim = t->ndim;
    for (int i = 0; i < t->ndim; i++) { v.shape[i] = t->shape[i]; v.strides[i] = t->strides[i]; }
    return v;
}

/* t seen with out's shape under numpy broadcasting (stride 0 on broadcast dims) */
static spc_view Vb(const sp_tensor *t, const sp_tensor *out) {
    spc_view v;
    memset(&v, 0, sizeof v);
    v.data = view_data(t);
    v.dtype = t->dtype;
    v.ndim = out->ndim;
    for (int i = 0; i < out->ndim; i++) {
        int it = i - (out->ndim - t->ndim);
        int64_t dt = it >= 0 ? t->shape[it] : 1;
        v.shape[i] = out->shape[i];
        v.strides[i] = (it >= 0 && dt != 1) ? t->strides[it] : 0;
    }
    return v;
}

#define DEV(t) (SP_DEV(t)->index)
#define F(t) ((float *)SP_DATA(t))
#define FO(t) ((t) ? (float *)SP_DATA(t) : NULL)

/* ---- host fallback ------------------------------------------------------------------ */

typedef struct { sp_tensor *dev; sp_tensor *host; int write; } fb_arg;

static sp_status fb_get(fb_arg *f, const sp_tensor *t, int write) {
    f->dev = (sp_tensor *)t;
    f->write = write;
    f->host = NULL;
    return t ? sp_tensor_host_contiguous(&f->host, t) : SP_OK;
}

static sp_status fb_end(fb_arg *f, int n, sp_status st) {
    for (int i = 0; i < n; i++)
        if (!st && f[i].write && f[i].host) st = sp_tensor_copy(f[i].dev, f[i].host);
    for (int i = 0; i < n; i++) sp_tensor_free(f[i].host);
    return st;
}

#define FB(n)                                                                                      \
    fb_arg f[n];                                                                                   \
    memset(f, 0, sizeof f);                                                                        \
    sp_status st = SP_OK
#define GET(i, t, w) if (!st) st = fb_get(&f[i], (t), (w))
#define H(i) (f[i].host)

static sp_status fb_rand_uniform(sp_tensor *t, double lo, double hi, uint64_t *state) {
    FB(1);
    GET(0, t, 1);
    if (!st) st = sp_cpu_rand_uniform(H(0), lo, hi, state);
    return fb_end(f, 1, st);
}
static sp_status fb_rand_normal(sp_tensor *t, double mean, double std, uint64_t *state) {
    FB(1);
    GET(0, t, 1);
    if (!st) st = sp_cpu_rand_normal(H(0), mean, std, state);
    return fb_end(f, 1, st);
}
static sp_status fb_rand_trunc_normal(sp_tensor *t, double mean, double std, uint64_t *state) {
    FB(1);
    GET(0, t, 1);
    if (!st) st = sp_cpu_rand_trunc_normal(H(0), mean, std, state);
    return fb_end(f, 1, st);
}
static sp_status fb_arange(sp_tensor *t, double start, double step) {
    FB(1);
    GET(0, t, 1);
    if (!st) st = sp_cpu_arange(H(0), start, step);
    return fb_end(f, 1, st);
}
static sp_status fb_binary(sp_tensor *out, const sp_tensor *a, const sp_tensor *b, int op) {
    FB(3);
    GET(0, out, 1);
    GET(1, a, 0);
    GET(2, b, 0);
    if (!st) st = sp_cpu_binary(H(0), H(1), H(2), op);
    return fb_end(f, 3, st);
}
static sp_status fb_binary_scalar(sp_tensor *out, const sp_tensor *a, double s, int op, int reverse) {
    FB(2);
    GET(0, out, 1);
    GET(1, a, 0);
    if (!st) st = sp_cpu_binary_scalar(H(0), H(1), s, op, reverse);
    return fb_end(f, 2, st);
}
static sp_status fb_topk(sp_tensor *values, sp_tensor *indices, const sp_tensor *a, int k, int dim, int largest) {
    FB(3);
    GET(0, values, 1);
    GET(1, indices, 1);
    GET(2, a, 0);
    if (!st) st = sp_cpu_topk(H(0), H(1), H(2), k, dim, largest);
    return fb_end(f, 3, st);
}
static sp_status fb_count_equal(const sp_tensor *a, const sp_tensor *b, int64_t *count) {
    FB(2);
    GET(0, a, 0);
    GET(1, b, 0);
    if (!st) st = sp_cpu_count_equal(H(0), H(1), count);
    return fb_end(f, 2, st);
}
static sp_status fb_dropout_forward(sp_tensor *out, sp_tensor *mask, const sp_tensor *x, double p, uint64_t *state) {
    FB(3);
    GET(0, out, 1);
    GET(1, mask, 1);
    GET(2, x, 0);
    if (!st) st = sp_cpu_dropout_forward(H(0), H(1), H(2), p, state);
    return fb_end(f, 3, st);
}
static sp_status fb_adam_amsgrad_update(sp_tensor *param, sp_tensor *m, sp_tensor *v, sp_tensor *vhat,
                                        const sp_tensor *grad, double lr, double beta1, double beta2, double eps,
                                        double beta1_power, double beta2_power, double weight_decay,
                                        double loss_scale) {
    FB(5);
    GET(0, param, 1);
    GET(1, m, 1);
    GET(2, v, 1);
    GET(3, vhat, 1);
    GET(4, grad, 0);
    if (!st)
        st = sp_cpu_adam_amsgrad_update(H(0), H(1), H(2), H(3), H(4), lr, beta1, beta2, eps, beta1_power, beta2_power,
                                        weight_decay, loss_scale);
    return fb_end(f, 5, st);
}
static sp_status fb_grad_centralize(sp_tensor *grad, const sp_tensor *param, double weight_decay, int64_t rows) {
    FB(2);
    GET(0, grad, 1);
    GET(1, param, 0);
    if (!st) st = sp_cpu_grad_centralize(H(0), H(1), weight_decay, rows);
    return fb_end(f, 2, st);
}

/* ---- native kernels ----------------------------------------------------------------- */

static sp_status cu_copy(sp_tensor *dst, const sp_tensor *src) {
    spc_view d = V(dst), s = V(src);
    return spc_copy_convert(DEV(dst), &d, &s);
}

static sp_status cu_fill(sp_tensor *t, double value) {
    unsigned char buf[8] = {0};
    sp_store_f64(t->dtype, buf, value);
    uint64_t bits = 0;
    for (int k = 7; k >= 0; k--) bits = (bits << 8) | buf[k];
    spc_view v = V(t);
    return spc_fill_bytes(DEV(t), &v, bits);
}

static sp_status cu_binary(sp_tensor *out, const sp_tensor *a, const sp_tensor *b, int op) {
    if (sp_dtype_is_int(out->dtype) && sp_dtype_is_int(a->dtype) && sp_dtype_is_int(b->dtype) && out->dtype != SP_BOOL)
        return fb_binary(out, a, b, op); /* int64 arithmetic and its division-by-zero error */
    spc_view o = V(out), va = Vb(a, out), vb = Vb(b, out);
    return spc_binary(DEV(out), &o, &va, &vb, op);
}

static sp_status cu_binary_scalar(sp_tensor *out, const sp_tensor *a, double s, int op, int reverse) {
    /* engine/cpu/elementwise.c's integer case (the range test first: it also rejects NaN,
     * and makes the int64 conversion defined) */
    int ints = sp_dtype_is_int(out->dtype) && sp_dtype_is_int(a->dtype) && out->dtype != SP_BOOL && s < 9.0e15 &&
               s > -9.0e15 && s == (double)(int64_t)s;
    if (ints) return fb_binary_scalar(out, a, s, op, reverse);
    spc_view o = V(out), va = V(a);
    return spc_binary_scalar(DEV(out), &o, &va, s, op, reverse);
}

static sp_status cu_unary(sp_tensor *out, const sp_tensor *a, int op) {
    if (op < SP_UN_NEG || op > SP_UN_RELU) return sp_error(SP_EINVAL, "unary op: unknown op %d", op);
    spc_view o = V(out), va = V(a);
    return spc_unary(DEV(out), &o, &va, op);
}

static sp_status cu_reduce_all(const sp_tensor *a, int op, double *value) {
    spc_view va = V(a);
    return spc_reduce_all(DEV(a), &va, op, value);
}

static sp_status cu_reduce_dim(sp_tensor *out, const sp_tensor *a, int op, int dim, int keepdim) {
    (void)keepdim; /* out's shape is checked by sp_reduce_dim; it is addressed by flat position */
    int d = dim < 0 ? dim + a->ndim : dim;
    spc_view o = V(out), va = V(a);
    return spc_reduce_dim(DEV(a), &o, &va, op, d);
}

/* operands cuBLAS reads in place: sp_blas_layout (engine/cpu/gemm.c) */
static sp_status cu_matmul(sp_tensor *out, const sp_tensor *a, const sp_tensor *b, int trans_a, int trans_b,
                           double alpha, double beta) {
    int dt = out->dtype;
    int64_t M = out->shape[0], N = out->shape[1], K = trans_a ? a->shape[0] : a->shape[1];
    sp_tensor *ca = NULL, *cb = NULL, *co = NULL;
    int ta, tb, to;
    int64_t lda, ldb, ldo;
    sp_status st = SP_OK;
    if (!sp_blas_layout(a, &ta, &lda)) { if ((st = sp_tensor_clone(&ca, a, dt))) goto done; sp_blas_layout(ca, &ta, &lda); }
    if (!sp_blas_layout(b, &tb, &ldb)) { if ((st = sp_tensor_clone(&cb, b, dt))) goto done; sp_blas_layout(cb, &tb, &ldb); }
    if (!sp_blas_layout(out, &to, &ldo) || to) {
        if ((st = sp_tensor_clone(&co, out, dt))) goto done;
        sp_blas_layout(co, &to, &ldo);
    }
    {
        const sp_tensor *A = ca ? ca : a, *B = cb ? cb : b;
        sp_tensor *O = co ? co : out;
        if (K == 0) {
            spc_view vo = V(O);
            st = spc_binary_scalar(DEV(out), &vo, &vo, beta, SP_OP_MUL, 0);
        } else {
            st = spc_gemm(DEV(out), dt, ta ^ (trans_a != 0), tb ^ (trans_b != 0), M, N, K, alpha, SP_DATA(A), lda,
                          SP_DATA(B), ldb, beta, SP_DATA(O), ldo);
        }
        if (!st && co) st = sp_tensor_copy(out, co);
    }
done:
    sp_tensor_free(ca);
    sp_tensor_free(cb);
    sp_tensor_free(co);
    return st;
}

static sp_status zero(sp_tensor *t) {
    spc_view v = V(t);
    return spc_fill_bytes(DEV(t), &v, 0);
}

/* A zero-padded copy of x [N,C,H,W] for asymmetric padding (cuDNN pads symmetrically). */
static sp_status padded(sp_tensor **xp, const sp_tensor *x, int pt, int pb, int pl, int pr) {
    int64_t shape[4] = {x->shape[0], x->shape[1], x->shape[2] + pt + pb, x->shape[3] + pl + pr};
    sp_status st = sp_tensor_empty_on(xp, SP_FLOAT32, 4, shape, SP_DEV(x)->code);
    if (!st) st = spc_pad2d(DEV(x), F(*xp), F(x), x->shape[0] * x->shape[1], x->shape[2], x->shape[3], pt, pb, pl, pr, 0);
    return st;
}

static sp_status dims_fit(const char *op, const sp_tensor *t) {
    for (int i = 0; i < t->ndim; i++)
        if (t->shape[i] > 2147483647LL)
            return sp_error(SP_EINVAL, "%s: dimension %d (%lld) exceeds cuDNN's 32-bit limit", op, i, (long long)t->shape[i]);
    return SP_OK;
}

static sp_status cu_conv2d_forward(sp_tensor *out, const sp_tensor *x, const sp_tensor *w, const sp_tensor *bias,
                                   int stride_h, int stride_w, int pad_top, int pad_bottom, int pad_left,
                                   int pad_right, int dil_h, int dil_w, int groups) {
    sp_status st = dims_fit("conv2d_forward", x);
    if (!st) st = dims_fit("conv2d_forward", out);
    if (st) return st;
    sp_tensor *xp = NULL;
    const sp_tensor *xx = x;
    int ph = pad_top, pw = pad_left;
    if (pad_top != pad_bottom || pad_left != pad_right) {
        st = padded(&xp, x, pad_top, pad_bottom, pad_left, pad_right);
        xx = xp;
        ph = pw = 0;
    }
    if (!st)
        st = spc_conv2d_forward(DEV(x), F(out), F(xx), F(w), FO(bias), (int)xx->shape[0], (int)xx->shape[1],
                                (int)xx->shape[2], (int)xx->shape[3], (int)w->shape[0], (int)w->shape[2],
                                (int)w->shape[3], (int)out->shape[2], (int)out->shape[3], stride_h, stride_w, ph, pw,
                                dil_h, dil_w, groups);
    sp_tensor_free(xp);
    return st;
}

static sp_status cu_conv2d_backward(sp_tensor *grad_x, sp_tensor *grad_w, sp_tensor *grad_b, const sp_tensor *grad_out,
                                    const sp_tensor *x, const sp_tensor *w, int stride_h, int stride_w, int pad_top,
                                    int pad_bottom, int pad_left, int pad_right, int dil_h, int dil_w, int groups) {
    sp_status st = dims_fit("conv2d_backward", x);
    if (!st) st = dims_fit("conv2d_backward", grad_out);
    if (st) return st;
    sp_tensor *xp = NULL, *gxp = NULL;
    const sp_tensor *xx = x;
    sp_tensor *gx = grad_x;
    int ph = pad_top, pw = pad_left;
    int asym = pad_top != pad_bottom || pad_left != pad_right;
    if (asym) {
        st = padded(&xp, x, pad_top, pad_bottom, pad_left, pad_right);
        if (!st && grad_x) st = sp_tensor_empty_on(&gxp, SP_FLOAT32, 4, xp->shape, SP_DEV(x)->code);
        xx = xp;
        gx = gxp;
        ph = pw = 0;
    }
    if (!st)
        st = spc_conv2d_backward(DEV(x), FO(gx), FO(grad_w), FO(grad_b), F(grad_out), F(xx), F(w), (int)xx->shape[0],
                                 (int)xx->shape[1], (int)xx->shape[2], (int)xx->shape[3], (int)w->shape[0],
                                 (int)w->shape[2], (int)w->shape[3], (int)grad_out->shape[2], (int)grad_out->shape[3],
                                 stride_h, stride_w, ph, pw, dil_h, dil_w, groups);
    if (!st && asym && grad_x)
        st = spc_pad2d(DEV(x), F(grad_x), F(gxp), x->shape[0] * x->shape[1], x->shape[2], x->shape[3], pad_top,
                       pad_bottom, pad_left, pad_right, 1);
    sp_tensor_free(xp);
    sp_tensor_free(gxp);
    return st;
}

/* out [N,O] = x [N,In] . w [O,In]^T + b [O] */
static sp_status cu_dense_forward(sp_tensor *out, const sp_tensor *x, const sp_tensor *w, const sp_tensor *bias) {
    int64_t N = x->shape[0], In = x->shape[1], O = w->shape[0];
    int dev = DEV(x);
    sp_status st = SP_OK;
    if (bias) st = spc_bias_rows(dev, F(out), F(bias), N, O);
    if (st) return st;
    if (N && O && In)
        return spc_gemm(dev, SP_FLOAT32, 0, 1, N, O, In, 1.0, F(x), In, F(w), In, bias ? 1.0 : 0.0, F(out), O);
    return bias ? SP_OK : zero(out);
}

/* grad_x [N,In] = grad_out . w; grad_w [O,In] += grad_out^T . x; grad_b [O] += sum_n */
static sp_status cu_dense_backward(sp_tensor *grad_x, sp_tensor *grad_w, sp_tensor *grad_b, const sp_tensor *grad_out,
                                   const sp_tensor *x, const sp_tensor *w) {
    int64_t N = x->shape[0], In = x->shape[1], O = w->shape[0];
    int dev = DEV(x);
    sp_status st = SP_OK;
    if (grad_x) {
        if (O == 0) st = zero(grad_x);
        else if (N && In) st = spc_gemm(dev, SP_FLOAT32, 0, 0, N, In, O, 1.0, F(grad_out), O, F(w), In, 0.0, F(grad_x), In);
    }
    if (!st && grad_w && N && O && In)
        st = spc_gemm(dev, SP_FLOAT32, 1, 0, O, In, N, 1.0, F(grad_out), O, F(x), In, 1.0, F(grad_w), In);
    if (!st && grad_b) st = spc_bias_grad_rows(dev, F(grad_b), F(grad_out), N, O);
    return st;
}

static sp_status cu_batchnorm_forward(sp_tensor *out, sp_tensor *save_mean, sp_tensor *save_invstd, const sp_tensor *x,
                                      const sp_tensor *gamma, const sp_tensor *beta, sp_tensor *moving_mean,
                                      sp_tensor *moving_var, int training, int update, double momentum, double eps) {
    return spc_batchnorm_forward(DEV(x), F(out), F(save_mean), F(save_invstd), F(x), F(gamma), F(beta),
                                 FO(moving_mean), FO(moving_var), x->shape[0], x->shape[1], x->shape[2] * x->shape[3],
                                 training, update, momentum, eps);
}

static sp_status cu_batchnorm_backward(sp_tensor *grad_x, sp_tensor *grad_gamma, sp_tensor *grad_beta,
                                       const sp_tensor *grad_out, const sp_tensor *x, const sp_tensor *gamma,
                                       const sp_tensor *save_mean, const sp_tensor *save_invstd, int training) {
    return spc_batchnorm_backward(DEV(x), FO(grad_x), FO(grad_gamma), FO(grad_beta), F(grad_out), F(x), F(gamma),
                                  F(save_mean), F(save_invstd), x->shape[0], x->shape[1], x->shape[2] * x->shape[3],
                                  training);
}

static sp_status cu_relu_backward(sp_tensor *grad_x, const sp_tensor *grad_out, const sp_tensor *y) {
    return spc_relu_backward(DEV(y), F(grad_x), F(grad_out), F(y), sp_tensor_numel(y));
}

static sp_status cu_maxpool2d_forward(sp_tensor *out, sp_tensor *argmax, const sp_tensor *x, int kh, int kw,
                                      int stride_h, int stride_w, int pad_top, int pad_bottom, int pad_left,
                                      int pad_right) {
    (void)pad_bottom; (void)pad_right; /* out's shape carries them */
    return spc_maxpool_forward(DEV(x), F(out), (int32_t *)SP_DATA(argmax), F(x), x->shape[0] * x->shape[1],
                               x->shape[2], x->shape[3], out->shape[2], out->shape[3], kh, kw, stride_h, stride_w,
                               pad_top, pad_left);
}

static sp_status cu_maxpool2d_backward(sp_tensor *grad_x, const sp_tensor *grad_out, const sp_tensor *argmax) {
    return spc_maxpool_backward(DEV(grad_x), F(grad_x), F(grad_out), (const int32_t *)SP_DATA(argmax),
                                grad_x->shape[0] * grad_x->shape[1], grad_x->shape[2] * grad_x->shape[3],
                                grad_out->shape[2] * grad_out->shape[3]);
}

static void pool_out(const sp_tensor *x, int kh, int kw, int sh, int sw, int pt, int pb, int pl, int pr, int64_t *Ho,
                     int64_t *Wo) {
    *Ho = (x->shape[2] + pt + pb - kh) / sh + 1;
    *Wo = (x->shape[3] + pl + pr - kw) / sw + 1;
}

static sp_status cu_avgpool2d_forward(sp_tensor *out, const sp_tensor *x, int kh, int kw, int stride_h, int stride_w,
                                      int pad_top, int pad_bottom, int pad_left, int pad_right, int count_pad) {
    int64_t Ho, Wo;
    pool_out(x, kh, kw, stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right, &Ho, &Wo);
    return spc_avgpool_forward(DEV(x), F(out), F(x), x->shape[0] * x->shape[1], x->shape[2], x->shape[3], Ho, Wo, kh,
                               kw, stride_h, stride_w, pad_top, pad_left, count_pad);
}

static sp_status cu_avgpool2d_backward(sp_tensor *grad_x, const sp_tensor *grad_out, int kh, int kw, int stride_h,
                                       int stride_w, int pad_top, int pad_bottom, int pad_left, int pad_right,
                                       int count_pad) {
    int64_t Ho, Wo;
    pool_out(grad_x, kh, kw, stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right, &Ho, &Wo);
    return spc_avgpool_backward(DEV(grad_x), F(grad_x), F(grad_out), grad_x->shape[0] * grad_x->shape[1],
                                grad_x->shape[2], grad_x->shape[3], Ho, Wo, kh, kw, stride_h, stride_w, pad_top,
                                pad_left, count_pad);
}

static sp_status cu_global_avgpool_forward(sp_tensor *out, const sp_tensor *x) {
    return spc_global_avgpool_forward(DEV(x), F(out), F(x), x->shape[0] * x->shape[1], x->shape[2] * x->shape[3]);
}

static sp_status cu_global_avgpool_backward(sp_tensor *grad_x, const sp_tensor *grad_out) {
    return spc_global_avgpool_backward(DEV(grad_x), F(grad_x), F(grad_out), grad_x->shape[0] * grad_x->shape[1],
                                       grad_x->shape[2] * grad_x->shape[3]);
}

static sp_status cu_softmax_forward(sp_tensor *out, const sp_tensor *x) {
    return spc_softmax_forward(DEV(x), F(out), F(x), x->shape[0], x->shape[1]);
}

static sp_status cu_softmax_xent_forward(sp_tensor *loss, sp_tensor *row_weight, sp_tensor *prob,
                                         const sp_tensor *logits, const sp_tensor *labels, const sp_tensor *weight,
                                         int64_t ignore_index, double a, double b) {
    return spc_xent_forward(DEV(logits), F(loss), FO(row_weight), F(prob), F(logits), SP_DATA(labels),
                            labels->dtype == SP_INT32, FO(weight), logits->shape[0], logits->shape[1], ignore_index,
                            a, b);
}

static sp_status cu_softmax_xent_backward(sp_tensor *grad_x, const sp_tensor *prob, const sp_tensor *labels,
                                          const sp_tensor *weight, const sp_tensor *grad_loss, int64_t ignore_index,
                                          double a, double b, double scale) {
    return spc_xent_backward(DEV(prob), F(grad_x), F(prob), SP_DATA(labels), labels->dtype == SP_INT32, FO(weight),
                             FO(grad_loss), prob->shape[0], prob->shape[1], ignore_index, a, b, scale);
}

static sp_status cu_momentum_update(sp_tensor *param, sp_tensor *moment, const sp_tensor *grad, double lr,
                                    double momentum, double weight_decay, double loss_scale, int nesterov) {
    return spc_momentum_update(DEV(param), F(param), F(moment), F(grad), sp_tensor_numel(param), lr, momentum,
                               weight_decay, loss_scale, nesterov);
}

static sp_status cu_sgd_update(sp_tensor *param, sp_tensor *accum, const sp_tensor *grad, double lr, double momentum,
                               double dampening, double weight_decay, double loss_scale, int nesterov, int first) {
    return spc_sgd_update(DEV(param), F(param), FO(accum), F(grad), sp_tensor_numel(param), lr, momentum, dampening,
                          weight_decay, loss_scale, nesterov, first);
}

static sp_status cu_adam_update(sp_tensor *param, sp_tensor *m, sp_tensor *v, const sp_tensor *grad, double lr,
                                double beta1, double beta2, double eps, double beta1_power, double beta2_power,
                                double weight_decay, double loss_scale, int nesterov) {
    return spc_adam_update(DEV(param), F(param), F(m), F(v), F(grad), sp_tensor_numel(param), lr, beta1, beta2, eps,
                           beta1_power, beta2_power, weight_decay, loss_scale, nesterov);
}

static sp_status cu_adamw_update(sp_tensor *param, sp_tensor *m, sp_tensor *v, const sp_tensor *grad, double lr,
                                 double beta1, double beta2, double eps, double weight_decay) {
    return spc_adamw_update(DEV(param), F(param), F(m), F(v), F(grad), sp_tensor_numel(param), lr, beta1, beta2, eps,
                            weight_decay);
}

const sp_kernels sp_cuda_kernels = {
    .copy = cu_copy,
    .fill = cu_fill,
    .arange = fb_arange,
    .rand_uniform = fb_rand_uniform,
    .rand_normal = fb_rand_normal,
    .rand_trunc_normal = fb_rand_trunc_normal,
    .binary = cu_binary,
    .binary_scalar = cu_binary_scalar,
    .unary = cu_unary,
    .reduce_all = cu_reduce_all,
    .reduce_dim = cu_reduce_dim,
    .topk = fb_topk,
    .count_equal = fb_count_equal,
    .matmul = cu_matmul,
    .conv2d_forward = cu_conv2d_forward,
    .conv2d_backward = cu_conv2d_backward,
    .dense_forward = cu_dense_forward,
    .dense_backward = cu_dense_backward,
    .batchnorm_forward = cu_batchnorm_forward,
    .batchnorm_backward = cu_batchnorm_backward,
    .relu_backward = cu_relu_backward,
    .dropout_forward = fb_dropout_forward,
    .maxpool2d_forward = cu_maxpool2d_forward,
    .maxpool2d_backward = cu_maxpool2d_backward,
    .avgpool2d_forward = cu_avgpool2d_forward,
    .avgpool2d_backward = cu_avgpool2d_backward,
    .global_avgpool_forward = cu_global_avgpool_forward,
    .global_avgpool_backward = cu_global_avgpool_backward,
    .softmax_forward = cu_softmax_forward,
    .softmax_xent_forward = cu_softmax_xent_forward,
    .softmax_xent_backward = cu_softmax_xent_backward,
    .momentum_update = cu_momentum_update,
    .sgd_update = cu_sgd_update,
    .adam_update = cu_adam_update,
    .adam_amsgrad_update = fb_adam_amsgrad_update,
    .adamw_update = cu_adamw_update,
    .grad_centralize = fb_grad_centralize,
};

/* ---- the devices ------------------------------------------------------------------- */

static void *cu_alloc(sp_device *d, size_t n, int zero_fill) {
    void *p = spc_alloc(d->index, n, zero_fill);
    if (p) sp_mem_account(d, (long long)(n ? n : 1));
    return p;
}
static void cu_free(sp_device *d, void *p, size_t n) {
    if (!p) return;
    spc_free(d->index, p, n);
    sp_mem_account(d, -(long long)(n ? n : 1));
}
static int cu_owns(const sp_device *d, const void *p) { return spc_owns(d->index, p); }
static sp_status cu_from_host(sp_device *d, void *dst, const void *src, size_t n) { return spc_from_host(d->index, dst, src, n); }
static sp_status cu_to_host(sp_device *d, void *dst, const void *src, size_t n) { return spc_to_host(d->index, dst, src, n); }
static sp_status cu_dcopy(sp_device *d, void *dst, const void *src, size_t n) { return spc_copy(d->index, dst, src, n); }

static sp_device g_cuda[SPC_MAX_DEVICES];
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;

/* The device cuda:index, started on first use; NULL with the error set (no GPU, index out
 * of range, the driver refuses). */
sp_device *sp_cuda_device(int index) {
    if (index < 0 || index >= SPC_MAX_DEVICES) {
        int n = spc_device_count();
        sp_error(SP_EDEVICE, "device cuda:%d is not available: %s", index,
                 n ? "index out of range" : "no CUDA GPU is visible to this process");
        return NULL;
    }
    sp_device *d = &g_cuda[index];
    pthread_mutex_lock(&g_mu);
    if (!d->alloc) {
        if (spc_device_init(index)) { pthread_mutex_unlock(&g_mu); return NULL; }
        d->code = SP_DEVICE_CUDA + index;
        d->type = SP_DEVICE_CUDA;
        d->index = index;
        snprintf(d->name, sizeof d->name, "cuda:%d", index);
        d->host_visible = 0;
        d->free = cu_free;
        d->owns = cu_owns;
        d->from_host = cu_from_host;
        d->to_host = cu_to_host;
        d->copy = cu_dcopy;
        d->k = &sp_cuda_kernels;
        d->alloc = cu_alloc; /* last: marks the device ready */
    }
    pthread_mutex_unlock(&g_mu);
    return d;
}

int sp_cuda_device_count_impl(void) { return spc_device_count(); }
