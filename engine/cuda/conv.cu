// conv.cu — Conv2d forward, input gradient and weight/bias gradients through cuDNN
// (NCHW float32, symmetric padding; engine/cuda/cuda_kernels.c pads explicitly for
// asymmetric 'same' padding). Algorithms come from cuDNN's heuristics (the _v7 queries,
// as PyTorch without cudnn.benchmark) and are cached per shape. The math type is cuDNN's
// default, which on Ampere and later allows TF32 tensor cores for float32 convolutions
// (as PyTorch's default allow_tf32 for cuDNN): spec/cuda_spec.lua's bound for conv says so.
#include "cuda_internal.cuh"

#include <cudnn.h>
#include <pthread.h>
#include <string.h>

namespace {

#define DNN(c, call)                                                                               \
    do {                                                                                           \
        cudnnStatus_t s_ = (call);                                                                 \
        if (s_ != CUDNN_STATUS_SUCCESS) {                                                          \
            st = sp_error(SP_EDEVICE, "cuda:%d: cuDNN %s: %s", (c)->dev, #call,                    \
                          cudnnGetErrorString(s_));                                                \
            goto done;                                                                             \
        }                                                                                          \
    } while (0)

sp_status dnn_handle(spc_ctx *c) {
    if (c->dnn) return SP_OK;
    cudnnHandle_t h = NULL;
    cudnnStatus_t s = cudnnCreate(&h);
    if (s == CUDNN_STATUS_SUCCESS) s = cudnnSetStream(h, c->stream);
    if (s != CUDNN_STATUS_SUCCESS) {
        if (h) cudnnDestroy(h);
        return sp_error(SP_EDEVICE, "cuda:%d: cuDNN: cannot create a handle: %s (is libcudnn's version right for "
                        "this driver?)", c->dev, cudnnGetErrorString(s));
    }
    c->dnn = h;
    return SP_OK;
}

// the shape of one convolution and the algorithms chosen for it
struct conv_key { int dev, N, C, H, W, Co, kh, kw, sh, sw, ph, pw, dh, dw, g; };
struct conv_algos {
    conv_key key;
    int have_fwd, have_bwd_data, have_bwd_filter;
    cudnnConvolutionFwdAlgo_t fwd;
    cudnnConvolutionBwdDataAlgo_t bwd_data;
    cudnnConvolutionBwdFilterAlgo_t bwd_filter;
    cudnnMathType_t fwd_math, data_math, filter_math;
};
const int CACHE = 512;
conv_algos g_cache[CACHE];
int g_used, g_next;
pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;

// the cache entry for key (a new zeroed one when absent; round-robin eviction). Entries
// are copied in and out under the lock.
conv_algos lookup(const conv_key &k) {
    pthread_mutex_lock(&g_mu);
    for (int i = 0; i < g_used; i++)
        if (memcmp(&g_cache[i].key, &k, sizeof k) == 0) {
            conv_algos a = g_cache[i];
            pthread_mutex_unlock(&g_mu);
            return a;
        }
    pthread_mutex_unlock(&g_mu);
    conv_algos a;
    memset(&a, 0, sizeof a);
    a.key = k;
    return a;
}
void store(const conv_algos &a) {
    pthread_mutex_lock(&g_mu);
    int slot = -1;
    for (int i = 0; i < g_used; i++)
        if (memcmp(&g_cache[i].key, &a.key, sizeof a.key) == 0) slot = i;
    if (slot < 0) {
        if (g_used < CACHE) slot = g_used++;
        else { slot = g_next; g_next = (g_next + 1) % CACHE; }
    }
    g_cache[slot] = a;
    pthread_mutex_unlock(&g_mu);
}

struct descs {
    cudnnTensorDescriptor_t x, y, b;
    cudnnFilterDescriptor_t w;
    cudnnConvolutionDescriptor_t conv;
};

void destroy(descs *d) {
    if (d->x) cudnnDestroyTensorDescriptor(d->x);
    if (d->y) cudnnDestroyTensorDescriptor(d->y);
    if (d->b) cudnnDestroyTensorDescriptor(d->b);
    if (d->w) cudnnDestroyFilterDescriptor(d->w);
    if (d->conv) cudnnDestroyConvolutionDescriptor(d->conv);
}

sp_status make_descs(spc_ctx *c, descs *d, const conv_key &k, int Ho, int Wo) {
    sp_status st = SP_OK;
    int n = 0, ch = 0, h = 0, w = 0;
    memset(d, 0, sizeof *d);
    DNN(c, cudnnCreateTensorDescriptor(&d->x));
    DNN(c, cudnnCreateTensorDescriptor(&d->y));
    DNN(c, cudnnCreateTensorDescriptor(&d->b));
    DNN(c, cudnnCreateFilterDescriptor(&d->w));
    DNN(c, cudnnCreateConvolutionDescriptor(&d->conv));
    DNN(c, cudnnSetTensor4dDescriptor(d->x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, k.N, k.C, k.H, k.W));
    DNN(c, cudnnSetTensor4dDescriptor(d->y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, k.N, k.Co, Ho, Wo));
    DNN(c, cudnnSetTensor4dDescriptor(d->b, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, k.Co, 1, 1));
    DNN(c, cudnnSetFilter4dDescriptor(d->w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, k.Co, k.C / k.g, k.kh, k.kw));
    DNN(c, cudnnSetConvolution2dDescriptor(d->conv, k.ph, k.pw, k.sh, k.sw, k.dh, k.dw, CUDNN_CROSS_CORRELATION,
                                           CUDNN_DATA_FLOAT));
    DNN(c, cudnnSetConvolutionGroupCount(d->conv, k.g));
    DNN(c, cudnnGetConvolution2dForwardOutputDim(d->conv, d->x, d->w, &n, &ch, &h, &w));
    if (n != k.N || ch != k.Co || h != Ho || w != Wo)
        st = sp_error(SP_EINVAL, "cuda:%d: conv2d: cuDNN computes output [%d,%d,%d,%d], spore expected [%d,%d,%d,%d]",
                      c->dev, n, ch, h, w, k.N, k.Co, Ho, Wo);
done:
    return st;
}

} // namespace


namespace {
__global__ void k_pad(float *dst, const float *src, int64_t NC, int64_t H, int64_t W, int pt, int pb, int pl, int pr) {
    int64_t Hp = H + pt + pb, Wp = W + pl + pr;
    GRID_STRIDE(i, NC * Hp * Wp) {
        int64_t x = i % Wp, y = (i / Wp) % Hp, nc = i / (Wp * Hp);
        int64_t sy = y - pt, sx = x - pl;
        dst[i] = (sy >= 0 && sy < H && sx >= 0 && sx < W) ? src[(nc * H + sy) * W + sx] : 0.0f;
    }
}
__global__ void k_crop(float *dst, const float *src, int64_t NC, int64_t H, int64_t W, int pt, int pb, int pl, int pr) {
    int64_t Hp = H + pt + pb, Wp = W + pl + pr;
    GRID_STRIDE(i, NC * H * W) {
        int64_t x = i % W, y = (i / W) % H, nc = i / (W * H);
        dst[i] = src[(nc * Hp + y + pt) * Wp + x + pl];
    }
}
} // namespace

extern "C" sp_status spc_pad2d(int dev, float *dst, const float *src, int64_t NC, int64_t H, int64_t W, int pt, int pb,
                               int pl, int pr, int crop) {
    CTX(c, dev);
    int64_t n = crop ? NC * H * W : NC * (H + pt + pb) * (W + pl + pr);
    if (n == 0) return SP_OK;
    if (crop) k_crop<<<spc_blocks(n), 256, 0, c->stream>>>(dst, src, NC, H, W, pt, pb, pl, pr);
    else k_pad<<<spc_blocks(n), 256, 0, c->stream>>>(dst, src, NC, H, W, pt, pb, pl, pr);
    LAUNCHED(c, crop ? "crop2d" : "pad2d");
    return SP_OK;
}

extern "C" sp_status spc_conv2d_forward(int dev, float *out, const float *x, const float *w, const float *bias, int N,
                                        int C, int H, int W, int Co, int kh, int kw, int Ho, int Wo, int sh, int sw,
                                        int ph, int pw, int dh, int dw, int groups) {
    CTX(c, dev);
    if ((int64_t)N * Co * Ho * Wo == 0) return SP_OK;
    sp_status st = dnn_handle(c);
    if (st) return st;
    conv_key k = {dev, N, C, H, W, Co, kh, kw, sh, sw, ph, pw, dh, dw, groups};
    descs d;
    void *ws = NULL;
    size_t wsn = 0;
    float one = 1.0f, zero = 0.0f;
    conv_algos a = lookup(k);
    st = make_descs(c, &d, k, Ho, Wo);
    if (st) goto done;
    if (!a.have_fwd) {
        cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
        int got = 0, pick = -1;
        DNN(c, cudnnGetConvolutionForwardAlgorithm_v7((cudnnHandle_t)c->dnn, d.x, d.w, d.conv, d.y,
                                                      CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got, perf));
        for (int i = 0; i < got && pick < 0; i++)
            if (perf[i].status == CUDNN_STATUS_SUCCESS) pick = i;
        if (pick < 0) { st = sp_error(SP_EDEVICE, "cuda:%d: cuDNN has no forward algorithm for this conv2d", dev); goto done; }
        a.fwd = perf[pick].algo;
        a.fwd_math = perf[pick].mathType;
        a.have_fwd = 1;
        store(a);
    }
    DNN(c, cudnnSetConvolutionMathType(d.conv, a.fwd_math));
    DNN(c, cudnnGetConvolutionForwardWorkspaceSize((cudnnHandle_t)c->dnn, d.x, d.w, d.conv, d.y, a.fwd, &wsn));
    if (wsn && !(ws = spc_scratch(c, wsn))) { st = SP_ENOMEM; goto done; }
    DNN(c, cudnnConvolutionForward((cudnnHandle_t)c->dnn, &one, d.x, x, d.w, w, d.conv, a.fwd, ws, wsn, &zero, d.y, out));
    if (bias) DNN(c, cudnnAddTensor((cudnnHandle_t)c->dnn, &one, d.b, bias, &one, d.y, out));
done:
    if (ws) spc_scratch_free(c, ws, wsn);
    destroy(&d);
    return st;
}

extern "C" sp_status spc_conv2d_backward(int dev, float *gx, float *gw, float *gb, const float *go, const float *x,
                                         const float *w, int N, int C, int H, int W, int Co, int kh, int kw, int Ho,
                                         int Wo, int sh, int sw, int ph, int pw, int dh, int dw, int groups) {
    CTX(c, dev);
    sp_status st = dnn_handle(c);
    if (st) return st;
    conv_key k = {dev, N, C, H, W, Co, kh, kw, sh, sw, ph, pw, dh, dw, groups};
    descs d;
    void *ws = NULL;
    size_t wsn = 0;
    float one = 1.0f, zero = 0.0f;
    conv_algos a = lookup(k);
    int changed = 0;
    st = make_descs(c, &d, k, Ho, Wo);
    if (st) goto done;
    if (gx && (int64_t)N * C * H * W > 0) {
        if ((int64_t)N * Co * Ho * Wo == 0) {
            cudaError_t e = cudaMemsetAsync(gx, 0, sizeof(float) * (size_t)N * C * H * W, c->stream);
            if (e != cudaSuccess) { (void)cudaGetLastError(); st = sp_error(SP_EDEVICE, "cuda:%d: cudaMemsetAsync: %s", dev, cudaGetErrorName(e)); goto done; }
        } else {
            if (!a.have_bwd_data) {
                cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
                int got = 0, pick = -1;
                DNN(c, cudnnGetConvolutionBackwardDataAlgorithm_v7((cudnnHandle_t)c->dnn, d.w, d.y, d.conv, d.x,
                                                                   CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &got, perf));
                for (int i = 0; i < got && pick < 0; i++)
                    if (perf[i].status == CUDNN_STATUS_SUCCESS) pick = i;
                if (pick < 0) { st = sp_error(SP_EDEVICE, "cuda:%d: cuDNN has no input-gradient algorithm for this conv2d", dev); goto done; }
                a.bwd_data = perf[pick].algo;
                a.data_math = perf[pick].mathType;
                a.have_bwd_data = 1;
                changed = 1;
            }
            DNN(c, cudnnSetConvolutionMathType(d.conv, a.data_math));
            DNN(c, cudnnGetConvolutionBackwardDataWorkspaceSize((cudnnHandle_t)c->dnn, d.w, d.y, d.conv, d.x,
                                                                a.bwd_data, &wsn));
            if (wsn && !(ws = spc_scratch(c, wsn))) { st = SP_ENOMEM; goto done; }
            DNN(c, cudnnConvolutionBackwardData((cudnnHandle_t)c->dnn, &one, d.w, w, d.y, go, d.conv, a.bwd_data, ws,
                                                wsn, &zero, d.x, gx));
            if (ws) { spc_scratch_free(c, ws, wsn); ws = NULL; }
        }
    }
    if (gw && (int64_t)N * Co * Ho * Wo > 0) { // grad_w += (beta = 1)
        if (!a.have_bwd_filter) {
            cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
            int got = 0, pick = -1;
            DNN(c, cudnnGetConvolutionBackwardFilterAlgorithm_v7((cudnnHandle_t)c->dnn, d.x, d.y, d.conv, d.w,
                                                                 CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &got, perf));
            for (int i = 0; i < got && pick < 0; i++)
                if (perf[i].status == CUDNN_STATUS_SUCCESS) pick = i;
            if (pick < 0) { st = sp_error(SP_EDEVICE, "cuda:%d: cuDNN has no weight-gradient algorithm for this conv2d", dev); goto done; }
            a.bwd_filter = perf[pick].algo;
            a.filter_math = perf[pick].mathType;
            a.have_bwd_filter = 1;
            changed = 1;
        }
        wsn = 0;
        DNN(c, cudnnSetConvolutionMathType(d.conv, a.filter_math));
        DNN(c, cudnnGetConvolutionBackwardFilterWorkspaceSize((cudnnHandle_t)c->dnn, d.x, d.y, d.conv, d.w,
                                                              a.bwd_filter, &wsn));
        if (wsn && !(ws = spc_scratch(c, wsn))) { st = SP_ENOMEM; goto done; }
        DNN(c, cudnnConvolutionBackwardFilter((cudnnHandle_t)c->dnn, &one, d.x, x, d.y, go, d.conv, a.bwd_filter, ws,
                                              wsn, &one, d.w, gw));
        if (ws) { spc_scratch_free(c, ws, wsn); ws = NULL; }
    }
    if (gb && (int64_t)N * Co * Ho * Wo > 0) // grad_b += (beta = 1)
        DNN(c, cudnnConvolutionBackwardBias((cudnnHandle_t)c->dnn, &one, d.y, go, &one, d.b, gb));
done:
    if (changed) store(a);
    if (ws) spc_scratch_free(c, ws, wsn);
    destroy(&d);
    return st;
}
