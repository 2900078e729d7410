// loss.cu — softmax and softmax cross-entropy with logits (sparse int32 or dense float32
// labels, optional class weights, label smoothing through a and b), as engine/cpu/loss.c:
// the log-sum-exp and the row sums in double. One warp per row.
#include "cuda_internal.cuh"

#include <math.h>

namespace {

__device__ __forceinline__ double warp_sum(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) {
        float w = __shfl_xor_sync(0xffffffffu, v, o);
        v = w > v ? w : v;
    }
    return v;
}

// p (optional) = softmax of row x; returns lse = max + log(sum exp(x - max)) (every lane)
__device__ double softmax_row(float *p, const float *x, int64_t C, int lane) {
    float m = -INFINITY;
    for (int64_t c = lane; c < C; c += 32) m = x[c] > m ? x[c] : m;
    m = warp_max(m);
    double s = 0;
    for (int64_t c = lane; c < C; c += 32) s += exp((double)x[c] - m);
    s = warp_sum(s);
    if (p)
        for (int64_t c = lane; c < C; c += 32) p[c] = (float)(exp((double)x[c] - m) / s);
    return m + log(s);
}

// the row target (engine/cpu/loss.c q_of)
__device__ __forceinline__ double q_of(int sparse, int32_t y, const float *Lrow, const float *W, int64_t c, double a,
                                       double b) {
    double w = W ? W[c] : 1.0;
    if (sparse) return (c == y ? a * (W ? W[y] : 1.0) : 0.0) + b * w;
    return (a * Lrow[c] + b) * w;
}

#define ROWS_LOOP(n, N)                                                                            \
    int lane = threadIdx.x % 32;                                                                   \
    int64_t nwarps_ = (int64_t)gridDim.x * blockDim.x / 32;                                        \
    for (int64_t n = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / 32; n < (N); n += nwarps_)

__global__ void k_softmax(float *P, const float *X, int64_t N, int64_t C) {
    ROWS_LOOP(n, N) softmax_row(P + n * C, X + n * C, C, lane);
}

__global__ void k_check_labels(const int32_t *L, int64_t N, int64_t C, int64_t ignore, unsigned long long *bad) {
    GRID_STRIDE(n, N) {
        if ((L[n] < 0 || L[n] >= C) && (int64_t)L[n] != ignore) atomicMin(bad, (unsigned long long)n);
    }
}

__global__ void k_xent_forward(float *loss, float *row_weight, float *P, const float *X, const void *labels, int sparse,
                               const float *W, int64_t N, int64_t C, int64_t ignore, double a, double b) {
    ROWS_LOOP(n, N) {
        double lse = softmax_row(P + n * C, X + n * C, C, lane);
        int32_t y = sparse ? ((const int32_t *)labels)[n] : 0;
        const float *Lrow = sparse ? NULL : (const float *)labels + n * C;
        double v = 0, rw = 1;
        if (sparse && (int64_t)y == ignore) {
            rw = 0;
        } else {
            if (sparse) rw = W ? W[y] : 1.0;
            for (int64_t c = lane; c < C; c += 32) {
                double q = q_of(sparse, y, Lrow, W, c, a, b);
                if (q != 0) v += q * (lse - (double)X[n * C + c]);
            }
            v = warp_sum(v);
        }
        if (lane == 0) {
            loss[n] = (float)v;
            if (row_weight) row_weight[n] = (float)rw;
        }
    }
}

__global__ void k_xent_backward(float *G, const float *P, const void *labels, int sparse, const float *W,
                                const float *grad_loss, int64_t N, int64_t C, int64_t ignore, double a, double b,
                                double scale) {
    ROWS_LOOP(n, N) {
        double k = scale * (grad_loss ? grad_loss[n] : 1.0);
        int32_t y = sparse ? ((const int32_t *)labels)[n] : 0;
        const float *Lrow = sparse ? NULL : (const float *)labels + n * C;
        if (sparse && (int64_t)y == ignore) {
            for (int64_t c = lane; c < C; c += 32) G[n * C + c] = 0;
            continue;
        }
        double Q = 0;
        for (int64_t c = lane; c < C; c += 32) Q += q_of(sparse, y, Lrow, W, c, a, b);
        Q = warp_sum(Q);
        for (int64_t c = lane; c < C; c += 32)
            G[n * C + c] = (float)(k * (P[n * C + c] * Q - q_of(sparse, y, Lrow, W, c, a, b)));
    }
}

unsigned rows_grid(int64_t N) { return spc_blocks(N * 32); }

// sparse labels must lie in [0, C) unless they equal ignore_index (one sync: the error
// names the row and the label, as on the CPU)
sp_status check_labels(spc_ctx *c, const char *op, const int32_t *L, int64_t N, int64_t C, int64_t ignore) {
    if (N == 0) return SP_OK;
    unsigned long long *bad = (unsigned long long *)spc_scratch(c, sizeof *bad);
    if (!bad) return SP_ENOMEM;
    unsigned long long hbad = 0;
    int32_t label = 0;
    cudaError_t e = cudaMemsetAsync(bad, 0xff, sizeof *bad, c->stream);
    if (e == cudaSuccess) {
        k_check_labels<<<spc_blocks(N), 256, 0, c->stream>>>(L, N, C, ignore, bad);
        e = cudaGetLastError();
    }
    if (e == cudaSuccess) e = cudaMemcpyAsync(&hbad, bad, sizeof hbad, cudaMemcpyDeviceToHost, c->stream);
    if (e == cudaSuccess) e = cudaStreamSynchronize(c->stream);
    if (e == cudaSuccess && hbad != ~0ULL) {
        e = cudaMemcpyAsync(&label, L + hbad, sizeof label, cudaMemcpyDeviceToHost, c->stream);
        if (e == cudaSuccess) e = cudaStreamSynchronize(c->stream);
    }
    spc_scratch_free(c, bad, sizeof *bad);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return sp_error(SP_EDEVICE, "cuda:%d: %s: label check: %s (%s)", c->dev, op, cudaGetErrorName(e),
                        cudaGetErrorString(e));
    }
    if (hbad != ~0ULL)
        return sp_error(SP_EINVAL, "%s: label %d at row %lld is out of range [0, %lld)", op, label, (long long)hbad,
                        (long long)C);
    return SP_OK;
}

} // namespace

extern "C" sp_status spc_softmax_forward(int dev, float *out, const float *x, int64_t N, int64_t C) {
    CTX(c, dev);
    if (N * C == 0) return SP_OK;
    k_softmax<<<rows_grid(N), 256, 0, c->stream>>>(out, x, N, C);
    LAUNCHED(c, "softmax_forward");
    return SP_OK;
}

extern "C" sp_status spc_xent_forward(int dev, float *loss, float *row_weight, float *prob, const float *logits,
                                      const void *labels, int sparse, const float *weight, int64_t N, int64_t C,
                                      int64_t ignore_index, double a, double b) {
    CTX(c, dev);
    if (sparse) {
        sp_status st = check_labels(c, "softmax_xent_forward", (const int32_t *)labels, N, C, ignore_index);
        if (st) return st;
    }
    if (N == 0) return SP_OK;
    k_xent_forward<<<rows_grid(N), 256, 0, c->stream>>>(loss, row_weight, prob, logits, labels, sparse, weight, N, C,
                                                        ignore_index, a, b);
    LAUNCHED(c, "softmax_xent_forward");
    return SP_OK;
}

extern "C" sp_status spc_xent_backward(int dev, float *gx, const float *prob, const void *labels, int sparse,
                                       const float *weight, const float *grad_loss, int64_t N, int64_t C,
                                       int64_t ignore_index, double a, double b, double scale) {
    CTX(c, dev);
    if (sparse) {
        sp_status st = check_labels(c, "softmax_xent_backward", (const int32_t *)labels, N, C, ignore_index);
        if (st) return st;
    }
    if (N == 0) return SP_OK;
    k_xent_backward<<<rows_grid(N), 256, 0, c->stream>>>(gx, prob, labels, sparse, weight, grad_loss, N, C,
                                                         ignore_index, a, b, scale);
    LAUNCHED(c, "softmax_xent_backward");
    return SP_OK;
}
