/* bf16_ops.c — public entry points of the bfloat16 nn kernels (amp_level "O2"): the same
 * checks as their float32 twins in nn_ops.c (restated here: that file's checkers are
 * private), then the operands' device kernel; a device without bf16 kernels (cuda) refuses
 * by name. */
#include "ops/ops_common.h"
#include "cpu/bf16.h"

int sp_cpu_has_bf16(void) { return sp_cpu_bf16_native(); }

static sp_status conv_check16(const char *op, const sp_tensor *x, const sp_tensor *w, int sh, int sw, int pt, int pb,
                              int pl, int pr, int dh, int dw, int groups, int64_t *Ho, int64_t *Wo) {
    OP_TRY(op_f32(x, 4, op, "x"));
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

sp_status sp_conv2d_forward_bf16(sp_tensor *out, const sp_tensor *x, const sp_tensor *w, const sp_tensor *bias,
                                 int stride_h, int stride_w, int pad_top, int pad_bottom, int pad_left, int pad_right,
                                 int dil_h, int dil_w, int groups) {
    const char *op = "conv2d_forward_bf16";
    int64_t Ho, Wo;
    OP_TRY(conv_check16(op, x, w, stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right, dil_h, dil_w, groups,
                        &Ho, &Wo));
    OP_TRY(op_f32(out, 4, op, "out"));
    OP_TRY(op_shape4(out, x->shape[0], w->shape[0], Ho, Wo, op, "out"));
    if (bias) { OP_TRY(op_f32(bias, -1, op, "bias")); OP_TRY(op_numel(bias, w->shape[0], op, "bias")); }
    OP_SAME_DEVICE(op, T(out), T(x), {w, "weight"}, T(bias));
    return OP_CALL(x, conv2d_forward_bf16, out, x, w, bias, stride_h, stride_w, pad_top, pad_bottom, pad_left,
                   pad_right, dil_h, dil_w, groups);
}

sp_status sp_conv2d_backward_bf16(sp_tensor *grad_x, sp_tensor *grad_w, sp_tensor *grad_b, const sp_tensor *grad_out,
                                  const sp_tensor *x, const sp_tensor *w, int stride_h, int stride_w, int pad_top,
                                  int pad_bottom, int pad_left, int pad_right, int dil_h, int dil_w, int groups) {
    const char *op = "conv2d_backward_bf16";
    int64_t Ho, Wo;
    OP_TRY(conv_check16(op, x, w, stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right, dil_h, dil_w, groups,
                        &Ho, &Wo));
    int64_t N = x->shape[0], C = x->shape[1], Co = w->shape[0];
    OP_TRY(op_f32(grad_out, 4, op, "grad_out"));
    OP_TRY(op_shape4(grad_out, N, Co, Ho, Wo, op, "grad_out"));
    if (grad_x) {
        OP_TRY(op_f32(grad_x, 4, op, "grad_x"));
        OP_TRY(op_shape4(grad_x, N, C, x->shape[2], x->shape[3], op, "grad_x"));
        if (grad_x == x || SP_DATA(grad_x) == SP_DATA(x))
            return sp_error(SP_EINVAL, "%s: grad_x must not share memory with x", op);
    }
    if (grad_w) { OP_TRY(op_f32(grad_w, -1, op, "grad_w")); OP_TRY(op_numel(grad_w, sp_tensor_numel(w), op, "grad_w")); }
    if (grad_b) { OP_TRY(op_f32(grad_b, -1, op, "grad_b")); OP_TRY(op_numel(grad_b, Co, op, "grad_b")); }
    OP_SAME_DEVICE(op, T(grad_x), T(grad_w), T(grad_b), T(grad_out), T(x), {w, "weight"});
    return OP_CALL(x, conv2d_backward_bf16, grad_x, grad_w, grad_b, grad_out, x, w, stride_h, stride_w, pad_top,
                   pad_bottom, pad_left, pad_right, dil_h, dil_w, groups);
}

static sp_status dense_check16(const char *op, const sp_tensor *x, const sp_tensor *w) {
    OP_TRY(op_f32(x, 2, op, "x"));
    OP_TRY(op_f32(w, 2, op, "weight"));
    if (w->shape[1] != x->shape[1])
        return sp_error(SP_EINVAL, "%s: x is [%lld,%lld] but weight is [%lld,%lld] (expected [out,%lld])", op,
                        (long long)x->shape[0], (long long)x->shape[1], (long long)w->shape[0],
                        (long long)w->shape[1], (long long)x->shape[1]);
    return SP_OK;
}

sp_status sp_dense_forward_bf16(sp_tensor *out, const sp_tensor *x, const sp_tensor *w, const sp_tensor *bias) {
    const char *op = "dense_forward_bf16";
    OP_TRY(dense_check16(op, x, w));
    int64_t N = x->shape[0], O = w->shape[0];
    OP_TRY(op_f32(out, 2, op, "out"));
    if (out->shape[0] != N || out->shape[1] != O)
        return sp_error(SP_EINVAL, "%s: out is [%lld,%lld], expected [%lld,%lld]", op, (long long)out->shape[0],
                        (long long)out->shape[1], (long long)N, (long long)O);
    if (bias) { OP_TRY(op_f32(bias, -1, op, "bias")); OP_TRY(op_numel(bias, O, op, "bias")); }
    OP_SAME_DEVICE(op, T(out), T(x), {w, "weight"}, T(bias));
    return OP_CALL(x, dense_forward_bf16, out, x, w, bias);
}

sp_status sp_dense_backward_bf16(sp_tensor *grad_x, sp_tensor *grad_w, sp_tensor *grad_b, const sp_tensor *grad_out,
                                 const sp_tensor *x, const sp_tensor *w) {
    const char *op = "dense_backward_bf16";
    OP_TRY(dense_check16(op, x, w));
    int64_t N = x->shape[0], In = x->shape[1], O = w->shape[0];
    OP_TRY(op_f32(grad_out, 2, op, "grad_out"));
    if (grad_out->shape[0] != N || grad_out->shape[1] != O)
        return sp_error(SP_EINVAL, "%s: grad_out is [%lld,%lld], expected [%lld,%lld]", op,
                        (long long)grad_out->shape[0], (long long)grad_out->shape[1], (long long)N, (long long)O);
    if (grad_x) { OP_TRY(op_f32(grad_x, -1, op, "grad_x")); OP_TRY(op_numel(grad_x, N * In, op, "grad_x")); }
    if (grad_w) { OP_TRY(op_f32(grad_w, -1, op, "grad_w")); OP_TRY(op_numel(grad_w, O * In, op, "grad_w")); }
    if (grad_b) { OP_TRY(op_f32(grad_b, -1, op, "grad_b")); OP_TRY(op_numel(grad_b, O, op, "grad_b")); }
    OP_SAME_DEVICE(op, T(grad_x), T(grad_w), T(grad_b), T(grad_out), T(x), {w, "weight"});
    return OP_CALL(x, dense_backward_bf16, grad_x, grad_w, grad_b, grad_out, x, w);
}
