/* reference.h — the readable reference path of each nn kernel family (engine-internal,
 * not in spore.h). Every sp_ref_* has the signature and the documented meaning of the
 * public sp_* kernel of the same name (see spore.h, "nn kernels"): plain nested loops
 * straight from the definition, double accumulation, no BLAS, im2col, unrolling or
 * vectors. They are slow on purpose; spec/engine/test_reference.c runs every fast path
 * against them. Host-addressable (cpu or sim) contiguous tensors. */
#ifndef SP_CPU_REFERENCE_H
#define SP_CPU_REFERENCE_H
#include "spore.h"

#if defined(__GNUC__)
#define SP_REF_API __attribute__((visibility("hidden")))
#else
#define SP_REF_API
#endif

SP_REF_API sp_status sp_ref_conv2d_forward(sp_tensor *out, const sp_tensor *x, const sp_tensor *w,
                                           const sp_tensor *bias, int stride_h, int stride_w, int pad_top,
                                           int pad_bottom, int pad_left, int pad_right, int dil_h, int dil_w,
                                           int groups);
SP_REF_API sp_status sp_ref_conv2d_backward(sp_tensor *grad_x, sp_tensor *grad_w, sp_tensor *grad_b,
                                            const sp_tensor *grad_out, const sp_tensor *x, const sp_tensor *w,
                                            int stride_h, int stride_w, int pad_top, int pad_bottom, int pad_left,
                                            int pad_right, int dil_h, int dil_w, int groups);

SP_REF_API sp_status sp_ref_dense_forward(sp_tensor *out, const sp_tensor *x, const sp_tensor *w,
                                          const sp_tensor *bias);
SP_REF_API sp_status sp_ref_dense_backward(sp_tensor *grad_x, sp_tensor *grad_w, sp_tensor *grad_b,
                                           const sp_tensor *grad_out, const sp_tensor *x, const sp_tensor *w);

SP_REF_API sp_status sp_ref_batchnorm_forward(sp_tensor *out, sp_tensor *save_mean, sp_tensor *save_invstd,
                                              const sp_tensor *x, const sp_tensor *gamma, const sp_tensor *beta,
                                              sp_tensor *moving_mean, sp_tensor *moving_var, int training, int update,
                                              double momentum, double eps);
SP_REF_API sp_status sp_ref_batchnorm_backward(sp_tensor *grad_x, sp_tensor *grad_gamma, sp_tensor *grad_beta,
                                               const sp_tensor *grad_out, const sp_tensor *x, const sp_tensor *gamma,
                                               const sp_tensor *save_mean, const sp_tensor *save_invstd,
                                               int training);

SP_REF_API sp_status sp_ref_relu_forward(sp_tensor *out, const sp_tensor *x);
SP_REF_API sp_status sp_ref_relu_backward(sp_tensor *grad_x, const sp_tensor *grad_out, const sp_tensor *y);

SP_REF_API sp_status sp_ref_maxpool2d_forward(sp_tensor *out, sp_tensor *argmax, const sp_tensor *x, int kh, int kw,
                                              int stride_h, int stride_w, int pad_top, int pad_bottom, int pad_left,
                                              int pad_right);
SP_REF_API sp_status sp_ref_maxpool2d_backward(sp_tensor *grad_x, const sp_tensor *grad_out,
                                               const sp_tensor *argmax);
SP_REF_API sp_status sp_ref_avgpool2d_forward(sp_tensor *out, const sp_tensor *x, int kh, int kw, int stride_h,
                                              int stride_w, int pad_top, int pad_bottom, int pad_left, int pad_right,
                                              int count_pad);
SP_REF_API sp_status sp_ref_avgpool2d_backward(sp_tensor *grad_x, const sp_tensor *grad_out, int kh, int kw,
                                               int stride_h, int stride_w, int pad_top, int pad_bottom, int pad_left,
                                               int pad_right, int count_pad);
SP_REF_API sp_status sp_ref_global_avgpool_forward(sp_tensor *out, const sp_tensor *x);
SP_REF_API sp_status sp_ref_global_avgpool_backward(sp_tensor *grad_x, const sp_tensor *grad_out);

SP_REF_API sp_status sp_ref_softmax_forward(sp_tensor *out, const sp_tensor *x);
SP_REF_API sp_status sp_ref_softmax_xent_forward(sp_tensor *loss, sp_tensor *prob, const sp_tensor *logits,
                                                 const sp_tensor *labels);
SP_REF_API sp_status sp_ref_softmax_xent_backward(sp_tensor *grad_x, const sp_tensor *prob, const sp_tensor *labels,
                                                  const sp_tensor *grad_loss, double scale);

SP_REF_API sp_status sp_ref_cross_entropy_forward(sp_tensor *loss, sp_tensor *row_weight, sp_tensor *prob,
                                                  const sp_tensor *logits, const sp_tensor *labels,
                                                  const sp_tensor *weight, int64_t ignore_index, double a, double b);
SP_REF_API sp_status sp_ref_cross_entropy_backward(sp_tensor *grad_x, const sp_tensor *prob, const sp_tensor *labels,
                                                   const sp_tensor *weight, const sp_tensor *grad_loss,
                                                   int64_t ignore_index, double a, double b, double scale);

SP_REF_API sp_status sp_ref_momentum_update(sp_tensor *param, sp_tensor *moment, const sp_tensor *grad, double lr,
                                            double momentum, double weight_decay, double loss_scale, int nesterov);
SP_REF_API sp_status sp_ref_sgd_update(sp_tensor *param, sp_tensor *accum, const sp_tensor *grad, double lr,
                                       double momentum, double dampening, double weight_decay, double loss_scale,
                                       int nesterov, int first);
SP_REF_API sp_status sp_ref_adam_update(sp_tensor *param, sp_tensor *m, sp_tensor *v, const sp_tensor *grad,
                                        double lr, double beta1, double beta2, double eps, double beta1_power,
                                        double beta2_power, double weight_decay, double loss_scale, int nesterov);
SP_REF_API sp_status sp_ref_adam_amsgrad_update(sp_tensor *param, sp_tensor *m, sp_tensor *v, sp_tensor *vhat,
                                                const sp_tensor *grad, double lr, double beta1, double beta2,
                                                double eps, double beta1_power, double beta2_power,
                                                double weight_decay, double loss_scale);
SP_REF_API sp_status sp_ref_adamw_update(sp_tensor *param, sp_tensor *m, sp_tensor *v, const sp_tensor *grad,
                                         double lr, double beta1, double beta2, double eps, double weight_decay);
SP_REF_API sp_status sp_ref_grad_centralize(sp_tensor *grad, const sp_tensor *param, double weight_decay,
                                            int64_t rows);
/* bfloat16: x rounded to the nearest bf16 (ties to even), as float32; and the naive GEMM
 * out[M,N] = bf16(a)[M,K] · bf16(b)[K,N], double sums (the reference of engine/cpu/bf16.c). */
SP_REF_API float sp_ref_bf16_round(float x);
SP_REF_API sp_status sp_ref_gemm_bf16(sp_tensor *out, const sp_tensor *a, const sp_tensor *b);

#endif
