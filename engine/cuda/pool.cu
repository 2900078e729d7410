// pool.cu — MaxPool2d (with the argmax the backward pass scatters through), AvgPool2d
// and the global mean over H,W; NCHW float32, as engine/cpu/pool.c (argmax = h*W+w of the
// first maximum; a NaN in the window gives NaN; the average's divisor is the in-bounds
// count, or kh*kw with count_pad).
#include "cuda_internal.cuh"

#include <math.h>

namespace {

__global__ void k_maxpool(float *O, int32_t *A, const float *X, int64_t NC, int64_t H, int64_t W, int64_t Ho,
                          int64_t Wo, int kh, int kw, int sh, int sw, int pt, int pl) {
    GRID_STRIDE(i, NC * Ho * Wo) {
        int64_t ow = i % Wo, oh = (i / Wo) % Ho, nc = i / (Wo * Ho);
        const float *xp = X + nc * H * W;
        int64_t h0 = oh * sh - pt, h1 = h0 + kh, w0 = ow * sw - pl, w1 = w0 + kw;
        if (h0 < 0) h0 = 0;
        if (h1 > H) h1 = H;
        if (w0 < 0) w0 = 0;
        if (w1 > W) w1 = W;
        float best = -INFINITY;
        int32_t bi = (h0 < h1 && w0 < w1) ? (int32_t)(h0 * W + w0) : -1;
        bool nan = false;
        for (int64_t ih = h0; ih < h1; ih++)
            for (int64_t iw = w0; iw < w1; iw++) {
                float v = xp[ih * W + iw];
                if (v > best) bi = (int32_t)(ih * W + iw);
                nan |= v != v;
                best = best > v ? best : v; // as the CPU's maxss: a NaN is replaced by the next value
            }
        O[i] = bi < 0 ? 0.0f : nan ? NAN : best;
        A[i] = bi;
    }
}

__global__ void k_maxpool_back(float *G, const float *GO, const int32_t *A, int64_t NC, int64_t HW, int64_t HoWo) {
    GRID_STRIDE(i, NC * HoWo) {
        int32_t a = A[i];
        if (a >= 0 && a < HW) atomicAdd(G + (i / HoWo) * HW + a, GO[i]);
    }
}

__device__ __forceinline__ int64_t avg_count(int64_t oh, int64_t ow, int kh, int kw, int sh, int sw, int pt, int pl,
                                             int64_t H, int64_t W, int count_pad) {
    if (count_pad) return (int64_t)kh * kw;
    int64_t h0 = oh * sh - pt, w0 = ow * sw - pl, h1 = h0 + kh, w1 = w0 + kw;
    if (h0 < 0) h0 = 0;
    if (w0 < 0) w0 = 0;
    if (h1 > H) h1 = H;
    if (w1 > W) w1 = W;
    int64_t c = (h1 - h0) * (w1 - w0);
    return c > 0 ? c : 1;
}

__global__ void k_avgpool(float *O, const float *X, int64_t NC, int64_t H, int64_t W, int64_t Ho, int64_t Wo, int kh,
                          int kw, int sh, int sw, int pt, int pl, int count_pad) {
    GRID_STRIDE(i, NC * Ho * Wo) {
        int64_t ow = i % Wo, oh = (i / Wo) % Ho, nc = i / (Wo * Ho);
        const float *xp = X + nc * H * W;
        double s = 0;
        for (int a = 0; a < kh; a++) {
            int64_t ih = oh * sh - pt + a;
            if (ih < 0 || ih >= H) continue;
            for (int b = 0; b < kw; b++) {
                int64_t iw = ow * sw - pl + b;
                if (iw >= 0 && iw < W) s += xp[ih * W + iw];
            }
        }
        O[i] = (float)(s / (double)avg_count(oh, ow, kh, kw, sh, sw, pt, pl, H, W, count_pad));
    }
}

// gather: every output window that covers input (ih, iw)
__global__ void k_avgpool_back(float *G, const float *GO, int64_t NC, int64_t H, int64_t W, int64_t Ho, int64_t Wo,
                               int kh, int kw, int sh, int sw, int pt, int pl, int count_pad) {
    GRID_STRIDE(i, NC * H * W) {
        int64_t iw = i % W, ih = (i / W) % H, nc = i / (W * H);
        // oh*sh - pt <= ih < oh*sh - pt + kh
        int64_t oh_lo = ih + pt - kh + 1 <= 0 ? 0 : (ih + pt - kh + 1 + sh - 1) / sh;
        int64_t oh_hi = (ih + pt) / sh;
        int64_t ow_lo = iw + pl - kw + 1 <= 0 ? 0 : (iw + pl - kw + 1 + sw - 1) / sw;
        int64_t ow_hi = (iw + pl) / sw;
        if (oh_hi > Ho - 1) oh_hi = Ho - 1;
        if (ow_hi > Wo - 1) ow_hi = Wo - 1;
        float s = 0.0f;
        for (int64_t oh = oh_lo; oh <= oh_hi; oh++)
            for (int64_t ow = ow_lo; ow <= ow_hi; ow++)
                s += GO[(nc * Ho + oh) * Wo + ow] / (float)avg_count(oh, ow, kh, kw, sh, sw, pt, pl, H, W, count_pad);
        G[i] = s;
    }
}

// one warp per (n, c) plane: a double sum over H*W
__global__ void k_gap(float *O, const float *X, int64_t NC, int64_t HW) {
    int64_t nwarps = (int64_t)gridDim.x * blockDim.x / 32;
    int lane = threadIdx.x % 32;
    for (int64_t p = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / 32; p < NC; p += nwarps) {
        double s = 0;
        for (int64_t j = lane; j < HW; j += 32) s += X[p * HW + j];
        for (int o = 16; o > 0; o >>= 1) s += __shfl_down_sync(0xffffffffu, s, o);
        if (lane == 0) O[p] = HW ? (float)(s / (double)HW) : 0.0f;
    }
}

__global__ void k_gap_back(float *G, const float *GO, int64_t NC, int64_t HW) {
    GRID_STRIDE(i, NC * HW) G[i] = GO[i / HW] / (float)HW;
}

} // namespace

extern "C" sp_status spc_maxpool_forward(int dev, float *out, int32_t *argmax, const float *x, int64_t NC, int64_t H,
                                         int64_t W, int64_t Ho, int64_t Wo, int kh, int kw, int sh, int sw, int pt,
                                         int pl) {
    CTX(c, dev);
    int64_t n = NC * Ho * Wo;
    if (n == 0) return SP_OK;
    k_maxpool<<<spc_blocks(n), 256, 0, c->stream>>>(out, argmax, x, NC, H, W, Ho, Wo, kh, kw, sh, sw, pt, pl);
    LAUNCHED(c, "maxpool2d_forward");
    return SP_OK;
}

extern "C" sp_status spc_maxpool_backward(int dev, float *gx, const float *go, const int32_t *argmax, int64_t NC,
                                          int64_t HW, int64_t HoWo) {
    CTX(c, dev);
    if (NC * HW == 0) return SP_OK;
    CK(c, cudaMemsetAsync(gx, 0, sizeof(float) * (size_t)(NC * HW), c->stream));
    if (NC * HoWo == 0) return SP_OK;
    k_maxpool_back<<<spc_blocks(NC * HoWo), 256, 0, c->stream>>>(gx, go, argmax, NC, HW, HoWo);
    LAUNCHED(c, "maxpool2d_backward");
    return SP_OK;
}

extern "C" sp_status spc_avgpool_forward(int dev, float *out, const float *x, int64_t NC, int64_t H, int64_t W,
                                         int64_t Ho, int64_t Wo, int kh, int kw, int sh, int sw, int pt, int pl,
                                         int count_pad) {
    CTX(c, dev);
    int64_t n = NC * Ho * Wo;
    if (n == 0) return SP_OK;
    k_avgpool<<<spc_blocks(n), 256, 0, c->stream>>>(out, x, NC, H, W, Ho, Wo, kh, kw, sh, sw, pt, pl, count_pad);
    LAUNCHED(c, "avgpool2d_forward");
    return SP_OK;
}

extern "C" sp_status spc_avgpool_backward(int dev, float *gx, const float *go, int64_t NC, int64_t H, int64_t W,
                                          int64_t Ho, int64_t Wo, int kh, int kw, int sh, int sw, int pt, int pl,
                                          int count_pad) {
    CTX(c, dev);
    int64_t n = NC * H * W;
    if (n == 0) return SP_OK;
    if (Ho <= 0 || Wo <= 0) {
        CK(c, cudaMemsetAsync(gx, 0, sizeof(float) * (size_t)n, c->stream));
        return SP_OK;
    }
    k_avgpool_back<<<spc_blocks(n), 256, 0, c->stream>>>(gx, go, NC, H, W, Ho, Wo, kh, kw, sh, sw, pt, pl, count_pad);
    LAUNCHED(c, "avgpool2d_backward");
    return SP_OK;
}

extern "C" sp_status spc_global_avgpool_forward(int dev, float *out, const float *x, int64_t NC, int64_t HW) {
    CTX(c, dev);
    if (NC == 0) return SP_OK;
    k_gap<<<spc_blocks(NC * 32), 256, 0, c->stream>>>(out, x, NC, HW);
    LAUNCHED(c, "global_avgpool_forward");
    return SP_OK;
}

extern "C" sp_status spc_global_avgpool_backward(int dev, float *gx, const float *go, int64_t NC, int64_t HW) {
    CTX(c, dev);
    if (NC * HW == 0) return SP_OK;
    k_gap_back<<<spc_blocks(NC * HW), 256, 0, c->stream>>>(gx, go, NC, HW);
    LAUNCHED(c, "global_avgpool_backward");
    return SP_OK;
}
