// blas.cu — GEMM through cuBLAS (row-major arguments as cblas: the column-major call
// computes C^T = op(B)^T op(A)^T), and the Dense bias helpers. float32 GEMMs run in
// full float32 (cuBLAS's default math mode: no TF32), as the CPU's OpenBLAS does.
#include "cuda_internal.cuh"

#include <cublas_v2.h>
#include <limits.h>

namespace {

sp_status blas_handle(spc_ctx *c) {
    if (c->blas) return SP_OK;
    cublasHandle_t h = NULL;
    cublasStatus_t s = cublasCreate(&h);
    if (s == CUBLAS_STATUS_SUCCESS) s = cublasSetStream(h, c->stream);
    if (s != CUBLAS_STATUS_SUCCESS) {
        if (h) cublasDestroy(h);
        return sp_error(SP_EDEVICE, "cuda:%d: cuBLAS: cannot create a handle: %s", c->dev, cublasGetStatusString(s));
    }
    c->blas = h;
    return SP_OK;
}

__global__ void k_bias_rows(float *out, const float *b, int64_t N, int64_t O) {
    GRID_STRIDE(i, N * O) out[i] = b[i % O];
}

// one thread per column o: a double sum over the rows (as the CPU kernel)
__global__ void k_bias_grad(float *gb, const float *go, int64_t N, int64_t O) {
    GRID_STRIDE(o, O) {
        double s = 0;
        for (int64_t n = 0; n < N; n++) s += go[n * O + o];
        gb[o] += (float)s;
    }
}

} // namespace

extern "C" sp_status spc_gemm(int dev, int dtype, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                              double alpha, const void *A, int64_t lda, const void *B, int64_t ldb, double beta,
                              void *C, int64_t ldc) {
    CTX(c, dev);
    if (M > INT_MAX || N > INT_MAX || K > INT_MAX || lda > INT_MAX || ldb > INT_MAX || ldc > INT_MAX)
        return sp_error(SP_EINVAL, "cuda:%d: matmul: a dimension exceeds cuBLAS's 32-bit limit", dev);
    if (M == 0 || N == 0) return SP_OK;
    sp_status st = blas_handle(c);
    if (st) return st;
    cublasOperation_t ta = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, tb = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasStatus_t s;
    if (dtype == SP_FLOAT32) {
        float al = (float)alpha, be = (float)beta;
        s = cublasSgemm((cublasHandle_t)c->blas, tb, ta, (int)N, (int)M, (int)K, &al, (const float *)B, (int)ldb,
                        (const float *)A, (int)lda, &be, (float *)C, (int)ldc);
    } else if (dtype == SP_FLOAT64) {
        s = cublasDgemm((cublasHandle_t)c->blas, tb, ta, (int)N, (int)M, (int)K, &alpha, (const double *)B, (int)ldb,
                        (const double *)A, (int)lda, &beta, (double *)C, (int)ldc);
    } else {
        return sp_error(SP_EINVAL, "cuda:%d: matmul: dtype %s is not float32 or float64", dev, sp_dtype_name(dtype));
    }
    if (s != CUBLAS_STATUS_SUCCESS)
        return sp_error(SP_EDEVICE, "cuda:%d: cuBLAS gemm [%lld x %lld x %lld]: %s", dev, (long long)M, (long long)N,
                        (long long)K, cublasGetStatusString(s));
    return SP_OK;
}

extern "C" sp_status spc_bias_rows(int dev, float *out, const float *b, int64_t N, int64_t O) {
    CTX(c, dev);
    if (N * O == 0) return SP_OK;
    k_bias_rows<<<spc_blocks(N * O), 256, 0, c->stream>>>(out, b, N, O);
    LAUNCHED(c, "bias_rows");
    return SP_OK;
}

extern "C" sp_status spc_bias_grad_rows(int dev, float *gb, const float *go, int64_t N, int64_t O) {
    CTX(c, dev);
    if (O == 0) return SP_OK;
    k_bias_grad<<<spc_blocks(O), 256, 0, c->stream>>>(gb, go, N, O);
    LAUNCHED(c, "bias_grad");
    return SP_OK;
}
