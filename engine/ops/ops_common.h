/* ops_common.h — shared by the device-neutral public entry points (engine/ops): argument
 * checks (done once, here, never repeated by kernels), the same-device check, and the
 * dispatch through the kernel table of the operands' device. */
#ifndef SP_OPS_COMMON_H
#define SP_OPS_COMMON_H
#include "core/internal.h"
#include "core/device.h"
#include "core/kernels.h"

#define OP_TRY(x) do { sp_status s_ = (x); if (s_) return s_; } while (0)
/* The kernel table of t's device. */
#define SP_K(t) (SP_DEV(t)->k)
/* Run kernel `kern` of t's device (an error when that device has no such kernel yet). */
#define OP_CALL(t, kern, ...)                                                                 \
    (SP_K(t)->kern ? SP_K(t)->kern(__VA_ARGS__)                                               \
                   : sp_kernel_missing(#kern, SP_DEV(t)))
/* Every non-NULL tensor on one device: OP_SAME_DEVICE("op", T(a), T(b), {w, "weight"}...).
 * The common case (all on one device) is an inline comparison of the storages' devices;
 * only a mismatch calls sp_check_same_device for the message naming op and tensors. */
#define OP_SAME_DEVICE(op, ...)                                                               \
    do {                                                                                      \
        const struct { const sp_tensor *t; const char *n; } d_[] = {__VA_ARGS__};              \
        enum { n_ = sizeof d_ / sizeof d_[0] };                                               \
        const struct sp_device *dev_ = NULL;                                                  \
        int bad_ = 0;                                                                         \
        for (int i_ = 0; i_ < n_; i_++) {                                                     \
            if (!d_[i_].t) continue;                                                          \
            if (!dev_) dev_ = SP_DEV(d_[i_].t);                                               \
            else if (SP_DEV(d_[i_].t) != dev_) bad_ = 1;                                      \
        }                                                                                     \
        if (bad_) {                                                                           \
            const sp_tensor *ts_[n_];                                                         \
            const char *nm_[n_];                                                              \
            for (int i_ = 0; i_ < n_; i_++) { ts_[i_] = d_[i_].t; nm_[i_] = d_[i_].n; }       \
            return sp_check_same_device(op, n_, ts_, nm_);                                    \
        }                                                                                     \
    } while (0)
#define T(x) {(x), #x}

/* A contiguous float32 tensor of rank ndim (ndim < 0: any rank). */
static inline sp_status op_f32(const sp_tensor *t, int ndim, const char *op, const char *what) {
    if (!t) return sp_error(SP_EINVAL, "%s: %s is NULL", op, what);
    if (t->dtype != SP_FLOAT32)
        return sp_error(SP_EINVAL, "%s: %s must be float32, got %s", op, what, sp_dtype_name(t->dtype));
    if (ndim >= 0 && t->ndim != ndim)
        return sp_error(SP_EINVAL, "%s: %s must be %d-D, got %d-D", op, what, ndim, t->ndim);
    if (!sp_tensor_is_contiguous(t)) return sp_error(SP_EINVAL, "%s: %s must be contiguous", op, what);
    return SP_OK;
}
/* A 4-D float32 tensor, contiguous or channels-last (the conv and pooling operands that
 * sp_tensor_empty_channels_last_on documents). */
static inline sp_status op_f32_cl(const sp_tensor *t, const char *op, const char *what) {
    if (t && t->dtype == SP_FLOAT32 && t->ndim == 4 && sp_tensor_is_channels_last(t)) return SP_OK;
    return op_f32(t, 4, op, what);
}
/* A conv activation: 4-D float32 (op_f32_cl), or, where bf16 is set (the bf16 fused eval
 * forward's x, out and residual: O2 inference, spore.nn.chain), 4-D bfloat16 channels-last. */
static inline sp_status op_act_cl(const sp_tensor *t, int bf16, const char *op, const char *what) {
    if (bf16 && t && t->dtype == SP_BFLOAT16) {
        if (t->ndim == 4 && sp_tensor_is_channels_last(t)) return SP_OK;
        return sp_error(SP_EINVAL, "%s: %s is bfloat16, which must be a 4-D channels-last tensor", op, what);
    }
    return op_f32_cl(t, op, what);
}
static inline sp_status op_numel(const sp_tensor *t, int64_t n, const char *op, const char *what) {
    if (sp_tensor_numel(t) != n)
        return sp_error(SP_EINVAL, "%s: %s has %lld elements, expected %lld", op, what,
                        (long long)sp_tensor_numel(t), (long long)n);
    return SP_OK;
}
static inline sp_status op_shape4(const sp_tensor *t, int64_t a, int64_t b, int64_t c, int64_t d, const char *op,
                                  const char *what) {
    if (t->shape[0] != a || t->shape[1] != b || t->shape[2] != c || t->shape[3] != d)
        return sp_error(SP_EINVAL, "%s: %s is [%lld,%lld,%lld,%lld], expected [%lld,%lld,%lld,%lld]", op, what,
                        (long long)t->shape[0], (long long)t->shape[1], (long long)t->shape[2],
                        (long long)t->shape[3], (long long)a, (long long)b, (long long)c, (long long)d);
    return SP_OK;
}
/* The argument checks of conv2d and dense (nn_ops.c), shared by the float32 and bf16 entry
 * points: shapes, dtypes, geometry, one device; conv's output size in *Ho, *Wo. */
#define SP_CONV_GEOM_PARAMS int stride_h, int stride_w, int pad_top, int pad_bottom, int pad_left, int pad_right, \
                            int dil_h, int dil_w, int groups
sp_status sp_op_conv_check(const char *op, const sp_tensor *x, const sp_tensor *w, int sh, int sw, int pt, int pb,
                           int pl, int pr, int dh, int dw, int groups, int64_t *Ho, int64_t *Wo);
sp_status sp_op_conv_fwd_args(const char *op, const sp_tensor *out, const sp_tensor *x, const sp_tensor *w,
                              const sp_tensor *bias, SP_CONV_GEOM_PARAMS);
sp_status sp_op_conv_bwd_args(const char *op, const sp_tensor *grad_x, const sp_tensor *grad_w,
                              const sp_tensor *grad_b, const sp_tensor *grad_out, const sp_tensor *x,
                              const sp_tensor *w, SP_CONV_GEOM_PARAMS);
sp_status sp_op_dense_check(const char *op, const sp_tensor *x, const sp_tensor *w);
sp_status sp_op_dense_fwd_args(const char *op, const sp_tensor *out, const sp_tensor *x, const sp_tensor *w,
                               const sp_tensor *bias);
sp_status sp_op_dense_bwd_args(const char *op, const sp_tensor *grad_x, const sp_tensor *grad_w,
                               const sp_tensor *grad_b, const sp_tensor *grad_out, const sp_tensor *x,
                               const sp_tensor *w);

#endif
