/* cuda_api.h — the boundary between the engine's C code (engine/cuda/cuda_kernels.c, compiled by
 * cc) and the CUDA code (the .cu files beside it, compiled by nvcc). Plain C: no CUDA type or
 * header crosses it, so the C side never needs the CUDA headers and the .cu side never
 * sees the engine's tensor structs. Every function that can fail returns an sp_status
 * and has set the thread's error message (sp_error) naming the device, the call and
 * CUDA's own error name. Only built with `make CUDA=1`. */
#ifndef SPORE_CUDA_API_H
#define SPORE_CUDA_API_H

#include "spore.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { SPC_MAX_DEVICES = 16 };

/* A strided view of a tensor on a device: data is the address of element 0 (offset
 * applied), strides are in elements. Built by engine/cuda/cuda_kernels.c. */
typedef struct spc_view {
    void *data;
    int dtype;
    int ndim;
    int64_t shape[SP_MAX_DIMS];
    int64_t strides[SP_MAX_DIMS];
} spc_view;

/* ---- memory.cu: devices, streams, the caching allocator, copies ------------------ */
int spc_device_count(void);
/* Lazily set up device dev (its stream, allocator, staging buffers); SP_EDEVICE when it
 * cannot be used. */
sp_status spc_device_init(int dev);
/* Device memory of at least n bytes (n may be 0) from the device's caching allocator:
 * a block of n's size class from the cache, else cudaMalloc; on out-of-memory the cache
 * is emptied and the cudaMalloc retried once. NULL with the error set on failure.
 * zero: the first n bytes are zeroed (on the device's stream). */
void *spc_alloc(int dev, size_t n, int zero);
/* Return a block of n requested bytes to its size class's cache (stream-ordered: the
 * device's one stream runs earlier work on it first). */
void spc_free(int dev, void *p, size_t n);
/* Give every cached block back to the driver. */
void spc_empty_cache(int dev);
/* Bytes held in the cache (free blocks not in use). */
size_t spc_cached_bytes(int dev);
/* 1 when p is device memory of device dev. */
int spc_owns(int dev, const void *p);
/* Copies of n bytes. from_host returns once src may be reused; large copies go through
 * double-buffered pinned staging. to_host returns once dst holds the bytes. */
sp_status spc_from_host(int dev, void *dst, const void *src, size_t n);
sp_status spc_to_host(int dev, void *dst, const void *src, size_t n);
sp_status spc_copy(int dev, void *dst, const void *src, size_t n);
/* The device's one stream (a cudaStream_t), NULL with the error set when the device cannot
 * be used: for engine libraries that queue work after the device's kernels (NCCL). */
void *spc_stream(int dev);
/* Wait for all work queued on the device's stream; reports asynchronous kernel errors. */
sp_status spc_sync(int dev);

/* ---- elementwise.cu ---------------------------------------------------------------
 * Elementwise kernels take any strides; dtypes are handled through double (integers
 * through int64 where exact values matter) with float32 fast paths. */
sp_status spc_copy_convert(int dev, const spc_view *dst, const spc_view *src);
/* every element of t <- the dtype-sized little-endian bytes of bits */
sp_status spc_fill_bytes(int dev, const spc_view *t, uint64_t bits);
/* out = a op b with numpy broadcasting (a and b views already broadcast to out's shape:
 * stride 0 on broadcast dims). Floating point only (the caller routes integer ops). */
sp_status spc_binary(int dev, const spc_view *out, const spc_view *a, const spc_view *b, int op);
sp_status spc_binary_scalar(int dev, const spc_view *out, const spc_view *a, double s, int op, int reverse);
sp_status spc_unary(int dev, const spc_view *out, const spc_view *a, int op);
/* sum/mean/max/min/argmax/argmin over all elements (n > 0) */
sp_status spc_reduce_all(int dev, const spc_view *a, int op, double *value);
/* out[k] = reduce over a's dimension d (views: out flattened to the outer positions) */
sp_status spc_reduce_dim(int dev, const spc_view *out, const spc_view *a, int op, int d);
sp_status spc_relu_backward(int dev, float *gx, const float *go, const float *y, int64_t n);

/* ---- blas.cu: cuBLAS (row-major arguments, as cblas) ----------------------------- */
sp_status spc_gemm(int dev, int dtype, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, double alpha,
                   const void *A, int64_t lda, const void *B, int64_t ldb, double beta, void *C, int64_t ldc);
/* grad_b[o] += sum_n go[n*O + o] */
sp_status spc_bias_grad_rows(int dev, float *gb, const float *go, int64_t N, int64_t O);
/* out[n*O + o] = b[o] */
sp_status spc_bias_rows(int dev, float *out, const float *b, int64_t N, int64_t O);

/* ---- conv.cu: cuDNN, NCHW float32, symmetric padding (the caller pads otherwise) ---- */
sp_status spc_conv2d_forward(int dev, float *out, const float *x, const float *w, const float *bias, int N, int C,
                             int H, int W, int Co, int kh, int kw, int Ho, int Wo, int sh, int sw, int ph, int pw,
                             int dh, int dw, int groups);
/* grad_x = conv^T(grad_out) (overwritten); grad_w += ...; grad_b += ... (each optional) */
sp_status spc_conv2d_backward(int dev, float *gx, float *gw, float *gb, const float *go, const float *x,
                              const float *w, int N, int C, int H, int W, int Co, int kh, int kw, int Ho, int Wo,
                              int sh, int sw, int ph, int pw, int dh, int dw, int groups);
/* dst [N,C,H+pt+pb,W+pl+pr] = zero-padded src [N,C,H,W]; or (crop) dst [N,C,H,W] = the
 * interior of src */
sp_status spc_pad2d(int dev, float *dst, const float *src, int64_t NC, int64_t H, int64_t W, int pt, int pb, int pl,
                    int pr, int crop);

/* ---- norm.cu --------------------------------------------------------------------- */
sp_status spc_batchnorm_forward(int dev, float *out, float *save_mean, float *save_invstd, const float *x,
                                const float *gamma, const float *beta, float *mm, float *mv, int64_t N, int64_t C,
                                int64_t HW, int training, int update, double momentum, double eps);
sp_status spc_batchnorm_backward(int dev, float *gx, float *gg, float *gbeta, const float *go, const float *x,
                                 const float *gamma, const float *save_mean, const float *save_invstd, int64_t N,
                                 int64_t C, int64_t HW, int training);

/* ---- pool.cu ------------------------------------------------------------------------ */
sp_status spc_maxpool_forward(int dev, float *out, int32_t *argmax, const float *x, int64_t NC, int64_t H, int64_t W,
                              int64_t Ho, int64_t Wo, int kh, int kw, int sh, int sw, int pt, int pl);
sp_status spc_maxpool_backward(int dev, float *gx, const float *go, const int32_t *argmax, int64_t NC, int64_t HW,
                               int64_t HoWo);
sp_status spc_avgpool_forward(int dev, float *out, const float *x, int64_t NC, int64_t H, int64_t W, int64_t Ho,
                              int64_t Wo, int kh, int kw, int sh, int sw, int pt, int pl, int count_pad);
sp_status spc_avgpool_backward(int dev, float *gx, const float *go, int64_t NC, int64_t H, int64_t W, int64_t Ho,
                               int64_t Wo, int kh, int kw, int sh, int sw, int pt, int pl, int count_pad);
sp_status spc_global_avgpool_forward(int dev, float *out, const float *x, int64_t NC, int64_t HW);
sp_status spc_global_avgpool_backward(int dev, float *gx, const float *go, int64_t NC, int64_t HW);

/* ---- loss.cu -------------------------------------------------------------------------
 * labels: int32 [N] (sparse) when sparse, else float32 [N,C]; weight [C] or NULL. A sparse
 * label outside [0, C) that is not ignore_index is an error naming its row. */
sp_status spc_softmax_forward(int dev, float *out, const float *x, int64_t N, int64_t C);
sp_status spc_xent_forward(int dev, float *loss, float *row_weight, float *prob, const float *logits,
                           const void *labels, int sparse, const float *weight, int64_t N, int64_t C,
                           int64_t ignore_index, double a, double b);
sp_status spc_xent_backward(int dev, float *gx, const float *prob, const void *labels, int sparse,
                            const float *weight, const float *grad_loss, int64_t N, int64_t C, int64_t ignore_index,
                            double a, double b, double scale);

/* ---- optim.cu: in-place updates over flat float32 buffers ----------------------------- */
sp_status spc_momentum_update(int dev, float *p, float *m, const float *g, int64_t n, double lr, double momentum,
                              double wd, double loss_scale, int nesterov);
sp_status spc_sgd_update(int dev, float *p, float *acc, const float *g, int64_t n, double lr, double momentum,
                         double dampening, double wd, double loss_scale, int nesterov, int first);
sp_status spc_adam_update(int dev, float *p, float *m, float *v, const float *g, int64_t n, double lr, double beta1,
                          double beta2, double eps, double beta1_power, double beta2_power, double wd,
                          double loss_scale, int nesterov);
sp_status spc_adamw_update(int dev, float *p, float *m, float *v, const float *g, int64_t n, double lr, double beta1,
                           double beta2, double eps, double wd);

#ifdef __cplusplus
}
#endif
#endif
