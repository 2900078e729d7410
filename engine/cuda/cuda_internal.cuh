// cuda_internal.cuh — shared by the .cu files only: the per-device context (stream,
// cuBLAS and cuDNN handles), status checks that turn every CUDA, cuBLAS and cuDNN error
// into an sp_status with a message, and launch helpers.
#ifndef SPORE_CUDA_INTERNAL_CUH
#define SPORE_CUDA_INTERNAL_CUH

#include "cuda_api.h"

#include <cuda_runtime.h>
#include <stdint.h>

extern "C" {
#include "core/error.h"
}

struct cublasContext;
struct cudnnContext;

// The device's context after spc_device_init (NULL with the error set when it cannot be
// used); makes dev the calling thread's current device.
struct spc_ctx {
    int dev;
    cudaStream_t stream;
    struct cublasContext *blas;   // cublasHandle_t, created on first use (blas.cu)
    struct cudnnContext *dnn;     // cudnnHandle_t, created on first use (conv.cu)
};
spc_ctx *spc_ctx_get(int dev);
// Scratch device memory for one call (from the caching allocator); freed with spc_scratch_free.
void *spc_scratch(spc_ctx *c, size_t n);
void spc_scratch_free(spc_ctx *c, void *p, size_t n);

// CK(c, call): on a CUDA runtime error, return SP_EDEVICE with "cuda:N: call: name (text)".
#define CK(c, call)                                                                                \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess) {                                                                   \
            (void)cudaGetLastError();                                                              \
            return sp_error(e_ == cudaErrorMemoryAllocation ? SP_ENOMEM : SP_EDEVICE,              \
                            "cuda:%d: %s: %s (%s)", (c)->dev, #call, cudaGetErrorName(e_),        \
                            cudaGetErrorString(e_));                                               \
        }                                                                                          \
    } while (0)

// LAUNCHED(c, what): the error of the kernel launch just made (bad configuration, no
// kernel image for this GPU), named.
#define LAUNCHED(c, what)                                                                          \
    do {                                                                                           \
        cudaError_t e_ = cudaGetLastError();                                                       \
        if (e_ != cudaSuccess)                                                                     \
            return sp_error(SP_EDEVICE, "cuda:%d: kernel %s: %s (%s)", (c)->dev, what,             \
                            cudaGetErrorName(e_), cudaGetErrorString(e_));                         \
    } while (0)

#define CTX(c, dev)                                                                                \
    spc_ctx *c = spc_ctx_get(dev);                                                                 \
    if (!c) return SP_EDEVICE

// Grid for n elements at 256 threads, grid-stride loops cover the rest.
static inline unsigned spc_blocks(int64_t n) {
    int64_t b = (n + 255) / 256;
    if (b < 1) b = 1;
    if (b > 65535LL * 32) b = 65535LL * 32;
    return (unsigned)b;
}
#define GRID_STRIDE(i, n)                                                                          \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);                      \
         i += (int64_t)blockDim.x * gridDim.x)

#endif
