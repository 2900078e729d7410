// optim.cu — in-place optimizer updates over flat float32 buffers, each element's float
// arithmetic as engine/cpu/optim.c's (MindSpore's ApplyMomentum, SGD, Adam and the fused
// AdamWeightDecay, with the same fused multiply-adds where the CPU kernel has them).
#include "cuda_internal.cuh"

namespace {

__global__ void k_momentum(float *P, float *V, const float *G, int64_t n, float l, float u, float wd, float inv,
                           int nesterov) {
    GRID_STRIDE(i, n) {
        float g = __fadd_rn(__fmul_rn(G[i], inv), __fmul_rn(wd, P[i]));
        float v = __fadd_rn(__fmul_rn(u, V[i]), g);
        V[i] = v;
        P[i] = __fsub_rn(P[i], nesterov ? __fadd_rn(__fmul_rn(l, g), __fmul_rn(__fmul_rn(l, u), v)) : __fmul_rn(l, v));
    }
}

__global__ void k_sgd(float *P, float *A, const float *G, int64_t n, float l, float u, float d, float wd, float inv,
                      int nesterov, int first) {
    GRID_STRIDE(i, n) {
        float g = __fadd_rn(__fmul_rn(G[i], inv), __fmul_rn(wd, P[i]));
        if (u > 0) {
            A[i] = first ? g : __fadd_rn(__fmul_rn(u, A[i]), __fmul_rn(__fsub_rn(1.0f, d), g));
            P[i] = __fsub_rn(P[i], nesterov ? __fmul_rn(l, __fadd_rn(g, __fmul_rn(u, A[i]))) : __fmul_rn(l, A[i]));
        } else {
            P[i] = __fsub_rn(P[i], __fmul_rn(l, g));
        }
    }
}

__global__ void k_adam(float *P, float *M, float *V, const float *G, int64_t n, float lt, float b1, float b2, float e,
                       float wd, float inv, int nesterov) {
    GRID_STRIDE(i, n) {
        float g = __fadd_rn(__fmul_rn(G[i], inv), __fmul_rn(wd, P[i]));
        M[i] = fmaf(__fsub_rn(g, M[i]), __fsub_rn(1.0f, b1), M[i]);
        V[i] = fmaf(fmaf(g, g, -V[i]), __fsub_rn(1.0f, b2), V[i]);
        float num = nesterov ? __fadd_rn(__fmul_rn(M[i], b1), __fmul_rn(__fsub_rn(1.0f, b1), g)) : M[i];
        P[i] = __fsub_rn(P[i], __fdiv_rn(__fmul_rn(lt, num), __fadd_rn(__fsqrt_rn(V[i]), e)));
    }
}

__global__ void k_adamw(float *P, float *M, float *V, const float *G, int64_t n, float l, float b1, float b2, float e,
                        float wd) {
    GRID_STRIDE(i, n) {
        float g = G[i];
        float mi = fmaf(__fsub_rn(g, M[i]), __fsub_rn(1.0f, b1), M[i]);
        float vi = fmaf(fmaf(g, g, -V[i]), __fsub_rn(1.0f, b2), V[i]);
        M[i] = mi;
        V[i] = vi;
        float u = __fadd_rn(__fdiv_rn(mi, __fadd_rn(__fsqrt_rn(vi), e)), __fmul_rn(wd, P[i]));
        P[i] = __fsub_rn(P[i], __fmul_rn(l, u));
    }
}

} // namespace

// The explicit __f*_rn intrinsics keep nvcc from contracting a*b+c into an FMA where the
// CPU kernel (compiled without contraction) rounds twice.

extern "C" sp_status spc_momentum_update(int dev, float *p, float *m, const float *g, int64_t n, double lr,
                                         double momentum, double wd, double loss_scale, int nesterov) {
    CTX(c, dev);
    if (n == 0) return SP_OK;
    k_momentum<<<spc_blocks(n), 256, 0, c->stream>>>(p, m, g, n, (float)lr, (float)momentum, (float)wd,
                                                     (float)(1.0 / loss_scale), nesterov);
    LAUNCHED(c, "momentum_update");
    return SP_OK;
}

extern "C" sp_status spc_sgd_update(int dev, float *p, float *acc, const float *g, int64_t n, double lr, double momentum,
                                    double dampening, double wd, double loss_scale, int nesterov, int first) {
    CTX(c, dev);
    if (n == 0) return SP_OK;
    k_sgd<<<spc_blocks(n), 256, 0, c->stream>>>(p, acc, g, n, (float)lr, (float)momentum, (float)dampening, (float)wd,
                                                (float)(1.0 / loss_scale), nesterov, first);
    LAUNCHED(c, "sgd_update");
    return SP_OK;
}

extern "C" sp_status spc_adam_update(int dev, float *p, float *m, float *v, const float *g, int64_t n, double lr,
                                     double beta1, double beta2, double eps, double beta1_power, double beta2_power,
                                     double wd, double loss_scale, int nesterov) {
    CTX(c, dev);
    if (n == 0) return SP_OK;
    // lr_t as the CPU kernel computes it (float)
    float lt = (float)lr * sqrtf(1.0f - (float)beta2_power) / (1.0f - (float)beta1_power);
    k_adam<<<spc_blocks(n), 256, 0, c->stream>>>(p, m, v, g, n, lt, (float)beta1, (float)beta2, (float)eps, (float)wd,
                                                 (float)(1.0 / loss_scale), nesterov);
    LAUNCHED(c, "adam_update");
    return SP_OK;
}

extern "C" sp_status spc_adamw_update(int dev, float *p, float *m, float *v, const float *g, int64_t n, double lr,
                                      double beta1, double beta2, double eps, double wd) {
    CTX(c, dev);
    if (n == 0) return SP_OK;
    k_adamw<<<spc_blocks(n), 256, 0, c->stream>>>(p, m, v, g, n, (float)lr, (float)beta1, (float)beta2, (float)eps,
                                                  (float)wd);
    LAUNCHED(c, "adamw_update");
    return SP_OK;
}
