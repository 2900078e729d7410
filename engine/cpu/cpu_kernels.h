/* cpu_kernels.h — the CPU kernels behind sp_cpu_kernels (engine/cpu/kernels.c), also run
 * by `sim` on its arena memory. Arguments are already checked by the public entry points
 * (engine/ops); each has the signature of the public sp_* function of the same name. */
#ifndef SPORE_CPU_KERNELS_H
#define SPORE_CPU_KERNELS_H

#include "spore.h"

sp_status sp_cpu_copy(sp_tensor *dst, const sp_tensor *src);
sp_status sp_cpu_fill(sp_tensor *t, double value);
sp_status sp_cpu_arange(sp_tensor *t, double start, double step);
sp_status sp_cpu_rand_uniform(sp_tensor *t, double lo, double hi, uint64_t *state);
sp_status sp_cpu_rand_normal(sp_tensor *t, double mean, double std, uint64_t *state);
sp_status sp_cpu_rand_trunc_normal(sp_tensor *t, double mean, double std, uint64_t *state);
sp_status sp_cpu_binary(sp_tensor *out, const sp_tensor *a, const sp_tensor *b, int op);
/* 1 when o, a (and b, unless NULL) hold their elements in one dense order: all contiguous,
 * or all channels-last of one 4-D shape (elementwise kernels may then run flat) */
int sp_cpu_same_dense(const sp_tensor *o, const sp_tensor *a, const sp_tensor *b);
sp_status sp_cpu_binary_scalar(sp_tensor *out, const sp_tensor *a, double s, int op, int reverse);
sp_status sp_cpu_unary(sp_tensor *out, const sp_tensor *a, int op);
sp_status sp_cpu_reduce_all(const sp_tensor *a, int op, double *value);
sp_status sp_cpu_reduce_dim(sp_tensor *out, const sp_tensor *a, int op, int dim, int keepdim);
sp_status sp_cpu_topk(sp_tensor *values, sp_tensor *indices, const sp_tensor *a, int k, int dim, int largest);
sp_status sp_cpu_count_equal(const sp_tensor *a, const sp_tensor *b, int64_t *count);
sp_status sp_cpu_matmul(sp_tensor *out, const sp_tensor *a, const sp_tensor *b, int trans_a, int trans_b, double alpha, double beta);
/* sp_conv2d_channels_last_native's answer on the CPU (conv.c) */
int sp_cpu_conv_cl_native(const sp_tensor *x, const sp_tensor *w, int stride_h, int stride_w, int pad_top,
                          int pad_bottom, int pad_left, int pad_right, int dil_h, int dil_w, int groups);
sp_status sp_cpu_conv2d_forward(sp_tensor *out, const sp_tensor *x, const sp_tensor *w, const sp_tensor *bias, int stride_h, int stride_w, int pad_top, int pad_bottom, int pad_left, int pad_right, int dil_h, int dil_w, int groups);
sp_status sp_cpu_conv2d_backward(sp_tensor *grad_x, sp_tensor *grad_w, sp_tensor *grad_b, const sp_tensor *grad_out, const sp_tensor *x, const sp_tensor *w, int stride_h, int stride_w, int pad_top, int pad_bottom, int pad_left, int pad_right, int dil_h, int dil_w, int groups);
sp_status sp_cpu_dense_forward(sp_tensor *out, const sp_tensor *x, const sp_tensor *w, const sp_tensor *bias);
sp_status sp_cpu_dense_backward(sp_tensor *grad_x, sp_tensor *grad_w, sp_tensor *grad_b, const sp_tensor *grad_out, const sp_tensor *x, const sp_tensor *w);
/* bf16_nn.c: the same four with bfloat16 operands (amp_level "O2") */
sp_status sp_cpu_conv2d_bn_forward(sp_tensor *out, const sp_tensor *x, const sp_tensor *w, const sp_tensor *bias, const sp_tensor *gamma, const sp_tensor *beta, const sp_tensor *mean, const sp_tensor *var, double eps, const sp_tensor *residual, int relu, int stride_h, int stride_w, int pad_top, int pad_bottom, int pad_left, int pad_right, int dil_h, int dil_w, int groups);
sp_status sp_cpu_batchnorm_act_forward(sp_tensor *out, sp_tensor *save_mean, sp_tensor *save_invstd, const sp_tensor *x, const sp_tensor *gamma, const sp_tensor *beta, sp_tensor *moving_mean, sp_tensor *moving_var, int training, int update, double momentum, double eps, const sp_tensor *residual, int relu);
sp_status sp_cpu_batchnorm_relu_backward(sp_tensor *grad_x, sp_tensor *grad_gamma, sp_tensor *grad_beta, const sp_tensor *grad_out, const sp_tensor *y, const sp_tensor *x, const sp_tensor *gamma, const sp_tensor *save_mean, const sp_tensor *save_invstd, int training);
sp_status sp_cpu_conv2d_bn_forward_bf16(sp_tensor *out, const sp_tensor *x, const sp_tensor *w, const sp_tensor *bias, const sp_tensor *gamma, const sp_tensor *beta, const sp_tensor *mean, const sp_tensor *var, double eps, const sp_tensor *residual, int relu, int stride_h, int stride_w, int pad_top, int pad_bottom, int pad_left, int pad_right, int dil_h, int dil_w, int groups);
sp_status sp_cpu_conv2d_forward_bf16(sp_tensor *out, const sp_tensor *x, const sp_tensor *w, const sp_tensor *bias, int stride_h, int stride_w, int pad_top, int pad_bottom, int pad_left, int pad_right, int dil_h, int dil_w, int groups);
sp_status sp_cpu_conv2d_backward_bf16(sp_tensor *grad_x, sp_tensor *grad_w, sp_tensor *grad_b, const sp_tensor *grad_out, const sp_tensor *x, const sp_tensor *w, int stride_h, int stride_w, int pad_top, int pad_bottom, int pad_left, int pad_right, int dil_h, int dil_w, int groups);
sp_status sp_cpu_dense_forward_bf16(sp_tensor *out, const sp_tensor *x, const sp_tensor *w, const sp_tensor *bias);
sp_status sp_cpu_dense_backward_bf16(sp_tensor *grad_x, sp_tensor *grad_w, sp_tensor *grad_b, const sp_tensor *grad_out, const sp_tensor *x, const sp_tensor *w);
sp_status sp_cpu_batchnorm_forward(sp_tensor *out, sp_tensor *save_mean, sp_tensor *save_invstd, const sp_tensor *x, const sp_tensor *gamma, const sp_tensor *beta, sp_tensor *moving_mean, sp_tensor *moving_var, int training, int update, double momentum, double eps);
sp_status sp_cpu_batchnorm_backward(sp_tensor *grad_x, sp_tensor *grad_gamma, sp_tensor *grad_beta, const sp_tensor *grad_out, const sp_tensor *x, const sp_tensor *gamma, const sp_tensor *save_mean, const sp_tensor *save_invstd, int training);
sp_status sp_cpu_relu_backward(sp_tensor *grad_x, const sp_tensor *grad_out, const sp_tensor *y);
sp_status sp_cpu_add_relu_backward(sp_tensor *grad_x, const sp_tensor *a, const sp_tensor *b, const sp_tensor *y);
sp_status sp_cpu_dropout_forward(sp_tensor *out, sp_tensor *mask, const sp_tensor *x, double p, uint64_t *state);
sp_status sp_cpu_maxpool2d_forward(sp_tensor *out, sp_tensor *argmax, const sp_tensor *x, int kh, int kw, int stride_h, int stride_w, int pad_top, int pad_bottom, int pad_left, int pad_right);
sp_status sp_cpu_maxpool2d_backward(sp_tensor *grad_x, const sp_tensor *grad_out, const sp_tensor *argmax);
sp_status sp_cpu_avgpool2d_forward(sp_tensor *out, const sp_tensor *x, int kh, int kw, int stride_h, int stride_w, int pad_top, int pad_bottom, int pad_left, int pad_right, int count_pad);
sp_status sp_cpu_avgpool2d_backward(sp_tensor *grad_x, const sp_tensor *grad_out, int kh, int kw, int stride_h, int stride_w, int pad_top, int pad_bottom, int pad_left, int pad_right, int count_pad);
sp_status sp_cpu_global_avgpool_forward(sp_tensor *out, const sp_tensor *x);
sp_status sp_cpu_global_avgpool_backward(sp_tensor *grad_x, const sp_tensor *grad_out);
sp_status sp_cpu_softmax_forward(sp_tensor *out, const sp_tensor *x);
sp_status sp_cpu_softmax_xent_forward(sp_tensor *loss, sp_tensor *row_weight, sp_tensor *prob, const sp_tensor *logits,
                                      const sp_tensor *labels, const sp_tensor *weight, int64_t ignore_index, double a,
                                      double b);
sp_status sp_cpu_softmax_xent_backward(sp_tensor *grad_x, const sp_tensor *prob, const sp_tensor *labels,
                                       const sp_tensor *weight, const sp_tensor *grad_loss, int64_t ignore_index,
                                       double a, double b, double scale);
sp_status sp_cpu_momentum_update(sp_tensor *param, sp_tensor *moment, const sp_tensor *grad, double lr, double momentum, double weight_decay, double loss_scale, int nesterov);
sp_status sp_cpu_sgd_update(sp_tensor *param, sp_tensor *accum, const sp_tensor *grad, double lr, double momentum, double dampening, double weight_decay, double loss_scale, int nesterov, int first);
sp_status sp_cpu_adam_amsgrad_update(sp_tensor *param, sp_tensor *m, sp_tensor *v, sp_tensor *vhat, const sp_tensor *grad, double lr, double beta1, double beta2, double eps, double beta1_power, double beta2_power, double weight_decay, double loss_scale);
sp_status sp_cpu_adamw_update(sp_tensor *param, sp_tensor *m, sp_tensor *v, const sp_tensor *grad, double lr, double beta1, double beta2, double eps, double weight_decay);
sp_status sp_cpu_grad_centralize(sp_tensor *grad, const sp_tensor *param, double weight_decay, int64_t rows);
sp_status sp_cpu_adam_update(sp_tensor *param, sp_tensor *m, sp_tensor *v, const sp_tensor *grad, double lr, double beta1, double beta2, double eps, double beta1_power, double beta2_power, double weight_decay, double loss_scale, int nesterov);

/* A 2-D operand BLAS (OpenBLAS, cuBLAS) can read in place: row-major (*trans 0) or
 * column-major (*trans 1) with leading dimension *ld; 0 when it needs a contiguous copy. */
int sp_blas_layout(const sp_tensor *t, int *trans, int64_t *ld);

#endif
