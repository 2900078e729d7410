// norm.cu — BatchNorm2d over NCHW float32, as engine/cpu/norm.c: batch statistics in
// double (two passes: mean, then centred squares), MindSpore's momentum convention
// (moving = momentum*moving + (1-momentum)*batch) and the unbiased variance in the moving
// variance. One block per channel.
#include "cuda_internal.cuh"

namespace {

const int BN_THREADS = 1024;

__device__ double block_sum(double v, double *sh) {
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w >>= 1) {
        if ((int)threadIdx.x < w) sh[threadIdx.x] += sh[threadIdx.x + w];
        __syncthreads();
    }
    double r = sh[0];
    __syncthreads();
    return r;
}

// The elements of channel c, (n, i) for n < N, i < HW, visited by thread t at t, t+T, ...
// of the flat index j = n*HW + i, without a 64-bit division per element.
struct chan_iter {
    int64_t n, i, qn, qi, N, HW, base, cstride; // element (n, c, i) at n*cstride + base + i
    __device__ chan_iter(int64_t N_, int64_t C, int64_t HW_, int64_t c) : N(N_), HW(HW_) {
        int64_t t = threadIdx.x, step = blockDim.x;
        n = HW_ ? t / HW_ : N_;
        i = HW_ ? t % HW_ : 0;
        qn = HW_ ? step / HW_ : 0;
        qi = HW_ ? step % HW_ : 0;
        base = c * HW_;
        cstride = C * HW_;
    }
    __device__ bool ok() const { return n < N; }
    __device__ int64_t at() const { return n * cstride + base + i; }
    __device__ void next() {
        n += qn;
        i += qi;
        if (i >= HW) { i -= HW; n++; }
    }
};
#define FOR_CHANNEL(it, N, C, HW, c) for (chan_iter it(N, C, HW, c); it.ok(); it.next())

// per channel c: statistics (training) or the moving ones, then out = x*a + b
__global__ void __launch_bounds__(BN_THREADS) k_bn_forward(float *out, float *sm, float *si, const float *X, const float *G, const float *B, float *mm,
                             float *mv, int64_t N, int64_t C, int64_t HW, int training, int update, double momentum,
                             double eps) {
    __shared__ double sh[BN_THREADS];
    int64_t c = blockIdx.x, M = N * HW;
    double mean, var;
    if (training) {
        double s = 0;
        FOR_CHANNEL(it, N, C, HW, c) s += X[it.at()];
        mean = block_sum(s, sh) / (double)M;
        double q = 0;
        FOR_CHANNEL(it, N, C, HW, c) {
            double d = X[it.at()] - mean;
            q += d * d;
        }
        q = block_sum(q, sh);
        var = q / (double)M;
        if (update && threadIdx.x == 0) {
            double unb = M > 1 ? q / (double)(M - 1) : var;
            mm[c] = (float)(momentum * mm[c] + (1.0 - momentum) * mean);
            mv[c] = (float)(momentum * mv[c] + (1.0 - momentum) * unb);
        }
    } else {
        mean = mm[c];
        var = mv[c];
    }
    double inv = 1.0 / sqrt(var + eps);
    if (threadIdx.x == 0) { sm[c] = (float)mean; si[c] = (float)inv; }
    float a = (float)(G[c] * inv), b = (float)(B[c] - mean * inv * G[c]);
    FOR_CHANNEL(it, N, C, HW, c) {
        int64_t i = it.at();
        out[i] = X[i] * a + b;
    }
}

__global__ void __launch_bounds__(BN_THREADS) k_bn_backward(float *gx, float *gg, float *gbeta, const float *GO, const float *X, const float *G,
                              const float *sm, const float *si, int64_t N, int64_t C, int64_t HW, int training) {
    __shared__ double sh[BN_THREADS];
    int64_t c = blockIdx.x, M = N * HW;
    double mean = sm[c], inv = si[c], sg = 0, sgx = 0;
    FOR_CHANNEL(it, N, C, HW, c) {
        int64_t i = it.at();
        sg += GO[i];
        sgx += GO[i] * (X[i] - mean) * inv;
    }
    sg = block_sum(sg, sh);
    sgx = block_sum(sgx, sh);
    if (threadIdx.x == 0) {
        if (gg) gg[c] += (float)sgx;
        if (gbeta) gbeta[c] += (float)sg;
    }
    if (!gx) return;
    double k = G[c] * inv;
    if (training && M > 0) {
        double a = sg / (double)M, b = sgx / (double)M;
        FOR_CHANNEL(it, N, C, HW, c) {
            int64_t i = it.at();
            gx[i] = (float)(k * (GO[i] - a - (X[i] - mean) * inv * b));
        }
    } else {
        FOR_CHANNEL(it, N, C, HW, c) {
            int64_t i = it.at();
            gx[i] = (float)(k * GO[i]);
        }
    }
}

} // namespace

extern "C" sp_status spc_batchnorm_forward(int dev, float *out, float *save_mean, float *save_invstd, const float *x,
                                           const float *gamma, const float *beta, float *mm, float *mv, int64_t N,
                                           int64_t C, int64_t HW, int training, int update, double momentum,
                                           double eps) {
    CTX(c, dev);
    if (C == 0) return SP_OK;
    if (C > 2147483647LL) return sp_error(SP_EINVAL, "cuda:%d: batchnorm: too many channels", dev);
    k_bn_forward<<<(unsigned)C, BN_THREADS, 0, c->stream>>>(out, save_mean, save_invstd, x, gamma, beta, mm, mv, N, C,
                                                           HW, training, update, momentum, eps);
    LAUNCHED(c, "batchnorm_forward");
    return SP_OK;
}

extern "C" sp_status spc_batchnorm_backward(int dev, float *gx, float *gg, float *gbeta, const float *go, const float *x,
                                            const float *gamma, const float *save_mean, const float *save_invstd,
                                            int64_t N, int64_t C, int64_t HW, int training) {
    CTX(c, dev);
    if (C == 0) return SP_OK;
    if (C > 2147483647LL) return sp_error(SP_EINVAL, "cuda:%d: batchnorm: too many channels", dev);
    k_bn_backward<<<(unsigned)C, BN_THREADS, 0, c->stream>>>(gx, gg, gbeta, go, x, gamma, save_mean, save_invstd, N, C,
                                                            HW, training);
    LAUNCHED(c, "batchnorm_backward");
    return SP_OK;
}
