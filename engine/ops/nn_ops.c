/* nn_ops.c — public nn entry points (conv, dense, batchnorm, activations, pooling,
 * losses): every shape, dtype and device check is done once here, with a message naming
 * the kernel and the tensor; then the operands' device kernel runs. */
#include "ops/ops_common.h"
#include "cpu/cpu_kernels.h"

#include <string.h>

/* Layouts: 1 when the kernel of x's device reads these operands in place (all contiguous,
 * or all channels-last on a device whose table sets channels_last); 0 when the op hands it
 * NCHW copies (sp_cl_in / sp_cl_out). NULLs are skipped. */
static int cl_native_(const sp_tensor *x, int n, const sp_tensor *const *ts) {
    if (!sp_cl_any(n, ts)) return 1;
    return SP_K(x)->channels_last && sp_cl_all(n, ts);
}
#define CL_NATIVE(x, ...) cl_native_(x, sizeof((const sp_tensor *const[]){__VA_ARGS__}) / sizeof(const sp_tensor *), \
                                     (const sp_tensor *const[]){__VA_ARGS__})

/* ---- conv2d --------------------------------------------------------------- */

/* act_bf16: x may be bfloat16 channels-last (op_act_cl) */
static sp_status conv_check(const char *op, const sp_tensor *x, const sp_tensor *w, int sh, int sw, int pt, int pb,
                            int pl, int pr, int dh, int dw, int groups, int64_t *Ho, int64_t *Wo, int act_bf16) {
    OP_TRY(op_act_cl(x, act_bf16, op, "x"));
    OP_TRY(op_f32(w, 4, op, "weight"));
    if (sh < 1 || sw < 1 || dh < 1 || dw < 1 || groups < 1 || pt < 0 || pb < 0 || pl < 0 || pr < 0)
        return sp_error(SP_EINVAL, "%s: stride/dilation/groups must be >= 1 and padding >= 0", op);
    int64_t C = x->shape[1], H = x->shape[2], W = x->shape[3], Co = w->shape[0], kh = w->shape[2], kw = w->shape[3];
    if (C % groups || Co % groups)
        return sp_error(SP_EINVAL, "%s: channels in %lld / out %lld not divisible by groups %d", op, (long long)C,
                        (long long)Co, groups);
    if (w->shape[1] != C / groups)
        return sp_error(SP_EINVAL, "%s: weight is [%lld,%lld,%lld,%lld], expected in-channels/groups = %lld", op,
                        (long long)w->shape[0], (long long)w->shape[1], (long long)w->shape[2],
                        (long long)w->shape[3], (long long)(C / groups));
    int64_t eh = (int64_t)dh * (kh - 1) + 1, ew = (int64_t)dw * (kw - 1) + 1;
    int64_t Hp = H + pt + pb, Wp = W + pl + pr;
    if (Hp < eh || Wp < ew)
        return sp_error(SP_EINVAL, "%s: input %lldx%lld (padded %lldx%lld) smaller than the dilated kernel %lldx%lld",
                        op, (long long)H, (long long)W, (long long)Hp, (long long)Wp, (long long)eh, (long long)ew);
    *Ho = (Hp - eh) / sh + 1;
    *Wo = (Wp - ew) / sw + 1;
    return SP_OK;
}
sp_status sp_op_conv_check(const char *op, const sp_tensor *x, const sp_tensor *w, int sh, int sw, int pt, int pb,
                           int pl, int pr, int dh, int dw, int groups, int64_t *Ho, int64_t *Wo) {
    return conv_check(op, x, w, sh, sw, pt, pb, pl, pr, dh, dw, groups, Ho, Wo, 0);
}

/* Every argument of a conv2d forward (float32 or bf16 entry point). */
static sp_status conv_fwd_args(const char *op, const sp_tensor *out, const sp_tensor *x, const sp_tensor *w,
                               const sp_tensor *bias, int stride_h, int stride_w, int pad_top, int pad_bottom,
                               int pad_left, int pad_right, int dil_h, int dil_w, int groups, int act_bf16) {
    int64_t Ho, Wo;
    OP_TRY(conv_check(op, x, w, stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right, dil_h, dil_w, groups, &Ho,
                      &Wo, act_bf16));
    OP_TRY(op_act_cl(out, act_bf16, op, "out"));
    OP_TRY(op_shape4(out, x->shape[0], w->shape[0], Ho, Wo, op, "out"));
    if (bias) { OP_TRY(op_f32(bias, -1, op, "bias")); OP_TRY(op_numel(bias, w->shape[0], op, "bias")); }
    OP_SAME_DEVICE(op, T(out), T(x), {w, "weight"}, T(bias));
    return SP_OK;
}
sp_status sp_op_conv_fwd_args(const char *op, const sp_tensor *out, const sp_tensor *x, const sp_tensor *w,
                              const sp_tensor *bias, int stride_h, int stride_w, int pad_top, int pad_bottom, int pad_left, int pad_right, int dil_h, int dil_w, int groups) {
    return conv_fwd_args(op, out, x, w, bias, stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right, dil_h, dil_w,
                         groups, 0);
}

/* Every argument of a conv2d backward (float32 or bf16 entry point). */
sp_status sp_op_conv_bwd_args(const char *op, const sp_tensor *grad_x, const sp_tensor *grad_w,
                              const sp_tensor *grad_b, const sp_tensor *grad_out, const sp_tensor *x,
                              const sp_tensor *w, int stride_h, int stride_w, int pad_top, int pad_bottom, int pad_left, int pad_right, int dil_h, int dil_w, int groups) {
    int64_t Ho, Wo;
    OP_TRY(sp_op_conv_check(op, x, w, stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right, dil_h, dil_w, groups, &Ho, &Wo));
    int64_t N = x->shape[0], C = x->shape[1], Co = w->shape[0];
    OP_TRY(op_f32_cl(grad_out, op, "grad_out"));
    OP_TRY(op_shape4(grad_out, N, Co, Ho, Wo, op, "grad_out"));
    if (grad_x) {
        OP_TRY(op_f32_cl(grad_x, op, "grad_x"));
        OP_TRY(op_shape4(grad_x, N, C, x->shape[2], x->shape[3], op, "grad_x"));
    }
    if (grad_w) { OP_TRY(op_f32(grad_w, -1, op, "grad_w")); OP_TRY(op_numel(grad_w, sp_tensor_numel(w), op, "grad_w")); }
    if (grad_b) { OP_TRY(op_f32(grad_b, -1, op, "grad_b")); OP_TRY(op_numel(grad_b, Co, op, "grad_b")); }
    OP_SAME_DEVICE(op, T(grad_x), T(grad_w), T(grad_b), T(grad_out), T(x), {w, "weight"});
    return SP_OK;
}

sp_status sp_conv2d_forward(sp_tensor *out, const sp_tensor *x, const sp_tensor *w, const sp_tensor *bias,
                            int stride_h, int stride_w, int pad_top, int pad_bottom, int pad_left, int pad_right,
                            int dil_h, int dil_w, int groups) {
    OP_TRY(sp_op_conv_fwd_args("conv2d_forward", out, x, w, bias, stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right, dil_h, dil_w, groups));
    if (SP_K(x)->conv2d_forward && !SP_K(x)->channels_last && SP_CL_ANY(out, x)) /* NCHW copies */
        return sp_cl_conv_forward(SP_K(x)->conv2d_forward, out, x, w, bias, stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right, dil_h, dil_w, groups);
    return OP_CALL(x, conv2d_forward, out, x, w, bias, stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right, dil_h, dil_w, groups);
}

sp_status sp_conv2d_backward(sp_tensor *grad_x, sp_tensor *grad_w, sp_tensor *grad_b, const sp_tensor *grad_out,
                             const sp_tensor *x, const sp_tensor *w, int stride_h, int stride_w, int pad_top,
                             int pad_bottom, int pad_left, int pad_right, int dil_h, int dil_w, int groups) {
    OP_TRY(sp_op_conv_bwd_args("conv2d_backward", grad_x, grad_w, grad_b, grad_out, x, w, stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right, dil_h, dil_w, groups));
    if (SP_K(x)->conv2d_backward && !SP_K(x)->channels_last && SP_CL_ANY(x, grad_out, grad_x)) /* NCHW copies */
        return sp_cl_conv_backward(SP_K(x)->conv2d_backward, grad_x, grad_w, grad_b, grad_out, x, w, stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right, dil_h, dil_w, groups);
    return OP_CALL(x, conv2d_backward, grad_x, grad_w, grad_b, grad_out, x, w, stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right, dil_h, dil_w, groups);
}

/* ---- dense ---------------------------------------------------------------- */

sp_status sp_op_dense_check(const char *op, const sp_tensor *x, const sp_tensor *w) {
    OP_TRY(op_f32(x, 2, op, "x"));
    OP_TRY(op_f32(w, 2, op, "weight"));
    if (w->shape[1] != x->shape[1])
        return sp_error(SP_EINVAL, "%s: x is [%lld,%lld] but weight is [%lld,%lld] (expected [out,%lld])", op,
                        (long long)x->shape[0], (long long)x->shape[1], (long long)w->shape[0],
                        (long long)w->shape[1], (long long)x->shape[1]);
    if (x->shape[0] > INT32_MAX || x->shape[1] > INT32_MAX || w->shape[0] > INT32_MAX)
        return sp_error(SP_EINVAL, "%s: dimension too large for BLAS", op);
    return SP_OK;
}

/* Every argument of a dense forward (float32 or bf16 entry point). */
sp_status sp_op_dense_fwd_args(const char *op, const sp_tensor *out, const sp_tensor *x, const sp_tensor *w,
                               const sp_tensor *bias) {
    OP_TRY(sp_op_dense_check(op, x, w));
    int64_t N = x->shape[0], O = w->shape[0];
    OP_TRY(op_f32(out, 2, op, "out"));
    if (out->shape[0] != N || out->shape[1] != O)
        return sp_error(SP_EINVAL, "%s: out is [%lld,%lld], expected [%lld,%lld]", op, (long long)out->shape[0],
                        (long long)out->shape[1], (long long)N, (long long)O);
    if (bias) { OP_TRY(op_f32(bias, -1, op, "bias")); OP_TRY(op_numel(bias, O, op, "bias")); }
    OP_SAME_DEVICE(op, T(out), T(x), {w, "weight"}, T(bias));
    return SP_OK;
}

/* Every argument of a dense backward (float32 or bf16 entry point). */
sp_status sp_op_dense_bwd_args(const char *op, const sp_tensor *grad_x, const sp_tensor *grad_w,
                               const sp_tensor *grad_b, const sp_tensor *grad_out, const sp_tensor *x,
                               const sp_tensor *w) {
    OP_TRY(sp_op_dense_check(op, x, w));
    int64_t N = x->shape[0], In = x->shape[1], O = w->shape[0];
    OP_TRY(op_f32(grad_out, 2, op, "grad_out"));
    if (grad_out->shape[0] != N || grad_out->shape[1] != O)
        return sp_error(SP_EINVAL, "%s: grad_out is [%lld,%lld], expected [%lld,%lld]", op,
                        (long long)grad_out->shape[0], (long long)grad_out->shape[1], (long long)N, (long long)O);
    if (grad_x) { OP_TRY(op_f32(grad_x, -1, op, "grad_x")); OP_TRY(op_numel(grad_x, N * In, op, "grad_x")); }
    if (grad_w) { OP_TRY(op_f32(grad_w, -1, op, "grad_w")); OP_TRY(op_numel(grad_w, O * In, op, "grad_w")); }
    if (grad_b) { OP_TRY(op_f32(grad_b, -1, op, "grad_b")); OP_TRY(op_numel(grad_b, O, op, "grad_b")); }
    OP_SAME_DEVICE(op, T(grad_x), T(grad_w), T(grad_b), T(grad_out), T(x), {w, "weight"});
    return SP_OK;
}

sp_status sp_dense_forward(sp_tensor *out, const sp_tensor *x, const sp_tensor *w, const sp_tensor *bias) {
    OP_TRY(sp_op_dense_fwd_args("dense_forward", out, x, w, bias));
    return OP_CALL(x, dense_forward, out, x, w, bias);
}

sp_status sp_dense_backward(sp_tensor *grad_x, sp_tensor *grad_w, sp_tensor *grad_b, const sp_tensor *grad_out,
                            const sp_tensor *x, const sp_tensor *w) {
    OP_TRY(sp_op_dense_bwd_args("dense_backward", grad_x, grad_w, grad_b, grad_out, x, w));
    return OP_CALL(x, dense_backward, grad_x, grad_w, grad_b, grad_out, x, w);
}

/* ---- batchnorm ------------------------------------------------------------ */

static sp_status bn_vec(const sp_tensor *t, int64_t C, const char *op, const char *what) {
    OP_TRY(op_f32(t, -1, op, what));
    return op_numel(t, C, op, what);
}

static sp_status bn_fwd_args(const char *op, sp_tensor *out, sp_tensor *save_mean, sp_tensor *save_invstd,
                             const sp_tensor *x, const sp_tensor *gamma, const sp_tensor *beta, sp_tensor *moving_mean,
                             sp_tensor *moving_var, int training) {
    OP_TRY(op_f32_cl(x, op, "x"));
    OP_TRY(op_f32_cl(out, op, "out"));
    int64_t N = x->shape[0], C = x->shape[1];
    OP_TRY(op_shape4(out, N, C, x->shape[2], x->shape[3], op, "out"));
    OP_TRY(bn_vec(save_mean, C, op, "save_mean"));
    OP_TRY(bn_vec(save_invstd, C, op, "save_invstd"));
    OP_TRY(bn_vec(gamma, C, op, "gamma"));
    OP_TRY(bn_vec(beta, C, op, "beta"));
    OP_TRY(bn_vec(moving_mean, C, op, "moving_mean"));
    OP_TRY(bn_vec(moving_var, C, op, "moving_variance"));
    if (training && N * x->shape[2] * x->shape[3] < 1)
        return sp_error(SP_EINVAL, "%s: training needs at least one value per channel", op);
    OP_SAME_DEVICE(op, T(out), T(save_mean), T(save_invstd), T(x), T(gamma), T(beta), T(moving_mean),
                   {moving_var, "moving_variance"});
    return SP_OK;
}

sp_status sp_batchnorm_forward(sp_tensor *out, sp_tensor *save_mean, sp_tensor *save_invstd, const sp_tensor *x,
                               const sp_tensor *gamma, const sp_tensor *beta, sp_tensor *moving_mean,
                               sp_tensor *moving_var, int training, int update, double momentum, double eps) {
    OP_TRY(bn_fwd_args("batchnorm_forward", out, save_mean, save_invstd, x, gamma, beta, moving_mean, moving_var,
                       training));
    if (!CL_NATIVE(x, out, x)) { /* mixed layouts, or a device without channels-last kernels */
        sp_cl_ctx k = {0};
        sp_status st = sp_cl_in(&k, &x);
        if (!st) st = sp_cl_out(&k, &out);
        if (!st) st = OP_CALL(x, batchnorm_forward, out, save_mean, save_invstd, x, gamma, beta, moving_mean, moving_var,
                              training, update, momentum, eps);
        return sp_cl_done(&k, st);
    }
    return OP_CALL(x, batchnorm_forward, out, save_mean, save_invstd, x, gamma, beta, moving_mean, moving_var, training,
                                      update, momentum, eps);
}

sp_status sp_batchnorm_act_forward(sp_tensor *out, sp_tensor *save_mean, sp_tensor *save_invstd, const sp_tensor *x,
                                   const sp_tensor *gamma, const sp_tensor *beta, sp_tensor *moving_mean,
                                   sp_tensor *moving_var, int training, int update, double momentum, double eps,
                                   const sp_tensor *residual, int relu) {
    const char *op = "batchnorm_act_forward";
    OP_TRY(bn_fwd_args(op, out, save_mean, save_invstd, x, gamma, beta, moving_mean, moving_var, training));
    if (residual) {
        OP_TRY(op_f32_cl(residual, op, "residual"));
        OP_TRY(op_shape4(residual, x->shape[0], x->shape[1], x->shape[2], x->shape[3], op, "residual"));
        OP_SAME_DEVICE(op, T(x), T(residual));
    }
    if (!CL_NATIVE(x, out, x, residual)) { /* mixed layouts, or a device without channels-last kernels */
        sp_cl_ctx k = {0};
        sp_status st = sp_cl_in(&k, &x);
        if (!st) st = sp_cl_in(&k, &residual);
        if (!st) st = sp_cl_out(&k, &out);
        if (!st) st = OP_CALL(x, batchnorm_act_forward, out, save_mean, save_invstd, x, gamma, beta, moving_mean,
                              moving_var, training, update, momentum, eps, residual, relu);
        return sp_cl_done(&k, st);
    }
    return OP_CALL(x, batchnorm_act_forward, out, save_mean, save_invstd, x, gamma, beta, moving_mean, moving_var,
                   training, update, momentum, eps, residual, relu);
}

/* The eval-mode conv -> BatchNorm (-> + residual) (-> ReLU) chain in one kernel. */
static sp_status conv_bn_args(const char *op, sp_tensor *out, const sp_tensor *x, const sp_tensor *w,
                              const sp_tensor *bias, const sp_tensor *gamma, const sp_tensor *beta,
                              const sp_tensor *moving_mean, const sp_tensor *moving_var, double eps,
                              const sp_tensor *residual, int stride_h, int stride_w, int pad_top, int pad_bottom,
                              int pad_left, int pad_right, int dil_h, int dil_w, int groups, int act_bf16) {
    OP_TRY(conv_fwd_args(op, out, x, w, bias, stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right, dil_h,
                         dil_w, groups, act_bf16));
    int64_t C = w->shape[0];
    OP_TRY(bn_vec(gamma, C, op, "gamma"));
    OP_TRY(bn_vec(beta, C, op, "beta"));
    OP_TRY(bn_vec(moving_mean, C, op, "moving_mean"));
    OP_TRY(bn_vec(moving_var, C, op, "moving_variance"));
    if (!(eps > 0)) return sp_error(SP_EINVAL, "%s: eps must be > 0, got %g", op, eps);
    if (residual) {
        OP_TRY(op_act_cl(residual, act_bf16, op, "residual"));
        OP_TRY(op_shape4(residual, out->shape[0], out->shape[1], out->shape[2], out->shape[3], op, "residual"));
        if (residual->dtype != out->dtype && sp_bytes_overlap(residual, out)) /* summed in place: same dtype only */
            return sp_error(SP_EINVAL, "%s: residual (%s) overlaps out (%s)", op, sp_dtype_name(residual->dtype),
                            sp_dtype_name(out->dtype));
    }
    if (SP_DATA(out) == SP_DATA(x)) return sp_error(SP_EINVAL, "%s: out must not be the input x", op);
    OP_SAME_DEVICE(op, T(out), T(x), {w, "weight"}, T(gamma), T(beta), T(moving_mean), {moving_var, "moving_variance"},
                   T(residual));
    return SP_OK;
}

sp_status sp_conv2d_bn_forward(sp_tensor *out, const sp_tensor *x, const sp_tensor *w, const sp_tensor *bias,
                               const sp_tensor *gamma, const sp_tensor *beta, const sp_tensor *moving_mean,
                               const sp_tensor *moving_var, double eps, const sp_tensor *residual, int relu,
                               int stride_h, int stride_w, int pad_top, int pad_bottom, int pad_left, int pad_right,
                               int dil_h, int dil_w, int groups) {
    OP_TRY(conv_bn_args("conv2d_bn_forward", out, x, w, bias, gamma, beta, moving_mean, moving_var, eps, residual,
                        stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right, dil_h, dil_w, groups, 0));
    if (SP_K(x)->conv2d_bn_forward && !SP_K(x)->channels_last && SP_CL_ANY(out, x, residual)) /* NCHW copies */
        return sp_cl_conv_bn_forward(SP_K(x)->conv2d_bn_forward, out, x, w, bias, gamma, beta, moving_mean, moving_var, eps,
                                     residual, relu, stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right, dil_h, dil_w, groups);
    return OP_CALL(x, conv2d_bn_forward, out, x, w, bias, gamma, beta, moving_mean, moving_var, eps, residual, relu,
                   stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right, dil_h, dil_w, groups);
}

sp_status sp_conv2d_bn_forward_bf16(sp_tensor *out, const sp_tensor *x, const sp_tensor *w, const sp_tensor *bias,
                                    const sp_tensor *gamma, const sp_tensor *beta, const sp_tensor *moving_mean,
                                    const sp_tensor *moving_var, double eps, const sp_tensor *residual, int relu,
                                    int stride_h, int stride_w, int pad_top, int pad_bottom, int pad_left,
                                    int pad_right, int dil_h, int dil_w, int groups) {
    /* x, out and residual may be bfloat16 channels-last (O2 inference: activations in bf16 between
     * layers, as MindSpore's O2 keeps them in float16) */
    OP_TRY(conv_bn_args("conv2d_bn_forward_bf16", out, x, w, bias, gamma, beta, moving_mean, moving_var, eps,
                        residual, stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right, dil_h, dil_w, groups, 1));
    if (SP_K(x)->conv2d_bn_forward_bf16 && !SP_K(x)->channels_last &&
        (x->dtype == SP_BFLOAT16 || out->dtype == SP_BFLOAT16 || (residual && residual->dtype == SP_BFLOAT16)))
        return sp_error(SP_EINVAL, "conv2d_bn_forward_bf16: bfloat16 activations are not implemented on device %s",
                        SP_DEV(x)->name);
    if (SP_K(x)->conv2d_bn_forward_bf16 && !SP_K(x)->channels_last && SP_CL_ANY(out, x, residual)) /* NCHW copies */
        return sp_cl_conv_bn_forward(SP_K(x)->conv2d_bn_forward_bf16, out, x, w, bias, gamma, beta, moving_mean, moving_var, eps,
                                     residual, relu, stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right, dil_h, dil_w, groups);
    return OP_CALL(x, conv2d_bn_forward_bf16, out, x, w, bias, gamma, beta, moving_mean, moving_var, eps, residual,
                   relu, stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right, dil_h, dil_w, groups);
}

int sp_conv2d_channels_last_native(const sp_tensor *x, const sp_tensor *w, int stride_h, int stride_w, int pad_top,
                                   int pad_bottom, int pad_left, int pad_right, int dil_h, int dil_w, int groups) {
    int64_t Ho, Wo;
    if (!x || !w || !SP_K(x)->channels_last ||
        conv_check("conv2d_channels_last_native", x, w, stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right,
                   dil_h, dil_w, groups, &Ho, &Wo, 1) != SP_OK) /* x may be a bf16 activation */
        return 0;
    return SP_DEV(x)->type == SP_DEVICE_CPU || SP_DEV(x)->type == SP_DEVICE_SIM
               ? sp_cpu_conv_cl_native(x, w, stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right, dil_h, dil_w,
                                       groups)
               : 1;
}

int sp_conv2d_bn_fusable(const sp_tensor *x, int bf16) {
    if (!x) return 0;
    return (bf16 ? SP_K(x)->conv2d_bn_forward_bf16 != NULL : SP_K(x)->conv2d_bn_forward != NULL) ? 1 : 0;
}

static sp_status bn_bwd_args(const char *op, sp_tensor *grad_x, sp_tensor *grad_gamma, sp_tensor *grad_beta,
                             const sp_tensor *grad_out, const sp_tensor *x, const sp_tensor *gamma,
                             const sp_tensor *save_mean, const sp_tensor *save_invstd) {
    OP_TRY(op_f32_cl(x, op, "x"));
    OP_TRY(op_f32_cl(grad_out, op, "grad_out"));
    int64_t N = x->shape[0], C = x->shape[1];
    OP_TRY(op_shape4(grad_out, N, C, x->shape[2], x->shape[3], op, "grad_out"));
    if (grad_x) {
        OP_TRY(op_f32_cl(grad_x, op, "grad_x"));
        OP_TRY(op_shape4(grad_x, N, C, x->shape[2], x->shape[3], op, "grad_x"));
    }
    if (grad_gamma) OP_TRY(bn_vec(grad_gamma, C, op, "grad_gamma"));
    if (grad_beta) OP_TRY(bn_vec(grad_beta, C, op, "grad_beta"));
    OP_TRY(bn_vec(gamma, C, op, "gamma"));
    OP_TRY(bn_vec(save_mean, C, op, "save_mean"));
    OP_TRY(bn_vec(save_invstd, C, op, "save_invstd"));
    OP_SAME_DEVICE(op, T(grad_x), T(grad_gamma), T(grad_beta), T(grad_out), T(x), T(gamma), T(save_mean),
                   T(save_invstd));
    return SP_OK;
}

sp_status sp_batchnorm_backward(sp_tensor *grad_x, sp_tensor *grad_gamma, sp_tensor *grad_beta,
                                const sp_tensor *grad_out, const sp_tensor *x, const sp_tensor *gamma,
                                const sp_tensor *save_mean, const sp_tensor *save_invstd, int training) {
    OP_TRY(bn_bwd_args("batchnorm_backward", grad_x, grad_gamma, grad_beta, grad_out, x, gamma, save_mean,
                       save_invstd));
    if (!CL_NATIVE(x, grad_x, grad_out, x)) { /* mixed layouts, or a device without channels-last kernels */
        sp_cl_ctx k = {0};
        sp_status st = sp_cl_in(&k, &x);
        if (!st) st = sp_cl_in(&k, &grad_out);
        if (!st) st = sp_cl_out(&k, &grad_x);
        if (!st) st = OP_CALL(x, batchnorm_backward, grad_x, grad_gamma, grad_beta, grad_out, x, gamma, save_mean,
                              save_invstd, training);
        return sp_cl_done(&k, st);
    }
    return OP_CALL(x, batchnorm_backward, grad_x, grad_gamma, grad_beta, grad_out, x, gamma, save_mean, save_invstd,
                                       training);
}

sp_status sp_batchnorm_relu_backward(sp_tensor *grad_x, sp_tensor *grad_gamma, sp_tensor *grad_beta,
                                     const sp_tensor *grad_out, const sp_tensor *y, const sp_tensor *x,
                                     const sp_tensor *gamma, const sp_tensor *save_mean, const sp_tensor *save_invstd,
                                     int training) {
    const char *op = "batchnorm_relu_backward";
    OP_TRY(bn_bwd_args(op, grad_x, grad_gamma, grad_beta, grad_out, x, gamma, save_mean, save_invstd));
    OP_TRY(op_f32_cl(y, op, "y"));
    OP_TRY(op_shape4(y, x->shape[0], x->shape[1], x->shape[2], x->shape[3], op, "y"));
    OP_SAME_DEVICE(op, T(x), T(y));
    if (!CL_NATIVE(x, grad_x, grad_out, x, y)) { /* mixed layouts, or a device without channels-last kernels */
        sp_cl_ctx k = {0};
        sp_status st = sp_cl_in(&k, &x);
        if (!st) st = sp_cl_in(&k, &grad_out);
        if (!st) st = sp_cl_in(&k, &y);
        if (!st) st = sp_cl_out(&k, &grad_x);
        if (!st) st = OP_CALL(x, batchnorm_relu_backward, grad_x, grad_gamma, grad_beta, grad_out, y, x, gamma,
                              save_mean, save_invstd, training);
        return sp_cl_done(&k, st);
    }
    return OP_CALL(x, batchnorm_relu_backward, grad_x, grad_gamma, grad_beta, grad_out, y, x, gamma, save_mean,
                   save_invstd, training);
}

int sp_batchnorm_act_fusable(const sp_tensor *x) {
    return x && SP_K(x)->batchnorm_act_forward && SP_K(x)->batchnorm_relu_backward ? 1 : 0;
}

/* ---- activations and elementwise nn helpers ------------------------------- */

static int same_shape4(const sp_tensor *a, const sp_tensor *b) {
    return a->ndim == 4 && b->ndim == 4 && !memcmp(a->shape, b->shape, 4 * sizeof(int64_t));
}

static sp_status same_numel(const char *op, const sp_tensor *a, const char *an, const sp_tensor *b, const char *bn) {
    OP_TRY(op_f32(a, -1, op, an));
    OP_TRY(op_f32(b, -1, op, bn));
    return op_numel(b, sp_tensor_numel(a), op, bn);
}

sp_status sp_relu_backward(sp_tensor *grad_x, const sp_tensor *grad_out, const sp_tensor *y) {
    const char *op = "relu_backward";
    if (!grad_x) return sp_error(SP_EINVAL, "%s: grad_x is NULL", op);
    if (grad_x->ndim != 4) OP_TRY(op_f32(grad_x, -1, op, "grad_x"));
    /* grad_out and y may be channels-last (an eval-mode forward's outputs): the element
     * order then differs from grad_x's, so they go to the kernel as NCHW copies */
    OP_TRY(grad_x->ndim == 4 ? op_f32_cl(grad_x, op, "grad_x") : SP_OK);
    OP_TRY(grad_out && grad_out->ndim == 4 ? op_f32_cl(grad_out, op, "grad_out") : op_f32(grad_out, -1, op, "grad_out"));
    OP_TRY(y && y->ndim == 4 ? op_f32_cl(y, op, "y") : op_f32(y, -1, op, "y"));
    OP_TRY(op_numel(grad_out, sp_tensor_numel(grad_x), op, "grad_out"));
    OP_TRY(op_numel(y, sp_tensor_numel(grad_x), op, "y"));
    OP_SAME_DEVICE(op, T(grad_x), T(grad_out), T(y));
    if (SP_CL_ANY(grad_x, grad_out, y)) {
        if (grad_x->ndim != 4 || grad_out->ndim != 4 || y->ndim != 4 || !same_shape4(grad_out, grad_x) ||
            !same_shape4(y, grad_x))
            return sp_error(SP_EINVAL, "%s: a channels-last grad_x, grad_out or y needs all three of one 4-D shape", op);
        /* all channels-last: one element order, the kernel runs over the memory flat */
        if (SP_CL_BOTH(grad_x, grad_out, y)) return OP_CALL(y, relu_backward, grad_x, grad_out, y);
        sp_cl_ctx k = {0};
        sp_status st = sp_cl_in(&k, &grad_out);
        if (!st) st = sp_cl_in(&k, &y);
        if (!st) st = sp_cl_out(&k, &grad_x);
        if (!st) st = OP_CALL(y, relu_backward, grad_x, grad_out, y);
        return sp_cl_done(&k, st);
    }
    return OP_CALL(y, relu_backward, grad_x, grad_out, y);
}

sp_status sp_add_relu_backward(sp_tensor *grad_x, const sp_tensor *a, const sp_tensor *b, const sp_tensor *y) {
    const char *op = "add_relu_backward";
    if (!grad_x || !a || !b || !y) return sp_error(SP_EINVAL, "%s: grad_x, a, b and y must all be given", op);
    /* 4-D: contiguous or channels-last; any other rank: contiguous */
    const sp_tensor *ts[4] = {grad_x, a, b, y};
    const char *nm[4] = {"grad_x", "a", "b", "y"};
    for (int i = 0; i < 4; i++) OP_TRY(ts[i]->ndim == 4 ? op_f32_cl(ts[i], op, nm[i]) : op_f32(ts[i], -1, op, nm[i]));
    OP_TRY(op_numel(a, sp_tensor_numel(grad_x), op, "a"));
    OP_TRY(op_numel(b, sp_tensor_numel(grad_x), op, "b"));
    OP_TRY(op_numel(y, sp_tensor_numel(grad_x), op, "y"));
    OP_SAME_DEVICE(op, T(grad_x), T(a), T(b), T(y));
    /* one element order (all contiguous, or all channels-last of one shape): the fused kernel */
    int flat = !SP_CL_ANY(grad_x, a, b, y) ||
               (SP_CL_BOTH(grad_x, a, b, y) && same_shape4(a, grad_x) && same_shape4(b, grad_x) && same_shape4(y, grad_x));
    if (flat && SP_K(y)->add_relu_backward) return OP_CALL(y, add_relu_backward, grad_x, a, b, y);
    sp_status st = sp_binary(grad_x, a, b, SP_OP_ADD);
    return st ? st : sp_relu_backward(grad_x, grad_x, y);
}

sp_status sp_dropout_forward(sp_tensor *out, sp_tensor *mask, const sp_tensor *x, double p, uint64_t *state) {
    OP_TRY(same_numel("dropout_forward", out, "out", x, "x"));
    OP_TRY(same_numel("dropout_forward", out, "out", mask, "mask"));
    if (!(p >= 0 && p < 1)) return sp_error(SP_EINVAL, "dropout_forward: p must be in [0, 1), got %g", p);
    if (!state) return sp_error(SP_EINVAL, "dropout_forward: state is NULL");
    OP_SAME_DEVICE("dropout_forward", T(out), T(mask), T(x));
    return OP_CALL(x, dropout_forward, out, mask, x, p, state);
}

/* ---- pooling -------------------------------------------------------------- */

static sp_status pool_geom(const char *op, const sp_tensor *x, int kh, int kw, int sh, int sw, int pt, int pb,
                           int pl, int pr, int64_t *Ho, int64_t *Wo) {
    /* max pooling's forward also takes a channels-last x, float32 or bfloat16 (O2 inference) */
    OP_TRY(!strcmp(op, "maxpool2d_forward") ? op_act_cl(x, 1, op, "x") : op_f32(x, 4, op, "x"));
    if (kh < 1 || kw < 1 || sh < 1 || sw < 1 || pt < 0 || pb < 0 || pl < 0 || pr < 0)
        return sp_error(SP_EINVAL, "%s: kernel and stride must be >= 1, padding >= 0", op);
    int64_t Hp = x->shape[2] + pt + pb, Wp = x->shape[3] + pl + pr;
    if (Hp < kh || Wp < kw)
        return sp_error(SP_EINVAL, "%s: input %lldx%lld (padded %lldx%lld) smaller than the kernel %dx%d", op,
                        (long long)x->shape[2], (long long)x->shape[3], (long long)Hp, (long long)Wp, kh, kw);
    *Ho = (Hp - kh) / sh + 1;
    *Wo = (Wp - kw) / sw + 1;
    return SP_OK;
}

sp_status sp_maxpool2d_forward(sp_tensor *out, sp_tensor *argmax, const sp_tensor *x, int kh, int kw, int stride_h,
                               int stride_w, int pad_top, int pad_bottom, int pad_left, int pad_right) {
    const char *op = "maxpool2d_forward";
    int64_t Ho = 0, Wo = 0;
    OP_TRY(pool_geom(op, x, kh, kw, stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right, &Ho, &Wo));
    int64_t N = x->shape[0], C = x->shape[1];
    OP_TRY(op_act_cl(out, 1, op, "out"));
    OP_TRY(op_shape4(out, N, C, Ho, Wo, op, "out"));
    if (!argmax || argmax->dtype != SP_INT32 || !sp_tensor_is_contiguous(argmax))
        return sp_error(SP_EINVAL, "%s: argmax must be a contiguous int32 tensor", op);
    OP_TRY(op_numel(argmax, N * C * Ho * Wo, op, "argmax"));
    OP_SAME_DEVICE(op, T(out), T(argmax), T(x));
    if (x->dtype != out->dtype) /* bfloat16 (O2 inference) in, bfloat16 out */
        return sp_error(SP_EINVAL, "%s: x is %s but out is %s (expected the same dtype)", op, sp_dtype_name(x->dtype),
                        sp_dtype_name(out->dtype));
    if (x->dtype == SP_BFLOAT16 && !SP_K(x)->channels_last)
        return sp_error(SP_EINVAL, "%s: bfloat16 activations are not implemented on device %s", op, SP_DEV(x)->name);
    if (SP_CL_ANY(out, x) && (!SP_K(x)->channels_last || !SP_CL_BOTH(out, x))) { /* NCHW copies */
        sp_cl_ctx k = {0};
        sp_status st = sp_cl_in(&k, &x);
        if (!st) st = sp_cl_out(&k, &out);
        if (!st) st = OP_CALL(x, maxpool2d_forward, out, argmax, x, kh, kw, stride_h, stride_w, pad_top, pad_bottom,
                              pad_left, pad_right);
        return sp_cl_done(&k, st);
    }
    return OP_CALL(x, maxpool2d_forward, out, argmax, x, kh, kw, stride_h, stride_w, pad_top, pad_bottom, pad_left,
                                      pad_right);
}

sp_status sp_maxpool2d_backward(sp_tensor *grad_x, const sp_tensor *grad_out, const sp_tensor *argmax) {
    const char *op = "maxpool2d_backward";
    OP_TRY(op_f32_cl(grad_x, op, "grad_x"));
    OP_TRY(op_f32_cl(grad_out, op, "grad_out"));
    if (!argmax || argmax->dtype != SP_INT32 || !sp_tensor_is_contiguous(argmax))
        return sp_error(SP_EINVAL, "%s: argmax must be a contiguous int32 tensor", op);
    OP_TRY(op_numel(argmax, sp_tensor_numel(grad_out), op, "argmax"));
    if (grad_out->shape[0] * grad_out->shape[1] != grad_x->shape[0] * grad_x->shape[1])
        return sp_error(SP_EINVAL, "%s: grad_out and grad_x differ in N*C", op);
    OP_SAME_DEVICE(op, T(grad_x), T(grad_out), T(argmax));
    if (!CL_NATIVE(grad_x, grad_x, grad_out)) { /* mixed layouts, or a device without channels-last kernels */
        sp_cl_ctx k = {0};
        sp_status st = sp_cl_in(&k, &grad_out);
        if (!st) st = sp_cl_out(&k, &grad_x);
        if (!st) st = OP_CALL(grad_x, maxpool2d_backward, grad_x, grad_out, argmax);
        return sp_cl_done(&k, st);
    }
    return OP_CALL(grad_x, maxpool2d_backward, grad_x, grad_out, argmax);
}

sp_status sp_avgpool2d_forward(sp_tensor *out, const sp_tensor *x, int kh, int kw, int stride_h, int stride_w,
                               int pad_top, int pad_bottom, int pad_left, int pad_right, int count_pad) {
    const char *op = "avgpool2d_forward";
    int64_t Ho = 0, Wo = 0;
    OP_TRY(pool_geom(op, x, kh, kw, stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right, &Ho, &Wo));
    OP_TRY(op_f32(out, 4, op, "out"));
    OP_TRY(op_shape4(out, x->shape[0], x->shape[1], Ho, Wo, op, "out"));
    OP_SAME_DEVICE(op, T(out), T(x));
    return OP_CALL(x, avgpool2d_forward, out, x, kh, kw, stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right,
                                      count_pad);
}

sp_status sp_avgpool2d_backward(sp_tensor *grad_x, const sp_tensor *grad_out, int kh, int kw, int stride_h,
                                int stride_w, int pad_top, int pad_bottom, int pad_left, int pad_right, int count_pad) {
    const char *op = "avgpool2d_backward";
    int64_t Ho = 0, Wo = 0;
    OP_TRY(pool_geom(op, grad_x, kh, kw, stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right, &Ho, &Wo));
    OP_TRY(op_f32(grad_out, 4, op, "grad_out"));
    OP_TRY(op_shape4(grad_out, grad_x->shape[0], grad_x->shape[1], Ho, Wo, op, "grad_out"));
    OP_SAME_DEVICE(op, T(grad_x), T(grad_out));
    return OP_CALL(grad_x, avgpool2d_backward, grad_x, grad_out, kh, kw, stride_h, stride_w, pad_top, pad_bottom,
                                            pad_left, pad_right, count_pad);
}

sp_status sp_global_avgpool_forward(sp_tensor *out, const sp_tensor *x) {
    const char *op = "global_avgpool_forward";
    OP_TRY(op_f32_cl(x, op, "x"));
    OP_TRY(op_f32(out, -1, op, "out"));
    OP_TRY(op_numel(out, x->shape[0] * x->shape[1], op, "out"));
    OP_SAME_DEVICE(op, T(out), T(x));
    if (!SP_K(x)->channels_last && !sp_tensor_is_contiguous(x)) { /* an NCHW copy */
        sp_cl_ctx k = {0};
        sp_status st = sp_cl_in(&k, &x);
        if (!st) st = OP_CALL(x, global_avgpool_forward, out, x);
        return sp_cl_done(&k, st);
    }
    return OP_CALL(x, global_avgpool_forward, out, x);
}

sp_status sp_global_avgpool_backward(sp_tensor *grad_x, const sp_tensor *grad_out) {
    const char *op = "global_avgpool_backward";
    OP_TRY(op_f32_cl(grad_x, op, "grad_x"));
    OP_TRY(op_f32(grad_out, -1, op, "grad_out"));
    OP_TRY(op_numel(grad_out, grad_x->shape[0] * grad_x->shape[1], op, "grad_out"));
    OP_SAME_DEVICE(op, T(grad_x), T(grad_out));
    if (!CL_NATIVE(grad_x, grad_x)) { /* a device without channels-last kernels */
        sp_cl_ctx k = {0};
        sp_status st = sp_cl_out(&k, &grad_x);
        if (!st) st = OP_CALL(grad_x, global_avgpool_backward, grad_x, grad_out);
        return sp_cl_done(&k, st);
    }
    return OP_CALL(grad_x, global_avgpool_backward, grad_x, grad_out);
}

/* ---- softmax and losses --------------------------------------------------- */

sp_status sp_softmax_forward(sp_tensor *out, const sp_tensor *x) {
    const char *op = "softmax_forward";
    OP_TRY(op_f32(x, 2, op, "x"));
    OP_TRY(op_f32(out, -1, op, "out"));
    OP_TRY(op_numel(out, sp_tensor_numel(x), op, "out"));
    OP_SAME_DEVICE(op, T(out), T(x));
    return OP_CALL(x, softmax_forward, out, x);
}

/* dtype and shape of the labels (their values are range-checked by the kernel, which can
 * read device memory) */
static sp_status label_check(const char *op, const sp_tensor *labels, int64_t N, int64_t C) {
    if (!labels) return sp_error(SP_EINVAL, "%s: labels is NULL", op);
    if (!sp_tensor_is_contiguous(labels)) return sp_error(SP_EINVAL, "%s: labels must be contiguous", op);
    if (labels->dtype == SP_INT32) return op_numel(labels, N, op, "labels (sparse, int32 [N])");
    if (labels->dtype == SP_FLOAT32) return op_numel(labels, N * C, op, "labels (dense, float32 [N,C])");
    return sp_error(SP_EINVAL, "%s: labels must be int32 [N] (sparse) or float32 [N,C], got %s", op,
                    sp_dtype_name(labels->dtype));
}

static sp_status weight_check(const char *op, const sp_tensor *weight, int64_t C) {
    if (!weight) return SP_OK;
    OP_TRY(op_f32(weight, 1, op, "weight"));
    return op_numel(weight, C, op, "weight ([C])");
}

static sp_status xent_forward(const char *op, sp_tensor *loss, sp_tensor *row_weight, sp_tensor *prob,
                              const sp_tensor *logits, const sp_tensor *labels, const sp_tensor *weight,
                              int64_t ignore_index, double a, double b) {
    OP_TRY(op_f32(logits, 2, op, "logits"));
    int64_t N = logits->shape[0], C = logits->shape[1];
    OP_TRY(op_f32(loss, -1, op, "loss"));
    OP_TRY(op_numel(loss, N, op, "loss"));
    if (row_weight) { OP_TRY(op_f32(row_weight, -1, op, "row_weight")); OP_TRY(op_numel(row_weight, N, op, "row_weight")); }
    OP_TRY(op_f32(prob, -1, op, "prob"));
    OP_TRY(op_numel(prob, N * C, op, "prob"));
    OP_TRY(label_check(op, labels, N, C));
    OP_TRY(weight_check(op, weight, C));
    OP_SAME_DEVICE(op, T(loss), T(row_weight), T(prob), T(logits), T(labels), T(weight));
    return OP_CALL(logits, softmax_xent_forward, loss, row_weight, prob, logits, labels, weight, ignore_index, a, b);
}

static sp_status xent_backward(const char *op, sp_tensor *grad_x, const sp_tensor *prob, const sp_tensor *labels,
                               const sp_tensor *weight, const sp_tensor *grad_loss, int64_t ignore_index, double a,
                               double b, double scale) {
    OP_TRY(op_f32(prob, 2, op, "prob"));
    int64_t N = prob->shape[0], C = prob->shape[1];
    OP_TRY(op_f32(grad_x, -1, op, "grad_x"));
    OP_TRY(op_numel(grad_x, N * C, op, "grad_x"));
    if (grad_loss) { OP_TRY(op_f32(grad_loss, -1, op, "grad_loss")); OP_TRY(op_numel(grad_loss, N, op, "grad_loss")); }
    OP_TRY(label_check(op, labels, N, C));
    OP_TRY(weight_check(op, weight, C));
    OP_SAME_DEVICE(op, T(grad_x), T(prob), T(labels), T(weight), T(grad_loss));
    return OP_CALL(prob, softmax_xent_backward, grad_x, prob, labels, weight, grad_loss, ignore_index, a, b, scale);
}

sp_status sp_cross_entropy_forward(sp_tensor *loss, sp_tensor *row_weight, sp_tensor *prob, const sp_tensor *logits,
                                   const sp_tensor *labels, const sp_tensor *weight, int64_t ignore_index, double a,
                                   double b) {
    return xent_forward("cross_entropy_forward", loss, row_weight, prob, logits, labels, weight, ignore_index, a, b);
}

sp_status sp_cross_entropy_backward(sp_tensor *grad_x, const sp_tensor *prob, const sp_tensor *labels,
                                    const sp_tensor *weight, const sp_tensor *grad_loss, int64_t ignore_index, double a,
                                    double b, double scale) {
    return xent_backward("cross_entropy_backward", grad_x, prob, labels, weight, grad_loss, ignore_index, a, b, scale);
}

/* plain softmax cross-entropy: a = 1, b = 0, no weight, nothing ignored */
sp_status sp_softmax_xent_forward(sp_tensor *loss, sp_tensor *prob, const sp_tensor *logits, const sp_tensor *labels) {
    return xent_forward("softmax_xent_forward", loss, NULL, prob, logits, labels, NULL, INT64_MIN, 1.0, 0.0);
}

sp_status sp_softmax_xent_backward(sp_tensor *grad_x, const sp_tensor *prob, const sp_tensor *labels,
                                   const sp_tensor *grad_loss, double scale) {
    return xent_backward("softmax_xent_backward", grad_x, prob, labels, NULL, grad_loss, INT64_MIN, 1.0, 0.0, scale);
}
