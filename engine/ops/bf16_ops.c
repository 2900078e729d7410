/* bf16_ops.c — public entry points of the bfloat16 nn kernels (amp_level "O2"): the same
 * checks as their float32 twins in nn_ops.c (sp_op_conv_check, sp_op_dense_check), then
 * the operands' device kernel; a device without bf16 kernels (cuda) refuses by name. */
#include "ops/ops_common.h"
#include "cpu/bf16.h"

int sp_cpu_has_bf16(void) { return sp_cpu_bf16_native(); }

sp_status sp_conv2d_forward_bf16(sp_tensor *out, const sp_tensor *x, const sp_tensor *w, const sp_tensor *bias,
                                 int stride_h, int stride_w, int pad_top, int pad_bottom, int pad_left, int pad_right,
                                 int dil_h, int dil_w, int groups) {
    OP_TRY(sp_op_conv_fwd_args("conv2d_forward_bf16", out, x, w, bias, stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right, dil_h, dil_w, groups));
    if (SP_K(x)->conv2d_forward_bf16 && !SP_K(x)->channels_last && SP_CL_ANY(out, x)) /* NCHW copies */
        return sp_cl_conv_forward(SP_K(x)->conv2d_forward_bf16, out, x, w, bias, stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right, dil_h, dil_w, groups);
    return OP_CALL(x, conv2d_forward_bf16, out, x, w, bias, stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right, dil_h, dil_w, groups);
}

sp_status sp_conv2d_backward_bf16(sp_tensor *grad_x, sp_tensor *grad_w, sp_tensor *grad_b, const sp_tensor *grad_out,
                                  const sp_tensor *x, const sp_tensor *w, int stride_h, int stride_w, int pad_top,
                                  int pad_bottom, int pad_left, int pad_right, int dil_h, int dil_w, int groups) {
    const char *op = "conv2d_backward_bf16";
    OP_TRY(sp_op_conv_bwd_args(op, grad_x, grad_w, grad_b, grad_out, x, w, stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right, dil_h, dil_w, groups));
    if (grad_x && (grad_x == x || SP_DATA(grad_x) == SP_DATA(x)))
        return sp_error(SP_EINVAL, "%s: grad_x must not share memory with x", op);
    if (SP_K(x)->conv2d_backward_bf16 && SP_CL_ANY(x, grad_out, grad_x)) /* channels-last: NCHW copies */
        return sp_cl_conv_backward(SP_K(x)->conv2d_backward_bf16, grad_x, grad_w, grad_b, grad_out, x, w, stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right, dil_h, dil_w, groups);
    return OP_CALL(x, conv2d_backward_bf16, grad_x, grad_w, grad_b, grad_out, x, w, stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right, dil_h, dil_w, groups);
}

sp_status sp_dense_forward_bf16(sp_tensor *out, const sp_tensor *x, const sp_tensor *w, const sp_tensor *bias) {
    OP_TRY(sp_op_dense_fwd_args("dense_forward_bf16", out, x, w, bias));
    return OP_CALL(x, dense_forward_bf16, out, x, w, bias);
}

sp_status sp_dense_backward_bf16(sp_tensor *grad_x, sp_tensor *grad_w, sp_tensor *grad_b, const sp_tensor *grad_out,
                                 const sp_tensor *x, const sp_tensor *w) {
    OP_TRY(sp_op_dense_bwd_args("dense_backward_bf16", grad_x, grad_w, grad_b, grad_out, x, w));
    return OP_CALL(x, dense_backward_bf16, grad_x, grad_w, grad_b, grad_out, x, w);
}
