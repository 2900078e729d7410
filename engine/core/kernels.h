/* kernels.h — the per-device kernel table. A public op (engine/ops: sp_* entry points)
 * checks shapes, dtypes and devices once, then calls the table of the operands' device:
 * SP_DEV(t)->k->op(...). engine/cpu fills sp_cpu_kernels (also used by `sim`);
 * engine/cuda fills its own. Kernels take already-checked arguments (each entry has the
 * public function's signature), reach tensor memory through SP_DATA() and take scratch
 * memory from sp_workspace(SP_DEV(t), slot, n). Kernels may still fail on data (integer
 * division by zero, a label out of range) or allocation. */
#ifndef SPORE_KERNELS_H
#define SPORE_KERNELS_H

#include "spore.h"

typedef struct sp_kernels {
    /* ---- core: copy/convert between two tensors on this device (same numel; shapes equal
     * or both contiguous) */
    sp_status (*copy)(sp_tensor *dst, const sp_tensor *src);

    /* ---- fill and random */
    sp_status (*fill)(sp_tensor *t, double value);
    sp_status (*arange)(sp_tensor *t, double start, double step);
    sp_status (*rand_uniform)(sp_tensor *t, double lo, double hi, uint64_t *state);
    sp_status (*rand_normal)(sp_tensor *t, double mean, double std, uint64_t *state);
    sp_status (*rand_trunc_normal)(sp_tensor *t, double mean, double std, uint64_t *state);

    /* ---- elementwise, reductions, matmul */
    sp_status (*binary)(sp_tensor *out, const sp_tensor *a, const sp_tensor *b, int op);
    sp_status (*binary_scalar)(sp_tensor *out, const sp_tensor *a, double s, int op, int reverse);
    sp_status (*unary)(sp_tensor *out, const sp_tensor *a, int op);
    sp_status (*reduce_all)(const sp_tensor *a, int op, double *value);
    sp_status (*reduce_dim)(sp_tensor *out, const sp_tensor *a, int op, int dim, int keepdim);
    sp_status (*topk)(sp_tensor *values, sp_tensor *indices, const sp_tensor *a, int k, int dim, int largest);
    sp_status (*count_equal)(const sp_tensor *a, const sp_tensor *b, int64_t *count);
    sp_status (*matmul)(sp_tensor *out, const sp_tensor *a, const sp_tensor *b, int trans_a, int trans_b,
                        double alpha, double beta);

    /* ---- nn */
    sp_status (*conv2d_forward)(sp_tensor *out, const sp_tensor *x, const sp_tensor *w, const sp_tensor *bias,
                                int stride_h, int stride_w, int pad_top, int pad_bottom, int pad_left,
                                int pad_right, int dil_h, int dil_w, int groups);
    sp_status (*conv2d_backward)(sp_tensor *grad_x, sp_tensor *grad_w, sp_tensor *grad_b, const sp_tensor *grad_out,
                                 const sp_tensor *x, const sp_tensor *w, int stride_h, int stride_w, int pad_top,
                                 int pad_bottom, int pad_left, int pad_right, int dil_h, int dil_w, int groups);
    sp_status (*dense_forward)(sp_tensor *out, const sp_tensor *x, const sp_tensor *w, const sp_tensor *bias);
    sp_status (*dense_backward)(sp_tensor *grad_x, sp_tensor *grad_w, sp_tensor *grad_b, const sp_tensor *grad_out,
                                const sp_tensor *x, const sp_tensor *w);
    sp_status (*batchnorm_forward)(sp_tensor *out, sp_tensor *save_mean, sp_tensor *save_invstd, const sp_tensor *x,
                                   const sp_tensor *gamma, const sp_tensor *beta, sp_tensor *moving_mean,
                                   sp_tensor *moving_var, int training, int update, double momentum, double eps);
    /* eval-mode conv -> BN (-> + residual) (-> ReLU) in one kernel (NULL: not fused here;
     * Lua runs the three ops) */
    sp_status (*conv2d_bn_forward)(sp_tensor *out, const sp_tensor *x, const sp_tensor *w, const sp_tensor *bias,
                                   const sp_tensor *gamma, const sp_tensor *beta, const sp_tensor *mean,
                                   const sp_tensor *var, double eps, const sp_tensor *residual, int relu,
                                   int stride_h, int stride_w, int pad_top, int pad_bottom, int pad_left,
                                   int pad_right, int dil_h, int dil_w, int groups);
    /* the same with the convolution in bfloat16 (amp_level "O2") */
    sp_status (*conv2d_bn_forward_bf16)(sp_tensor *out, const sp_tensor *x, const sp_tensor *w, const sp_tensor *bias,
                                        const sp_tensor *gamma, const sp_tensor *beta, const sp_tensor *mean,
                                        const sp_tensor *var, double eps, const sp_tensor *residual, int relu,
                                        int stride_h, int stride_w, int pad_top, int pad_bottom, int pad_left,
                                        int pad_right, int dil_h, int dil_w, int groups);
    /* BN (+ residual) (+ ReLU) forward and BN backward through a ReLU's mask in one pass
     * each (NULL: Lua runs the unfused ops) */
    sp_status (*batchnorm_act_forward)(sp_tensor *out, sp_tensor *save_mean, sp_tensor *save_invstd,
                                       const sp_tensor *x, const sp_tensor *gamma, const sp_tensor *beta,
                                       sp_tensor *moving_mean, sp_tensor *moving_var, int training, int update,
                                       double momentum, double eps, const sp_tensor *residual, int relu);
    sp_status (*batchnorm_relu_backward)(sp_tensor *grad_x, sp_tensor *grad_gamma, sp_tensor *grad_beta,
                                         const sp_tensor *grad_out, const sp_tensor *y, const sp_tensor *x,
                                         const sp_tensor *gamma, const sp_tensor *save_mean,
                                         const sp_tensor *save_invstd, int training);
    sp_status (*batchnorm_backward)(sp_tensor *grad_x, sp_tensor *grad_gamma, sp_tensor *grad_beta,
                                    const sp_tensor *grad_out, const sp_tensor *x, const sp_tensor *gamma,
                                    const sp_tensor *save_mean, const sp_tensor *save_invstd, int training);
    sp_status (*relu_backward)(sp_tensor *grad_x, const sp_tensor *grad_out, const sp_tensor *y);
    /* optional: NULL runs sp_binary then relu_backward */
    sp_status (*add_relu_backward)(sp_tensor *grad_x, const sp_tensor *a, const sp_tensor *b, const sp_tensor *y);
    sp_status (*dropout_forward)(sp_tensor *out, sp_tensor *mask, const sp_tensor *x, double p, uint64_t *state);
    sp_status (*maxpool2d_forward)(sp_tensor *out, sp_tensor *argmax, const sp_tensor *x, int kh, int kw,
                                   int stride_h, int stride_w, int pad_top, int pad_bottom, int pad_left,
                                   int pad_right);
    sp_status (*maxpool2d_backward)(sp_tensor *grad_x, const sp_tensor *grad_out, const sp_tensor *argmax);
    sp_status (*avgpool2d_forward)(sp_tensor *out, const sp_tensor *x, int kh, int kw, int stride_h, int stride_w,
                                   int pad_top, int pad_bottom, int pad_left, int pad_right, int count_pad);
    sp_status (*avgpool2d_backward)(sp_tensor *grad_x, const sp_tensor *grad_out, int kh, int kw, int stride_h,
                                    int stride_w, int pad_top, int pad_bottom, int pad_left, int pad_right,
                                    int count_pad);
    sp_status (*global_avgpool_forward)(sp_tensor *out, const sp_tensor *x);
    sp_status (*global_avgpool_backward)(sp_tensor *grad_x, const sp_tensor *grad_out);
    sp_status (*softmax_forward)(sp_tensor *out, const sp_tensor *x);
    sp_status (*softmax_xent_forward)(sp_tensor *loss, sp_tensor *row_weight, sp_tensor *prob,
                                      const sp_tensor *logits, const sp_tensor *labels, const sp_tensor *weight,
                                      int64_t ignore_index, double a, double b);
    sp_status (*softmax_xent_backward)(sp_tensor *grad_x, const sp_tensor *prob, const sp_tensor *labels,
                                       const sp_tensor *weight, const sp_tensor *grad_loss, int64_t ignore_index,
                                       double a, double b, double scale);
    sp_status (*momentum_update)(sp_tensor *param, sp_tensor *moment, const sp_tensor *grad, double lr,
                                 double momentum, double weight_decay, double loss_scale, int nesterov);
    sp_status (*sgd_update)(sp_tensor *param, sp_tensor *accum, const sp_tensor *grad, double lr, double momentum,
                            double dampening, double weight_decay, double loss_scale, int nesterov, int first);
    sp_status (*adam_update)(sp_tensor *param, sp_tensor *m, sp_tensor *v, const sp_tensor *grad, double lr,
                             double beta1, double beta2, double eps, double beta1_power, double beta2_power,
                             double weight_decay, double loss_scale, int nesterov);
    sp_status (*adam_amsgrad_update)(sp_tensor *param, sp_tensor *m, sp_tensor *v, sp_tensor *vhat,
                                     const sp_tensor *grad, double lr, double beta1, double beta2, double eps,
                                     double beta1_power, double beta2_power, double weight_decay,
                                     double loss_scale);
    sp_status (*adamw_update)(sp_tensor *param, sp_tensor *m, sp_tensor *v, const sp_tensor *grad, double lr,
                              double beta1, double beta2, double eps, double weight_decay);
    sp_status (*grad_centralize)(sp_tensor *grad, const sp_tensor *param, double weight_decay, int64_t rows);

    /* ---- bfloat16 compute (amp_level "O2"): the float32 nn signatures, operands rounded
     * to bf16, float32 accumulation (NULL: the device refuses bf16 by name) */
    sp_status (*conv2d_forward_bf16)(sp_tensor *out, const sp_tensor *x, const sp_tensor *w, const sp_tensor *bias,
                                     int stride_h, int stride_w, int pad_top, int pad_bottom, int pad_left,
                                     int pad_right, int dil_h, int dil_w, int groups);
    sp_status (*conv2d_backward_bf16)(sp_tensor *grad_x, sp_tensor *grad_w, sp_tensor *grad_b,
                                      const sp_tensor *grad_out, const sp_tensor *x, const sp_tensor *w,
                                      int stride_h, int stride_w, int pad_top, int pad_bottom, int pad_left,
                                      int pad_right, int dil_h, int dil_w, int groups);
    sp_status (*dense_forward_bf16)(sp_tensor *out, const sp_tensor *x, const sp_tensor *w, const sp_tensor *bias);
    sp_status (*dense_backward_bf16)(sp_tensor *grad_x, sp_tensor *grad_w, sp_tensor *grad_b,
                                     const sp_tensor *grad_out, const sp_tensor *x, const sp_tensor *w);

    /* 1: this device's conv forwards (float32, bf16, BN-fused), maxpool2d_forward and
     * global_avgpool_forward take channels-last operands (sp_tensor_is_channels_last) for
     * x, out and residual themselves; 0: the public op hands them NCHW copies */
    int channels_last;
} sp_kernels;

extern const sp_kernels sp_cpu_kernels;

#endif
