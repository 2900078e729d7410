/*
 * spore.h — the whole public C API of the spore engine.
 *
 * Conventions (docs/ARCHITECTURE.md; installed as share/doc/spore/ARCHITECTURE.md):
 *  - Every fallible call returns sp_status (SP_OK = 0). On failure the message,
 *    naming the file / tensor / expectation, is in sp_last_error() (thread-local).
 *  - Handles are opaque. Read shape, dtype and data through accessors.
 *  - The engine never calls back into Lua, never aborts on user input.
 *
 * Ownership table
 *  | call                               | returns                         | release with          |
 *  |------------------------------------|---------------------------------|-----------------------|
 *  | sp_tensor_new / _empty / _from_data| owned handle, own storage       | sp_tensor_free        |
 *  | sp_tensor_view / _reshape /        | owned handle sharing (retaining)| sp_tensor_free        |
 *  |   _transpose / _select / _narrow / |   the source's storage          |                       |
 *  |   _alias                           |                                 |                       |
 *  | sp_tensor_contiguous               | owned handle (a view when the   | sp_tensor_free        |
 *  |                                    |   source is contiguous)         |                       |
 *  | sp_tensor_adopt                    | owned handle over caller memory;| sp_tensor_free (calls |
 *  |                                    |   release(ctx) when storage dies|   release once)       |
 *  | const sp_tensor * arguments        | borrowed                        | —                     |
 *  | sp_last_error()                    | borrowed thread-local string    | —                     |
 *
 * The FFI cdefs (bindings/ffi/cdef.lua) are generated from the text between the
 * @ffi-begin and @ffi-end markers: plain declarations only, no preprocessor lines.
 */
#ifndef SPORE_H
#define SPORE_H

#include <stddef.h>
#include <stdint.h>

/* sp_config_set_ckpt_cache's automatic cap (Lua: ckpt_cache_mb = "auto") */
#define SP_CKPT_CACHE_AUTO ((size_t)-1)

#ifdef __cplusplus
extern "C" {
#endif

/* libspore is built with -fvisibility=hidden: only the declarations below are exported. */
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

/* @ffi-begin */

/* ==== core: status, errors, memory ==================================== */

typedef int sp_status;
enum {
    SP_OK = 0,
    SP_EINVAL = 1,   /* bad argument: shape, dtype, index, option */
    SP_ENOMEM = 2,   /* allocation failed or size overflow */
    SP_EIO = 3,      /* file could not be opened / read / written */
    SP_EFORMAT = 4,  /* file content malformed or unsupported */
    SP_ECRC = 5,     /* checksum mismatch */
    SP_ECRYPTO = 6,  /* decryption / authentication failed */
    SP_EDEVICE = 7   /* device (CUDA) error or not built with CUDA */
};

/* Message of the last failed call on this thread ("" if none). Borrowed. */
const char *sp_last_error(void);
/* Replace the last error (used by bindings and hosts to report their own failures). */
void sp_set_error_message(const char *msg);
/* Engine version string, e.g. "0.1.0". */
const char *sp_version(void);

/* Live bytes the engine holds on every device (tensor storage, checkpoint reader blocks
 * and cache, kernel workspaces), the peak, and the number of live allocations. Any
 * pointer may be NULL. */
void sp_mem_stats(int64_t *live_bytes, int64_t *peak_bytes, int64_t *live_allocs);
int64_t sp_mem_live_bytes(void);
void sp_mem_reset_peak(void);
/* Net bytes the calling thread has allocated minus freed through the engine since it
 * started (may be negative when it frees what another thread allocated). A host running
 * one interpreter per thread charges each with the difference across its calls. */
int64_t sp_mem_thread_bytes(void);

/* ==== core: devices ===================================================== */
/* A device is a code: SP_DEVICE_CPU, SP_DEVICE_SIM (a simulated device whose memory host
 * code cannot address: it proves that callers move data only through explicit copies),
 * or SP_DEVICE_CUDA + index. Every storage belongs to one device; an op's tensors must
 * all be on one device. */
enum { SP_DEVICE_CPU = 0, SP_DEVICE_SIM = 256, SP_DEVICE_CUDA = 512 };
/* "cpu", "sim", "cuda", "cuda:N" -> code, or -1 with the error set. */
int sp_device_parse(const char *name);
/* "cpu", "sim", "cuda:0"... ("?" for an unknown code). Borrowed, static. */
const char *sp_device_name(int device);
/* 1 when tensors can be made on this device in this process (else 0, error set). */
int sp_device_available(int device);
/* The same counters for one device. */
sp_status sp_mem_stats_device(int device, int64_t *live_bytes, int64_t *peak_bytes, int64_t *live_allocs);

/* ==== core: dtypes ===================================================== */

typedef enum {
    SP_FLOAT32 = 0, SP_FLOAT16 = 1, SP_BFLOAT16 = 2, SP_FLOAT64 = 3,
    SP_INT8 = 4, SP_INT16 = 5, SP_INT32 = 6, SP_INT64 = 7,
    SP_UINT8 = 8, SP_UINT16 = 9, SP_UINT32 = 10, SP_UINT64 = 11,
    SP_BOOL = 12,
    SP_NUM_DTYPES = 13
} sp_dtype;

enum { SP_MAX_DIMS = 8 };

/* Size in bytes of one element (0 for an invalid dtype). */
size_t sp_dtype_size(int dtype);
/* Lower-case name: "float32", "bfloat16", "uint8", "bool"... ("?" if invalid). */
const char *sp_dtype_name(int dtype);
/* Parse a name (spore's lower-case names, numpy names, MindSpore's "Float32",
 * "UInt8"/"Uint8", "BFloat16"...). Returns the dtype or -1. */
int sp_dtype_from_name(const char *name);
int sp_dtype_is_float(int dtype);
/* The C element type LuaJIT's FFI uses for it ("float", "uint16_t" for float16/bfloat16,
 * "uint8_t" for bool...; NULL if invalid). Borrowed, static. */
const char *sp_dtype_ctype(int dtype);

/* Scalar conversions, round-to-nearest-even, NaN and Inf preserved. */
uint16_t sp_f32_to_f16(float x);
float sp_f16_to_f32(uint16_t h);
uint16_t sp_f32_to_bf16(float x);
float sp_bf16_to_f32(uint16_t h);
uint16_t sp_f64_to_f16(double x);
uint16_t sp_f64_to_bf16(double x);

/* ==== core: tensors ==================================================== */

typedef struct sp_tensor sp_tensor;

/* A release callback for adopted memory (a reader's buffer, a host's buffer). */
typedef void (*sp_release_fn)(void *ctx);

/* New contiguous tensor, zero-filled. ndim 0 makes a scalar. */
sp_status sp_tensor_new(sp_tensor **out, int dtype, int ndim, const int64_t *shape);
/* New contiguous tensor, contents undefined. */
sp_status sp_tensor_empty(sp_tensor **out, int dtype, int ndim, const int64_t *shape);
/* New tensor holding a copy of nbytes of data; nbytes must equal numel*itemsize. */
sp_status sp_tensor_from_data(sp_tensor **out, int dtype, int ndim, const int64_t *shape,
                              const void *data, size_t nbytes);
/* Tensor over caller-owned memory (not counted by sp_mem_stats); release(ctx) is
 * called once when the last handle on that storage is freed (release may be NULL). */
sp_status sp_tensor_adopt(sp_tensor **out, int dtype, int ndim, const int64_t *shape,
                          void *data, size_t nbytes, sp_release_fn release, void *ctx);
/* The same on a device (sp_tensor_new/_empty make them on SP_DEVICE_CPU). */
sp_status sp_tensor_new_on(sp_tensor **out, int dtype, int ndim, const int64_t *shape, int device);
sp_status sp_tensor_empty_on(sp_tensor **out, int dtype, int ndim, const int64_t *shape, int device);
/* Release a handle (NULL is a no-op). Storage is freed with its last handle. */
void sp_tensor_free(sp_tensor *t);
/* The device code of t's storage. */
int sp_tensor_device(const sp_tensor *t);
/* A contiguous copy of src on device (an alias when src is already there). */
sp_status sp_tensor_to_device(sp_tensor **out, const sp_tensor *src, int device);
/* Explicit copies between a tensor (any device, any strides) and host memory, in
 * row-major order, in t's dtype: nbytes must equal sp_tensor_nbytes(t). */
sp_status sp_tensor_read(const sp_tensor *t, void *dst, size_t nbytes);
sp_status sp_tensor_write(sp_tensor *t, const void *src, size_t nbytes);

int sp_tensor_dtype(const sp_tensor *t);
int sp_tensor_ndim(const sp_tensor *t);
int64_t sp_tensor_dim(const sp_tensor *t, int i);      /* i may be negative */
int64_t sp_tensor_stride(const sp_tensor *t, int i);   /* in elements */
int64_t sp_tensor_offset(const sp_tensor *t);          /* in elements */
int64_t sp_tensor_numel(const sp_tensor *t);
size_t sp_tensor_nbytes(const sp_tensor *t);           /* numel * itemsize */
int sp_tensor_is_contiguous(const sp_tensor *t);
/* 1 when t is 4-D [N,C,H,W] laid out channels-last (NHWC in memory: strides H*W*C, 1, W*C,
 * C), as PyTorch's torch.channels_last. Size-1 dims are not checked, so a tensor may be both
 * contiguous and channels-last. */
int sp_tensor_is_channels_last(const sp_tensor *t);
/* A new 4-D tensor of shape [N,C,H,W] (shape[4]) laid out channels-last, contents undefined.
 * The conv forwards (sp_conv2d_forward, sp_conv2d_bn_forward and their bf16 twins), max
 * pooling's forward and the global mean's forward take such operands (oneDNN's convolutions
 * read and write them in place; elsewhere the op runs on NCHW copies); conv2d's backward,
 * ReLU's backward and sp_binary take them as inputs (through NCHW copies). Every other op
 * refuses them ("must be contiguous"). */
sp_status sp_tensor_empty_channels_last_on(sp_tensor **out, int dtype, const int64_t *shape, int device);
/* Address of the first element (storage + offset) of a host tensor. NULL, with the
 * error set, for a tensor on a device host code cannot address (sim, cuda). */
void *sp_tensor_data(const sp_tensor *t);
/* Number of handles sharing this tensor's storage. */
int sp_tensor_storage_refcount(const sp_tensor *t);
/* 1 when a and b share storage. */
int sp_tensor_shares_storage(const sp_tensor *a, const sp_tensor *b);
/* Copy the shape into shape[SP_MAX_DIMS]; returns ndim. */
int sp_tensor_shape(const sp_tensor *t, int64_t *shape);

/* Revoke an adopted storage (sp_tensor_adopt): the memory goes back to its lender at once
 * and every handle sharing the storage (views, aliases) stays valid as a handle but fails
 * from then on: each op, copy or data access is an error saying the buffer was taken
 * back. The release callback still runs when the last handle is freed. For hosts that
 * lend a buffer for one call. Owned (engine-allocated) storage is refused. */
sp_status sp_tensor_revoke(sp_tensor *t);

/* Views (share storage). */
sp_status sp_tensor_alias(sp_tensor **out, const sp_tensor *src);
sp_status sp_tensor_view(sp_tensor **out, const sp_tensor *src, int ndim, const int64_t *shape,
                         const int64_t *strides, int64_t offset);
/* Reshape: a view when src is contiguous, else an error (call contiguous first).
 * One dim may be -1 (inferred). */
sp_status sp_tensor_reshape(sp_tensor **out, const sp_tensor *src, int ndim, const int64_t *shape);
sp_status sp_tensor_transpose(sp_tensor **out, const sp_tensor *src, int d0, int d1);
/* Drop dimension dim, keeping index (0-based). */
sp_status sp_tensor_select(sp_tensor **out, const sp_tensor *src, int dim, int64_t index);
/* Keep [start, start+length) along dim (0-based). */
sp_status sp_tensor_narrow(sp_tensor **out, const sp_tensor *src, int dim, int64_t start, int64_t length);
/* A contiguous tensor with src's values: a view if already contiguous, else a copy. */
sp_status sp_tensor_contiguous(sp_tensor **out, const sp_tensor *src);
/* A contiguous copy, converted to dtype. */
sp_status sp_tensor_clone(sp_tensor **out, const sp_tensor *src, int dtype);
/* Give t a new shape (contiguous strides), keeping its first min(old, new) elements in
 * row-major order; the others are undefined. In place when t is contiguous and its
 * storage holds the new size after t's offset; else t gets a new storage on its device.
 * An error when other handles (views) share t's storage. */
sp_status sp_tensor_resize(sp_tensor *t, int ndim, const int64_t *shape);

/* Copy src into dst element by element (same numel; shapes may differ only when
 * both are contiguous), converting dtypes, across devices too; overlapping memory is
 * copied as if through a temporary. Float->int truncates toward zero,
 * saturating; NaN->int gives 0; x->bool is x != 0. */
sp_status sp_tensor_copy(sp_tensor *dst, const sp_tensor *src);
/* Element access with 0-based indices (ndim of them). */
sp_status sp_tensor_get(const sp_tensor *t, const int64_t *index, double *value);
sp_status sp_tensor_set(sp_tensor *t, const int64_t *index, double value);
/* Exact 64-bit integer access (int64/uint64 beyond 2^53). */
sp_status sp_tensor_get_i64(const sp_tensor *t, const int64_t *index, int64_t *value);
/* All elements, in row-major order, into buf[numel] as doubles. */
sp_status sp_tensor_to_doubles(const sp_tensor *t, double *buf, int64_t n);
/* Set all elements from buf[numel] (row-major). */
sp_status sp_tensor_from_doubles(sp_tensor *t, const double *buf, int64_t n);

/* ==== core: fill and random ============================================ */

sp_status sp_fill(sp_tensor *t, double value);
/* t[i] = start + i*step for contiguous 1-D t. */
sp_status sp_arange(sp_tensor *t, double start, double step);
/* Seeded generators: *state is advanced (splitmix64-seeded xoshiro256**). */
sp_status sp_rand_uniform(sp_tensor *t, double lo, double hi, uint64_t *state);
sp_status sp_rand_normal(sp_tensor *t, double mean, double std, uint64_t *state);
/* Truncated normal in [mean-2std, mean+2std] (MindSpore's TruncatedNormal). */
sp_status sp_rand_trunc_normal(sp_tensor *t, double mean, double std, uint64_t *state);

/* ==== core: elementwise, reductions, matmul ============================ */

typedef enum { SP_OP_ADD = 0, SP_OP_SUB = 1, SP_OP_MUL = 2, SP_OP_DIV = 3,
               SP_OP_MAX = 4, SP_OP_MIN = 5, SP_OP_POW = 6,
               SP_OP_ADD_RELU = 7 /* max(a + b, 0): the residual join */ } sp_binop;
/* out = a OP b with numpy broadcasting; out must have the broadcast shape
 * (out may be a or b when shapes match). Integer division truncates; x/0 is an error. */
sp_status sp_binary(sp_tensor *out, const sp_tensor *a, const sp_tensor *b, int op);
/* out = a OP s (reverse != 0: out = s OP a). */
sp_status sp_binary_scalar(sp_tensor *out, const sp_tensor *a, double s, int op, int reverse);

typedef enum { SP_UN_NEG = 0, SP_UN_ABS = 1, SP_UN_EXP = 2, SP_UN_LOG = 3, SP_UN_SQRT = 4,
               SP_UN_TANH = 5, SP_UN_SIGMOID = 6, SP_UN_RELU = 7 } sp_unop;
sp_status sp_unary(sp_tensor *out, const sp_tensor *a, int op);

typedef enum { SP_RED_SUM = 0, SP_RED_MEAN = 1, SP_RED_MAX = 2, SP_RED_MIN = 3,
               SP_RED_ARGMAX = 4, SP_RED_ARGMIN = 5 } sp_redop;
/* Reduce every element into *value (argmax/argmin give the 0-based flat index;
 * the first extreme wins; NaN propagates for max/min). Empty tensors: sum 0,
 * others an error. */
sp_status sp_reduce_all(const sp_tensor *a, int op, double *value);
/* Reduce along dim (negative counts from the end). out has a's shape with dim
 * removed (keepdim=0) or set to 1 (keepdim=1); argmax/argmin write int64. */
sp_status sp_reduce_dim(sp_tensor *out, const sp_tensor *a, int op, int dim, int keepdim);

/* out[M,N] = op(a)[M,K] · op(b)[K,N] (+ beta*out). float32 or float64, 2-D.
 * Any strides; transposed views go to BLAS without a copy. */
sp_status sp_matmul(sp_tensor *out, const sp_tensor *a, const sp_tensor *b,
                    int trans_a, int trans_b, double alpha, double beta);

/* The k largest (largest != 0) or smallest elements along dim (0-based; negative counts
 * from the end), sorted: values[..., j, ...] is the j-th, indices (int64, 0-based
 * positions along dim) say where it was. Ties: the lower index first. NaN counts as
 * greater than every number. values (may be NULL) has a's dtype; both have a's shape
 * with dim of size k (0 <= k <= size). */
sp_status sp_topk(sp_tensor *values, sp_tensor *indices, const sp_tensor *a, int k, int dim, int largest);
/* *count = how many elements of a and b are equal, with numpy broadcasting (integers
 * compare exactly as int64, anything else as double; NaN equals nothing). */
sp_status sp_count_equal(const sp_tensor *a, const sp_tensor *b, int64_t *count);

/* ==== nn kernels (engine/cpu): conv, pool, norm, activations, losses, optimizers ==== */
/* (section owned by the networks work) */

/* All nn kernels take contiguous float32 tensors (labels: int32). Shapes are checked
 * once with a message naming the kernel. Parameter gradients accumulate (+=), input
 * gradients overwrite. Optional tensors may be NULL. */

/* Conv2d / Pool2d geometry, MindSpore's pad_mode rules, computed here once (Lua asks):
 *   SP_PAD_SAME : out = ceil(in/stride); total = max((out-1)*stride + (k-1)*dil + 1 - in, 0);
 *                 top/left = total/2, bottom/right = the rest (the odd pixel goes bottom/right)
 *   SP_PAD_VALID: no padding;  SP_PAD_PAD: pad = {top, bottom, left, right} as given
 * and out = (in + pad_lo + pad_hi - (k-1)*dil - 1)/stride + 1 (floor). out_h, out_w and
 * pads[4] (resolved {top, bottom, left, right}) receive the result. Errors: kernel, stride
 * or dilation < 1, a bad pad_mode, negative padding, and a (dilated) kernel larger than the
 * padded input. Pooling has dilation 1 and needs each pad in [0, kernel) for SP_PAD_PAD. */
enum { SP_PAD_SAME = 0, SP_PAD_VALID = 1, SP_PAD_PAD = 2 };
sp_status sp_conv2d_geometry(int64_t h, int64_t w, int kh, int kw, int stride_h, int stride_w, int dil_h, int dil_w,
                             int pad_mode, const int *pad, int64_t *out_h, int64_t *out_w, int *pads);
sp_status sp_pool2d_geometry(int64_t h, int64_t w, int kh, int kw, int stride_h, int stride_w, int pad_mode,
                             const int *pad, int64_t *out_h, int64_t *out_w, int *pads);

/* Conv2d, NCHW. out [N,Co,Ho,Wo] = conv(x [N,Ci,H,W], w [Co,Ci/groups,kh,kw]) + bias [Co].
 * Padding is explicit per side (the caller resolves pad_mode same/valid/pad). */
sp_status sp_conv2d_forward(sp_tensor *out, const sp_tensor *x, const sp_tensor *w, const sp_tensor *bias,
                            int stride_h, int stride_w, int pad_top, int pad_bottom, int pad_left, int pad_right,
                            int dil_h, int dil_w, int groups);
/* grad_x (overwritten), grad_w and grad_b (accumulated); any of the three may be NULL. */
sp_status sp_conv2d_backward(sp_tensor *grad_x, sp_tensor *grad_w, sp_tensor *grad_b, const sp_tensor *grad_out,
                             const sp_tensor *x, const sp_tensor *w,
                             int stride_h, int stride_w, int pad_top, int pad_bottom, int pad_left, int pad_right,
                             int dil_h, int dil_w, int groups);

/* Dense: out [N,O] = x [N,I] · w[O,I]^T + b [O]. */
sp_status sp_dense_forward(sp_tensor *out, const sp_tensor *x, const sp_tensor *w, const sp_tensor *bias);
sp_status sp_dense_backward(sp_tensor *grad_x, sp_tensor *grad_w, sp_tensor *grad_b, const sp_tensor *grad_out,
                            const sp_tensor *x, const sp_tensor *w);

/* The same four with bfloat16 compute (Model amp_level "O2"): tensors stay float32, every
 * matmul operand is rounded to bfloat16 (nearest even) and products accumulate in float32
 * (AMX tiles or vdpbf16ps where the CPU has them, see sp_cpu_bf16_kernel; a portable loop
 * with the same arithmetic elsewhere). A device without these kernels refuses them by name. */
sp_status sp_conv2d_forward_bf16(sp_tensor *out, const sp_tensor *x, const sp_tensor *w, const sp_tensor *bias,
                                 int stride_h, int stride_w, int pad_top, int pad_bottom, int pad_left, int pad_right,
                                 int dil_h, int dil_w, int groups);
sp_status sp_conv2d_backward_bf16(sp_tensor *grad_x, sp_tensor *grad_w, sp_tensor *grad_b, const sp_tensor *grad_out,
                                  const sp_tensor *x, const sp_tensor *w,
                                  int stride_h, int stride_w, int pad_top, int pad_bottom, int pad_left, int pad_right,
                                  int dil_h, int dil_w, int groups);
sp_status sp_dense_forward_bf16(sp_tensor *out, const sp_tensor *x, const sp_tensor *w, const sp_tensor *bias);
sp_status sp_dense_backward_bf16(sp_tensor *grad_x, sp_tensor *grad_w, sp_tensor *grad_b, const sp_tensor *grad_out,
                                 const sp_tensor *x, const sp_tensor *w);
/* 1 when this CPU has AVX512_BF16 (vdpbf16ps), else 0. */
int sp_cpu_has_bf16(void);
/* The bf16 GEMM's microkernel: 0 portable (plain C), 1 avx512 (AVX512_BF16 vdpbf16ps),
 * 2 amx (AMX-BF16 tiles). By default the fastest available; all give the same sums up to
 * their order. available: 1 when kernel k runs on this CPU and OS (AMX: the process is
 * granted the tile state, asked once). set: SP_EINVAL naming the kernel when it does not. */
int sp_cpu_bf16_kernel(void);
int sp_cpu_bf16_kernel_available(int k);
sp_status sp_cpu_bf16_set_kernel(int k);
/* Which implementation runs convolutions on the CPU: SP_CONV_SPORE (im2col + OpenBLAS SGEMM,
 * Winograd, direct AVX-512 kernels, spore's bf16 GEMM), SP_CONV_ONEDNN (oneDNN's AVX-512/AMX
 * kernels, Debian's libdnnl, built with make DNNL=1: every convolution's forward, eval
 * fusion, bf16 forward and both gradients; NCHW operands are reordered in and out on every
 * call, channels-last ones are read and written in place, except around the float32 3x3
 * stride-1 layers with 64 or more 4x4 output tiles, which run oneDNN's Winograd F(4x4, 3x3)
 * in blocked layouts) or SP_CONV_AUTO (the default:
 * oneDNN for the forwards and backwards with a channels-last operand, which spore.nn's
 * chains make, spore's kernels for the rest; measured the fastest on the 2-core reference machine,
 * README Benchmarks; spore's kernels only in a build without oneDNN). LeNet-sized float32
 * layers run spore's direct kernels under all three. set: SP_EINVAL naming the kernel when
 * this build or CPU lacks it. */
enum { SP_CONV_SPORE = 0, SP_CONV_ONEDNN = 1, SP_CONV_AUTO = 2 };
int sp_cpu_conv_kernel(void);
int sp_cpu_conv_kernel_available(int k);
sp_status sp_cpu_conv_set_kernel(int k);
/* BatchNorm2d over x [N,C,H,W]. training: batch statistics, and (update != 0) moving =
 * momentum*moving + (1-momentum)*batch (variance unbiased); eval: moving statistics.
 * save_mean/save_invstd [C] receive the statistics used, for the backward pass. */
sp_status sp_batchnorm_forward(sp_tensor *out, sp_tensor *save_mean, sp_tensor *save_invstd, const sp_tensor *x,
                               const sp_tensor *gamma, const sp_tensor *beta, sp_tensor *moving_mean,
                               sp_tensor *moving_var, int training, int update, double momentum, double eps);
sp_status sp_batchnorm_backward(sp_tensor *grad_x, sp_tensor *grad_gamma, sp_tensor *grad_beta,
                                const sp_tensor *grad_out, const sp_tensor *x, const sp_tensor *gamma,
                                const sp_tensor *save_mean, const sp_tensor *save_invstd, int training);
/* Inference fusion: out = [relu](BatchNorm_eval(conv2d(x, w) + bias) [+ residual]) in one
 * pass, BatchNorm with its moving statistics (gamma, beta, moving_mean, moving_var [Co],
 * eps), the arguments otherwise as sp_conv2d_forward; residual (optional) is [N,Co,Ho,Wo].
 * Equal to sp_conv2d_forward, sp_batchnorm_forward (eval), sp_binary ADD/ADD_RELU up to
 * float rounding. sp_conv2d_bn_fusable(x, bf16): 1 when x's device has this kernel (bf16 != 0:
 * the bfloat16 one below). */
sp_status sp_conv2d_bn_forward(sp_tensor *out, const sp_tensor *x, const sp_tensor *w, const sp_tensor *bias,
                               const sp_tensor *gamma, const sp_tensor *beta, const sp_tensor *moving_mean,
                               const sp_tensor *moving_var, double eps, const sp_tensor *residual, int relu,
                               int stride_h, int stride_w, int pad_top, int pad_bottom, int pad_left, int pad_right,
                               int dil_h, int dil_w, int groups);
/* The same with the convolution in bfloat16 (as sp_conv2d_forward_bf16; amp_level "O2"). x, out
 * and residual may also be bfloat16 tensors, 4-D channels-last (O2 inference's activations
 * between layers): x and residual are read as they are, out gets the float32 result (after
 * BatchNorm, the join and ReLU) rounded once to bfloat16, nearest even. On the cpu and sim;
 * a residual of another dtype must not overlap out. */
sp_status sp_conv2d_bn_forward_bf16(sp_tensor *out, const sp_tensor *x, const sp_tensor *w, const sp_tensor *bias,
                                    const sp_tensor *gamma, const sp_tensor *beta, const sp_tensor *moving_mean,
                                    const sp_tensor *moving_var, double eps, const sp_tensor *residual, int relu,
                                    int stride_h, int stride_w, int pad_top, int pad_bottom, int pad_left,
                                    int pad_right, int dil_h, int dil_w, int groups);
int sp_conv2d_bn_fusable(const sp_tensor *x, int bf16);
/* 1 when the conv forward of x's device reads and writes channels-last operands in place for
 * this layer (the CPU: oneDNN runs it, under conv_kernel auto or onednn, and it is not a
 * LeNet-sized layer that spore's direct kernels keep); 0 when channels-last operands would go
 * through NCHW copies, or the arguments are not a valid convolution. spore.nn.chain asks it
 * before making a layer's output channels-last. */
int sp_conv2d_channels_last_native(const sp_tensor *x, const sp_tensor *w, int stride_h, int stride_w, int pad_top,
                                   int pad_bottom, int pad_left, int pad_right, int dil_h, int dil_w, int groups);
/* Training fusion: BatchNorm (as sp_batchnorm_forward), then + residual (optional, [N,C,H,W])
 * and ReLU (relu != 0), in one pass; and BatchNorm's backward taking the gradient of a
 * following ReLU's output y (grad_out * (y > 0), as sp_relu_backward, then BatchNorm's
 * backward). Equal to the unfused ops bit for bit. sp_batchnorm_act_fusable: 1 when x's
 * device has both kernels. */
sp_status sp_batchnorm_act_forward(sp_tensor *out, sp_tensor *save_mean, sp_tensor *save_invstd, const sp_tensor *x,
                                   const sp_tensor *gamma, const sp_tensor *beta, sp_tensor *moving_mean,
                                   sp_tensor *moving_var, int training, int update, double momentum, double eps,
                                   const sp_tensor *residual, int relu);
sp_status sp_batchnorm_relu_backward(sp_tensor *grad_x, sp_tensor *grad_gamma, sp_tensor *grad_beta,
                                     const sp_tensor *grad_out, const sp_tensor *y, const sp_tensor *x,
                                     const sp_tensor *gamma, const sp_tensor *save_mean, const sp_tensor *save_invstd,
                                     int training);
int sp_batchnorm_act_fusable(const sp_tensor *x);

/* ReLU backward: grad_x = grad_out * (y > 0) with y the forward output (forward: sp_unary
 * SP_UN_RELU). */
sp_status sp_relu_backward(sp_tensor *grad_x, const sp_tensor *grad_out, const sp_tensor *y);
/* A residual join's two gradient parts through the ReLU before it: grad_x = (a + b) * (y > 0)
 * with y that ReLU's output, in one pass; bit for bit sp_binary SP_OP_ADD then
 * sp_relu_backward (what it does on devices without the fused kernel, and where the
 * operands' layouts differ). */
sp_status sp_add_relu_backward(sp_tensor *grad_x, const sp_tensor *a, const sp_tensor *b, const sp_tensor *y);
/* Dropout: mask[i] = 0 with probability p else 1/(1-p); out = x * mask. */
sp_status sp_dropout_forward(sp_tensor *out, sp_tensor *mask, const sp_tensor *x, double p, uint64_t *state);

/* Pooling over x [N,C,H,W] with explicit padding. Max: argmax [N,C,Ho,Wo] int32
 * (flat h*W+w index, -1 for an all-padding window) is kept for the backward. Avg:
 * the divisor counts only the window's in-bounds pixels (count_pad = 0) or all (1). Max's
 * forward also takes a bfloat16 x and out, both 4-D channels-last (O2 inference; cpu and sim):
 * the max of the same values, exact. */
sp_status sp_maxpool2d_forward(sp_tensor *out, sp_tensor *argmax, const sp_tensor *x, int kh, int kw,
                               int stride_h, int stride_w, int pad_top, int pad_bottom, int pad_left, int pad_right);
sp_status sp_maxpool2d_backward(sp_tensor *grad_x, const sp_tensor *grad_out, const sp_tensor *argmax);
sp_status sp_avgpool2d_forward(sp_tensor *out, const sp_tensor *x, int kh, int kw, int stride_h, int stride_w,
                               int pad_top, int pad_bottom, int pad_left, int pad_right, int count_pad);
sp_status sp_avgpool2d_backward(sp_tensor *grad_x, const sp_tensor *grad_out, int kh, int kw, int stride_h,
                                int stride_w, int pad_top, int pad_bottom, int pad_left, int pad_right, int count_pad);
/* Global mean over H, W: out [N,C] (or [N,C,1,1]) from x [N,C,H,W]. */
sp_status sp_global_avgpool_forward(sp_tensor *out, const sp_tensor *x);
sp_status sp_global_avgpool_backward(sp_tensor *grad_x, const sp_tensor *grad_out);

/* Row softmax of x [N,C]. */
sp_status sp_softmax_forward(sp_tensor *out, const sp_tensor *x);
/* Softmax cross-entropy: loss [N] = logsumexp(x) - sum(label*x); labels int32 [N]
 * (sparse) or float32 [N,C] (dense). prob [N,C] keeps the softmax for the backward. */
sp_status sp_softmax_xent_forward(sp_tensor *loss, sp_tensor *prob, const sp_tensor *logits, const sp_tensor *labels);
/* grad_x [N,C] = (prob - label) * scale[n] where scale = grad of each row's loss. */
sp_status sp_softmax_xent_backward(sp_tensor *grad_x, const sp_tensor *prob, const sp_tensor *labels,
                                   const sp_tensor *grad_loss, double scale);
/* Cross-entropy with logits, weighted and smoothed (MindSpore's CrossEntropyLoss, the zoo's
 * CrossEntropySmooth): each row n has a target q[n,c] and
 *   loss[n] = sum_c q[n,c] * (logsumexp(x[n]) - x[n,c])      (= -sum_c q log softmax(x))
 * sparse labels y (int32 [N], in [0,C) or == ignore_index): q = a*w[y]*[c == y] + b*w[c], and
 *   a row whose label is ignore_index has q = 0 and row_weight 0; otherwise row_weight = w[y];
 * dense labels L (float32 [N,C]): q = (a*L[n,c] + b)*w[c], row_weight = 1.
 * w = weight (float32 [C]) or 1 when weight is NULL. A label outside int32 never matches:
 * pass ignore_index = INT64_MIN to ignore nothing. row_weight (float32 [N]) may be NULL.
 * prob [N,C] keeps the softmax for the backward. Plain softmax cross-entropy is a=1, b=0. */
sp_status sp_cross_entropy_forward(sp_tensor *loss, sp_tensor *row_weight, sp_tensor *prob, const sp_tensor *logits,
                                   const sp_tensor *labels, const sp_tensor *weight, int64_t ignore_index, double a,
                                   double b);
/* grad_x [N,C] = (prob*Q - q) * grad_loss[n] * scale, Q = sum_c q (grad_loss NULL: 1). */
sp_status sp_cross_entropy_backward(sp_tensor *grad_x, const sp_tensor *prob, const sp_tensor *labels,
                                    const sp_tensor *weight, const sp_tensor *grad_loss, int64_t ignore_index, double a,
                                    double b, double scale);

/* Optimizer updates (in place on param and state), float32, same numel.
 * Momentum (ApplyMomentum): g' = g/loss_scale + wd*p; v = u*v + g'; p -= lr*v, or
 * Nesterov p -= lr*g' + lr*u*v. */
sp_status sp_momentum_update(sp_tensor *param, sp_tensor *moment, const sp_tensor *grad, double lr,
                             double momentum, double weight_decay, double loss_scale, int nesterov);
/* SGD (MindSpore): g' = g/loss_scale + wd*p; first step (stat != 0): accum = g', else
 * accum = u*accum + (1-dampening)*g'; p -= lr*(nesterov ? g' + u*accum : accum). */
sp_status sp_sgd_update(sp_tensor *param, sp_tensor *accum, const sp_tensor *grad, double lr, double momentum,
                        double dampening, double weight_decay, double loss_scale, int nesterov, int first);
/* Adam (MindSpore): g' = g/loss_scale + wd*p; m += (g'-m)(1-b1); v += (g'^2-v)(1-b2);
 * lr_t = lr*sqrt(1-b2^t)/(1-b1^t); p -= lr_t*m/(sqrt(v)+eps) (Nesterov:
 * lr_t*(m*b1 + (1-b1)*g')/(sqrt(v)+eps)). beta*_power are b^t for this step. */
sp_status sp_adam_update(sp_tensor *param, sp_tensor *m, sp_tensor *v, const sp_tensor *grad, double lr,
                         double beta1, double beta2, double eps, double beta1_power, double beta2_power,
                         double weight_decay, double loss_scale, int nesterov);
/* Adam with AMSGrad (MindSpore's ApplyAdamWithAmsgradV2 after decay and loss scale):
 * g' = g/loss_scale + wd*p; m = b1*m + (1-b1)*g'; v = b2*v + (1-b2)*g'^2; vhat = max(vhat, v);
 * p -= lr*sqrt(1-b2^t)/(1-b1^t) * m/(sqrt(vhat)+eps). */
sp_status sp_adam_amsgrad_update(sp_tensor *param, sp_tensor *m, sp_tensor *v, sp_tensor *vhat, const sp_tensor *grad,
                                 double lr, double beta1, double beta2, double eps, double beta1_power,
                                 double beta2_power, double weight_decay, double loss_scale);
/* AdamWeightDecay (MindSpore's fused AdamWeightDecay): m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2;
 * u = m/(eps + sqrt(v)) + wd*p; p -= lr*u. No bias correction; decay goes into the update,
 * not into the gradient. */
sp_status sp_adamw_update(sp_tensor *param, sp_tensor *m, sp_tensor *v, const sp_tensor *grad, double lr,
                          double beta1, double beta2, double eps, double weight_decay);
/* MindSpore's weight decay then gradient centralization (Centralization over axes 1..n-1):
 * with param, grad += weight_decay*param first; then, when rows > 0, grad seen as
 * [rows, numel/rows] has each row's mean subtracted (rows = 0: the decay only). */
sp_status sp_grad_centralize(sp_tensor *grad, const sp_tensor *param, double weight_decay, int64_t rows);



/* ==== checkpoint io (engine/io): .ckpt, safetensors, crc, encryption ==== */
/* (section owned by the checkpoint work) */

/* A checkpoint opened for reading: an ordered list of named entries. The user's file is
 * never mapped: it is read (pread) into engine memory, so a file truncated or rewritten
 * during or after a load cannot change a loaded tensor or raise a signal (a file that
 * changes while it is read is an error naming it; only regular files are opened). .ckpt
 * files are read record by record and parsed once (protobuf-c; each tensor's content is
 * copied once into its own storage); a safetensors file is read into one engine buffer
 * that its tensors share (refcounted), made on demand. */
typedef struct sp_ckpt sp_ckpt;
typedef struct sp_ckpt_writer sp_ckpt_writer;
enum { SP_CKPT_AUTO = 0, SP_CKPT_PROTO = 1, SP_CKPT_SAFETENSORS = 2 };
enum { SP_CKPT_CRC = 1 }; /* open: verify the CRC (error if absent); writer: write one */

/* Open path. format: SP_CKPT_AUTO detects it from the content. key/key_len and
 * dec_mode ("AES-GCM", "AES-CBC", "SM4-CBC"; NULL = AES-GCM) decrypt an encrypted
 * .ckpt (key NULL for plain files). A CRC trailer is always stripped. */
sp_status sp_ckpt_open(sp_ckpt **out, const char *path, int format, int flags,
                       const void *key, size_t key_len, const char *dec_mode);
/* The same over caller memory (not kept after the call: safetensors are copied);
 * name is used in messages. */
sp_status sp_ckpt_open_memory(sp_ckpt **out, const void *data, size_t nbytes, const char *name,
                              int format, int flags, const void *key, size_t key_len,
                              const char *dec_mode);
void sp_ckpt_close(sp_ckpt *c); /* NULL is a no-op; tensors handed out stay valid */
int64_t sp_ckpt_count(const sp_ckpt *c);
int sp_ckpt_format(const sp_ckpt *c);            /* SP_CKPT_PROTO or SP_CKPT_SAFETENSORS */
const char *sp_ckpt_name(const sp_ckpt *c, int64_t i);   /* borrowed */
/* Stored type string ("Float32", "F32", "str", "maptensor", or unknown text). */
const char *sp_ckpt_type(const sp_ckpt *c, int64_t i);
/* spore dtype, or -1 for str / maptensor / an unknown type (no tensor then). */
int sp_ckpt_dtype(const sp_ckpt *c, int64_t i);
int sp_ckpt_shape(const sp_ckpt *c, int64_t i, int64_t *shape); /* returns ndim */
size_t sp_ckpt_nbytes(const sp_ckpt *c, int64_t i);
/* Raw little-endian content (borrowed; valid until sp_ckpt_close). */
const void *sp_ckpt_bytes(const sp_ckpt *c, int64_t i);
/* An owned tensor for entry i (shares the checkpoint's storage). */
sp_status sp_ckpt_tensor(const sp_ckpt *c, int64_t i, sp_tensor **out);
/* 1 when the file had a crc_num trailer (*crc: its value); 2 if also verified. */
int sp_ckpt_crc(const sp_ckpt *c, uint32_t *crc);
/* Encryption mode of the file ("" when plain), safetensors metadata JSON ("" if none). */
const char *sp_ckpt_encryption(const sp_ckpt *c);
const char *sp_ckpt_metadata(const sp_ckpt *c);

/* Streaming, atomic writer. open takes an exclusive advisory lock (flock on ".<name>.lock"
 * next to path, removed when the save ends), waiting while another process saves the same
 * path; a second writer of the same path in this process is an error. It then removes temp
 * files of earlier saves of path whose process is gone, and writes a new unique
 * ".<name>.spore-<pid>-<random>.tmp" in path's folder (O_EXCL, O_NOFOLLOW: a planted file or
 * symlink is never written through). commit fsyncs it, renames it over path, fsyncs the
 * folder, and releases the lock; any failure or abort removes the temp file and closes every
 * descriptor, leaving the previous file at path as it was.
 * format SP_CKPT_PROTO (.ckpt: one message per value, sliced at 512 MiB, scalars as
 * dims [0]) or SP_CKPT_SAFETENSORS (keys sorted, metadata {"format":"ms"}).
 * flags SP_CKPT_CRC adds the CRC (ckpt trailer / safetensors crc_num).
 * key/enc_mode encrypt a .ckpt (AES-GCM, AES-CBC, SM4-CBC). */
sp_status sp_ckpt_writer_open(sp_ckpt_writer **out, const char *path, int format, int flags,
                              const void *key, size_t key_len, const char *enc_mode);
/* A name already added to w is refused (EINVAL naming it and the file). */
sp_status sp_ckpt_writer_add(sp_ckpt_writer *w, const char *name, const sp_tensor *t);
/* A raw entry: type is a MindSpore type string ("str": UTF-32LE content, dims [0]). */
sp_status sp_ckpt_writer_add_raw(sp_ckpt_writer *w, const char *name, const char *type, int ndim,
                                 const int64_t *shape, const void *data, size_t nbytes);
/* Slice size for .ckpt contents (default 512 MiB; for tests). */
void sp_ckpt_writer_set_slice(sp_ckpt_writer *w, size_t bytes);
/* Finish, fsync, rename over path; frees w (also on failure, removing the temp file).
 * A writer with no entries is refused: spore never writes an empty checkpoint. */
sp_status sp_ckpt_writer_commit(sp_ckpt_writer *w);
/* Drop everything written; the previous file at path is untouched. Frees w. */
void sp_ckpt_writer_abort(sp_ckpt_writer *w);
/* The .ckpt reader keeps freed content blocks (up to sp_config_ckpt_cache(), lazily freed: see
 * sp_config_set_ckpt_cache) to reuse on the next load: a load's packed contents (its arenas)
 * once all of them died, or those freed while others of their load live. This returns
 * them to the system and gives the bytes freed. */
size_t sp_ckpt_release_cache(void);
/* zlib CRC-32 of a buffer continuing from crc (0 to start). */
uint32_t sp_crc32(uint32_t crc, const void *data, size_t nbytes);
/* PyTorch .pth (torch.save's zip since 1.6, STORED entries): format code for
 * sp_ckpt_open/_open_memory (also detected by SP_CKPT_AUTO from the zip magic) and the
 * value sp_ckpt_format returns. Read only, through a restricted unpickler (state_dict
 * globals only). Every tensor is a contiguous copy of its (strided/offset) storage
 * slice; type strings are "torch.float32"...; a nested dict is flattened one level
 * ("state_dict.conv.weight"); Python int/float/bool give 0-d int64/float64/bool entries
 * (type "int"/"float"/"bool"); other values give entries of type "pickle:<kind>" with
 * dtype -1. */
enum { SP_CKPT_PTH = 3 };



/* ==== datasets (engine/io): idx, cifar, transforms ===================== */
/* (section owned by the datasets work) */

/* Decode an idx file (MNIST / Fashion-MNIST format), plain or gzip-compressed
 * (detected from content). Big-endian payloads (int16/int32/float32/float64) are
 * converted to host order. *out: an owned tensor with the file's dims and dtype
 * (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64).
 * Errors name the file and the expectation: magic, dims, truncated or trailing data. */
sp_status sp_idx_load(sp_tensor **out, const char *path);

/* Decode one CIFAR-10 (label_bytes 1) or CIFAR-100 (label_bytes 2: coarse, fine;
 * the fine label is kept) binary batch: records of label_bytes + 3*32*32 bytes
 * stored CHW. *images: owned uint8 [N,32,32,3] (HWC, as MindSpore decodes);
 * *labels: owned int32 [N]. The file size must be a whole number of records. */
sp_status sp_cifar_load(sp_tensor **images, sp_tensor **labels, const char *path, int label_bytes);

/* Shuffle idx[0..n) in place (Fisher-Yates) drawing from the seeded *state
 * (splitmix64 stream; *state is advanced). Reproducible for a given seed. */
sp_status sp_shuffle_indices(int64_t *idx, int64_t n, uint64_t *state);

/* dst[i, ...] = src[idx[i], ...] for i in [0, n): rows along dim 0, converting
 * dtype (float->int truncates). dst must have n rows and the same row size;
 * idx entries are checked against src's row count. */
sp_status sp_gather_rows(sp_tensor *dst, const sp_tensor *src, const int64_t *idx, int64_t n);

/* Per-image transform ops with MindSpore's semantics (mindspore.dataset.vision), run in
 * order by sp_image_batch / sp_image_transform / the loader. Each image carries a
 * working type: uint8 while it is a uint8 image (decoded, or a uint8 source) and only
 * geometric ops ran (Resize, crops, flips keep uint8 and round back to uint8, as
 * MindSpore's ops on uint8 images do), float32 after Rescale / Normalize (or a float32
 * source), or TypeCast's dtype. Layout HWC until HWC2CHW (which must come after every
 * geometric op and Normalize). */
typedef enum {
    SP_IMG_RESIZE = 0,        /* to (h, w), or (resize_short) shorter side = h keeping the aspect
                                 ratio as MindSpore's Resize(int): the other side is
                                 floor((float)h / short * long). interp: SP_INTERP_* (OpenCV's
                                 INTER_LINEAR: half-pixel centres, edge clamp, uint8 in 11-bit
                                 fixed point; float32 in float) */
    SP_IMG_RESCALE = 1,       /* x = x*a + b (float32) */
    SP_IMG_NORMALIZE = 2,     /* x[c] = (x[c] - mean[c]) / std[c], up to 4 channels (float32) */
    SP_IMG_HWC2CHW = 3,       /* output layout CHW */
    SP_IMG_RANDOM_CROP = 4,   /* pad (padding[4] = left, top, right, bottom, or `pad` on every side
                                 when padding is all 0) with pad_mode / fill, then, when
                                 pad_if_needed, pad up to (h, w) symmetrically, then crop (h, w) at
                                 a random offset */
    SP_IMG_RANDOM_HFLIP = 5,  /* flip left-right with probability a */
    SP_IMG_CENTER_CROP = 6,   /* crop (h, w) at the centre (offsets floor((H-h)/2), floor((W-w)/2));
                                 a side larger than the image is zero-padded first as MindSpore
                                 (top/left get the odd pixel) */
    SP_IMG_RANDOM_RESIZED_CROP = 7, /* MindSpore/torchvision: target area uniform in scale[0..1]
                                 of the image, aspect ratio r log-uniform in ratio[0..1], crop
                                 w = round(sqrt(area*r)), h = round(sqrt(area/r)) (torchvision's
                                 rounding), accepted when it fits, at a uniform offset;
                                 max_attempts tries (10 when 0), then the centre fallback (ratio
                                 clamped); then resize to (h, w) with interp */
    SP_IMG_TYPECAST = 8,      /* convert to dtype (float->int truncates, saturating) */
    SP_IMG_RANDOM_VFLIP = 9   /* flip top-bottom with probability a */
} sp_img_kind;

enum { SP_INTERP_LINEAR = 0, SP_INTERP_NEAREST = 1 };
enum { SP_BORDER_CONSTANT = 0, SP_BORDER_EDGE = 1, SP_BORDER_REFLECT = 2, SP_BORDER_SYMMETRIC = 3 };

typedef struct sp_img_op {
    int kind;
    int h, w, pad;
    double a, b;
    float mean[4];
    float std[4];
    int padding[4];        /* RandomCrop: left, top, right, bottom */
    int pad_mode;          /* RandomCrop: SP_BORDER_* */
    int pad_if_needed;     /* RandomCrop */
    float fill[4];         /* RandomCrop constant padding, per channel */
    double scale[2];       /* RandomResizedCrop */
    double ratio[2];       /* RandomResizedCrop */
    int max_attempts;      /* RandomResizedCrop (0: 10) */
    int interp;            /* Resize, RandomResizedCrop: SP_INTERP_* */
    int resize_short;      /* Resize: 1 = shorter side to h */
    int dtype;             /* TypeCast: target sp_dtype */
} sp_img_op;

/* Batch transform: for i in [0, n), take image src[idx[i]] (src: uint8 or float32,
 * contiguous [N,H,W,C], or [N,H,W] for one channel), run ops[0..nops) and write the
 * result into out[i] (any dtype, converted; contiguous; shape [n,C,H',W'] after an
 * SP_IMG_HWC2CHW op, else [n,H',W',C]). Random ops draw from a per-image seed taken
 * from *rng (advanced once per image, so results do not depend on the thread count). */
sp_status sp_image_batch(sp_tensor *out, const sp_tensor *src, const int64_t *idx, int64_t n,
                         const sp_img_op *ops, int nops, uint64_t *rng);
/* The output shape of that pipeline for one image of (h, w, c): writes
 * shape[3] (CHW or HWC as the ops say). */
sp_status sp_image_out_shape(int h, int w, int c, const sp_img_op *ops, int nops, int64_t *shape);
/* The same and the dtype the pipeline produces from a src_dtype (uint8/float32) image. */
sp_status sp_image_out_info(int h, int w, int c, int src_dtype, const sp_img_op *ops, int nops,
                            int64_t *shape, int *dtype);
/* One image: img uint8 or float32 [H,W,C] or [H,W] in host memory (a strided view is
 * copied first) ->
 * *out, an owned tensor of the pipeline's shape and dtype (sp_image_out_info). Random
 * ops draw from seed (see sp_image_seed). */
sp_status sp_image_transform(sp_tensor **out, const sp_tensor *img, const sp_img_op *ops, int nops,
                             uint64_t seed);
/* The per-image seed the loader uses: a mix of (seed, epoch, index). */
uint64_t sp_image_seed(uint64_t seed, int64_t epoch, int64_t index);

/* ==== images (engine/io/image.c): JPEG (libjpeg-turbo), PNG (libpng) ==== */
/* Decoded pixels equal PIL's (Image.open(f).convert("RGB"/"L")): JPEG with libjpeg's
 * JDCT_ISLOW IDCT and fancy upsampling, EXIF orientation applied (as
 * PIL.ImageOps.exif_transpose); PNG of any bit depth / colour type: 16-bit samples keep
 * their high byte, palettes are expanded, alpha (and tRNS) is dropped (no compositing,
 * as convert("RGB")); 16-bit grayscale as PIL's "I;16" -> "L" (clipped to 255).
 * channels: 0 as stored (1 for grayscale / gray+alpha, else 3), 1 gray (colour converted
 * with PIL's L = (19595 R + 38470 G + 7471 B + 0x8000) >> 16), 3 RGB (gray replicated).
 * *out: owned uint8 [H, W, C]. Errors (one line, naming the file): unreadable, empty,
 * not a JPEG/PNG (magic), truncated, corrupt, CMYK JPEG, more pixels than
 * sp_config_image_max_pixels() (checked from the header, before any pixel allocation). */
sp_status sp_image_decode(sp_tensor **out, const char *path, int channels);
/* The same over caller memory; name is used in messages. */
sp_status sp_image_decode_mem(sp_tensor **out, const void *data, size_t nbytes, const char *name, int channels);
/* Header only: height, width (after EXIF orientation) and stored channels (1 or 3). */
sp_status sp_image_probe(const char *path, int *h, int *w, int *c);
/* Pixel-count limit for decoding (default 178956970, PIL's MAX_IMAGE_PIXELS * 2);
 * values < 1 restore the default. */
void sp_config_set_image_max_pixels(int64_t n);
int64_t sp_config_image_max_pixels(void);

/* ==== npy (engine/io/npy.c): NumPy .npy v1.0 / 2.0 / 3.0 ================ */
/* Load: dtypes <f4 <f8 <f2 |i1 <i2 <i4 <i8 |u1 <u2 <u4 <u8 |b1 (big-endian '>' ones are
 * byte-swapped), C order (fortran_order True is refused by name), any ndim up to
 * SP_MAX_DIMS (0-d too). The header dict is parsed strictly (exactly the keys descr,
 * fortran_order, shape); the payload size must match the shape. Errors name the file. */
sp_status sp_npy_load(sp_tensor **out, const char *path);
sp_status sp_npy_load_mem(sp_tensor **out, const void *data, size_t nbytes, const char *name);
/* Save t (any dtype but bfloat16, any device/strides: written as a C-order copy) as a
 * version 1.0 file (2.0 when the header needs it), atomically: a temp file in path's
 * folder renamed over path, so a failure leaves the previous file as it was. */
sp_status sp_npy_save(const char *path, const sp_tensor *t);

/* ==== image loader (engine/io/loader.c): decode + transform on threads ==== */
/* Files + labels -> batches, in the order given for each epoch. Worker threads
 * (pthreads) decode and transform image positions ahead of the consumer, at most
 * prefetch batches ahead (bounded memory); batches come out in order and are the same
 * for a given seed whatever the thread count (image i's random ops draw from
 * sp_image_seed(seed, epoch, i), i = its index in paths). */
typedef struct sp_loader sp_loader;
typedef struct sp_loader_config {
    int batch_size;      /* >= 1 */
    int threads;         /* worker threads, >= 1 */
    int prefetch;        /* batches decoded ahead (>= 1; 0: 2) */
    int channels;        /* decode: 0 as stored, 1, 3 */
    int skip_bad;        /* 1: skip undecodable images (counted), 0: the error names the file */
    int drop_remainder;  /* 1: drop a last short batch */
    int out_dtype;       /* batch dtype (-1: what the pipeline produces) */
    uint64_t seed;
} sp_loader_config;

/* paths[n] (copied), labels[n] int32 (copied; NULL: all 0), ops (copied). */
sp_status sp_loader_new(sp_loader **out, const char *const *paths, const int32_t *labels, int64_t n,
                        const sp_img_op *ops, int nops, const sp_loader_config *cfg);
/* Start epoch `epoch` over order[0..count) (indices into paths; NULL: 0..n-1); work
 * still queued from the previous epoch is dropped. */
sp_status sp_loader_start(sp_loader *l, const int64_t *order, int64_t count, int64_t epoch);
/* The next batch: *images [B, ...] and *labels int32 [B], owned; both NULL at the end of
 * the epoch. A bad image without skip_bad: an error naming the file, and the epoch ends. */
sp_status sp_loader_next(sp_loader *l, sp_tensor **images, sp_tensor **labels);
/* Images skipped (skip_bad) since sp_loader_new, and the last skip's message (borrowed,
 * "" if none; valid until the next call on l). */
int64_t sp_loader_skipped(const sp_loader *l);
const char *sp_loader_last_skip(const sp_loader *l);
/* Stops and joins the workers; NULL is a no-op. */
void sp_loader_free(sp_loader *l);



/* ==== configuration ===================================================== */
/* Process-wide settings, set explicitly: the engine reads no environment variables
 * (lua/spore reads SPORE_NN_OMP, SPORE_CKPT_CACHE_MB and SPORE_NO_THP at require time and
 * calls these; a C host calls them itself). Safe to call at any time from any thread. */

/* nn kernels (conv, pool, norm...): OpenMP regions over large work (on != 0) or serial
 * (0, the default: with the pthread OpenBLAS, libgomp's spinning workers steal BLAS's CPU). */
void sp_config_set_nn_omp(int on);
int sp_config_nn_omp(void);
/* Cap on the .ckpt reader's cache of freed content blocks, in bytes; 0 disables it (a
 * content freed while others of its load live then returns its whole pages at once).
 * SP_CKPT_CACHE_AUTO (the default) makes it the most bytes of content blocks this process
 * has had at once, at least 256 MiB and at most half the machine's memory, so that loading
 * a checkpoint again (of any size) reuses the pages of the last one. Cached blocks' whole
 * huge pages are lazily freed (MADV_FREE): the kernel may take them back when it needs memory, and
 * they stay counted in sp_mem_stats until sp_ckpt_release_cache. Lowering the cap returns
 * cached blocks beyond it to the system. sp_config_ckpt_cache() gives the cap in force
 * (automatic or not), sp_config_ckpt_cache_auto() whether it is automatic. */
void sp_config_set_ckpt_cache(size_t bytes);
size_t sp_config_ckpt_cache(void);
int sp_config_ckpt_cache_auto(void);
/* .ckpt reader: advise transparent huge pages on the mappings that hold contents (a
 * load's arena, big blocks; on != 0, the default; measured ~4x faster loads of a 200 MB
 * file than 4 KiB faults) or not (0). */
void sp_config_set_ckpt_thp(int on);
int sp_config_ckpt_thp(void);
/* The kernel set OpenBLAS chose when it loaded (openblas_get_corename: "SkylakeX",
 * "Cooperlake", "Haswell", "Prescott"...). Fixed at load time by OpenBLAS's CPU detection
 * or OPENBLAS_CORETYPE (bindings/ffi/lib.lua names one on AVX-512 machines). Borrowed. */
const char *sp_blas_core(void);
/* OpenBLAS's threading ("pthread": make BLAS=pthread, the default; "openmp": make
 * BLAS=openmp, with the nn kernels' OpenMP regions on by default, sp_config_nn_omp). */
const char *sp_blas_threading(void);
/* How long OpenBLAS's idle pthread workers spin (sched_yield) before they sleep, after it
 * loads and after every threaded call: 2^N TSC cycles, N as OpenBLAS read it from
 * OPENBLAS_THREAD_TIMEOUT when it loaded (clamped to 4..30; 28, OpenBLAS's default, when
 * unset). bindings/ffi/lib.lua sets 22 unless the user set it. -1 when OpenBLAS is not its
 * pthread build (no such workers). */
int sp_blas_thread_timeout(void);

/* ==== device ============================================================ */

/* Number of CUDA devices (0 when built without CUDA or none present). */
int sp_cuda_device_count(void);

/* ==== interrupt (the REPL's Ctrl-C) ====================================== */

/* SIGINT as a flag, for an interactive loop (lua/spore/repl.lua polls it from a Lua count
 * hook; no code runs in signal context but a store). sp_sigint_catch(1) installs a handler
 * (SA_RESTART: blocking reads in the engine carry on) that only sets the flag;
 * sp_sigint_catch(0) puts the previous disposition back. sp_sigint_take() returns 1 when
 * SIGINT arrived since the last take (and clears it), else 0. Returns of catch: 0, or -1
 * when sigaction fails. Process-wide; a C host that handles SIGINT itself need not call it. */
int sp_sigint_catch(int on);
int sp_sigint_take(void);

/* @ffi-end */

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif
#endif /* SPORE_H */
